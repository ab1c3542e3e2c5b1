"""What every backend shares: the `Reader` interface, `VideoInfo`, and the wording of its errors."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StillImageError, VideoReadError
from .sampling import clip_frame_indices, time_ticks

ACCEPTED = "Pass a complete video file (mp4, mkv, webm, mov, avi, ...) that plays in a media player."
# What a folder scan takes for a video (the CLI's `index FOLDER`, feature extraction); lower case.
VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".ts"})
IMAGE_QUERY = ("To find what it shows in a video, give it as the example-image query (--query-image, or the "
               "image box of the app).")


class NoFrames(VideoReadError):
    """The container was read and holds no video frames: another backend would not do better."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, on the timeline a player shows.

    ``duration``: seconds from the start of the file to the end of the video's last frame; ``start``: when
    its first frame is shown (above zero when the video track starts after the audio); ``fps``: the average
    rate (variable frame rate files have one too); ``width`` x ``height``: the picture as a player shows it,
    i.e. after the ``rotation`` (degrees, clockwise) its display matrix asks for.
    """

    path: str
    duration: float
    fps: float
    n_frames: int
    width: int
    height: int
    backend: str
    start: float = 0.0
    rotation: int = 0


def check_file(path: str | os.PathLike) -> Path:
    """The path, if it names a non-empty file; a VideoReadError that says what is wrong otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise VideoReadError(f"video file not found: {str(p)!r}. Check the path.")
    if p.is_dir():
        raise VideoReadError(f"{str(p)!r} is a folder, not a video file. Pass the path of a video file.")
    if not p.is_file():
        raise VideoReadError(f"not a file: {str(p)!r}. Pass the path of a video file.")
    if p.stat().st_size == 0:
        raise VideoReadError(f"video file is empty (0 bytes): {str(p)!r}. {ACCEPTED}")
    return p


def still_image_error(path: str, what: str) -> StillImageError:
    """The refusal of a still picture, which is a query, not a video."""
    return StillImageError(f"{path!r} is {what}, not a video. {IMAGE_QUERY}")


def short_error(exc: BaseException) -> str:
    """The informative part of a backend's error message (decord's carry a C++ source location)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    if "ERROR " in text:
        text = text[text.rindex("ERROR ") + len("ERROR "):]
    return text if len(text) <= 240 else text[:237] + "..."


class Reader:
    """The interface every backend implements: metadata, frame times, and frames at given indices.

    A backend sets ``name``, ``path`` and ``info`` when it opens, and implements ``times``, ``_frames`` (frames
    as a player shows them, for thumbnails), ``_clip_frames`` (the frames CLIP sees) and ``close``;
    ``decode_errors`` are the exceptions of its library that mean "this file cannot be decoded".
    ``official_pixels`` says whether its clip frames are the official extractor's pixels.
    """

    name = ""
    path: str
    info: VideoInfo
    decode_errors: tuple[type[BaseException], ...] = ()
    official_pixels = False

    @property
    def times(self) -> np.ndarray:
        """When every frame is shown, in display order: seconds on the file's timeline (non-decreasing)."""
        raise NotImplementedError

    def clip_indices(self, n_clips: int, clip_len: float) -> np.ndarray:
        """The frame that stands for each of ``n_clips`` clips of ``clip_len`` s (see `sampling`)."""
        return clip_frame_indices(time_ticks(self.times, clip_len), n_clips)

    def frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[np.ndarray]:
        """RGB uint8 ``(height, width, 3)`` frames, upright as a player shows them, for non-decreasing
        frame ``indices``, in order (thumbnails)."""
        yield from self._guarded(self._frames(np.asarray(indices, dtype=np.int64), width, height, should_stop))

    def clip_frames(
        self, indices: np.ndarray, size: int, should_stop: Callable[[], bool] | None = None
    ) -> Iterator[np.ndarray]:
        """RGB uint8 ``(size, size, 3)`` frames for non-decreasing frame ``indices``: scaled so the short side
        is ``size`` and centre-cropped, as the official extractor's command line makes them."""
        yield from self._guarded(self._clip_frames(np.asarray(indices, dtype=np.int64), size, should_stop))

    def _guarded(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        try:
            yield from frames
        except self.decode_errors as exc:
            raise VideoReadError(f"decoding {self.path!r} failed ({short_error(exc)}). {ACCEPTED}") from exc
        finally:
            frames.close()

    def _frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def _clip_frames(
        self, indices: np.ndarray, size: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
