"""What every outcome of a hostile input must satisfy, shared by the corpus, CLI and fuzz tests."""

from __future__ import annotations

import math

from .corpus import CYAN

CLIP_LEN = 2.0
CYAN_RGB = [int(CYAN[2:4], 16), int(CYAN[4:6], 16), int(CYAN[6:8], 16)]


def check_consistent(answer: dict) -> None:
    """A result that could be true: clips from the duration, everything inside the video."""
    duration, n = answer["duration"], answer["n_clips"]
    assert math.isfinite(duration) and duration > 0
    assert n == max(1, math.floor(duration / CLIP_LEN + 0.5)), (n, duration)
    assert len(answer["saliency"]) == n and all(math.isfinite(s) for s in answer["saliency"])
    for start, end, score in answer["moments"]:
        assert 0 <= start < end <= duration + 1e-6 and math.isfinite(score), (start, end, duration)
    assert 0 <= answer["highlight"] < duration, (answer["highlight"], duration)
    assert all(0 <= t < duration for t in answer["summary"]), (answer["summary"], duration)


def check_one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message and len(message) < 600, message
