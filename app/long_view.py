"""What the page adds for long videos: an index's progress with the time left, and the zoomed curve.

A two-hour upload is indexed once, with a progress bar whose estimate comes from `univtg_core.TimeLeft`
(the rate of this run only, so an index resumed at clip 1,800 does not claim the first 1,800 clips took no
time). The interactive curve of a film is binned to a screen's width (9 s a point on two hours), too coarse
to drag a ten-second range on; the zoomed curve shows the stretch around what plays at one point per clip,
and a range dragged on it plays like one dragged on the whole curve. Nothing here creates components.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from univtg_core import TimeLeft, curve_view, format_time, zoom_range

from . import builders

ZOOM_POINTS = 400  # the zoomed curve's points at most (a zoom wider than this many clips is binned)
ZOOM_MIN_SECONDS = 60.0  # the zoomed curve shows at least this much video around what plays


class IndexProgress:
    """`progress(done, total)` for `Grounder.index` that drives a `gr.Progress` with the clips done and the
    time left; `resumed_at` is the clip an interrupted index resumed at (None: it started at the first)."""

    def __init__(self, progress: Any, clock: Callable[[], float] = time.monotonic, label: str = ""):
        self.progress = progress
        self.label = label  # the source's name when a model reads several (e.g. "SlowFast")
        self.left = TimeLeft(clock=clock)
        self.resumed_at: int | None = None
        self.calls = 0

    def __call__(self, done: int, total: int) -> None:
        if not total:
            return
        if self.calls == 0 and 0 < done < total:
            self.resumed_at = int(done)
        self.calls += 1
        seconds_left = self.left.update(done, total)
        if self.progress is not None:
            self.progress((done, total), desc=self.describe(seconds_left), unit="clips")

    def describe(self, seconds_left: float | None) -> str:
        """'Encoding clips 1800/3600 (resumed) · about 4 min 05 s left': the page's length format."""
        text = builders.progress_text(self.left.done, self.left.total, seconds_left)
        if self.resumed_at is not None:
            head, sep, tail = text.partition(" · ")
            text = f"{head} (resumed at clip {self.resumed_at}){sep}{tail}"
        return f"{self.label}: {text}" if self.label else text


def zoom_of(result: dict | None, segment: Any = None) -> tuple[float, float] | None:
    """The range the zoomed curve shows: around `segment` ([start, end, ...], what plays) or else the top
    moment, at least `ZOOM_MIN_SECONDS` wide, inside the video (None: no result to zoom on)."""
    result = result or {}
    duration = float(result.get("duration") or 0.0)
    if not duration > 0 or not result.get("pred_saliency_scores"):
        return None
    if isinstance(segment, (list, tuple)) and len(segment) >= 2:
        start, end = sorted(float(v) for v in segment[:2])
    elif result.get("pred_relevant_windows"):
        start, end = (float(v) for v in result["pred_relevant_windows"][0][:2])
    else:
        start = end = float(result.get("pred_highlight") or 0.0)
    start = min(max(start, 0.0), duration)
    end = min(max(end, start), duration)
    return zoom_range(duration, start, end, min_width=ZOOM_MIN_SECONDS)


def zoom_points(result: dict | None, segment: Any = None, max_points: int = ZOOM_POINTS) -> dict[str, list] | None:
    """Columns for the zoomed curve ({'time', 'saliency', 'at'}): the clips of `zoom_of(result, segment)`, one
    point per clip (binned past `max_points`, each bin's highest value), or None without a result."""
    zoom = zoom_of(result, segment)
    if zoom is None:
        return None
    clip_len = float(result.get("clip_len") or 2.0)
    duration = float(result["duration"])
    view = curve_view(result["pred_saliency_scores"], clip_len, zoom[0], zoom[1], max_points=max_points)
    times = [min(float(t), duration) for t in view.times]
    return {"time": [round(t, 3) for t in times], "saliency": [round(float(v), 4) for v in view.highs],
            "at": [format_time(t, duration=duration) for t in times]}


def zoomed_curve(result: dict | None, segment: Any = None) -> pd.DataFrame | None:
    """The zoomed curve's value after an answer or a choice (an event's output; None clears it)."""
    points = zoom_points(result, segment)
    return pd.DataFrame(points) if points is not None else None
