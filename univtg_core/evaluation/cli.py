"""The scoring command, `python -m univtg_core.evaluation`: a prediction jsonl against a GT jsonl.

    python -m univtg_core.evaluation --submission PREDS.jsonl --gt GT.jsonl [--out metrics.json]
        [--metrics qvhighlights|charades|tacos|mad|ego4d] [--no_match_number] [--nms_thresh 0.3]
    python -m univtg_core.evaluation --metrics ego4d --submission PREDS.jsonl [--gt GT.jsonl]
        --ego4d_submission CHALLENGE.json [--nlq_json nlq_test.json]

QVHighlights prints the `brief` block and writes the full report to --out; the recall benchmarks print
and write their whole (flat) report. With --ego4d_submission the predictions are also written as the Ego4D
NLQ challenge's JSON (no GT needed for that alone). Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from univtg_core.evaluation import (
    PROTOCOL_BENCHMARKS,
    RECALL_BENCHMARKS,
    ego4d_clip_offsets,
    ego4d_submission,
    evaluate_ego4d,
    evaluate_mad,
    evaluate_qvhighlights,
    evaluate_recall_benchmark,
    load_jsonl,
)
from univtg_core.evaluation.mad import MAD_NMS_THRESHOLD

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m univtg_core.evaluation",
        description="Score moment-retrieval / highlight predictions (QVHighlights jsonl format).",
    )
    parser.add_argument(
        "--submission", required=True, type=Path, help="predictions jsonl (pred_relevant_windows ...)"
    )
    parser.add_argument("--gt", type=Path, help="ground-truth jsonl (relevant_windows ...)")
    parser.add_argument("--out", type=Path, help="write the full report here as JSON")
    parser.add_argument(
        "--metrics",
        default="qvhighlights",
        choices=["qvhighlights", *RECALL_BENCHMARKS, *PROTOCOL_BENCHMARKS],
        help="metric set (default: qvhighlights)",
    )
    parser.add_argument(
        "--no_match_number",
        action="store_true",
        help="score only the qids present in both files instead of requiring equal qid sets",
    )
    parser.add_argument(
        "--nms_thresh",
        type=float,
        default=MAD_NMS_THRESHOLD,
        help=f"mad: NMS IoU threshold applied before counting (default {MAD_NMS_THRESHOLD}, as MAD's "
        "evaluation; 1 turns it off)",
    )
    parser.add_argument(
        "--ego4d_submission", type=Path, help="ego4d: also write the NLQ challenge submission JSON here"
    )
    parser.add_argument(
        "--nlq_json",
        type=Path,
        help="ego4d: the official NLQ annotation file the GT came from, to put the submitted times back in "
        "its clips' frame",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.ego4d_submission or args.nlq_json) and args.metrics != "ego4d":
        parser.error("--ego4d_submission and --nlq_json go with --metrics ego4d")
    if args.gt is None and args.ego4d_submission is None:
        parser.error("--gt is required (only --metrics ego4d --ego4d_submission OUT.json goes without it)")
    if not 0.0 <= args.nms_thresh <= 1.0:
        parser.error(f"--nms_thresh must lie in [0, 1], got {args.nms_thresh}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    match_number = not args.no_match_number
    try:
        submission = load_jsonl(args.submission)
        ground_truth = load_jsonl(args.gt) if args.gt is not None else None
        report, shown = None, None
        if ground_truth is not None:
            report, shown = _evaluate(args, submission, ground_truth, match_number)
        if args.ego4d_submission is not None:
            offsets = ego4d_clip_offsets(args.nlq_json) if args.nlq_json is not None else None
            challenge = ego4d_submission(submission, ground_truth, offsets)
            args.ego4d_submission.write_text(json.dumps(challenge) + "\n", encoding="utf-8")
        if args.out is not None and report is not None:
            args.out.write_text(json.dumps(report, indent=4) + "\n", encoding="utf-8")
    except (OSError, ValueError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception text holds
        if isinstance(exc, OSError) and exc.filename is not None:
            message = f"cannot open {exc.filename}: {exc.strerror}"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if shown is not None:
        print(json.dumps(shown, indent=4))
    if args.ego4d_submission is not None:
        print(f"wrote {len(challenge['results'])} queries to {args.ego4d_submission}", file=sys.stderr)
    return 0


def _evaluate(args: argparse.Namespace, submission: list[dict], ground_truth: list[dict],
              match_number: bool) -> tuple[dict, dict]:
    """(full report, the part printed) for the chosen metric set."""
    if args.metrics == "qvhighlights":
        report = evaluate_qvhighlights(submission, ground_truth, match_number=match_number)
        return report, report["brief"]
    if args.metrics == "mad":
        nms = args.nms_thresh if args.nms_thresh < 1.0 else None
        report = evaluate_mad(submission, ground_truth, match_number=match_number, nms_threshold=nms)
    elif args.metrics == "ego4d":
        report = evaluate_ego4d(submission, ground_truth, match_number=match_number)
    else:
        report = evaluate_recall_benchmark(submission, ground_truth, args.metrics, match_number=match_number)
    return report, report

