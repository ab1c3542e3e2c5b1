"""Charades-STA / TACoS moment retrieval as MESM's official `eval.py` (`eval_submission`) reports it.

- R1@t: the share of queries whose top-1 window has IoU >= t with its best GT window; Charades-STA reports
  t in {0.3, 0.5, 0.55, ..., 0.95}, TACoS {0.1, 0.3, 0.5, 0.7}. `miou`: mean best IoU of the top-1 window.
- mAP: detection AP over IoU 0.5:0.05:0.95 with the first 10 predicted windows (QVHighlights' definition).
- Length buckets by GT window length, (low, high] seconds: short (0, 10], middle (10, 30], long (30, 150]
  (TACoS also superlong (150, 600]); `full` is every query, unfiltered. An empty bucket is left out (its
  brief entry is None), unlike QVHighlights' report which scores it on all the data.
- Percentages rounded to 2 decimals; the report has the official layout {"brief": ..., "full": {"MR-mAP",
  "MR-R1"}, "long": ..., ...} with keys sorted as the official code sorts them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from univtg_core.evaluation.metrics import as_percent
from univtg_core.evaluation.qvhighlights import MR_AP_IOUS, MR_MAX_PRED_WINDOWS, _detection_ap, match_by_qid
from univtg_core.spans import temporal_iou

__all__ = ["BUCKETS", "RECALL_IOUS", "evaluate_moment_retrieval"]

RECALL_IOUS = {"charades": (0.3, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
               "tacos": (0.1, 0.3, 0.5, 0.7)}
BUCKETS = {
    "charades": (("short", 0, 10), ("middle", 10, 30), ("long", 30, 150), ("full", 0, 150)),
    "tacos": (("short", 0, 10), ("middle", 10, 30), ("long", 30, 150), ("superlong", 150, 600), ("full", 0, 600)),
}
DATASETS = {"charades": "charades", "charades-cg": "charades", "charades-cd": "charades", "tacos": "tacos",
            "qvhighlights": "charades"}


def _windows(records: list[dict], key: str, columns: int) -> list[np.ndarray]:
    out = []
    for d in records:
        arr = np.asarray(d.get(key, []), dtype=np.float64)
        if arr.size and (arr.ndim != 2 or arr.shape[1] < columns):
            raise ValueError(f"qid {d.get('qid')!r}: {key} must be [[start, end{', score' * (columns == 3)}], ...]")
        out.append(arr[:, :columns] if arr.size else np.zeros((0, columns)))
    return out


def _bucket(preds: list[np.ndarray], gts: list[np.ndarray], low: float, high: float, whole: bool):
    if whole:
        return preds, gts
    kept_p, kept_g = [], []
    for pred, gt in zip(preds, gts):
        length = gt[:, 1] - gt[:, 0]
        inside = gt[(low < length) & (length <= high)]
        if len(inside):
            kept_p.append(pred)
            kept_g.append(inside)
    return kept_p, kept_g


def _scores(preds: list[np.ndarray], gts: list[np.ndarray], recall_ious: tuple[float, ...]) -> dict[str, dict]:
    ap = np.stack([_detection_ap(p[:MR_MAX_PRED_WINDOWS], g, MR_AP_IOUS) for p, g in zip(preds, gts)])
    per_iou = ap.mean(axis=0)
    mr_map = {str(t): as_percent(v) for t, v in zip(MR_AP_IOUS, per_iou)}
    mr_map["average"] = as_percent(np.mean(per_iou))
    top1 = np.array([temporal_iou(p[:1, :2], g).max() if len(p) else 0.0 for p, g in zip(preds, gts)])
    mr_r1 = {str(t): as_percent(np.mean(top1 >= t)) for t in recall_ious}
    mr_r1["miou"] = as_percent(top1.mean())
    return {"MR-mAP": mr_map, "MR-R1": mr_r1}


def evaluate_moment_retrieval(submission: list[dict[str, Any]], ground_truth: list[dict[str, Any]],
                              dataset: str = "charades", match_number: bool = True) -> dict[str, Any]:
    """MESM's report for QVHighlights-format records: predictions `pred_relevant_windows` [[start, end,
    score], ...] best first, GT `relevant_windows` [[start, end], ...]. `dataset`: charades (also
    charades-cg / charades-cd) or tacos, which decide the recall thresholds and buckets."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    family = DATASETS[dataset]
    submission, ground_truth = match_by_qid(submission, ground_truth, match_number)
    preds = _windows(submission, "pred_relevant_windows", 3)
    gts = _windows(ground_truth, "relevant_windows", 2)
    for d, gt in zip(ground_truth, gts):
        if len(gt) == 0:
            raise ValueError(f"qid {d['qid']!r} has no relevant_windows; every query needs a GT window")
    report: dict[str, Any] = {}
    for name, low, high in BUCKETS[family]:
        bucket_preds, bucket_gts = _bucket(preds, gts, low, high, whole=name == "full")
        if bucket_gts:
            report[name] = _scores(bucket_preds, bucket_gts, RECALL_IOUS[family])
    full = report["full"]
    brief = {
        "MR-full-R1@0.3": full["MR-R1"]["0.3"], "MR-full-R1@0.5": full["MR-R1"]["0.5"],
        "MR-full-R1@0.7": full["MR-R1"]["0.7"], "MR-full-miou": full["MR-R1"]["miou"],
        "MR-full-mAP": full["MR-mAP"]["average"], "MR-full-mAP@0.5": full["MR-mAP"]["0.5"],
        "MR-full-mAP@0.75": full["MR-mAP"]["0.75"],
    }
    for name in ("short", "middle", "long", "superlong"):
        brief[f"MR-{name}-mAP"] = report[name]["MR-mAP"]["average"] if name in report else None
    result: dict[str, Any] = OrderedDict(brief=OrderedDict(sorted(brief.items())))
    result.update(sorted(report.items()))
    return result
