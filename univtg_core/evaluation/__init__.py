"""Evaluation: the QVHighlights MR/HL report (equal to UniVTG's official numbers) and other benchmarks."""

from univtg_core.evaluation.ego4d import ego4d_clip_offsets, ego4d_submission, evaluate_ego4d
from univtg_core.evaluation.mad import evaluate_mad, mad_nms, mad_recall
from univtg_core.evaluation.metrics import highlight_map, recall_at_iou, summary_f1
from univtg_core.evaluation.qvhighlights import (
    PROTOCOL_BENCHMARKS,
    RECALL_BENCHMARKS,
    evaluate_qvhighlights,
    evaluate_recall_benchmark,
    load_jsonl,
    match_by_qid,
)

__all__ = [
    "PROTOCOL_BENCHMARKS",
    "RECALL_BENCHMARKS",
    "ego4d_clip_offsets",
    "ego4d_submission",
    "evaluate_ego4d",
    "evaluate_mad",
    "evaluate_qvhighlights",
    "evaluate_recall_benchmark",
    "highlight_map",
    "load_jsonl",
    "mad_nms",
    "mad_recall",
    "match_by_qid",
    "recall_at_iou",
    "summary_f1",
]
