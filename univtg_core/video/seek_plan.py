"""Where a reader seeks to decode a few frames of a long stream, worked out from the packet index alone.

Pure functions of timestamps (pts, in the stream's time base): no file and no decoder, so they are
unit-tested on made-up keyframe lists. The PyAV reader executes the plan.

Decoding can start at any keyframe of the index (``seek(..., backward=True)`` lands on one), so the
wanted frames fall into groups, one per keyframe that precedes some of them, and a group is decoded from
its keyframe onwards. Between two groups the reader either reads on or seeks: it seeks only when the
demuxer has not yet read the next group's keyframe (`needs_seek`), because then every packet up to that
keyframe is one nobody wants.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SeekGroup:
    """Wanted frames that decoding from one keyframe reaches first.

    ``keyframe`` is the pts to seek to; None when no keyframe comes before these frames (the stream does
    not start with one, or its index lists none): they are decoded from the start of the stream.
    """

    keyframe: int | None
    wanted: tuple[int, ...]


def keyframe_before(keyframes: Sequence[int], pts: int) -> int | None:
    """The last keyframe at or before ``pts`` (``keyframes`` ascending); None if there is none."""
    j = bisect_right(keyframes, pts) - 1
    return int(keyframes[j]) if j >= 0 else None


def plan_seeks(wanted: Iterable[int], keyframes: Iterable[int]) -> tuple[SeekGroup, ...]:
    """Group the wanted pts by the keyframe before each, in presentation order.

    Duplicates are read once and the order of ``wanted`` does not matter: the groups hold unique pts,
    ascending, and the groups themselves come in ascending order of their keyframes.
    """
    keys = sorted({int(k) for k in keyframes})
    groups: list[SeekGroup] = []
    current: list[int] = []
    current_key: int | None = None
    for pts in sorted({int(p) for p in wanted}):
        key = keyframe_before(keys, pts)
        if current and key != current_key:
            groups.append(SeekGroup(current_key, tuple(current)))
            current = []
        current_key = key
        current.append(pts)
    if current:
        groups.append(SeekGroup(current_key, tuple(current)))
    return tuple(groups)


def needs_seek(keyframe: int | None, demuxed_to: int) -> bool:
    """Whether to seek to ``keyframe`` rather than read on, having demuxed packets up to ``demuxed_to``.

    Reading on is right when the keyframe was read already (the decoder is past it or holds it) or when
    there is no keyframe to seek to.
    """
    return keyframe is not None and keyframe > demuxed_to
