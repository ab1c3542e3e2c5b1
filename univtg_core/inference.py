"""Grounding on features: the layer every front end calls (video features + query tokens -> Prediction)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from . import postprocess as pp
from .errors import CheckpointError, QueryError
from .results import Moment, Prediction

logger = logging.getLogger(__name__)


def model_inputs(video_feats: np.ndarray, query_tokens: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
    """Normalise and append tef exactly as the official demo and dataset do."""
    video = pp.l2_normalize(video_feats) if config.normalize_video else np.asarray(video_feats, np.float32)
    text = pp.l2_normalize(query_tokens) if config.normalize_text else np.asarray(query_tokens, np.float32)
    if config.use_tef:
        video = np.concatenate([video, pp.tef(len(video))], axis=1)
    return video.astype(np.float32), text.astype(np.float32)


def window_starts(n_clips: int, window: int) -> list[int]:
    """Start clips of half-overlapping windows of exactly `window` clips that cover [0, n_clips)."""
    if n_clips <= window:
        return [0]
    stride = max(1, window // 2)
    starts = list(range(0, n_clips - window + 1, stride))
    if starts[-1] != n_clips - window:
        starts.append(n_clips - window)
    return starts


@torch.inference_mode()
def run_model(model, video_feats: np.ndarray, query_tokens: np.ndarray, clip_len: float,
              max_window: int | None = None) -> dict[str, np.ndarray]:
    """Per-clip scores, windows (seconds) and saliency for one video and one query.

    A video longer than `max_window` clips (default: the model's `max_v_l`, what it was trained on) is cut
    into half-overlapping windows of that length that run as one batch; each window is positioned in its own
    frame, as the model expects, and saliency is averaged where windows overlap.
    """
    config = model.config
    if video_feats.shape[1] != config.video_feature_dim:
        raise CheckpointError(f"the model expects video features of width {config.video_feature_dim}, "
                              f"got {video_feats.shape[1]}; index the video with the matching CLIP model")
    if query_tokens.shape[1] != config.t_feat_dim:
        raise CheckpointError(f"the model expects query tokens of width {config.t_feat_dim}, "
                              f"got {query_tokens.shape[1]}; encode the query with the matching CLIP model")
    if config.use_txt_pos and len(query_tokens) > config.max_q_l:
        logger.warning("query has %d tokens, the model's text positions stop at %d: truncating",
                       len(query_tokens), config.max_q_l)
        query_tokens = query_tokens[: config.max_q_l]
    n_clips = len(video_feats)
    window = min(n_clips, max_window or config.max_v_l or n_clips)
    starts = window_starts(n_clips, window)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype

    videos, texts = zip(*(model_inputs(video_feats[s : s + window], query_tokens, config) for s in starts))
    src_vid = torch.from_numpy(np.stack(videos)).to(device, dtype)
    src_txt = torch.from_numpy(np.stack(texts)).to(device, dtype)
    out = model(src_txt=src_txt, src_txt_mask=torch.ones(src_txt.shape[:2], device=device, dtype=dtype),
                src_vid=src_vid, src_vid_mask=torch.ones(src_vid.shape[:2], device=device, dtype=dtype))
    logits = out["pred_logits"][..., 0].float().cpu().numpy()
    spans = out["pred_spans"].float().cpu().numpy()
    saliency_windows = out["saliency_scores"].float().cpu().numpy()

    windows = np.concatenate([pp.windows_from_spans(spans[i], clip_len) + s * clip_len
                              for i, s in enumerate(starts)])
    saliency = np.zeros(n_clips, dtype=np.float64)
    counts = np.zeros(n_clips, dtype=np.float64)
    for i, s in enumerate(starts):
        saliency[s : s + window] += saliency_windows[i]
        counts[s : s + window] += 1
    return {"scores": logits.reshape(-1), "windows": windows, "saliency": saliency / counts}


def cosine_curve(video_feats: np.ndarray, sentence: np.ndarray) -> np.ndarray:
    """Cosine similarity of every clip with the query embedding."""
    video = pp.l2_normalize(video_feats, eps=1e-8).astype(np.float64)
    query = pp.l2_normalize(np.asarray(sentence, np.float32)[None], eps=1e-8)[0].astype(np.float64)
    return video @ query


def ground(
    video_feats: np.ndarray,
    query_tokens: np.ndarray,
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
    query_tokens: (T, D) per-token query features (an image query is one row).
    model: a model from `load_model`, or None for zero-shot, which compares `query_sentence` (default: the
    last row of `query_tokens`, i.e. the end token of a text query or the only row of an image query) with
    every clip in CLIP's joint space.
    """
    video_feats = np.asarray(video_feats, dtype=np.float32)
    query_tokens = np.asarray(query_tokens, dtype=np.float32)
    if video_feats.ndim != 2 or len(video_feats) == 0:
        raise ValueError(f"video_feats must be (N, D) with N >= 1; got shape {video_feats.shape}")
    if query_tokens.ndim == 1:
        query_tokens = query_tokens[None]
    if query_tokens.ndim != 2 or len(query_tokens) == 0:
        raise QueryError(f"the query has no tokens (shape {query_tokens.shape}); give a text or an image")
    n_clips = len(video_feats)
    duration = float(duration) if duration is not None else n_clips * clip_len

    if model is None:
        sentence = query_tokens[-1] if query_sentence is None else np.asarray(query_sentence, np.float32)
        if sentence.shape[-1] != video_feats.shape[1]:
            raise QueryError(f"zero-shot needs the query embedding in the video's space (width "
                             f"{video_feats.shape[1]}), got width {sentence.shape[-1]}")
        cosine = cosine_curve(video_feats, sentence)
        saliency = pp.smooth_curve(cosine)
        rows = pp.zero_shot_moments(saliency, clip_len, duration, nms_threshold, top_k, raw=cosine)
        mode = "zero-shot"
    else:
        out = run_model(model, video_feats, query_tokens, clip_len)
        saliency = out["saliency"]
        rows = pp.rank_moments(out["windows"], out["scores"], duration, nms_threshold, top_k)
        mode = "model"

    return Prediction(
        moments=tuple(Moment(float(s), float(e), float(c)) for s, e, c in rows),
        saliency=np.asarray(saliency, dtype=np.float32),
        clip_len=float(clip_len),
        duration=duration,
        highlight=pp.top_highlight(saliency, clip_len),
        summary=tuple(float(t) for t in pp.summary_points(saliency, clip_len, summary_budget, duration=duration)),
        query=query,
        mode=mode,
    )
