"""The clip grid: how many clips a video has, which frame stands for each, and which frame is shown when.

Pure functions of numbers: no file is opened here.

Times are on the file's timeline, the one a player shows: zero is the start of the file (its earliest
stream), so a video track that starts after its audio has its first frame at a positive time. This is also
the timeline of UniVTG's extractor, whose ffmpeg command line outputs frames from time zero at a constant
rate: clip ``k`` is the last frame before ``(k + ½) · clip_len`` (`clip_frame_indices` says what the clips
before a late first frame show).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..avfilter import rescale_near, tick_duration

# Clip centres are clamped this far inside the end of the video.
INSIDE_END = 1e-3
# Timestamps closer than this are treated as equal (they are rationals turned into floats).
TIME_EPS = 1e-6


def clip_count(duration: float, clip_len: float) -> int:
    """Number of clips of ``clip_len`` seconds in a video of ``duration`` seconds.

    ``max(1, round(duration / clip_len))`` with halves rounded up: this is how many frames ffmpeg's ``fps``
    filter (``round=near``) emits, which is what UniVTG's extractor runs at ``1 / clip_len`` fps. A 30.7 s
    video at 2 s gives 15 clips, 31.0 s gives 16. ``reading.count_clips`` refuses a video shorter than one
    clip; this function, a pure count, gives it one.
    """
    if not clip_len > 0:
        raise ValueError(f"clip_len must be a positive number of seconds; got {clip_len!r}")
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number of seconds >= 0; got {duration!r}")
    return max(1, math.floor(duration / clip_len + 0.5))


def clip_times(duration: float, clip_len: float) -> np.ndarray:
    """The centre of each clip, ``(i + 0.5) * clip_len``, clamped to inside the video.

    The frame that stands for a clip is the last one shown before its centre (`clip_frame_indices`).
    """
    n = clip_count(duration, clip_len)
    centres = (np.arange(n, dtype=np.float64) + 0.5) * clip_len
    return np.minimum(centres, max(duration - INSIDE_END, 0.0))


def frame_ticks(pts: np.ndarray, offset: int, time_base: Fraction, clip_len: float) -> np.ndarray:
    """The clip tick of each frame, exactly as ffmpeg's ``fps`` filter rounds it (halves away from zero).

    ``pts`` are integer timestamps in ``time_base`` and ``offset`` the file's start in the same unit; the tick
    of a frame is ``round((pts - offset) · time_base / tick)`` with the filter's tick for ``1 / clip_len``.
    Exact integer arithmetic: a frame exactly half-way between two ticks goes to the later one, as in ffmpeg.
    """
    values = np.asarray(pts, dtype=np.int64) - int(offset)
    out_tb = tick_duration(clip_len)
    tb = Fraction(time_base)
    num_scale, den = tb.numerator * out_tb.denominator, tb.denominator * out_tb.numerator
    if values.size == 0:
        return values
    if int(np.abs(values).max()) * num_scale * 2 < 2**62:  # fits in int64: vectorised
        num = values * num_scale
        q, r = np.divmod(np.abs(num), den)
        q = q + (2 * r >= den)
        return np.where(num >= 0, q, -q)
    return np.array([rescale_near(int(v), tb, out_tb) for v in values], dtype=np.int64)


def time_ticks(times: np.ndarray, clip_len: float) -> np.ndarray:
    """`frame_ticks` for times in float seconds (backends without integer timestamps)."""
    t = np.asarray(times, dtype=np.float64)
    return np.floor((t + TIME_EPS) / float(tick_duration(clip_len)) + 0.5).astype(np.int64)


def clip_frame_indices(ticks: np.ndarray, n_clips: int) -> np.ndarray:
    """The frame that stands for each clip: the last one whose tick is at or before the clip's.

    ``ticks`` are the frames' ticks in display order (non-decreasing). The ``fps`` filter starts at the first
    frame's tick; when that is above zero (a video starting at least half a clip after the file does), the
    command line's constant-rate output repeats its first output for the clips before: those clips take the
    frame of the first frame's tick, not the first frame.
    """
    ticks = np.asarray(ticks)
    if len(ticks) == 0:
        return np.zeros(int(n_clips), dtype=np.int64)
    wanted = np.maximum(np.arange(int(n_clips)), ticks[0])
    return np.clip(np.searchsorted(ticks, wanted, side="right") - 1, 0, len(ticks) - 1)


def index_shown_at(times: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each second: the last one starting at or before it."""
    idx = np.searchsorted(times, np.asarray(seconds) + TIME_EPS, side="right") - 1
    return np.clip(idx, 0, len(times) - 1)
