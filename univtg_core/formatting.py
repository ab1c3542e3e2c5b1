"""Times as people read them on a player: one rule for every front end (the CLI table, the app's table,
captions and curve axis), so the same second never reads two ways."""

from __future__ import annotations

import math

_HOUR = 3600


def _whole_seconds(seconds: float) -> int:
    """Nearest whole second, halves up (20.5 s is 21 s, as a player's clock shows it); negatives are 0."""
    return int(math.floor(max(0.0, float(seconds)) + 0.5))


def format_time(seconds: float, *, duration: float | None = None) -> str:
    """``mm:ss`` under an hour, ``h:mm:ss`` at or over, rounded to the nearest second with halves up.

    ``duration`` is the video's length: when the video reaches an hour every time in it shows hours
    (``0:01:23``), so the times of one video line up; without it the time alone decides. Negative times
    read ``00:00``; a time that is not a finite number reads ``--:--`` (``-:--:--`` with hours).
    """
    hours = duration is not None and math.isfinite(duration) and _whole_seconds(duration) >= _HOUR
    if seconds is None or not math.isfinite(seconds):
        return "-:--:--" if hours else "--:--"
    h, rest = divmod(_whole_seconds(seconds), _HOUR)
    m, s = divmod(rest, 60)
    if hours or h:
        return f"{h}:{m:02d}:{s:02d}"
    return f"{m:02d}:{s:02d}"
