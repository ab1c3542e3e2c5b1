"""The entry points: probe a video, iterate its clip frames (for the encoder), read frames at given seconds."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import numpy as np

from .backends import open_reader
from .prefetch import iter_batches
from .reader import VideoInfo
from .sampling import clip_times, index_shown_at

logger = logging.getLogger(__name__)


def probe_video(path: str | os.PathLike, backend: str = "auto") -> VideoInfo:
    """Duration, frame rate, frame count and size of a video; raises VideoReadError if it is unreadable."""
    with open_reader(path, backend) as reader:
        info = reader.info
    logger.debug("probed %s: %.3f s, %.3f fps, %d frames, %dx%d (%s)", info.path, info.duration, info.fps,
                 info.n_frames, info.width, info.height, info.backend)
    return info


def iter_clip_frames(
    path: str | os.PathLike,
    clip_len: float = 2.0,
    size: int = 224,
    batch_size: int = 32,
    backend: str = "auto",
    prefetch: int = 2,
) -> Iterator[np.ndarray]:
    """Yield uint8 RGB batches ``(B, size, size, 3)``: one frame per clip, in clip order.

    Each frame is scaled so that its short side is ``size`` (bicubic) and centre-cropped, as CLIP's
    preprocessing and UniVTG's extractor do. Decoding runs in a background thread that stays at most
    ``prefetch`` finished batches (plus the one it is filling) ahead of the caller, so it overlaps the
    caller's encoding and memory stays flat however long the video is. The file is checked before this
    returns (VideoReadError); errors met while decoding are raised in the caller's thread. Closing the
    iterator early (``break``, an exception in the caller, ``.close()``) stops the thread.
    """
    if size < 1 or batch_size < 1:
        raise ValueError(f"size and batch_size must be >= 1; got size={size!r}, batch_size={batch_size!r}")
    info = probe_video(path, backend)
    seconds = clip_times(info.duration, clip_len)
    logger.info("%s: %.2f s at %.3f fps -> %d clips of %.2f s", info.path, info.duration, info.fps,
                len(seconds), clip_len)
    return iter_batches(info.path, info.backend, seconds, size, batch_size, max(1, int(prefetch)))


def read_frames_at(
    path: str | os.PathLike, seconds: Sequence[float], max_side: int | None = 320
) -> list[np.ndarray]:
    """RGB uint8 frames shown at the given seconds (for thumbnails), aspect ratio kept.

    Frames are scaled down so their longer side is at most ``max_side`` (never up); ``None`` keeps the
    decoded size. Seconds outside the video are clamped to its first or last frame.
    """
    secs = np.asarray(list(seconds), dtype=np.float64)
    if secs.size and not np.all(np.isfinite(secs)):
        raise ValueError(f"seconds must be finite numbers; got {list(seconds)!r}")
    with open_reader(path, "auto") as reader:
        if secs.size == 0:
            return []
        w, h = reader.info.width, reader.info.height
        if max_side is not None and max(w, h) > max_side:
            scale = max_side / max(w, h)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
        idx = index_shown_at(reader.times, np.clip(secs, 0.0, None))
        order = np.argsort(idx, kind="stable")
        out: list[np.ndarray | None] = [None] * len(idx)
        for k, frame in zip(order, reader.frames(idx[order], w, h), strict=True):
            out[k] = frame
    return out  # type: ignore[return-value]
