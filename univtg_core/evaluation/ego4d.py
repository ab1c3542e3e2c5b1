"""Ego4D Natural Language Queries: the official metrics and the challenge submission file.

From the official script (`NLQ/VSLNet/utils/evaluate_ego4d_nlq.py` in github.com/EGO4D/episodic-memory):

- Every query has one GT window (`clip_start_sec`, `clip_end_sec`, relative to its clip). R@k at IoU t is
  the share of queries for which any of the first k predicted windows has IoU *strictly greater* than t;
  the challenge reports k in {1, 5} and t in {0.3, 0.5}. Predictions are taken in the order submitted.
- mIoU is the mean over queries of the IoU of the first predicted window.
- IoU divides by the hull (max end - min start), which is the union whenever the windows intersect (the
  intersection is 0 otherwise). A zero hull (two identical points) counts as IoU 0, where the script
  would divide by zero.

The submission is {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": [{"clip_uid",
"annotation_uid", "query_idx", "predicted_times": [[start, end], ...]}]}, best first, in seconds relative
to the clip, as the official VSLNet baseline writes it (its top 5).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from univtg_core.evaluation.metrics import recall_at_iou
from univtg_core.evaluation.qvhighlights import _by_qid, _windows, match_by_qid

EGO4D_KS = (1, 5)
EGO4D_IOUS = (0.3, 0.5)
EGO4D_SUBMISSION_TOP_K = 5
SUBMISSION_VERSION = "1.0"
SUBMISSION_CHALLENGE = "ego4d_nlq_challenge"

__all__ = ["EGO4D_IOUS", "EGO4D_KS", "ego4d_clip_offsets", "ego4d_submission", "evaluate_ego4d", "split_qid"]


def evaluate_ego4d(
    submission: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]],
    match_number: bool = True,
) -> dict[str, float]:
    """R{1,5}@{0.3,0.5} (strictly above) and mIoU on QVHighlights-format records (GT from `convert ego4d`).

    Returns {"R1@0.3", "R1@0.5", "R5@0.3", "R5@0.5", "mIoU"}, percentages rounded to 2 decimals.
    """
    submission, ground_truth = match_by_qid(submission, ground_truth, match_number)
    preds = [_windows(d, "pred_relevant_windows", 2) for d in submission]
    gts = [_windows(d, "relevant_windows", 2) for d in ground_truth]
    return recall_at_iou(preds, gts, ks=EGO4D_KS, ious=EGO4D_IOUS, miou=True, strict=True)


def split_qid(qid: Any) -> tuple[str, int]:
    """Our Ego4D qid `<annotation_uid>_<query index>` (what `convert ego4d` writes) -> (annotation_uid, index)."""
    annotation_uid, sep, index = str(qid).rpartition("_")
    if not sep or not annotation_uid or not index.isdigit():
        raise ValueError(f"qid {qid!r} is not an Ego4D query id '<annotation_uid>_<query index>' (as "
                         "`python -m univtg_core.training.convert ego4d` writes them)")
    return annotation_uid, int(index)


def ego4d_submission(
    submission: list[dict[str, Any]],
    ground_truth: list[dict[str, Any]] | None = None,
    clip_offsets: Mapping[str, float] | None = None,
    top_k: int = EGO4D_SUBMISSION_TOP_K,
) -> dict[str, Any]:
    """The challenge's submission JSON (as a dict) from our prediction records, best `top_k` windows each.

    Each record needs `qid` (`<annotation_uid>_<index>`) and `pred_relevant_windows`; the clip is its `vid`,
    or the GT record's when `ground_truth` is given. `clip_offsets` ({clip_uid: seconds}, see
    `ego4d_clip_offsets`) is added back to every time, so the times are in the NLQ file's own frame.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    gt_by_qid = _by_qid(ground_truth, "ground truth") if ground_truth is not None else {}
    offsets = clip_offsets or {}
    results = []
    for record in submission:
        if "qid" not in record:
            raise ValueError("a prediction record has no 'qid'")
        qid = record["qid"]
        annotation_uid, query_idx = split_qid(qid)
        clip_uid = record.get("vid", gt_by_qid.get(qid, {}).get("vid"))
        if clip_uid is None:
            raise ValueError(f"qid {qid!r} has no 'vid' (the clip_uid); give it, or the GT with --gt")
        offset = float(offsets.get(str(clip_uid), 0.0))
        windows = _windows(record, "pred_relevant_windows", 2)[:top_k]
        results.append({
            "clip_uid": str(clip_uid),
            "annotation_uid": annotation_uid,
            "query_idx": query_idx,
            "predicted_times": [[float(s) + offset, float(e) + offset] for s, e in windows],
        })
    return {"version": SUBMISSION_VERSION, "challenge": SUBMISSION_CHALLENGE, "results": results}


def ego4d_clip_offsets(nlq_json: str | Path) -> dict[str, float]:
    """{clip_uid: clip_start_sec} from an official NLQ annotation file: what `convert ego4d` subtracted from
    every time, and so what a submission adds back."""
    path = Path(nlq_json)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise ValueError(f"{path}: expected the Ego4D NLQ layout with a top-level 'videos' list")
    offsets = {}
    for video in data["videos"]:
        for clip in video.get("clips", []):
            if "clip_uid" not in clip:
                raise ValueError(f"{path}: a clip of video {video.get('video_uid')!r} has no 'clip_uid'")
            offsets[str(clip["clip_uid"])] = float(clip.get("clip_start_sec", 0.0))
    return offsets
