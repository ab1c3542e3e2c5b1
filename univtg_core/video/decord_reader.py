"""The decord backend: decodes the wanted indices with ``VideoReader.get_batch``. It cannot open some
codecs (AV1); ``backend="auto"`` then keeps PyAV's answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import decord
import numpy as np

from ..errors import VideoReadError
from .reader import ACCEPTED, Reader, VideoInfo, short_error

# Indices decoded per get_batch call: large enough to amortise the call, small enough to stop soon.
_CHUNK = 16


class DecordReader(Reader):
    name = "decord"
    decode_errors = (decord.DECORDError, RuntimeError)

    def __init__(self, path: str):
        self.path = path
        try:
            self._vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
            n = len(self._vr)
            if n <= 0:
                raise VideoReadError(f"{path!r} has a video stream with zero frames. {ACCEPTED}")
            stamps = np.asarray(self._vr.get_frame_timestamp(range(n)), dtype=np.float64)
            first = self._vr[0].shape
            self._vr.seek(0)
        except self.decode_errors as exc:
            raise VideoReadError(f"decord cannot open {path!r} ({short_error(exc)}). {ACCEPTED}") from exc
        self._times = stamps[:, 0] - stamps[0, 0]
        duration = float(stamps[-1, 1] - stamps[0, 0])
        fps = float(self._vr.get_avg_fps()) or (n / duration if duration > 0 else 0.0)
        self.info = VideoInfo(path, duration, fps, n, int(first[1]), int(first[0]), self.name)

    @property
    def times(self) -> np.ndarray:
        return self._times

    def _frames(
        self, indices: np.ndarray, width: int, height: int, should_stop: Callable[[], bool] | None
    ) -> Iterator[np.ndarray]:
        vr = self._vr
        if (width, height) != (self.info.width, self.info.height):  # scaled by ffmpeg inside decord
            vr = decord.VideoReader(self.path, ctx=decord.cpu(0), width=width, height=height, num_threads=1)
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

    def close(self) -> None:
        self._vr = None
