"""The video features a checkpoint reads, computed exactly as it names them.

A checkpoint's `InputSpec.video` names its feature sources in concatenation order (UniVTG's SlowFast + CLIP
checkpoints: slowfast (2304) then clip (512); MESM's: clip then slowfast). Front ends hold one encoder per
source they can compute; each source is indexed through its own encoder stream into the feature store (so a
CLIP-only checkpoint never runs SlowFast, and a video indexed for one checkpoint serves another that reads
the same source), and the rows are concatenated in the spec's order, cut to the shortest source as the
official datasets do ("some features are slightly longer than the others": SlowFast keeps ceil(duration /
L) clips, CLIP round(duration / L)). A spec naming a source we cannot compute is refused with one line.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError, EncoderWeightsError
from .indexing import ProgressCallback, VideoFeatureEncoder, VideoIndex, index_video

logger = logging.getLogger(__name__)

# What each source we compute is, and the flag that gives its weights (for the messages).
COMPUTABLE_SOURCES: dict[str, str] = {
    "clip": "CLIP image embeddings (--clip-weights)",
    "slowfast": "SlowFast R50 8x8 as HERO's extractor (--slowfast-weights)",
}
SLOWFAST_WEIGHTS_ENV = "UNIVTG_SLOWFAST_WEIGHTS"

ProgressFor = Callable[[str], "ProgressCallback | None"]


def source_names(spec: Any) -> tuple[str, ...]:
    """The video sources a model's input spec reads, in its order (zero-shot, `spec=None`: CLIP alone)."""
    if spec is None:
        return ("clip",)
    return tuple(s.name for s in spec.video)


# The query token rows we compute (CLIP's per-token `ln_final` rows, cut as each model's extractor did).
COMPUTABLE_TEXT: dict[str, str] = {"clip_tokens": "CLIP per-token text rows"}


def check_computable(spec: Any, checkpoint: str = "the checkpoint") -> None:
    """Refuse, in one line, a spec that reads a video source or query tokens we cannot compute (before any
    encoder loads): what it needs, what we compute, what is missing. Widths are checked once the encoders
    are loaded (`check_widths`)."""
    missing = [s for s in spec.video if s.name not in COMPUTABLE_SOURCES]
    if spec.text.name not in COMPUTABLE_TEXT:
        missing.append(spec.text)
    if not spec.video or missing:
        have = (f"video {' or '.join(COMPUTABLE_SOURCES)} ({'; '.join(COMPUTABLE_SOURCES.values())}), "
                f"text {' or '.join(COMPUTABLE_TEXT)}")
        absent = " + ".join(f"{s.name} ({s.dim})" for s in missing) or "video features"
        raise CheckpointError(
            f"{checkpoint} needs {spec.describe()}, but we compute {have}: {absent} missing; use a checkpoint "
            f"trained on the features we compute, or score precomputed ones with predict-split")


def needs_slowfast(spec: Any) -> bool:
    return spec is not None and "slowfast" in source_names(spec)


def missing_slowfast_weights(spec: Any, checkpoint: str = "the checkpoint") -> EncoderWeightsError:
    """The one line for a checkpoint that reads SlowFast features when no SlowFast weights were given."""
    from .slowfast.weights import OFFICIAL_WEIGHTS_URL

    return EncoderWeightsError(
        f"{checkpoint} reads video features {spec.describe_video()}: pass --slowfast-weights PATH (or set "
        f"${SLOWFAST_WEIGHTS_ENV}) with PySlowFast's Kinetics-400 SLOWFAST_8x8_R50.pkl ({OFFICIAL_WEIGHTS_URL}) "
        f"or a .safetensors converted from it ('random' for an offline smoke run)")


def check_slowfast_weights(weights: Any) -> None:
    """A SlowFast weights path that is not a file is refused before anything loads ('random' and state
    dicts pass; the file's contents are checked when it is read)."""
    if isinstance(weights, Mapping) or str(weights) == "random":
        return
    from .slowfast.weights import WEIGHTS_HELP

    path = Path(weights).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "not found"
        raise EncoderWeightsError(f"SlowFast weights {what}: {str(path)!r}. {WEIGHTS_HELP}")


def check_widths(spec: Any, encoders: Mapping[str, VideoFeatureEncoder], checkpoint: str = "the checkpoint",
                 text_dim: int | None = None) -> None:
    """Each source's width in the spec is what its encoder gives (and the query tokens' width, when known)."""
    for source in spec.video:
        enc = encoders.get(source.name)
        if enc is None:
            raise CheckpointError(f"{checkpoint} reads {spec.describe_video()}, but no {source.name} encoder is "
                                  f"loaded (have: {', '.join(encoders) or 'none'})")
        if int(enc.embed_dim) != int(source.dim):
            raise CheckpointError(
                f"{checkpoint} expects video features {spec.describe_video()} = {spec.video_dim} wide, but the "
                f"{source.name} encoder gives {enc.embed_dim}; use the features (CLIP model) it was trained with")
    if text_dim is not None and int(spec.text.dim) != int(text_dim):
        raise CheckpointError(
            f"{checkpoint} expects query tokens {spec.text.name} of width {spec.text.dim}, but the encoder gives "
            f"{text_dim}; use the CLIP model the checkpoint was trained with")


def index_sources(
    path: str | os.PathLike,
    encoders: Sequence[tuple[str, VideoFeatureEncoder]],
    clip_len: float = 2.0,
    *,
    progress: ProgressCallback | None = None,
    progress_for: ProgressFor | None = None,
    **index_options: Any,
) -> VideoIndex:
    """Index a video with each (source name, encoder) in order and concatenate the rows.

    Each source is its own store entry (`index_video`'s keys: content, encoder fingerprint, clip length), so
    it is computed once, resumes on its own and is shared by every checkpoint that reads it. Progress:
    `progress_for(name)` gives each source its own callback; else `progress(done, total)` is called for each
    source in turn (each counts its own clips). One source returns `index_video`'s result unchanged.
    `index_options` go to `index_video` (cache_dir, use_cache, max_duration, store, ...).
    """
    if not encoders:
        raise ValueError("index_sources needs at least one (name, encoder)")
    started = time.perf_counter()
    parts: list[VideoIndex] = []
    for name, enc in encoders:
        callback = progress_for(name) if progress_for is not None else progress
        parts.append(index_video(path, enc, clip_len=clip_len, progress=callback, **index_options))
    if len(parts) == 1:
        return parts[0]
    rows = min(p.n_clips for p in parts)
    if len({p.n_clips for p in parts}) > 1:
        logger.info("%s: sources give %s clips; the official datasets cut to the shortest (%d)", Path(path).name,
                    ", ".join(f"{n} {p.n_clips}" for (n, _), p in zip(encoders, parts)), rows)
    features = np.concatenate([np.asarray(p.features[:rows], dtype=np.float32) for p in parts], axis=1)
    first = parts[0]
    return VideoIndex(
        path=first.path, content_hash=first.content_hash, info=first.info, clip_len=first.clip_len,
        encoder=" + ".join(f"{n}={p.encoder}" for (n, _), p in zip(encoders, parts)),
        features=features, from_cache=all(p.from_cache for p in parts), seconds=time.perf_counter() - started,
        computed=max(p.computed for p in parts), sources=tuple(parts))


__all__ = ["COMPUTABLE_SOURCES", "SLOWFAST_WEIGHTS_ENV", "check_computable", "check_slowfast_weights",
           "check_widths", "index_sources", "missing_slowfast_weights", "needs_slowfast", "source_names"]
