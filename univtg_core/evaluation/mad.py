"""MAD (Soldan et al., CVPR'22) moment retrieval: recall at k after NMS, as MAD's official evaluation counts.

The protocol, from MAD's own evaluation (`baselines/VLG-Net/lib/engine/evaluation.py` and
`configs/mad.yml` in github.com/Soldelli/MAD):

1. A query's candidate windows are sorted by score, best first, and de-duplicated with greedy NMS: a window
   is dropped when its IoU with a window already kept is *above* 0.3 (`TEST.NMS_THRESH`); the first 100
   kept are the ranked predictions. NMS is part of the evaluation, applied to whatever the model proposed.
2. R@k at IoU t: the share of queries for which any of the first k predictions has IoU >= t with the GT
   window (`ext_timestamps`, clamped to the movie), for k in {1, 5, 10, 50, 100} and t in {0.1, 0.3, 0.5}.
   A query with fewer than k predictions counts with those it has (MAD pads with IoU 0).

IoU is intersection over union in seconds (MAD divides by the hull, max end - min start, which is the union
whenever the intersection is not empty, and the intersection is 0 otherwise: the same numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from univtg_core.evaluation.metrics import recall_at_iou
from univtg_core.evaluation.qvhighlights import _windows, match_by_qid
from univtg_core.spans import temporal_iou

MAD_KS = (1, 5, 10, 50, 100)
MAD_IOUS = (0.1, 0.3, 0.5)
MAD_NMS_THRESHOLD = 0.3  # MAD's configs/mad.yml TEST.NMS_THRESH, also its zero-shot CLIP baseline's
MAD_MAX_PREDICTIONS = 100

__all__ = ["MAD_IOUS", "MAD_KS", "MAD_NMS_THRESHOLD", "evaluate_mad", "mad_nms", "mad_recall"]


def mad_nms(
    windows: ArrayLike,
    scores: ArrayLike | None = None,
    threshold: float | None = MAD_NMS_THRESHOLD,
    top_k: int | None = MAD_MAX_PREDICTIONS,
) -> np.ndarray:
    """Indices of the windows MAD's NMS keeps, best first.

    Windows are ranked by score (stable, so equal scores keep their order; without scores, the given order
    is the ranking). A window is suppressed when its IoU with a kept one is strictly greater than
    `threshold` (None: no suppression). At most `top_k` are kept.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    order = (np.arange(len(windows)) if scores is None
             else np.argsort(-np.asarray(scores, dtype=np.float64).reshape(-1), kind="stable"))
    kept: list[int] = []
    for idx in order:
        if top_k is not None and len(kept) >= top_k:
            break
        if threshold is not None and kept and temporal_iou(windows[idx][None], windows[kept]).max() > threshold:
            continue
        kept.append(int(idx))
    return np.asarray(kept, dtype=np.int64)


def mad_recall(
    pred_windows_per_query: Sequence[ArrayLike],
    gt_windows_per_query: Sequence[ArrayLike],
    ks: Sequence[int] = MAD_KS,
    ious: Sequence[float] = MAD_IOUS,
    nms_threshold: float | None = MAD_NMS_THRESHOLD,
) -> dict[str, float]:
    """MAD's R@k at IoU t (see the module doc) for per-query [start, end(, score)] candidate windows.

    With a score column the windows are ranked by it; with two columns the given order is the ranking.
    Returns {"R1@0.1": ..., "R100@0.5": ...}, percentages rounded to 2 decimals, ordered by k then IoU.
    """
    ranked = []
    for q, pred in enumerate(pred_windows_per_query):
        pred = np.asarray(pred, dtype=np.float64)
        if pred.size == 0:
            ranked.append(np.zeros((0, 2)))
            continue
        pred = pred.reshape(1, -1) if pred.ndim == 1 else pred
        if pred.ndim != 2 or pred.shape[1] < 2:
            raise ValueError(f"predictions of query {q} must be [start, end(, score)] windows, got shape {pred.shape}")
        scores = pred[:, 2] if pred.shape[1] > 2 else None
        ranked.append(pred[mad_nms(pred[:, :2], scores, nms_threshold, max(ks)), :2])
    return recall_at_iou(ranked, gt_windows_per_query, ks=ks, ious=ious, miou=False)


def evaluate_mad(
    submission: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]],
    match_number: bool = True,
    nms_threshold: float | None = MAD_NMS_THRESHOLD,
) -> dict[str, float]:
    """MAD's R{1,5,10,50,100}@{0.1,0.3,0.5} on QVHighlights-format records (GT from `convert mad`).

    `pred_relevant_windows` should hold at least 100 candidates per query for R@50 / R@100 to mean what
    they mean in the papers (`predict --top-k 100`).
    """
    submission, ground_truth = match_by_qid(submission, ground_truth, match_number)
    preds = [_candidates(d) for d in submission]
    gts = [_windows(d, "relevant_windows", 2) for d in ground_truth]
    return mad_recall(preds, gts, nms_threshold=nms_threshold)


def _candidates(record: dict[str, Any]) -> np.ndarray:
    """A record's [start, end(, score)] rows, checked like every other window list, score column kept."""
    if _windows(record, "pred_relevant_windows", 2).size == 0:
        return np.zeros((0, 2))
    return np.asarray(record["pred_relevant_windows"], dtype=np.float64)
