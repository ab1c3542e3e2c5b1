"""The entry points: probe a video, iterate its clip frames (for the encoder), read frames at given seconds."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import VideoReadError, VideoTooShortError
from ..prefetch import iter_in_thread
from .backends import open_reader
from .reader import ACCEPTED, VideoInfo
from .sampling import clip_count, index_shown_at

logger = logging.getLogger(__name__)


def probe_video(path: str | os.PathLike, backend: str = "auto") -> VideoInfo:
    """Duration, frame rate, frame count and size of a video; raises VideoReadError if it is unreadable.

    A still image (even renamed ``.mp4``) and a video of a single frame raise `StillImageError`.
    """
    with open_reader(path, backend) as reader:
        info = reader.info
    logger.debug("probed %s: %.3f s (first frame at %.3f s), %.3f fps, %d frames, %dx%d, rotated %d (%s)",
                 info.path, info.duration, info.start, info.fps, info.n_frames, info.width, info.height,
                 info.rotation, info.backend)
    return info


def count_clips(info: VideoInfo, clip_len: float) -> int:
    """How many clips of ``clip_len`` s the video has; `VideoTooShortError` if it is shorter than one clip.

    A video shorter than one clip has no clip the model was trained on (UniVTG's extractor would switch to
    2 frames per second for it and place them on a timeline of 2 s clips, four times too long: README,
    "Fidelity"), so it is refused rather than given a result that cannot be true.
    """
    if info.duration < clip_len - 1e-3:
        raise VideoTooShortError(
            f"{info.path!r} lasts {info.duration:.2f} s, shorter than one clip ({clip_len:g} s): nothing in it can "
            f"be found. Pass a video of at least {clip_len:g} s."
        )
    return clip_count(info.duration, clip_len)


def iter_clip_frames(
    path: str | os.PathLike,
    clip_len: float = 2.0,
    size: int = 224,
    batch_size: int = 32,
    backend: str = "auto",
    prefetch: int = 2,
    start_clip: int = 0,
) -> Iterator[np.ndarray]:
    """Yield uint8 RGB batches ``(B, size, size, 3)``: one frame per clip, in clip order, from ``start_clip`` on
    (a resumed index decodes nothing before it).

    The frames are those of UniVTG's extractor: for clip ``k`` the last frame before ``(k + ½) · clip_len``
    on the file's timeline, turned upright, scaled so that its short side is ``size`` and centre-cropped by
    ffmpeg's own filters (`avfilter`). Decoding runs in a background thread that stays at most ``prefetch``
    finished batches ahead of the caller, so it overlaps the caller's encoding and memory stays flat however
    long the video is. The file is checked before this returns (VideoReadError; `VideoTooShortError` for a
    video shorter than one clip); errors met while decoding are raised in the caller's thread. Closing the
    iterator early (``break``, an exception in the caller, ``.close()``) stops the thread.
    """
    if size < 1 or batch_size < 1:
        raise ValueError(f"size and batch_size must be >= 1; got size={size!r}, batch_size={batch_size!r}")
    info = probe_video(path, backend)
    n_clips = count_clips(info, clip_len)
    logger.info("%s: %.2f s at %.3f fps -> %d clips of %.2f s", info.path, info.duration, info.fps, n_clips,
                clip_len)

    def batches(stop: threading.Event) -> Iterator[np.ndarray]:
        yield from _decode_batches(info.path, info.backend, n_clips, clip_len, size, batch_size, stop, start_clip)

    return iter_in_thread(batches, depth=max(1, int(prefetch)), name=f"univtg-decode-{Path(info.path).name}")


def _decode_batches(path: str, backend: str, n_clips: int, clip_len: float, size: int, batch_size: int,
                    stop: threading.Event, start_clip: int = 0) -> Iterator[np.ndarray]:
    """The clip frames in batches; stops soon after ``stop`` is set."""
    with open_reader(path, backend) as reader:
        idx = reader.clip_indices(n_clips, clip_len)[start_clip:]
        n_clips = len(idx)
        batch = np.empty((min(batch_size, n_clips), size, size, 3), np.uint8)
        filled = done = 0
        for frame in reader.clip_frames(idx, size, stop.is_set):
            if stop.is_set():
                return
            batch[filled] = frame
            filled += 1
            done += 1
            if filled == len(batch):
                yield batch
                batch = np.empty((min(batch_size, n_clips - done), size, size, 3), np.uint8)
                filled = 0
        if stop.is_set():
            return
        if done != n_clips:
            raise VideoReadError(f"{path}: decoded {done} of {n_clips} clip frames. {ACCEPTED}")


def read_frames_at(
    path: str | os.PathLike, seconds: Sequence[float], max_side: int | None = 320
) -> list[np.ndarray]:
    """RGB uint8 frames shown at the given seconds (for thumbnails), upright and with their aspect ratio.

    Seconds are on the file's timeline, the player's. Frames are scaled down so their longer side is at most
    ``max_side`` (never up); ``None`` keeps the size a player shows. Seconds outside the video are clamped to
    its first or last frame.
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
