"""What the page keeps of a result with nested moments, through the handler that builds every output: the
table, the curve's shading and the JSON name the same moments in each `--nested-moments` mode (frames and
clips stubbed: nothing is decoded)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from univtg_core.results import Moment, Prediction

# One event (4-10 s) with three candidates NMS keeps inside it, and a second event (20-24 s).
NESTED = (Moment(4.0, 10.0, 0.9), Moment(4.0, 6.0, 0.8), Moment(20.0, 24.0, 0.7), Moment(4.0, 8.0, 0.6),
          Moment(8.0, 10.0, 0.5))
EVENTS = [[4.0, 10.0, 0.9], [20.0, 24.0, 0.7]]
INSIDE = [[4.0, 6.0, 0.8], [4.0, 8.0, 0.6], [8.0, 10.0, 0.5]]


def _seconds(clock: str) -> float:
    minutes, seconds = clock.split(":")
    return int(minutes) * 60 + int(seconds)


@pytest.mark.parametrize(("mode", "kept", "folded"), [
    ("fold", EVENTS, [[*m, 1] for m in INSIDE]),
    ("drop", EVENTS, []),
    ("keep", [[4.0, 10.0, 0.9], [4.0, 6.0, 0.8], [20.0, 24.0, 0.7], [4.0, 8.0, 0.6], [8.0, 10.0, 0.5]], []),
])
def test_table_curve_and_json_agree_on_what_was_kept(tmp_path, monkeypatch, mode, kept, folded):
    from app import builders, handlers
    from app.session import SessionStore

    frame = np.zeros((36, 64, 3), np.uint8)
    monkeypatch.setattr(handlers, "read_frames_at", lambda video, seconds, max_side=320: [frame] * len(seconds))
    monkeypatch.setattr(handlers, "cut_clip", lambda src, dst, start, end: Path(dst).write_bytes(b"\0"))
    monkeypatch.setattr(handlers, "write_summary_video", lambda src, pred, dst: Path(dst).write_bytes(b"\0"))
    drawn = []
    real_figure = builders.saliency_figure
    monkeypatch.setattr(builders, "saliency_figure", lambda spec: drawn.append(spec) or real_figure(spec))

    saliency = np.linspace(0.0, 1.0, 15)
    prediction = Prediction(moments=NESTED, saliency=saliency, clip_len=2.0, duration=30.0, highlight=6.0,
                            summary=(5.0, 21.0), query="q", mode="zero-shot")
    handler = handlers.QueryHandler(SimpleNamespace(mode="zero-shot"), SessionStore(tmp_path / "sessions"),
                                    options=handlers.PageOptions(nested=mode))
    info = {"n_clips": 15, "duration": 30.0, "from_cache": True, "seconds": 0.1}
    result, rows, *_rest, status, _curve = handler.outputs("/videos/v.mp4", "q", None, prediction, info, 0.01,
                                                           handler.sessions.open("s"))

    assert result["pred_relevant_windows"] == kept and result["nested_moments"] == mode
    assert result["folded_windows"] == folded
    assert [[_seconds(r[1]), _seconds(r[2]), float(r[4])] for r in rows] == kept  # the table
    assert [list(s) for s in drawn[-1].spans] == kept[:3]  # the curve's shading
    assert [[m["start"], m["end"]] for m in result["readable"]["moments"]] == [r[1:3] for r in rows]
    assert ("also 00:04–00:06" in rows[0][5]) == (mode == "fold")  # folded ones named under their event
    assert f"{len(kept)} moment" in status
    # A display rule: the core's ranked list, what evaluation scores, is left as it was.
    assert prediction.to_dict()["pred_relevant_windows"] == [[m.start, m.end, m.score] for m in NESTED]
