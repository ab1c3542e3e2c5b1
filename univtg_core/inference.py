"""Grounding on features: the layer every front end calls (video features + query tokens -> Prediction)."""

from __future__ import annotations

import logging

import numpy as np

from . import postprocess as pp
from .errors import CheckpointError, QueryError
from .models._contract import QueryInput
from .query import Query
from .results import Moment, Prediction

logger = logging.getLogger(__name__)


def window_starts(n_clips: int, window: int) -> list[int]:
    """Start clips of half-overlapping windows of exactly `window` clips that cover [0, n_clips)."""
    if n_clips <= window:
        return [0]
    stride = max(1, window // 2)
    starts = list(range(0, n_clips - window + 1, stride))
    if starts[-1] != n_clips - window:
        starts.append(n_clips - window)
    return starts


def run_model(model, video_feats: np.ndarray, query: Query | QueryInput | np.ndarray, clip_len: float,
              max_window: int | None = None) -> dict:
    """Candidate windows (seconds), their scores and the saliency curve for one video and one query.

    A video longer than `max_window` clips (default: the model's `input_spec.window`, what it was trained
    on) is cut into half-overlapping windows of that length that run as one batch; each window is prepared
    in its own frame by the model, and saliency is averaged where windows overlap. `query` is the
    model's QueryInput, or a Query / token array that the model prepares first.
    """
    spec = model.input_spec
    if video_feats.shape[1] != spec.video_dim:
        raise CheckpointError(f"the model expects video features {spec.describe_video()} = {spec.video_dim} wide, "
                              f"got {video_feats.shape[1]}; index the video with the features it was trained on")
    prepared = query if isinstance(query, QueryInput) else model.query_input(query)
    n_clips = len(video_feats)
    window = min(n_clips, max_window or spec.window or n_clips)
    starts = window_starts(n_clips, window)
    out = model.predict_windows(np.stack([video_feats[s : s + window] for s in starts]), prepared, clip_len)

    windows, scores = [], []
    saliency = np.zeros(n_clips, dtype=np.float64)
    counts = np.zeros(n_clips, dtype=np.float64)
    for i, s in enumerate(starts):
        row_windows, row_scores = out.candidates(i)
        windows.append(row_windows + s * clip_len)
        scores.append(row_scores)
        saliency[s : s + window] += out.saliency[i, :window]
        counts[s : s + window] += 1
    return {"scores": np.concatenate(scores), "windows": np.concatenate(windows), "saliency": saliency / counts,
            "query": prepared}


def cosine_curve(video_feats: np.ndarray, sentence: np.ndarray) -> np.ndarray:
    """Cosine similarity of every clip with the query embedding."""
    video = pp.l2_normalize(video_feats, eps=1e-8).astype(np.float64)
    query = pp.l2_normalize(np.asarray(sentence, np.float32)[None], eps=1e-8)[0].astype(np.float64)
    return video @ query


def ground(
    video_feats: np.ndarray,
    query_tokens: Query | np.ndarray,
    clip_len: float = 2.0,
    model=None,
    query_sentence: np.ndarray | None = None,
    *,
    duration: float | None = None,
    query: str | None = None,
    nms_threshold: float = 0.7,
    top_k: int = 10,
    summary_budget: float = 0.15,
) -> Prediction:
    """Moments, saliency curve, highlight and summary for one query on one video's clip features.

    video_feats: (N, D) one row per clip of `clip_len` seconds, as the encoder gave them (not normalised).
    query_tokens: a `Query` (its embedding and label are used unless given here), or (T, D) per-token query
        features taken as they are (an image query is one row).
    model: a model from `load_model`, or None for zero-shot, which compares `query_sentence` (default: the
    Query's embedding, else the last token row, i.e. the end token of a text query or the only row of an
    image query) with every clip in the joint space.
    """
    video_feats = np.asarray(video_feats, dtype=np.float32)
    if video_feats.ndim != 2 or len(video_feats) == 0:
        raise ValueError(f"video_feats must be (N, D) with N >= 1; got shape {video_feats.shape}")
    if isinstance(query_tokens, Query):
        asked = query_tokens
        query_sentence = asked.embedding if query_sentence is None else query_sentence
        query = query if query is not None else (asked.text or asked.label)
    else:
        tokens = np.asarray(query_tokens, dtype=np.float32)
        if tokens.ndim not in (1, 2) or tokens.size == 0:
            raise QueryError(f"the query has no tokens (shape {tokens.shape}); give a text or an image")
        asked = Query(tokens)
    if len(asked.tokens) == 0:
        raise QueryError("the query has no tokens; give a text or an image")
    n_clips = len(video_feats)
    duration = float(duration) if duration is not None else n_clips * clip_len

    if model is None:
        sentence = asked.tokens[-1] if query_sentence is None else np.asarray(query_sentence, np.float32)
        if sentence.shape[-1] != video_feats.shape[1]:
            raise QueryError(f"zero-shot needs the query embedding in the video's space (width "
                             f"{video_feats.shape[1]}), got width {sentence.shape[-1]}")
        cosine = cosine_curve(video_feats, sentence)
        saliency = pp.smooth_curve(cosine)
        rows = pp.zero_shot_moments(saliency, clip_len, duration, nms_threshold, top_k, raw=cosine)
        mode = "zero-shot"
    else:
        out = run_model(model, video_feats, asked, clip_len)
        read = out["query"]
        if read.rows_read < read.rows_given:
            logger.warning("the model reads %d of the query's %d token rows, cut as its official feature extractor "
                           "cut them", read.rows_read, read.rows_given)
        saliency = out["saliency"]
        rows = pp.rank_moments(out["windows"], out["scores"], duration, nms_threshold, top_k)
        mode = "model"

    return Prediction(
        moments=tuple(Moment(float(s), float(e), float(c)) for s, e, c in rows),
        saliency=np.asarray(saliency, dtype=np.float32),
        clip_len=float(clip_len),
        duration=duration,
        highlight=pp.top_highlight(saliency, clip_len),
        summary=tuple(float(t) for t in pp.summary_points(saliency, clip_len, summary_budget)),
        query=query,
        mode=mode,
    )
