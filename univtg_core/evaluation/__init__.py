"""Evaluation: the QVHighlights MR/HL report (equal to UniVTG's official numbers) and other benchmarks."""

from univtg_core.evaluation.metrics import highlight_map, recall_at_iou, summary_f1
from univtg_core.evaluation.qvhighlights import (
    RECALL_BENCHMARKS,
    evaluate_qvhighlights,
    evaluate_recall_benchmark,
    load_jsonl,
    match_by_qid,
)

__all__ = [
    "RECALL_BENCHMARKS",
    "evaluate_qvhighlights",
    "evaluate_recall_benchmark",
    "highlight_map",
    "load_jsonl",
    "match_by_qid",
    "recall_at_iou",
    "summary_f1",
]
