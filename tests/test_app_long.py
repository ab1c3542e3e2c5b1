"""Long videos in the app: times with hours, moments across the film, and no megabyte payloads.

A two-hour result is built from a synthetic prediction (3,600 clips, hundreds of summary points) through
the handler that builds the page's outputs, with frames and clips stubbed: nothing is decoded. A
few-minute generated video then goes through the running app's API, and the bytes of its answer are
counted as they come over the wire.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from univtg_core.results import Moment, Prediction

TWO_HOURS = 7200.0


def film_prediction() -> Prediction:
    """A two-hour zero-shot-like result: planted events (one with nested candidates), a curve of 3,600 clips
    and the core's 15 % summary (540 points)."""
    rng = np.random.default_rng(0)
    saliency = rng.normal(0.0, 0.05, 3600)
    for start, end, level in ((1200, 1210, 1.0), (4000, 4030, 0.8), (6900, 6905, 0.9)):
        saliency[start:end] += level
    moments = (Moment(2400.0, 2420.0, 0.93), Moment(2404.0, 2410.0, 0.9), Moment(13800.0 / 2, 6910.0, 0.81),
               Moment(5000.0, 5060.0, 0.7), Moment(2400.0, 2412.0, 0.6), Moment(100.0, 130.0, 0.3))
    order = np.argsort(-saliency, kind="stable")[:540]
    return Prediction(moments=moments, saliency=saliency, clip_len=2.0, duration=TWO_HOURS,
                      highlight=float(order[0]) * 2.0, summary=tuple(sorted((order + 0.5) * 2.0)),
                      query="a film query", mode="zero-shot")


def test_a_two_hour_result_is_sized_for_a_screen(tmp_path, monkeypatch):
    from app import handlers
    from app.session import SessionStore

    frame = np.dstack([np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (180, 1))] * 3)  # a 320x180 picture
    monkeypatch.setattr(handlers, "read_frames_at", lambda video, seconds, max_side=320: [frame] * len(seconds))
    clips = []

    def fake_clip(*args):
        Path(args[2] if len(args) == 3 else args[1]).write_bytes(b"\0" * 1000)
        clips.append(args)

    monkeypatch.setattr(handlers, "cut_clip", lambda src, dst, start, end: fake_clip(src, dst, start, end))
    monkeypatch.setattr(handlers, "write_summary_video", lambda src, pred, dst: fake_clip(src, pred, dst))
    handler = handlers.QueryHandler(SimpleNamespace(mode="zero-shot"), SessionStore(tmp_path / "sessions"))
    session = handler.sessions.open("film")
    prediction = film_prediction()
    info = {"n_clips": 3600, "duration": TWO_HOURS, "from_cache": True, "seconds": 0.4}
    started = time.perf_counter()
    result, rows, plot, gallery, summary_video, downloads, status, curve = handler.outputs(
        "/videos/film.mp4", "a film query", None, prediction, info, 0.02, session)
    build_seconds = time.perf_counter() - started

    # Moments across the film, with hours, each event once.
    assert [r[1:3] for r in rows[:3]] == [["0:40:00", "0:40:20"], ["1:55:00", "1:55:10"], ["1:23:20", "1:24:20"]]
    assert result["folded_windows"] == [[2404.0, 2410.0, 0.9, 1], [2400.0, 2412.0, 0.6, 1]]
    # A gallery and a summary video of a few dozen points, not 540.
    assert len(result["pred_summary"]) == 540 and len(result["summary_shown"]) == 24 and len(gallery) == 25
    (summarised,) = [args[1] for args in clips if len(args) == 3]
    assert summarised.summary == tuple(result["summary_shown"])  # the summary video plays the shown points
    assert len(curve) == 800  # the interactive curve: binned for a screen

    # What one answer weighs: the data in the response, and the images the page then fetches.
    data = {"json": len(json.dumps(result)), "table": len(json.dumps(rows)),
            "curve": len(curve.to_json(orient="split")), "status": len(status.encode())}
    files = {"plot": Path(plot).stat().st_size, "gallery": sum(Path(p).stat().st_size for p, _ in gallery)}
    measured = {"response_bytes": data, "fetched_bytes": files, "build_seconds": round(build_seconds, 2)}
    print(json.dumps(measured))
    assert sum(data.values()) < 250_000, measured  # the curve of 3,600 clips is most of it (as JSON)
    assert files["plot"] < 250_000 and files["gallery"] < 400_000, measured
    assert data["table"] < 60_000  # ten inline thumbnails

    # Choosing a row re-draws the curve around it: one PNG, not the film's data again.
    _player, segment, replot = handler.pick_row(result, session, SimpleNamespace(index=[1, 2]))
    assert segment[:3] == [6900.0, 6910.0, 1]
    assert Path(replot).stat().st_size < 250_000


def test_the_windows_to_search_reach_the_core_and_the_status_says_what_was_searched(tmp_path, monkeypatch):
    """The advanced option goes to `Grounder.query(coarse_top_k=)` as the core parses it; nonsense is one
    gr.Error before the video is indexed; the status line and the JSON say which windows were searched."""
    import gradio as gr

    from app import handlers
    from app.session import SessionStore
    from univtg_core import WindowSearch

    asked = []
    searched = WindowSearch(searched=8, total=97, asked="auto", rule="auto: 97 windows, more than 16",
                            first_stage="cosine")

    class Grounder:
        mode = "model"
        sources = ("clip",)

        def index(self, video, progress_for=None):
            asked.append("index")
            return SimpleNamespace(n_clips=3600, info=SimpleNamespace(duration=TWO_HOURS), from_cache=True,
                                   seconds=0.1)

        def query(self, index, text=None, image=None, coarse_top_k="auto"):
            asked.append(coarse_top_k)
            return replace(film_prediction(), mode="model", window_search=searched)

    handler = handlers.QueryHandler(Grounder(), SessionStore(tmp_path / "sessions"))
    for choice, passed in (("auto", "auto"), (None, "auto"), ("", "auto"), (" ALL", "all"), ("16", 16), (8, 8)):
        asked.clear()
        _info, prediction, _seconds = handler._ground("/videos/film.mp4", "a film query", None, None,
                                                      handler.check_windows(choice))
        assert asked == ["index", passed], choice
    for bad in ("many", "0", "-4", "2.5"):
        asked.clear()
        with pytest.raises(gr.Error, match="Windows to search must be"):
            handler.answer("/videos/film.mp4", "a film query", None, handler.sessions.open("x"), None, bad)
        assert asked == []  # refused before any indexing

    monkeypatch.setattr(handlers, "read_frames_at", lambda video, seconds, max_side=320: [None] * len(seconds))
    monkeypatch.setattr(handlers, "cut_clip", lambda src, dst, start, end: Path(dst).write_bytes(b"\0"))
    monkeypatch.setattr(handlers, "write_summary_video", lambda src, pred, dst: Path(dst).write_bytes(b"\0"))
    info = {"n_clips": 3600, "duration": TWO_HOURS, "from_cache": True, "seconds": 0.4}
    result, *_rest, status, _curve = handler.outputs("/videos/film.mp4", "a film query", None, prediction, info,
                                                     1.5, handler.sessions.open("film"))
    assert status.endswith("mode: model · searched the 8 best of 97 windows (auto)"), status
    assert result["window_search"] == searched.to_dict()


@pytest.mark.slow
def test_a_long_video_through_the_api(app_server, tmp_path):
    """A 3-minute video (1 fps, 64x36): the planted moment is found where it is, the answer is small."""
    import httpx
    from app_server import CYAN, RED, upload

    from univtg_core.media import make_colour_video

    video = make_colour_video(tmp_path / "three-minutes.mp4", [(RED, 100), (CYAN, 20), (RED, 60)], fps=1,
                              size=(64, 36))
    from PIL import Image

    image = tmp_path / "cyan.png"
    Image.fromarray(np.full((32, 32, 3), CYAN, dtype=np.uint8)).save(image)
    files = [upload(app_server.url, path).json()[0] for path in (video, image)]
    data = [{"path": files[0], "meta": {"_type": "gradio.FileData"}}, "",
            {"path": files[1], "meta": {"_type": "gradio.FileData"}}, "auto"]
    started = time.perf_counter()
    event = httpx.post(app_server.url + "gradio_api/call/predict", json={"data": data}, timeout=30).json()
    received = b""
    with httpx.stream("GET", app_server.url + f"gradio_api/call/predict/{event['event_id']}", timeout=600) as answer:
        for chunk in answer.iter_bytes():
            received += chunk
    seconds = time.perf_counter() - started
    assert b"event: complete" in received, received[-2000:]
    payload = received.split(b"event: complete", 1)[1].split(b"data: ", 1)[1].strip()
    outputs = json.loads(payload)
    result, table = outputs[0], outputs[1]
    start, end, _score = result["pred_relevant_windows"][0]
    assert abs(start - 100.0) <= 2.0 and abs(end - 120.0) <= 2.0, result["pred_relevant_windows"]
    assert table["data"][0][1] == "01:40" and len(result["pred_saliency_scores"]) == 90
    print(json.dumps({"response_bytes": len(received), "seconds": round(seconds, 1)}))
    assert len(received) < 150_000
