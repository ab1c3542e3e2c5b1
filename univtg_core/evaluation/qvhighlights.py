"""QVHighlights moment retrieval (MR) and highlight detection (HL) metrics, equal to the official numbers.

The report has the layout and key names of UniVTG's `eval/eval.py` (a variant of Moment-DETR's
`standalone_eval`), and every number matches it: see `evaluate_qvhighlights` for the definitions.
Records use the QVHighlights jsonl format (`qid`, `pred_relevant_windows` [[start, end, score], ...] best
first, `pred_saliency_scores`; GT `relevant_windows`, `duration`, `relevant_clip_ids`, `saliency_scores`),
which UniVTG also uses for Charades-STA, TACoS, MAD and Ego4D-NLQ: `evaluate_recall_benchmark` scores those.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from univtg_core.evaluation.metrics import as_percent, recall_at_iou
from univtg_core.spans import temporal_iou

__all__ = [
    "PROTOCOL_BENCHMARKS",
    "RECALL_BENCHMARKS",
    "evaluate_qvhighlights",
    "evaluate_recall_benchmark",
    "load_jsonl",
    "match_by_qid",
]

logger = logging.getLogger(__name__)

# Thresholds as the official code rounds them (0.7, not 0.7000000000000001); IoU at a threshold counts.
MR_AP_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # 0.5 ... 0.95
MR_RECALL_IOUS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.3 ... 0.95
MR_MAX_PRED_WINDOWS = 10  # MR-mAP uses the first 10 predicted windows
MR_R5_WINDOWS = 5
# GT window length buckets in seconds, (low, high]; "full" keeps everything.
LENGTH_BUCKETS = {
    "short": (0.0, 10.0),
    "middle": (10.0, 30.0),
    "long": (30.0, math.inf),
    "full": (0.0, math.inf),
}
HL_MIN_SCORES = {"Fair": 2, "Good": 3, "VeryGood": 4}  # a clip is positive when its score >= this
HL_CLIP_SECONDS = 2.0
HL_NUM_ANNOTATORS = 3

# Record-level recall benchmarks: (ks, IoU thresholds, report mIoU). MAD and Ego4D-NLQ have protocols of
# their own (NMS inside the metric, strict thresholds): evaluation.mad and evaluation.ego4d.
RECALL_BENCHMARKS: dict[str, tuple[tuple[int, ...], tuple[float, ...], bool]] = {
    "charades": ((1,), (0.3, 0.5, 0.7), True),
    "tacos": ((1,), (0.3, 0.5, 0.7), True),
}
PROTOCOL_BENCHMARKS = ("mad", "ego4d")


def load_jsonl(path: str | PathLike[str]) -> list[dict[str, Any]]:
    """Read a jsonl file: one JSON object per non-blank line (a missing final newline is fine).

    Raises FileNotFoundError for a missing file and ValueError naming the line for anything that is not
    one JSON object per line (a JSON array file, a truncated line, an empty file).
    """
    path = Path(path)
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"{path} line {line_no} is not valid JSON ({exc.msg}); expected jsonl"
                ) from None
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path} line {line_no} is a JSON {type(record).__name__}, expected one object per line"
                )
            records.append(record)
    if not records:
        raise ValueError(f"{path} holds no records; expected one JSON object per line")
    return records


def _by_qid(records: Iterable[dict[str, Any]], what: str) -> dict[Any, dict[str, Any]]:
    table: dict[Any, dict[str, Any]] = {}
    for i, record in enumerate(records):
        if "qid" not in record:
            raise ValueError(f"{what} record {i} has no 'qid'")
        qid = record["qid"]
        if qid in table:
            raise ValueError(f"{what} has qid {qid!r} more than once; give one record per qid")
        table[qid] = record
    return table


def match_by_qid(
    submission: list[dict[str, Any]], ground_truth: list[dict[str, Any]], match_number: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Pair prediction and GT records by qid, in GT order.

    With `match_number=True` the two qid sets must be equal (the official check); otherwise only the
    shared qids are kept. Raises ValueError naming the counts when they differ, or when nothing is shared.
    """
    preds = _by_qid(submission, "submission")
    gts = _by_qid(ground_truth, "ground truth")
    shared = [qid for qid in gts if qid in preds]
    if match_number and (len(shared) != len(preds) or len(shared) != len(gts)):
        raise ValueError(
            f"qids of submission and ground truth differ: {len(preds)} predicted, {len(gts)} in ground "
            f"truth, {len(shared)} shared; score only the shared ones with match_number=False "
            "(--no_match_number)"
        )
    if not shared:
        raise ValueError(f"submission ({len(preds)} qids) and ground truth ({len(gts)} qids) share no qid")
    return [preds[qid] for qid in shared], [gts[qid] for qid in shared]


def _windows(record: dict[str, Any], key: str, columns: int) -> np.ndarray:
    if key not in record:
        raise ValueError(f"qid {record['qid']!r} has no {key!r}")
    arr = np.asarray(record[key], dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, columns))
    if arr.ndim != 2 or arr.shape[1] < columns:
        raise ValueError(
            f"qid {record['qid']!r}: {key} must be a list of {columns}-element windows, got shape {arr.shape}"
        )
    return arr[:, :columns]


# ---------------------------------------------------------------------------------------------- MR


def _voc_interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """VOC 2011 AP: area under the precision envelope, with the curve closed at recall 0 and 1."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.concatenate([[0.0], precision, [0.0]])
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]  # best precision at this or a higher recall
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * envelope[steps]))


def _detection_ap(pred: np.ndarray, gt: np.ndarray, ious: tuple[float, ...]) -> np.ndarray:
    """AP of one query's scored windows (N, 3) against its GT windows (G, 2), one value per IoU threshold.

    Windows are visited by decreasing score (ties keep list order). Each one is a true positive when the
    unmatched GT window it overlaps most (GT taken by decreasing IoU) reaches the threshold; a GT window
    matches at most once.
    """
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros(len(ious))
    pred = pred[np.argsort(-pred[:, 2], kind="stable")]
    iou = temporal_iou(pred[:, :2], gt)  # (N, G)
    # Highest IoU first; among equal IoUs the later GT first, as the official argsort()[::-1] does.
    gt_order = np.argsort(iou, axis=1, kind="stable")[:, ::-1]
    rank = np.arange(1, len(pred) + 1)
    ap = np.zeros(len(ious))
    for t, threshold in enumerate(ious):
        matched = np.zeros(len(gt), dtype=bool)
        tp = np.zeros(len(pred))
        for i in range(len(pred)):
            for j in gt_order[i]:
                if iou[i, j] < threshold:
                    break
                if not matched[j]:
                    matched[j] = True
                    tp[i] = 1.0
                    break
        tp_cum = np.cumsum(tp)
        ap[t] = _voc_interpolated_ap(tp_cum / rank, tp_cum / len(gt))
    return ap


def _moment_retrieval(preds: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, Any]:
    """MR metrics of one length bucket; preds[q] is (N, 3) in list order, gts[q] is (G, 2)."""
    ap = np.zeros((len(preds), len(MR_AP_IOUS)))
    top1 = np.zeros(len(preds))
    top5 = np.zeros(len(preds))
    for q, (pred, gt) in enumerate(zip(preds, gts, strict=True)):
        ap[q] = _detection_ap(pred[:MR_MAX_PRED_WINDOWS], gt, MR_AP_IOUS)
        if len(pred):
            best = temporal_iou(pred[:MR_R5_WINDOWS, :2], gt).max(axis=1)
            top1[q] = best[0]
            top5[q] = best.max()
    map_per_iou = ap.mean(axis=0)
    mr_map = {str(t): as_percent(v) for t, v in zip(MR_AP_IOUS, map_per_iou, strict=True)}
    mr_map["average"] = as_percent(map_per_iou.mean())
    return {
        "MR-mIoU": as_percent(top1.mean()),
        "MR-mAP": mr_map,
        "MR-R1": {str(t): as_percent(np.mean(top1 >= t)) for t in MR_RECALL_IOUS},
        "MR-R5": {str(t): as_percent(np.mean(top5 >= t)) for t in MR_RECALL_IOUS},
    }


def _eval_moment_retrieval(submission: list[dict], ground_truth: list[dict]) -> dict[str, dict]:
    preds = [_windows(d, "pred_relevant_windows", 3) for d in submission]
    gts = [_windows(d, "relevant_windows", 2) for d in ground_truth]
    for d, gt in zip(ground_truth, gts, strict=True):
        if len(gt) == 0:
            raise ValueError(
                f"qid {d['qid']!r} has an empty relevant_windows; MR needs at least one GT window"
            )
    report = {}
    for name, (low, high) in LENGTH_BUCKETS.items():
        kept = [(low < gt[:, 1] - gt[:, 0]) & (gt[:, 1] - gt[:, 0] <= high) for gt in gts]
        queries = [q for q, keep in enumerate(kept) if keep.any()]
        if queries:
            bucket_preds = [preds[q] for q in queries]
            bucket_gts = [gts[q][kept[q]] for q in queries]
        else:  # UniVTG's guard: an empty bucket is scored on all the data
            logger.warning(
                "no GT window in the %s bucket (%s, %s] s: scoring it on all queries", name, low, high
            )
            bucket_preds, bucket_gts = preds, gts
        logger.debug("%s bucket: %d/%d queries", name, len(bucket_preds), len(preds))
        report[name] = _moment_retrieval(bucket_preds, bucket_gts)
    return report


# ---------------------------------------------------------------------------------------------- HL


def _interpolated_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    """The official `get_ap` (interpolated, not 11-point), i.e. on top of sklearn's precision_recall_curve.

    Operating points sit at the distinct score values (tied clips enter together), ordered from the
    highest threshold. Each point's precision is replaced by the best precision at it or any lower
    threshold, and AP is the plain mean of that value over the points where recall increases.
    All-negative labels give 0, all-positive 1.
    """
    num_pos = int(labels.sum())
    if num_pos == 0:
        return 0.0
    if num_pos == len(labels):
        return 1.0
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    group_ends = np.append(np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]), len(scores) - 1)
    tp = np.cumsum(labels[order])[group_ends]
    precision = tp / (group_ends + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    recall_steps = np.flatnonzero(np.diff(tp, prepend=0) != 0)
    return float(envelope[recall_steps].mean())


def _gt_clip_scores(record: dict[str, Any]) -> np.ndarray:
    """(int(duration / 2), 3) annotator scores in 0..4, 0 for clips outside relevant_clip_ids."""
    for key in ("duration", "relevant_clip_ids"):
        if key not in record:
            raise ValueError(f"qid {record['qid']!r} has no {key!r}, needed for highlight detection")
    num_clips = int(record["duration"] / HL_CLIP_SECONDS)
    full = np.zeros((num_clips, HL_NUM_ANNOTATORS))
    clip_ids = np.asarray(record["relevant_clip_ids"], dtype=np.int64).reshape(-1)
    scores = np.asarray(record["saliency_scores"], dtype=np.float64)
    if len(clip_ids) == 0:
        return full
    if scores.shape != (len(clip_ids), HL_NUM_ANNOTATORS):
        raise ValueError(
            f"qid {record['qid']!r}: saliency_scores must be {len(clip_ids)} x {HL_NUM_ANNOTATORS} "
            f"(one row per relevant clip), got shape {scores.shape}"
        )
    if clip_ids.min() < 0 or clip_ids.max() >= num_clips:
        raise ValueError(
            f"qid {record['qid']!r}: relevant_clip_ids must lie in [0, {num_clips}) for a "
            f"{record['duration']} s video, got {clip_ids.min()}..{clip_ids.max()}"
        )
    full[clip_ids] = scores
    return full


def _eval_highlight(submission: list[dict], ground_truth: list[dict]) -> dict[str, dict[str, float]]:
    gt_scores = [_gt_clip_scores(d) for d in ground_truth]
    pred_scores = []
    for d, gt in zip(submission, gt_scores, strict=True):
        raw = np.asarray(d["pred_saliency_scores"], dtype=np.float64).reshape(-1)
        fitted = np.zeros(len(gt))  # cut or zero-pad to the GT clip count
        fitted[: min(len(raw), len(gt))] = raw[: len(gt)]
        # Hit@1 looks at the whole raw list: a best clip past the GT length is a miss.
        best_clip = int(np.argmax(raw)) if len(raw) else len(gt)
        pred_scores.append((fitted, best_clip))

    report = {}
    for name, min_score in HL_MIN_SCORES.items():
        ap = np.zeros((len(gt_scores), HL_NUM_ANNOTATORS))
        hit = np.zeros(len(gt_scores))
        for q, (gt, (fitted, best_clip)) in enumerate(zip(gt_scores, pred_scores, strict=True)):
            labels = gt >= min_score
            for a in range(HL_NUM_ANNOTATORS):
                ap[q, a] = _interpolated_ap(labels[:, a], fitted)
            if best_clip < len(gt):
                hit[q] = labels[best_clip].any()
        report[f"HL-min-{name}"] = {"HL-mAP": as_percent(ap.mean()), "HL-Hit1": as_percent(hit.mean())}
    return report


# ---------------------------------------------------------------------------------------------- report


def _has_key(records: list[dict], key: str, what: str) -> bool:
    count = sum(key in d for d in records)
    if 0 < count < len(records):
        raise ValueError(f"{count} of {len(records)} {what} records have {key!r}; give it in all or none")
    return count > 0


def evaluate_qvhighlights(
    submission: list[dict[str, Any]], ground_truth: list[dict[str, Any]], match_number: bool = True
) -> dict[str, Any]:
    """Score QVHighlights predictions; the report equals UniVTG's `eval_submission` key for key.

    Layout: `brief` (headline numbers, "-key" marks the main ones), then `HL-min-{Fair,Good,VeryGood}`
    ({"HL-mAP", "HL-Hit1"}) and the MR buckets `full`, `long`, `middle`, `short`
    ({"MR-mIoU", "MR-mAP": {"0.5".."0.95", "average"}, "MR-R1": {"0.3".."0.95"}, "MR-R5": {...}}).
    All numbers are percentages rounded to 2 decimals.

    MR (when predictions have `pred_relevant_windows`):
    - MR-mAP: per query, the first 10 windows sorted by score, greedy matching to GT windows (each used
      once), VOC-interpolated AP at IoU 0.5:0.05:0.95; mean over queries; `average` over thresholds.
    - MR-R1@t / MR-mIoU: the first window in list order (not re-sorted) against its best GT window.
    - MR-R5@t: the best IoU among the first 5 windows and all GT windows.
    - Buckets by GT window length: short (0, 10], middle (10, 30], long (30, inf) seconds. A query enters
      a bucket when one of its GT windows does, keeping only those windows; an empty bucket falls back
      to all queries (UniVTG's guard).
    - A query with no predicted window scores 0 (the official code would crash).

    HL (when predictions have `pred_saliency_scores` and GT `saliency_scores` are lists):
    - GT: int(duration / 2) clips x 3 annotators, 0 outside relevant_clip_ids, positive at >= 2 (Fair),
      >= 3 (Good), >= 4 (VeryGood). Predictions are cut or zero-padded to that clip count.
    - HL-mAP: mean over queries and annotators of the official interpolated AP (`_interpolated_ap`).
    - HL-Hit1: whether the top-scored predicted clip is positive for any annotator.

    Args:
        submission: prediction records with `qid` and `pred_relevant_windows` and/or `pred_saliency_scores`.
        ground_truth: GT records with `qid`, `relevant_windows` (MR) and `duration`, `relevant_clip_ids`,
            `saliency_scores` (HL).
        match_number: require the same qid set on both sides (ValueError otherwise); when False only the
            shared qids are scored.
    """
    submission, ground_truth = match_by_qid(submission, ground_truth, match_number)
    metrics: dict[str, Any] = {}
    brief: dict[str, float] = {}

    if _has_key(submission, "pred_relevant_windows", "submission"):
        mr = _eval_moment_retrieval(submission, ground_truth)
        metrics.update(mr)
        full = mr["full"]
        mr_brief = {
            "MR-full-mAP-key": full["MR-mAP"]["average"],
            "MR-full-mAP@0.5-key": full["MR-mAP"]["0.5"],
            "MR-full-mAP@0.75-key": full["MR-mAP"]["0.75"],
            "MR-full-mIoU-key": full["MR-mIoU"],
        }
        for t in ("0.3", "0.5", "0.7"):
            mr_brief[f"MR-full-R1@{t}-key"] = full["MR-R1"][t]
            mr_brief[f"MR-full-R5@{t}-key"] = full["MR-R5"][t]
        for name in ("short", "middle", "long"):
            mr_brief[f"MR-{name}-mAP"] = mr[name]["MR-mAP"]["average"]
            mr_brief[f"MR-{name}-mIoU"] = mr[name]["MR-mIoU"]
        brief.update(sorted(mr_brief.items()))

    if _has_key(submission, "pred_saliency_scores", "submission") and _has_key(
        ground_truth, "saliency_scores", "ground truth"
    ):
        not_lists = sum(not isinstance(d["saliency_scores"], list) for d in ground_truth)
        if not_lists:  # UniVTG's guard: some datasets store NaN here
            logger.warning(
                "%d of %d GT saliency_scores are not lists: highlight detection skipped",
                not_lists,
                len(ground_truth),
            )
        else:
            hl = _eval_highlight(submission, ground_truth)
            metrics.update(hl)
            for level, values in hl.items():
                suffix = "-key" if level == "HL-min-VeryGood" else ""
                brief[f"{level}-mAP{suffix}"] = values["HL-mAP"]
                brief[f"{level}-Hit1{suffix}"] = values["HL-Hit1"]

    if not metrics:
        raise ValueError(
            "nothing to evaluate: predictions need 'pred_relevant_windows' (MR) or 'pred_saliency_scores' "
            "with GT 'saliency_scores' (HL)"
        )
    return {"brief": brief, **dict(sorted(metrics.items()))}


def evaluate_recall_benchmark(
    submission: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]],
    benchmark: str,
    match_number: bool = True,
) -> dict[str, float]:
    """Recall@k at IoU thresholds on QVHighlights-format records: Charades-STA / TACoS (R1@{0.3,0.5,0.7},
    mIoU; see `metrics.recall_at_iou`), MAD (`evaluation.mad`) and Ego4D-NLQ (`evaluation.ego4d`), each
    with its official defaults."""
    if benchmark == "mad":
        from univtg_core.evaluation.mad import evaluate_mad

        return evaluate_mad(submission, ground_truth, match_number=match_number)
    if benchmark == "ego4d":
        from univtg_core.evaluation.ego4d import evaluate_ego4d

        return evaluate_ego4d(submission, ground_truth, match_number=match_number)
    if benchmark not in RECALL_BENCHMARKS:
        valid = ", ".join([*RECALL_BENCHMARKS, *PROTOCOL_BENCHMARKS])
        raise ValueError(f"unknown benchmark {benchmark!r}; valid: {valid}")
    ks, ious, miou = RECALL_BENCHMARKS[benchmark]
    submission, ground_truth = match_by_qid(submission, ground_truth, match_number)
    preds = [_windows(d, "pred_relevant_windows", 2) for d in submission]
    gts = [_windows(d, "relevant_windows", 2) for d in ground_truth]
    return recall_at_iou(preds, gts, ks=ks, ious=ious, miou=miou)
