"""Pure functions that turn per-clip model outputs or similarity curves into moments, highlights and summaries.

Conventions follow the official code: clip i has anchor (i + clip_len / 2) / L (for clip_len 2 that is the
clip's end, not its centre), predicted spans are (-left, +right) offsets in fractions of the video, and a
window in seconds is (offset + anchor) * L * clip_len (UniVTG's decoder: `models.univtg.UniVTG.decode_outputs`).
"""

from __future__ import annotations

import numpy as np

from .spans import temporal_nms


def clip_anchors(n_clips: int, clip_len: float) -> np.ndarray:
    """Official span anchors, as fractions of the video: (i + clip_len / 2) / L, float32 like the demo."""
    return ((np.arange(n_clips, dtype=np.float32) + np.float32(clip_len / 2)) / np.float32(n_clips)).astype(
        np.float32
    )


def tef(n_clips: int) -> np.ndarray:
    """Temporal endpoint features [i / L, (i + 1) / L] appended to every clip."""
    start = np.arange(n_clips, dtype=np.float32) / np.float32(n_clips)
    return np.stack([start, start + np.float32(1.0 / n_clips)], axis=1).astype(np.float32)


def l2_normalize(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Row-wise x / (||x|| + eps), the official normalisation (rows end up slightly shorter than 1)."""
    x = np.asarray(x, dtype=np.float32)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + np.float32(eps))


def rank_moments(
    windows: np.ndarray,
    scores: np.ndarray,
    duration: float,
    nms_threshold: float = 0.7,
    top_k: int | None = 10,
    max_before_nms: int | None = 1000,
    min_length: float = 1e-3,
) -> np.ndarray:
    """Clamp windows to [0, duration], drop empty ones, sort by score and apply NMS.

    Returns rows [start, end, score], best first.
    """
    windows = np.clip(np.asarray(windows, dtype=np.float64).reshape(-1, 2), 0.0, float(duration))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = (windows[:, 1] - windows[:, 0]) > min_length
    windows, scores = windows[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    if max_before_nms is not None:
        order = order[:max_before_nms]
    windows, scores = windows[order], scores[order]
    if nms_threshold is not None and 0 < nms_threshold < 1:
        kept = temporal_nms(windows, scores, nms_threshold, top_k)
    else:
        kept = np.arange(len(scores))[:top_k]
    return np.concatenate([windows[kept], scores[kept, None]], axis=1) if len(kept) else np.zeros((0, 3))


def smooth_curve(curve: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 smoothing with edge padding: damps single-clip noise, keeps a step a step."""
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size < 3:
        return curve.copy()
    padded = np.pad(curve, 1, mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def adaptive_threshold(curve: np.ndarray, spread: float = 0.5) -> float:
    """Midway between the curve's median and its maximum (scaled by `spread`): robust to the score scale."""
    curve = np.asarray(curve, dtype=np.float64)
    median, peak = float(np.median(curve)), float(curve.max())
    return median + spread * (peak - median)


def runs_above(curve: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Contiguous runs [first, last] of indices where curve >= threshold."""
    above = np.asarray(curve) >= threshold
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(above):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(above) - 1))
    return runs


def run_score(curve: np.ndarray, first: int, last: int) -> float:
    """How much a run stands out: (mean inside - mean outside) * 2 * sqrt(n_in * n_out) / N.

    This is the classic statistic for one raised segment in a sequence (a mean shift weighted by how well
    both sides are estimated). It prefers the whole event over a tight peak inside it, and over a loose run
    that swallows neighbouring clips of a lower level. Divided by the curve's range it lies in [0, 1].
    """
    n = curve.size
    n_in = last - first + 1
    n_out = n - n_in
    if n_out == 0:
        return 0.0
    inside = float(curve[first : last + 1].mean())
    outside = float((curve.sum() - curve[first : last + 1].sum()) / n_out)
    return (inside - outside) * 2.0 * np.sqrt(n_in * n_out) / n


def zero_shot_moments(
    curve: np.ndarray,
    clip_len: float,
    duration: float,
    nms_threshold: float = 0.7,
    top_k: int | None = 10,
    raw: np.ndarray | None = None,
    spreads: tuple[float, ...] = (0.25, 0.5, 0.75),
) -> np.ndarray:
    """Moments from a similarity curve: contiguous runs above adaptive thresholds, scored and NMS-ed.

    Thresholds between the curve's median and its peak give nested candidates (a tight peak and the wider
    event around it). When the unsmoothed curve `raw` is given, its runs are candidates too and every
    candidate is scored on it, so smoothing helps find events without blurring their edges. Returns rows
    [start, end, score], best first.
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size == 0:
        return np.zeros((0, 3))
    scored = np.asarray(raw, dtype=np.float64) if raw is not None else curve
    candidates: set[tuple[int, int]] = set()
    for source in {id(curve): curve, id(scored): scored}.values():
        for spread in spreads:
            candidates.update(runs_above(source, adaptive_threshold(source, spread)))
    value_range = float(scored.max() - scored.min())
    scale = value_range if value_range > 1e-12 else 1.0
    runs = sorted(candidates)
    windows = np.array([(first * clip_len, (last + 1) * clip_len) for first, last in runs], dtype=np.float64)
    scores = np.array([run_score(scored, first, last) / scale for first, last in runs], dtype=np.float64)
    return rank_moments(windows, scores, duration, nms_threshold, top_k)


def summary_points(
    saliency: np.ndarray,
    clip_len: float,
    budget: float = 0.15,
    min_gap_clips: int | None = None,
) -> np.ndarray:
    """Representative clips under a duration budget, picked greedily by saliency with temporal diversity.

    As in keyshot summarisation (TVSum/SumMe), the summary may cover at most `budget` of the video. A clip is
    skipped while it lies within `min_gap_clips` of one already chosen (default: spread the budget evenly),
    and the gap shrinks only when nothing else is left. Returns the chosen clips' centre times, ascending.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    n_clips = saliency.size
    if n_clips == 0:
        return np.zeros(0)
    count = max(1, int(np.floor(budget * n_clips + 1e-9)))
    if min_gap_clips is None:
        min_gap_clips = max(1, n_clips // (2 * count))
    order = np.argsort(-saliency, kind="stable")
    chosen: list[int] = []
    gap = min_gap_clips
    while len(chosen) < count and gap >= 0:
        for idx in order:
            if len(chosen) >= count:
                break
            if idx in chosen or any(abs(int(idx) - c) <= gap for c in chosen if gap > 0):
                continue
            chosen.append(int(idx))
        gap -= 1
    return (np.sort(np.array(chosen)) + 0.5) * clip_len


def top_highlight(saliency: np.ndarray, clip_len: float) -> float:
    """Start second of the most salient clip (the official demo reports argmax * clip_len)."""
    return float(np.argmax(saliency)) * clip_len
