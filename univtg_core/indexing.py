"""Index a video once: decode one frame per clip, encode it, and cache the features on disk.

The cache key is the file's content hash, the encoder's fingerprint and the clip length, so renaming a file
still hits the cache and a different encoder or clip length never does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import VideoReadError, VideoTooLongError
from .hashing import file_sha256
from .video import VideoInfo, clip_count, iter_clip_frames, probe_video

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
CACHE_VERSION = 2  # 2: clip frames are the official extractor's pixels (libavfilter), on the file's timeline


def default_cache_dir() -> Path:
    """$UNIVTG_CACHE_DIR, else $XDG_CACHE_HOME/univtg_core, else ~/.cache/univtg_core."""
    if os.environ.get("UNIVTG_CACHE_DIR"):
        return Path(os.environ["UNIVTG_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "univtg_core"


@dataclass(frozen=True)
class VideoIndex:
    """A video's clip features, ready for any number of queries."""

    path: str
    content_hash: str
    info: VideoInfo
    clip_len: float
    encoder: str
    features: np.ndarray = field(repr=False)
    from_cache: bool = False
    seconds: float = 0.0

    @property
    def n_clips(self) -> int:
        return int(self.features.shape[0])

    @property
    def duration(self) -> float:
        return float(self.info.duration)


def cache_file(cache_dir: Path, content_hash: str, encoder_fingerprint: str, clip_len: float) -> Path:
    key = hashlib.sha256(f"v{CACHE_VERSION}|{encoder_fingerprint}|{clip_len:.6f}".encode()).hexdigest()[:16]
    return cache_dir / "features" / f"{content_hash[:40]}-{key}.npz"


def _load_cached(path: Path, video_path: str) -> tuple[np.ndarray, VideoInfo] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            features = data["features"].astype(np.float32)
            meta = json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError) as exc:
        logger.warning("ignoring unreadable cache entry %s (%s)", path, exc)
        return None
    info = VideoInfo(**{**meta["info"], "path": video_path})
    return features, info


def _save_cached(path: Path, features: np.ndarray, info: VideoInfo, fingerprint: str, clip_len: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"info": asdict(info), "encoder": fingerprint, "clip_len": clip_len})
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, features=features, meta=np.array(meta))
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write the feature cache %s (%s)", path, exc)
        Path(tmp).unlink(missing_ok=True)


def index_video(
    path: str | Path,
    encoder,
    clip_len: float = 2.0,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    progress: ProgressCallback | None = None,
    batch_size: int = 32,
    max_duration: float | None = None,
) -> VideoIndex:
    """Clip features of a video, from the cache when this file was indexed before with the same encoder."""
    started = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"video not found: {path}")
    content_hash = file_sha256(path)
    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached_at = cache_file(cache_root, content_hash, encoder.fingerprint, clip_len)

    if use_cache and cached_at.is_file():
        hit = _load_cached(cached_at, str(path))
        if hit is not None:
            features, info = hit
            _check_duration(info, max_duration)
            if progress is not None:
                progress(len(features), len(features))
            logger.info("%s: %d clips served from the cache", path.name, len(features))
            return VideoIndex(str(path), content_hash, info, clip_len, encoder.fingerprint, features, True,
                              time.perf_counter() - started)

    info = probe_video(path)
    _check_duration(info, max_duration)
    total = clip_count(info.duration, clip_len)
    features = np.zeros((total, encoder.embed_dim), dtype=np.float32)
    done = 0
    if progress is not None:
        progress(0, total)
    for frames in iter_clip_frames(path, clip_len=clip_len, size=encoder.image_size, batch_size=batch_size):
        encoded = encoder.encode_frames(frames)
        features[done : done + len(encoded)] = encoded
        done += len(encoded)
        if progress is not None:
            progress(done, total)
    if done != total:
        raise VideoReadError(f"{path.name}: decoded {done} of {total} clips; the file may be truncated")
    if use_cache:
        _save_cached(cached_at, features, info, encoder.fingerprint, clip_len)
    seconds = time.perf_counter() - started
    logger.info("%s: %d clips indexed in %.1f s", path.name, total, seconds)
    return VideoIndex(str(path), content_hash, info, clip_len, encoder.fingerprint, features, False, seconds)


def _check_duration(info: VideoInfo, max_duration: float | None) -> None:
    if max_duration is not None and info.duration > max_duration:
        raise VideoTooLongError(
            f"the video is {info.duration:.0f} s long; the limit here is {max_duration:.0f} s "
            f"(trim it, or raise the limit with --max-duration)")
