"""Score a prediction jsonl against a GT jsonl.

    python -m univtg_core.eval --submission PREDS.jsonl --gt GT.jsonl [--out metrics.json]
        [--metrics qvhighlights|charades|tacos|mad|ego4d] [--no_match_number]

QVHighlights prints the `brief` block and writes the full report to --out; the recall benchmarks print
and write their whole (flat) report. Bad input ends with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from univtg_core.evaluation import (
    RECALL_BENCHMARKS,
    evaluate_qvhighlights,
    evaluate_recall_benchmark,
    load_jsonl,
)

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m univtg_core.eval",
        description="Score moment-retrieval / highlight predictions (QVHighlights jsonl format).",
    )
    parser.add_argument(
        "--submission", required=True, type=Path, help="predictions jsonl (pred_relevant_windows ...)"
    )
    parser.add_argument("--gt", required=True, type=Path, help="ground-truth jsonl (relevant_windows ...)")
    parser.add_argument("--out", type=Path, help="write the full report here as JSON")
    parser.add_argument(
        "--metrics",
        default="qvhighlights",
        choices=["qvhighlights", *RECALL_BENCHMARKS],
        help="metric set (default: qvhighlights)",
    )
    parser.add_argument(
        "--no_match_number",
        action="store_true",
        help="score only the qids present in both files instead of requiring equal qid sets",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    match_number = not args.no_match_number
    try:
        submission = load_jsonl(args.submission)
        ground_truth = load_jsonl(args.gt)
        if args.metrics == "qvhighlights":
            report = evaluate_qvhighlights(submission, ground_truth, match_number=match_number)
            shown = report["brief"]
        else:
            report = evaluate_recall_benchmark(
                submission, ground_truth, args.metrics, match_number=match_number
            )
            shown = report
        if args.out is not None:
            args.out.write_text(json.dumps(report, indent=4) + "\n", encoding="utf-8")
    except (OSError, ValueError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception text holds
        if isinstance(exc, OSError) and exc.filename is not None:
            message = f"cannot open {exc.filename}: {exc.strerror}"
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(shown, indent=4))
    return 0


if __name__ == "__main__":
    sys.exit(main())
