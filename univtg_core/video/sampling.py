"""The clip grid: how many clips a video has, which second stands for each, and which frame is shown then.

Pure functions of numbers: no file is opened here.
"""

from __future__ import annotations

import math

import numpy as np

# Clip centres are clamped this far inside the end of the video.
INSIDE_END = 1e-3
# Timestamps closer than this are treated as equal (they are rationals turned into floats).
TIME_EPS = 1e-6


def clip_count(duration: float, clip_len: float) -> int:
    """Number of clips of ``clip_len`` seconds in a video of ``duration`` seconds.

    ``max(1, round(duration / clip_len))`` with halves rounded up: this is how many frames ffmpeg's ``fps``
    filter (``round=near``) emits, which is what UniVTG's extractor runs at ``1 / clip_len`` fps. A 30.7 s
    video at 2 s gives 15 clips, 31.0 s gives 16; a video shorter than one clip still gets one.
    """
    if not clip_len > 0:
        raise ValueError(f"clip_len must be a positive number of seconds; got {clip_len!r}")
    if not (math.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a finite number of seconds >= 0; got {duration!r}")
    return max(1, math.floor(duration / clip_len + 0.5))


def clip_times(duration: float, clip_len: float) -> np.ndarray:
    """The second sampled for each clip: its centre ``(i + 0.5) * clip_len``, clamped to inside the video.

    The frame used for a clip is the last one shown before that second, which is the frame ffmpeg's ``fps``
    filter picks for UniVTG's extractor (it assigns each frame to the nearest output tick and keeps the
    last one of each tick).
    """
    n = clip_count(duration, clip_len)
    centres = (np.arange(n, dtype=np.float64) + 0.5) * clip_len
    return np.minimum(centres, max(duration - INSIDE_END, 0.0))


def index_before(times: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Index of the last frame strictly before each second (the first frame if there is none)."""
    idx = np.searchsorted(times, np.asarray(seconds) - TIME_EPS, side="left") - 1
    return np.clip(idx, 0, len(times) - 1)


def index_shown_at(times: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Index of the frame on screen at each second: the last one starting at or before it."""
    idx = np.searchsorted(times, np.asarray(seconds) + TIME_EPS, side="right") - 1
    return np.clip(idx, 0, len(times) - 1)


def short_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the short side equal to ``size``; truncation as UniVTG's extractor does."""
    if width >= height:
        return max(size, int(width * size / height)), size
    return size, max(size, int(height * size / width))
