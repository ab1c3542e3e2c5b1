"""What every backend shares: the `Reader` interface, `VideoInfo`, and the wording of its errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VideoReadError

ACCEPTED = "Pass a complete video file (mp4, mkv, webm, mov, avi, ...) that plays in a media player."
# What a folder scan takes for a video (the CLI's `index FOLDER`, feature extraction); lower case.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts"})


class NoFrames(VideoReadError):
    """The container was read and holds no video frames: another backend would not do better."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video is: ``duration`` in seconds, average ``fps`` (variable frame rate files have one too)."""

    path: str
    duration: float
    fps: float
    n_frames: int
    width: int
    height: int
    backend: str


def check_file(path: str | os.PathLike) -> Path:
    """The path, if it names a non-empty file; a VideoReadError that says what is wrong otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise VideoReadError(f"video file not found: {str(p)!r}. Check the path.")
    if not p.is_file():
        raise VideoReadError(f"not a file: {str(p)!r}. Pass the path of a video file.")
    if p.stat().st_size == 0:
        raise VideoReadError(f"video file is empty (0 bytes): {str(p)!r}. {ACCEPTED}")
    return p


def short_error(exc: BaseException) -> str:
    """The informative part of a backend's error message (decord's carry a C++ source location)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    if "ERROR " in text:
        text = text[text.rindex("ERROR ") + len("ERROR "):]
    return text if len(text) <= 240 else text[:237] + "..."


class Reader:
    """The interface every backend implements: metadata, frame times, frames at given indices.

    A backend sets ``name``, ``path`` and ``info`` when it opens, and implements ``times``, ``_frames`` and
    ``close``; ``decode_errors`` are the exceptions of its library that mean "this file cannot be decoded".
    """

    name = ""
    path: str
    info: VideoInfo
    decode_errors: tuple[type[BaseException], ...] = ()

    @property
    def times(self) -> np.ndarray:
        """Start time of every frame in display order, seconds from the first frame (non-decreasing)."""
        raise NotImplementedError

    def frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[np.ndarray]:
        """RGB uint8 ``(height, width, 3)`` frames for non-decreasing frame ``indices``, in order."""
        indices = np.asarray(indices, dtype=np.int64)
        if len(indices) == 0:
            return
        try:
            yield from self._frames(indices, width, height, should_stop)
        except self.decode_errors as exc:
            raise VideoReadError(f"decoding {self.path!r} failed ({short_error(exc)}). {ACCEPTED}") from exc

    def _frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
