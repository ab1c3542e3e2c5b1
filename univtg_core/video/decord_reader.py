"""The decord backend, a fallback for when PyAV is not installed: ``VideoReader.get_batch`` on the wanted indices.

Not the official pixels: decord scales and converts to RGB inside its own bundled FFmpeg (4.x), whose
colour conversion differs from the official extractor's command line by up to ~50 levels on ordinary
H.264 (README, "Fidelity"), so its CLIP features are close to, not equal to, the official ones; a warning
says so once. decord applies a display matrix of a half turn or a flip itself, but returns garbled
four-channel frames for a quarter turn: such a video is refused with a message to install PyAV. It does
not know the file's start, which comes from PyAV when PyAV can be imported (else time starts at the first
video frame). It cannot open some codecs (AV1).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator

import decord
import numpy as np

from ..avfilter import official_geometry, rotation_degrees, swaps_axes
from ..errors import VideoReadError
from . import backends
from .reader import ACCEPTED, NoFrames, Reader, VideoInfo, short_error, still_image_error

logger = logging.getLogger(__name__)

# Indices decoded per get_batch call: large enough to amortise the call, small enough to stop soon.
_CHUNK = 16
_warned: set[str] = set()


def _warn_once(key: str, message: str, *args) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message, *args)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point fd 2 at /dev/null while decord opens a file (its C++ logging cannot be turned off otherwise)."""
    if not backends.native_logs_quiet:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _peek_with_pyav(path: str) -> tuple[tuple, float]:
    """(display transform, start on the file's timeline) from PyAV's first frame; ((), 0.0) without PyAV."""
    try:
        import av

        from ..avfilter import display_transform
    except ImportError:
        _warn_once("no-pyav", "PyAV is not installed: decord times videos from their first frame, not from the "
                              "start of the file; install PyAV (`pip install av`)")
        return (), 0.0
    try:
        with av.open(path, metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                return (), 0.0
            start = 0.0
            if frame.pts is not None and stream.time_base:
                start = max(0.0, float(frame.pts * stream.time_base) - (container.start_time or 0) / 1e6)
            return display_transform(frame), start
    except (av.error.FFmpegError, IndexError, OSError):
        return (), 0.0


class DecordReader(Reader):
    name = "decord"
    decode_errors = (decord.DECORDError, RuntimeError)
    official_pixels = False

    def __init__(self, path: str):
        self.path = path
        if backends.native_logs_quiet:
            decord.logging.set_level(decord.logging.QUIET)
        try:
            with _native_stderr_silenced():
                self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            n = len(self._vr)
            if n <= 0:
                raise NoFrames(f"{path!r} has a video stream with zero frames. {ACCEPTED}")
            if n == 1:
                raise still_image_error(path, "a single frame (a still picture)")
            stamps = np.asarray(self._vr.get_frame_timestamp(range(n)), dtype=np.float64)
            first = self._vr[0].shape
            self._vr.seek(0)
        except self.decode_errors as exc:
            raise VideoReadError(f"decord cannot open {path!r} ({short_error(exc)}). {ACCEPTED}") from exc
        transform, start = _peek_with_pyav(path)
        if swaps_axes(transform) or first[-1] != 3:
            raise VideoReadError(f"decord cannot read {path!r}: the video is turned by a quarter (its display "
                                 f"matrix), which decord decodes garbled. Install PyAV (`pip install av`).")
        self._size = (int(first[1]), int(first[0]))  # as decord returns it: turned upright already
        self._times = stamps[:, 0] - stamps[0, 0] + start
        duration = float(stamps[-1, 1] - stamps[0, 0]) + start
        fps = float(self._vr.get_avg_fps()) or (n / duration if duration > 0 else 0.0)
        self.info = VideoInfo(path, duration, fps, n, *self._size, self.name, start, rotation_degrees(transform))

    @property
    def times(self) -> np.ndarray:
        return self._times

    def _scaled(self, width: int, height: int):
        """A reader whose frames are ``width x height`` (decord scales them)."""
        if (width, height) == self._size:
            return self._vr
        with _native_stderr_silenced():
            return decord.VideoReader(self.path, ctx=decord.cpu(0), width=width, height=height, num_threads=1)

    def _batches(self, vr, indices: np.ndarray, should_stop) -> Iterator[np.ndarray]:
        """The frame for each of ``indices`` (non-decreasing), each distinct frame decoded once."""
        unique = np.unique(indices)
        k = 0
        for start in range(0, len(unique), _CHUNK):
            if should_stop is not None and should_stop():
                return
            part = unique[start:start + _CHUNK]
            got = dict(zip(part.tolist(), vr.get_batch(part.tolist()).asnumpy(), strict=True))
            while k < len(indices) and int(indices[k]) in got:
                yield got[int(indices[k])]
                k += 1

    def _frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        yield from self._batches(self._scaled(width, height), indices, should_stop)

    def _clip_frames(
        self, indices: np.ndarray, size: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        _warn_once("pixels", "decord's clip frames are close to, not equal to, the official extractor's pixels; "
                             "install PyAV (`pip install av`) for official features")
        g = official_geometry(*self._size, size)
        for rgb in self._batches(self._scaled(g.width, g.height), indices, should_stop):
            yield np.ascontiguousarray(rgb[g.y:g.y + size, g.x:g.x + size])

    def close(self) -> None:
        self._vr = None
