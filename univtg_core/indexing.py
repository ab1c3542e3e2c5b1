"""Index a video once: stream its clip features from the encoder into the feature store, resumably.

The store entry is keyed by the file's content hash (remembered in the store's manifest, so an unchanged
file is not hashed again), the encoder's fingerprint and the clip length: renaming a file still hits the
store, and another encoder (CLIP, SlowFast, other weights) or clip length is its own entry. Features are
written chunk by chunk as the encoder computes them, so memory does not grow with the video's length and an
interrupted index resumes where it stopped; the entry is complete only when every clip is in, and it is
read back memory-mapped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import VideoReadError, VideoTooLongError
from .formatting import format_length
from .hashing import file_sha256
from .store import FeatureStore, entry_name
from .video import VideoInfo, probe_video

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
INDEX_VERSION = 3  # bump when the same video, encoder and clip length give other features (3: official pixels)


class VideoFeatureEncoder(Protocol):
    """What the indexer needs from an encoder (`ClipEncoder` and `SlowFastEncoder` both are one)."""

    fingerprint: str  # changes whenever the features would (weights, pipeline version)
    embed_dim: int

    def expected_clips(self, path: str | os.PathLike, clip_len: float = 2.0) -> int | None:
        """How many features the stream will give (None: unknown until it ends)."""

    def iter_video_features(self, path: str | os.PathLike, clip_len: float = 2.0,
                            progress: ProgressCallback | None = None, *, start_clip: int = 0) -> Iterator[np.ndarray]:
        """(b, embed_dim) float32 batches of the clips from `start_clip` on, in order; progress(done, total)."""


def default_cache_dir() -> Path:
    """$UNIVTG_CACHE_DIR, else $XDG_CACHE_HOME/univtg_core, else ~/.cache/univtg_core."""
    if os.environ.get("UNIVTG_CACHE_DIR"):
        return Path(os.environ["UNIVTG_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "univtg_core"


def store_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a cache folder keeps its feature store: `<cache_dir>/store` (default `default_cache_dir()`)."""
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "store"


def open_store(cache_dir: str | os.PathLike | None = None) -> FeatureStore:
    """The feature store of a cache folder (created on first use)."""
    return FeatureStore(store_root(cache_dir))


@dataclass(frozen=True)
class VideoIndex:
    """A video's clip features, ready for any number of queries (memory-mapped when they come from the store)."""

    path: str
    content_hash: str
    info: VideoInfo
    clip_len: float
    encoder: str
    features: np.ndarray = field(repr=False)
    from_cache: bool = False
    seconds: float = 0.0
    computed: int = 0  # clips encoded by this call (0 from the store; fewer than n_clips when resumed)
    # several video sources (SlowFast + CLIP): each one's own index, in the concatenation order of `features`
    sources: tuple[VideoIndex, ...] = field(default=(), repr=False)

    @property
    def n_clips(self) -> int:
        return int(self.features.shape[0])

    @property
    def duration(self) -> float:
        return float(self.info.duration)


def index_entry(content_hash: str, encoder_fingerprint: str, clip_len: float) -> str:
    """The store entry of (a file's content, an encoder, a clip length)."""
    return f"{content_hash[:32]}-{entry_name(INDEX_VERSION, encoder_fingerprint, f'{clip_len:.6f}')[:16]}"


def index_video(
    path: str | os.PathLike,
    encoder: VideoFeatureEncoder,
    clip_len: float = 2.0,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
    batch_size: int | None = None,
    max_duration: float | None = None,
    store: FeatureStore | None = None,
) -> VideoIndex:
    """Clip features of a video: from the store when this content was indexed before with the same encoder and
    clip length, else streamed from the encoder into the store (resuming a partial entry).

    `store` defaults to `<cache_dir>/store`; `use_cache=False` neither reads nor writes it (the features are
    then held in memory). `batch_size` is passed to encoders whose stream takes it (CLIP). Raises
    VideoReadError for unreadable videos, VideoTooLongError past `max_duration`, StoreFullError when the
    disk fills (the partial entry is removed).
    """
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"video not found: {path}" if not path.exists() else f"not a video file: {path}")
    if not clip_len > 0:
        raise ValueError(f"clip_len must be a positive number of seconds; got {clip_len!r}")
    if use_cache and store is None:
        store = open_store(cache_dir)
    if not use_cache:
        store = None
    info = None
    if max_duration is not None:  # refuse a too-long file before reading all of it to hash it
        info = probe_video(path)
        _check_duration(info, max_duration)
    content_hash = store.content_hash(path) if store is not None else file_sha256(path)
    fingerprint = str(encoder.fingerprint)
    name = index_entry(content_hash, fingerprint, clip_len)
    extra = {"batch_size": batch_size} if batch_size else {}

    if store is not None:
        entry = store.get(name)
        if entry is not None:
            return _from_entry(entry, path, content_hash, clip_len, fingerprint, max_duration, progress, started)

    if info is None:
        info = probe_video(path)
    _check_duration(info, max_duration)
    total = encoder.expected_clips(path, clip_len)
    if store is None:
        parts = list(encoder.iter_video_features(path, clip_len, progress, **extra))
        features = np.concatenate(parts, axis=0).astype(np.float32, copy=False) if parts else None
        if features is None or (total is not None and len(features) != total):
            got = 0 if features is None else len(features)
            raise VideoReadError(f"{path.name}: decoded {got} of {total} clips; the file may be truncated")
        return _done(path, content_hash, info, clip_len, fingerprint, features, False, started, len(features))

    meta = {"kind": "video-index", "info": asdict(info), "encoder": fingerprint, "clip_len": float(clip_len),
            "content_hash": content_hash, "source": path.name}
    with store.writer(name, dim=int(encoder.embed_dim), total=total, meta=meta) as writer:
        if writer.entry is not None:  # another process finished it while we waited for the lock
            return _from_entry(writer.entry, path, content_hash, clip_len, fingerprint, max_duration, progress,
                               started)
        first = writer.rows
        try:
            for chunk in encoder.iter_video_features(path, clip_len, progress, start_clip=first, **extra):
                writer.append(chunk)
            if total is not None and writer.rows != total:
                raise VideoReadError(f"{path.name}: the encoder gave {writer.rows} of {total} clips; the file may "
                                     f"be truncated")
            entry = writer.complete()
        except VideoReadError:
            writer.abort()  # the file is broken: resuming would fail the same way
            raise
    return _done(path, content_hash, info, clip_len, fingerprint, entry.features, False, started,
                 entry.features.shape[0] - first)


def _from_entry(entry, path: Path, content_hash: str, clip_len: float, fingerprint: str,
                max_duration: float | None, progress: ProgressCallback | None, started: float) -> VideoIndex:
    info = VideoInfo(**{**entry.meta["info"], "path": str(path)})
    _check_duration(info, max_duration)
    if progress is not None:
        progress(len(entry.features), len(entry.features))
    logger.info("%s: %d clips served from the feature store", path.name, len(entry.features))
    return VideoIndex(str(path), content_hash, info, clip_len, fingerprint, entry.features, True,
                      time.perf_counter() - started, 0)


def _done(path: Path, content_hash: str, info: VideoInfo, clip_len: float, fingerprint: str, features: np.ndarray,
          from_cache: bool, started: float, computed: int) -> VideoIndex:
    seconds = time.perf_counter() - started
    logger.info("%s: %d clips indexed in %.1f s (%d computed now)", path.name, len(features), seconds, computed)
    return VideoIndex(str(path), content_hash, info, clip_len, fingerprint, features, from_cache, seconds, computed)


def _check_duration(info: VideoInfo, max_duration: float | None) -> None:
    if max_duration is not None and info.duration > max_duration:
        raise VideoTooLongError(
            f"the video is {format_length(info.duration)} long; the limit here is {format_length(max_duration)} "
            f"(trim it, or raise the limit with --max-duration)")
