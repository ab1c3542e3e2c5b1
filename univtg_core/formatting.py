"""Numbers as people read them: one rule per kind of number for every front end (the CLI, the app's table,
captions and curve axis, the JSON's readable fields), so the same value never reads two ways.

Times on a player's clock (`format_time`, `format_span`), scores (`format_score`), lengths of a moment, a
video or a wait (`format_length`), sizes of files (`format_bytes`).
"""

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


SCORE_DECIMALS = 4  # the core's JSON rounds scores to 4 decimals; every front end prints them so


def format_span(start: float, end: float, duration: float | None = None) -> str:
    """``00:04–00:06``: a moment's two times, in the format of the video they belong to."""
    return f"{format_time(start, duration=duration)}–{format_time(end, duration=duration)}"


def format_score(score: float) -> str:
    """A score with four decimals (``0.7312``); ``–`` when it is not a finite number."""
    score = float(score)
    return f"{score:.{SCORE_DECIMALS}f}" if math.isfinite(score) else "–"


def format_length(seconds: float) -> str:
    """A length: ``6.0 s`` under a minute, ``2 min 05 s`` under an hour, ``1 h 02 min`` from an hour on.

    Negative or non-finite lengths read ``0.0 s``. A length that would round to 60.0 s reads ``1 min 00 s``.
    """
    seconds = float(seconds)
    seconds = max(0.0, seconds) if math.isfinite(seconds) else 0.0
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    h, rest = divmod(int(round(seconds)), _HOUR)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {s:02d} s"


def format_bytes(size: float) -> str:
    """A file's size in the decimal units the size flags take: ``4.2 MB``, ``1.5 GB``, ``512 bytes``."""
    size = float(size)
    for unit, factor in (("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{int(size)} bytes"
