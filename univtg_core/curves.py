"""What a front end needs to show a long video's results: the curve sized for a screen, a zoomed range around
a moment, and an estimate of the time an index has left. Pure functions and a small clock-driven class;
nothing here knows about any UI."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CurveView:
    """A saliency curve over [start, end) seconds in at most `max_points` buckets: each bucket's time (its
    centre), mean, and the min and max it covers (a two-hour curve keeps its peaks when drawn in 800 points)."""

    times: np.ndarray
    values: np.ndarray
    lows: np.ndarray
    highs: np.ndarray
    start: float
    end: float


def curve_view(saliency: np.ndarray, clip_len: float, start: float | None = None, end: float | None = None,
               max_points: int = 800) -> CurveView:
    """The part of the curve in [start, end) seconds (default all), in at most `max_points` buckets of whole
    clips, so that a plot payload stays a few kilobytes whatever the video's length."""
    values = np.asarray(saliency, dtype=np.float64).reshape(-1)
    n = values.size
    if n == 0 or not clip_len > 0:
        raise ValueError("need a non-empty curve and a positive clip length")
    first = 0 if start is None else int(np.clip(np.floor(start / clip_len), 0, n - 1))
    last = n if end is None else int(np.clip(np.ceil(end / clip_len), first + 1, n))
    part = values[first:last]
    per = max(1, int(np.ceil(part.size / max(1, int(max_points)))))
    pad = (-part.size) % per
    padded = np.pad(part, (0, pad), constant_values=np.nan)
    blocks = padded.reshape(-1, per)
    counts = np.sum(~np.isnan(blocks), axis=1)
    means = np.nansum(blocks, axis=1) / counts
    centres = (first + np.arange(len(blocks)) * per + np.minimum(per, part.size - np.arange(len(blocks)) * per) / 2)
    return CurveView(times=centres * clip_len, values=means, lows=np.nanmin(blocks, axis=1),
                     highs=np.nanmax(blocks, axis=1), start=first * clip_len, end=last * clip_len)


def zoom_range(duration: float, start: float, end: float | None = None, width: float | None = None,
               min_width: float = 30.0) -> tuple[float, float]:
    """The range a zoomed panel shows around a moment [start, end] (or a point): the moment plus as much
    context on each side (at least `min_width` seconds in all, default width three times the moment), inside
    [0, duration]."""
    end = start if end is None else end
    if not 0 <= start <= end:
        raise ValueError(f"need 0 <= start <= end; got {start}, {end}")
    span = end - start
    width = max(float(min_width), 3.0 * span if width is None else float(width), span)
    width = min(width, float(duration))
    centre = (start + end) / 2
    lo = min(max(0.0, centre - width / 2), max(0.0, duration - width))
    return lo, min(float(duration), lo + width)


class TimeLeft:
    """An estimate of the time left from progress calls (done, total), for an index's progress bar.

    The rate is measured over this run only (a resumed index starts at its resume point, which costs
    nothing), smoothed so one slow batch does not swing it. `update` returns the seconds left, None until
    two updates have come.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, smoothing: float = 0.3):
        self.clock = clock
        self.smoothing = smoothing
        self._first: tuple[float, int] | None = None
        self._last: tuple[float, int] | None = None
        self._rate: float | None = None
        self.done = self.total = 0

    def update(self, done: int, total: int) -> float | None:
        now = self.clock()
        self.done, self.total = int(done), int(total)
        if self._first is None:
            self._first = self._last = (now, self.done)
            return None
        last_time, last_done = self._last
        if self.done > last_done and now > last_time:
            rate = (self.done - last_done) / (now - last_time)
            self._rate = rate if self._rate is None else self.smoothing * rate + (1 - self.smoothing) * self._rate
            self._last = (now, self.done)
        return self.seconds_left

    __call__ = update

    @property
    def seconds_left(self) -> float | None:
        if self._rate is None or self._rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / self._rate)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def describe(self) -> str:
        """e.g. "312 of 3600 clips, about 4:05 left"."""
        left = self.seconds_left
        text = f"{self.done} of {self.total} clips"
        if left is None:
            return text
        minutes, seconds = divmod(int(round(left)), 60)
        hours, minutes = divmod(minutes, 60)
        clock = f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
        return f"{text}, about {clock} left"
