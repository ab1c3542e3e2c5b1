"""MESM's input preparation, as its official dataset code prepares features.

Video: every source is L2-normalised on its own (F.normalize, eps 1e-12), all are cut to the shortest,
concatenated in the checkpoint's order, mean-pooled to `max_video_l` rows when longer, and the two tef columns
[i/L, (i+1)/L] are appended. Text: CLIP rows are the ln_final outputs of start + at most max_words_l - 2 BPE
tokens + end; the model itself normalises them (the sentence feature is the mean of the *raw* rows, so
normalising here would change it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, QueryError
from ..query import Query
from ._contract import QueryInput

if TYPE_CHECKING:
    from .mesm import MESMConfig


def pool_bounds(length: int, max_len: int) -> torch.Tensor:
    """(max_len + 1,) official bin edges: round(arange(0, M + 1) / M * L), clamped to L - 1 (float32 torch,
    round half to even). Bin j is rows [edge_j, edge_j+1), or row edge_j alone when that is empty."""
    edges = torch.arange(0, max_len + 1, 1.0) / max_len * length
    return edges.round().long().clamp(max=length - 1)


def pool_to_length(features: torch.Tensor, max_len: int) -> torch.Tensor:
    """(L, D) -> (min(L, max_len), D): the official mean-pooling of a video longer than max_video_l."""
    length = features.shape[0]
    if length <= max_len:
        return features
    edges = pool_bounds(length, max_len).tolist()
    rows = [features[s:e].mean(dim=0) if s < e else features[s] for s, e in zip(edges[:-1], edges[1:])]
    return torch.stack(rows)


def clip_to_row(length: int, max_len: int) -> np.ndarray:
    """For each of `length` clips, the pooled row that holds it (identity when not pooled)."""
    if length <= max_len:
        return np.arange(length)
    edges = pool_bounds(length, max_len).numpy()
    rows = np.searchsorted(edges[1:], np.arange(length), side="right")
    return np.minimum(rows, max_len - 1)


def saliency_per_clip(saliency: np.ndarray, length: int, max_len: int | None = None) -> np.ndarray:
    """(B, L') saliency of pooled rows -> (B, length): each clip takes the value of the row that holds it."""
    saliency = np.asarray(saliency)
    if saliency.shape[1] == length:
        return saliency
    return saliency[:, clip_to_row(length, max_len or saliency.shape[1])]


def tef(length: int) -> torch.Tensor:
    """(L, 2) temporal endpoint features [i/L, (i+1)/L] (float32, as the official dataset computes them)."""
    start = torch.arange(0, length, 1.0) / length
    return torch.stack([start, start + 1.0 / length], dim=1)


def _finish(features: torch.Tensor, config: MESMConfig) -> torch.Tensor:
    features = pool_to_length(features, config.max_video_l)
    if config.use_tef:
        features = torch.cat([features, tef(features.shape[0])], dim=1)
    return features


def prepare_video(sources: Sequence[np.ndarray], config: MESMConfig) -> np.ndarray:
    """Raw per-source features [(L_i, D_i), ...] in the checkpoint's source order -> (L, v_feat_dim) float32."""
    widths = [d for _, d in config.video_sources]
    if len(sources) != len(widths):
        raise ValueError(f"this MESM checkpoint reads {len(widths)} video sources "
                         f"{[n for n, _ in config.video_sources]}, got {len(sources)}")
    feats = []
    for (name, width), src in zip(config.video_sources, sources):
        src = torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32))
        if src.ndim != 2 or src.shape[1] != width:
            raise ValueError(f"video source {name} must be (L, {width}), got {tuple(src.shape)}")
        feats.append(F.normalize(src, dim=1) if config.normalize_video else src)
    shortest = min(len(f) for f in feats)
    if shortest < 1:
        raise ValueError("a video source has no rows")
    return _finish(torch.cat([f[:shortest] for f in feats], dim=1), config).numpy()


def prepare_windows(video: np.ndarray, config: MESMConfig) -> np.ndarray:
    """(B, L, video_feature_dim) raw concatenated features of B windows -> (B, L', v_feat_dim), each window
    prepared in its own frame (per-source normalisation, pooling, tef), as the dataset prepares a video."""
    video = np.asarray(video, dtype=np.float32)
    if video.shape[-1] != config.video_feature_dim:
        names = " + ".join(f"{n} ({d})" for n, d in config.video_sources)
        raise ValueError(f"this MESM checkpoint reads {config.video_feature_dim}-d video features ({names}), "
                         f"got {video.shape[-1]}")
    widths = [d for _, d in config.video_sources]
    out = []
    for window in video:
        parts = torch.split(torch.from_numpy(np.ascontiguousarray(window)), widths, dim=1)
        if config.normalize_video:
            parts = [F.normalize(p, dim=1) for p in parts]
        out.append(_finish(torch.cat(parts, dim=1), config))
    return torch.stack(out).numpy()


def query_rows(query, config: MESMConfig) -> QueryInput:
    """The rows MESM reads from a `Query` (a plain array: dataset tokens): encoder-made CLIP text rows cut as
    the official extractor cut them (start + at most max_words_l - 2 BPE tokens + end), dataset tokens as they
    are; the model reads at most max_words_l rows, so rows after the text (an image query's token) take their
    place from the text's words (the text keeps its start and end rows) rather than being dropped.

    Exactness note: the official end row is the end token of the *truncated* sequence. Rows of a longer
    sentence keep the full sentence's end row (its start and word rows are exact, CLIP's attention being
    causal); for an exact end row the encoder must run on the cut ids (`MESM.text_token_limit`).
    """
    if not isinstance(query, Query):
        query = Query(np.asarray(query, dtype=np.float32))
    tokens = np.asarray(query.tokens, dtype=np.float32)
    if tokens.ndim != 2 or tokens.shape[1] != config.t_feat_dim:
        kind = "CLIP per-token" if config.text_path == "clip" else "GloVe"
        raise CheckpointError(f"this MESM checkpoint reads {config.t_feat_dim}-d {kind} query features, got "
                              f"{tokens.shape[-1] if tokens.ndim else 0}-d; encode the query with the model it "
                              f"was trained with")
    limit = config.max_words_l
    given = len(tokens)
    text_rows = query.text_rows
    if text_rows:
        extra = tokens[text_rows:][:limit - 2]
        keep = limit - len(extra)
        text = tokens[:text_rows]
        if text_rows > keep:
            text = np.concatenate([text[:keep - 1], text[-1:]])
        tokens = np.concatenate([text, extra])
    tokens = tokens[:limit]
    if len(tokens) == 0:
        raise QueryError("the query has no token rows")
    return QueryInput(tokens=np.ascontiguousarray(tokens), rows_read=len(tokens), rows_given=given)


__all__ = ["clip_to_row", "pool_bounds", "pool_to_length", "prepare_video", "prepare_windows", "query_rows",
           "saliency_per_clip", "tef"]
