"""The app's long-video parts (app/long_view.py): an index's progress with the time left of this run, an
index interrupted in the app that resumes on the next query, the zoomed curve around what plays, and a
too-long file refused before it is read to be hashed."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest

from app import long_view
from univtg_core import Grounder, VideoTooLongError
from univtg_core.indexing import index_video
from univtg_core.media import make_colour_video
from univtg_core.store import FeatureStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_clip import tiny_clip_encoder  # noqa: E402


class Recorder:
    """Stands in for gr.Progress: keeps every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, value, desc=None, unit=None):
        self.calls.append((value, desc, unit))


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_time_left_comes_from_this_runs_rate_and_a_resume_says_so():
    clock, recorder = Clock(), Recorder()
    progress = long_view.IndexProgress(recorder, clock=clock)
    progress(1800, 3600)  # resumed halfway: the first 1,800 clips cost this run nothing
    clock.now = 10.0
    progress(1900, 3600)  # 10 clips a second now, 1,700 to go
    assert progress.resumed_at == 1800
    (first, first_desc, unit), (value, desc, _) = recorder.calls
    assert first == (1800, 3600) and value == (1900, 3600) and unit == "clips"
    assert first_desc == "Encoding clips 1800/3600 (resumed at clip 1800)"  # no rate yet: no guess
    # 170 s; the elapsed time over all clips done (10 s / 1,900 clips) would have said 9 s
    assert desc == "Encoding clips 1900/3600 (resumed at clip 1800) · about 2 min 50 s left"


def test_an_index_from_the_start_is_not_called_resumed():
    clock, recorder = Clock(), Recorder()
    progress = long_view.IndexProgress(recorder, clock=clock)
    for done in (0, 360, 720):
        progress(done, 3600)
        clock.now += 60.0
    assert progress.resumed_at is None
    assert recorder.calls[-1][1] == "Encoding clips 720/3600 · about 8 min 00 s left"  # 6 clips a second, 2,880 to go


def film_result(n_clips: int = 3600, clip_len: float = 2.0) -> dict:
    saliency = np.random.default_rng(0).normal(0.0, 0.05, n_clips)
    saliency[2500:2510] += 1.0  # 5000-5020 s
    return {"duration": n_clips * clip_len, "clip_len": clip_len, "pred_saliency_scores": saliency.tolist(),
            "pred_relevant_windows": [[5000.0, 5020.0, 0.9], [100.0, 110.0, 0.5]], "pred_highlight": 5004.0}


def test_the_zoomed_curve_shows_the_clips_around_what_plays():
    result = film_result()
    # around the top moment first: a minute of video, one point per 2 s clip
    assert long_view.zoom_of(result) == (4980.0, 5040.0)
    points = long_view.zoom_points(result)
    assert len(points["time"]) == 30 and points["time"][0] == 4981.0 and points["time"][-1] == 5039.0
    assert points["at"][0] == "1:23:01"  # hour-aware, as the table writes times
    peak = points["time"][int(np.argmax(points["saliency"]))]
    assert 5000.0 <= peak <= 5020.0
    # a chosen row (or a dragged range) moves it; at the film's start it stays inside the video
    assert long_view.zoom_of(result, [100.0, 110.0, 1, True]) == (75.0, 135.0)
    assert long_view.zoom_of(result, [0.0, 4.0, -1, True]) == (0.0, 60.0)
    assert long_view.zoom_of(result, [7190.0, 7200.0]) == (7140.0, 7200.0)
    # a range wider than the zoom's points is binned and keeps its peak
    wide = long_view.zoom_points(result, [0.0, 7200.0])
    assert len(wide["time"]) <= long_view.ZOOM_POINTS and max(wide["saliency"]) == pytest.approx(
        max(result["pred_saliency_scores"]), abs=1e-4)
    # no result (a new upload cleared it): nothing to draw
    assert long_view.zoomed_curve(None) is None and long_view.zoom_points({"duration": 0}) is None
    assert list(long_view.zoomed_curve(result).columns) == ["time", "saliency", "at"]


class PowerCut:
    """The tiny CLIP encoder whose first stream stops with an error after `after` clips (a crash, a closed
    tab's worker, a restart), and which counts the clips it encodes."""

    def __init__(self, encoder, after: int):
        self.encoder, self.after, self.clips, self.cut = encoder, after, 0, False

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def iter_video_features(self, path, clip_len=2.0, progress=None, *, start_clip=0, **kwargs):
        for batch in self.encoder.iter_video_features(path, clip_len, progress, start_clip=start_clip, **kwargs):
            for chunk in np.array_split(batch, max(1, len(batch) // 4)):  # written to the store 4 clips at a time
                self.clips += len(chunk)
                yield chunk
                if not self.cut and self.clips >= self.after:
                    self.cut = True
                    raise RuntimeError("power cut")


def test_an_index_interrupted_in_the_app_resumes_on_the_next_query(tmp_path):
    from app.handlers import QueryHandler
    from app.session import SessionStore

    video = make_colour_video(tmp_path / "colours.mp4", [((230, 20, 20), 30), ((0, 230, 230), 30)], fps=2,
                              size=(64, 36))
    encoder = PowerCut(tiny_clip_encoder(), after=12)
    handler = QueryHandler(Grounder(encoder, cache_dir=tmp_path / "cache"), SessionStore(tmp_path / "sessions"))
    session = handler.sessions.open("one")
    with pytest.raises(gr.Error):
        handler.answer(str(video), "a cyan screen", None, session, Recorder())
    cut_at = encoder.clips
    assert 12 <= cut_at < 30
    recorder = Recorder()
    result, rows, *_rest, status, _curve = handler.answer(str(video), "a cyan screen", None, session, recorder)
    assert encoder.clips - cut_at == 30 - cut_at  # only the clips the first run did not write
    assert "(resumed at clip" in recorder.calls[0][1] and recorder.calls[-1][0] == (30, 30)
    assert len(result["pred_saliency_scores"]) == 30 and rows and "indexed 30 clips" in status
    again = Recorder()
    handler.answer(str(video), "a red screen", None, session, again)
    assert encoder.clips == 30 and again.calls[-1][0] == (30, 30)  # the third query reads the store


def test_a_too_long_file_is_refused_before_it_is_hashed(tmp_path, monkeypatch):
    video = make_colour_video(tmp_path / "long.mp4", [((230, 20, 20), 20)], fps=1, size=(32, 32))

    def no_hashing(*_args, **_kwargs):
        raise AssertionError("the file was read to be hashed before its length was checked")

    monkeypatch.setattr(FeatureStore, "content_hash", no_hashing)
    with pytest.raises(VideoTooLongError, match=r"20.0 s long; the limit here is 10.0 s"):
        index_video(video, SimpleNamespace(fingerprint="never-used", embed_dim=8), 2.0, cache_dir=tmp_path,
                    max_duration=10.0)
