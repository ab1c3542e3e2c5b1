"""Clip frames decoded in a background thread, a bounded number of batches ahead of the caller.

The thread overlaps decoding with the caller's encoding, and the bounded queue keeps memory flat however
long the video is. Errors met in the thread are raised in the caller's thread; closing the iterator early
stops the thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import VideoReadError
from .backends import open_reader
from .reader import ACCEPTED
from .sampling import index_before, short_side_size

logger = logging.getLogger(__name__)

_DONE = object()


def iter_batches(
    path: str, backend: str, seconds: np.ndarray, size: int, batch_size: int, prefetch: int
) -> Iterator[np.ndarray]:
    """uint8 ``(B, size, size, 3)`` batches of the frames before each of ``seconds``, short side scaled
    to ``size`` and centre-cropped; at most ``prefetch`` finished batches wait in the queue."""
    ready: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()
    worker = threading.Thread(
        target=_decode_batches,
        args=(path, backend, seconds, size, batch_size, ready, stop),
        name=f"univtg-decode-{Path(path).name}",
        daemon=True,
    )
    worker.start()
    try:
        while True:
            try:
                item = ready.get(timeout=0.5)
            except queue.Empty:
                if not worker.is_alive() and ready.empty():
                    raise VideoReadError(f"the decoding thread for {path} stopped without a result") from None
                continue
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting to put
            try:
                ready.get_nowait()
            except queue.Empty:
                break
        worker.join(timeout=30)
        if worker.is_alive():
            logger.warning("the decoding thread for %s did not stop within 30 s", path)


def _decode_batches(
    path: str,
    backend: str,
    seconds: np.ndarray,
    size: int,
    batch_size: int,
    ready: queue.Queue,
    stop: threading.Event,
) -> None:
    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        with open_reader(path, backend) as reader:
            idx = index_before(reader.times, seconds)
            out_w, out_h = short_side_size(reader.info.width, reader.info.height, size)
            x0, y0 = (out_w - size) // 2, (out_h - size) // 2
            n = len(idx)
            batch = np.empty((min(batch_size, n), size, size, 3), np.uint8)
            filled = done = 0
            for frame in reader.frames(idx, out_w, out_h, stop.is_set):
                if stop.is_set():
                    return
                batch[filled] = frame[y0:y0 + size, x0:x0 + size]
                filled += 1
                done += 1
                if filled == len(batch):
                    if not put(batch):
                        return
                    batch = np.empty((min(batch_size, n - done), size, size, 3), np.uint8)
                    filled = 0
            if stop.is_set():
                return
            if done != n:
                raise VideoReadError(f"{path}: decoded {done} of {n} clip frames. {ACCEPTED}")
        put(_DONE)
    except BaseException as exc:  # handed to the consumer's thread, which raises it
        put(exc)
