"""Benchmark metrics other than QVHighlights, as pure numpy functions.

- `recall_at_iou`: Charades-STA / TACoS (R1@{0.3,0.5,0.7} + mIoU); the counting behind `mad` (after NMS) and
  `ego4d` (strictly above the threshold).
- `highlight_map`: TVSum (top-5 mAP) and YouTube Highlights (mAP), as UniVTG computes them.
- `summary_f1`: keyshot-summary F-measure against user summaries (TVSum: avg over users, SumMe: max).

Aggregated metrics are percentages (x100) rounded to 2 decimals, like the QVHighlights report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from univtg_core.spans import temporal_iou

__all__ = ["highlight_map", "recall_at_iou", "summary_f1"]


def as_percent(value: float) -> float:
    """A fraction as the reports print it: x100, rounded to 2 decimals (every evaluation module uses this)."""
    return round(100.0 * float(value), 2)


def _windows(windows: ArrayLike, what: str) -> np.ndarray:
    """(N, >=2) array-like -> (N, 2) float array of [start, end]; extra columns (scores) are dropped."""
    arr = np.asarray(windows, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2))
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] < 2:
        raise ValueError(f"{what} must be a list of [start, end(, score)] windows, got shape {arr.shape}")
    return arr[:, :2]


def recall_at_iou(
    pred_windows_per_query: Sequence[ArrayLike],
    gt_windows_per_query: Sequence[ArrayLike],
    ks: Sequence[int] = (1,),
    ious: Sequence[float] = (0.3, 0.5, 0.7),
    miou: bool = True,
    strict: bool = False,
) -> dict[str, float]:
    """Recall at k under temporal-IoU thresholds, plus the mean top-1 IoU.

    A query is a hit for (k, t) when any of its first k predicted windows has IoU >= t with any of its
    GT windows (IoU > t with `strict=True`, as the official Ego4D-NLQ script counts). Predictions are
    taken in the given order (best first, as in `pred_relevant_windows`); they are not re-sorted by score.
    A query with fewer than k predictions uses all it has, and a query with none is a miss with IoU 0.
    `mIoU` is the mean over queries of the best IoU between the first prediction and the GT windows (the
    Charades-STA / TACoS convention, also UniVTG's MR-mIoU and Ego4D-NLQ's mIoU).

    Args:
        pred_windows_per_query: per query, (N_i, 2) or (N_i, 3) windows [start, end(, score)], N_i >= 0.
        gt_windows_per_query: per query, (G_i, 2) GT windows [start, end], G_i >= 1.
        ks: the k of R{k}; Charades/TACoS use (1,), MAD (1, 5, 10, 50, 100), Ego4D-NLQ (1, 5).
        ious: IoU thresholds; Charades/TACoS use (0.3, 0.5, 0.7), MAD (0.1, 0.3, 0.5), Ego4D-NLQ (0.3, 0.5).
        miou: also report `mIoU`.
        strict: count a hit only above the threshold, not at it.

    Returns:
        {"R1@0.3": ..., ..., "mIoU": ...}: percentages rounded to 2 decimals, keys ordered by k then IoU.
    """
    if len(pred_windows_per_query) != len(gt_windows_per_query):
        raise ValueError(
            f"got predictions for {len(pred_windows_per_query)} queries "
            f"but GT for {len(gt_windows_per_query)}; pass one entry per query to both"
        )
    if len(gt_windows_per_query) == 0:
        raise ValueError("no queries to evaluate")
    if any(int(k) < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {tuple(ks)}")
    ks = [int(k) for k in ks]
    thresholds = np.asarray([round(float(t), 2) for t in ious], dtype=np.float64)

    # best_iou_at_k[q, i]: best IoU reached by the first ks[i] predictions of query q.
    best_iou_at_k = np.zeros((len(gt_windows_per_query), len(ks)))
    top1_iou = np.zeros(len(gt_windows_per_query))
    for q, (pred, gt) in enumerate(zip(pred_windows_per_query, gt_windows_per_query, strict=True)):
        pred = _windows(pred, f"predictions of query {q}")
        gt = _windows(gt, f"GT of query {q}")
        if len(gt) == 0:
            raise ValueError(f"query {q} has no GT window; every query needs at least one")
        if len(pred) == 0:
            continue
        best_per_pred = temporal_iou(pred, gt).max(axis=1)
        top1_iou[q] = best_per_pred[0]
        best_iou_at_k[q] = np.maximum.accumulate(best_per_pred)[np.minimum(ks, len(pred)) - 1]

    report: dict[str, float] = {}
    for i, k in enumerate(ks):
        for t in thresholds:
            hits = best_iou_at_k[:, i] > t if strict else best_iou_at_k[:, i] >= t
            report[f"R{k}@{t:g}"] = as_percent(np.mean(hits))
    if miou:
        report["mIoU"] = as_percent(top1_iou.mean())
    return report


def _lower_median(values: np.ndarray) -> float:
    """torch.median semantics: for an even count, the lower of the two middle values (no averaging)."""
    return float(np.sort(values)[(len(values) - 1) // 2])


def _trapezoid_ap(ranked_labels: np.ndarray) -> float:
    """AP of a ranked 0/1 list by the trapezoid rule on the PR curve, starting at (recall 0, precision 1).

    Recall is relative to the positives inside the list. A list without positives scores 0.
    """
    num_pos = ranked_labels.sum()
    if num_pos == 0:
        return 0.0
    hits = np.cumsum(ranked_labels)
    recall = np.concatenate([[0.0], hits / num_pos])
    precision = np.concatenate([[1.0], hits / np.arange(1, len(ranked_labels) + 1)])
    return float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2))


def highlight_map(
    pred_scores_per_video: Sequence[ArrayLike],
    gt_scores_per_video: Sequence[ArrayLike],
    top_k: int | None = None,
    positive: Literal["above_zero", "above_median"] = "above_zero",
) -> float:
    """Highlight-detection mAP as UniVTG reports it for YouTube Highlights and TVSum.

    This follows UniVTG's `DatasetHL.evaluate` (`main/dataset.py`):

    - Clips are ranked by predicted score, highest first (ties: earlier clip first).
    - Each GT column (one per annotator; a 1-D GT is one annotator) is binarised:
      `positive="above_zero"` keeps clips with score > 0 (YouTube Highlights `match`);
      `positive="above_median"` keeps clips strictly above the column's lower median (TVSum `anno`;
      the median is torch's, i.e. the lower middle value, taken over the whole GT column).
    - The ranked labels are cut to the first `top_k` clips when given. AP is the trapezoid-rule area under
      the precision/recall curve starting at (0, 1), with recall counted against the positives *inside the
      cut list* (so top-5 AP is 1.0 whenever the positives among the top 5 come first); 0 when there
      are none.
    - The result is the mean over annotators and videos (every video has the same number of annotators,
      so this equals UniVTG's mean over annotators of the per-annotator mean over videos).

    Predictions and GT are aligned on their first min(len) clips, as UniVTG trims both to the shorter.
    Report one domain (TVSum category, YouTube domain) per call, as UniVTG does.

    Usage: TVSum `highlight_map(p, anno_20_columns, top_k=5, positive="above_median")`;
    YouTube Highlights `highlight_map(p, match)`.

    Args:
        pred_scores_per_video: per video, (T_i,) predicted saliency.
        gt_scores_per_video: per video, (T_i,) or (T_i, A) GT scores (A annotators, the same A everywhere).
        top_k: keep only the top-k ranked clips (TVSum: 5); None keeps all (YouTube Highlights).
        positive: how GT scores become 0/1 labels, see above.

    Returns:
        mAP as a percentage rounded to 2 decimals.
    """
    if len(pred_scores_per_video) != len(gt_scores_per_video):
        raise ValueError(
            f"got predictions for {len(pred_scores_per_video)} videos but GT for {len(gt_scores_per_video)}"
        )
    if len(gt_scores_per_video) == 0:
        raise ValueError("no videos to evaluate")
    if positive not in ("above_zero", "above_median"):
        raise ValueError(f"positive must be 'above_zero' or 'above_median', got {positive!r}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")

    aps: list[float] = []
    num_annotators: int | None = None
    for v, (pred, gt) in enumerate(zip(pred_scores_per_video, gt_scores_per_video, strict=True)):
        pred = np.asarray(pred, dtype=np.float64).reshape(-1)
        gt = np.asarray(gt, dtype=np.float64)
        if gt.ndim == 1:
            gt = gt[:, None]
        if gt.ndim != 2 or gt.shape[0] == 0:
            raise ValueError(f"GT of video {v} must be (T,) or (T, annotators) with T >= 1, got {gt.shape}")
        if num_annotators is None:
            num_annotators = gt.shape[1]
        elif gt.shape[1] != num_annotators:
            raise ValueError(f"video {v} has {gt.shape[1]} GT annotators, earlier videos {num_annotators}")
        if positive == "above_median":
            labels = np.stack([gt[:, a] > _lower_median(gt[:, a]) for a in range(gt.shape[1])], axis=1)
        else:
            labels = gt > 0
        num_clips = min(len(pred), len(labels))
        order = np.argsort(-pred[:num_clips], kind="stable")
        ranked = labels[:num_clips][order][:top_k].astype(np.float64)
        aps.extend(_trapezoid_ap(ranked[:, a]) for a in range(ranked.shape[1]))
    return as_percent(np.mean(aps))


def summary_f1(
    pred_selected_mask: ArrayLike,
    gt_user_masks: ArrayLike,
    mode: Literal["avg", "max"] = "avg",
) -> float:
    """F-measure between a predicted keyshot summary and the users' summaries of one video.

    For each user u: overlap = |pred AND user_u|, precision = overlap / |pred|, recall = overlap / |user_u|,
    F = 2PR / (P + R) (0 when the overlap is empty). `mode="avg"` averages F over users (TVSum),
    `mode="max"` takes the best user (SumMe), as in the usual keyshot evaluation (Zhang et al. 2016).
    The prediction is cut or zero-padded to the users' length.

    Args:
        pred_selected_mask: (T,) 0/1 (or bool) per frame or clip, 1 = in the summary.
        gt_user_masks: (U, T) 0/1 per user, or (T,) for a single user.
        mode: "avg" or "max" over users.

    Returns:
        F-measure as a percentage, not rounded: average it over videos first, then round.
    """
    if mode not in ("avg", "max"):
        raise ValueError(f"mode must be 'avg' (TVSum) or 'max' (SumMe), got {mode!r}")
    users = np.asarray(gt_user_masks)
    if users.ndim == 1:
        users = users[None]
    if users.ndim != 2 or users.shape[0] == 0:
        raise ValueError(f"gt_user_masks must be (users, T) or (T,), got shape {users.shape}")
    users = users > 0
    pred_full = np.asarray(pred_selected_mask).reshape(-1) > 0
    pred = np.zeros(users.shape[1], dtype=bool)
    n = min(len(pred_full), users.shape[1])
    pred[:n] = pred_full[:n]

    overlap = (users & pred[None]).sum(axis=1).astype(np.float64)
    selected = float(pred.sum())
    user_sizes = users.sum(axis=1).astype(np.float64)
    precision = overlap / selected if selected > 0 else np.zeros_like(overlap)
    recall = np.divide(overlap, user_sizes, out=np.zeros_like(overlap), where=user_sizes > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(overlap), where=denom > 0)
    return 100.0 * float(f1.mean() if mode == "avg" else f1.max())
