"""`python -m univtg_core.training.convert {charades,tacos,anet,ego4d,mad} IN OUT.jsonl`: annotations -> jsonl."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from ..errors import UniVTGError
from .converters import FORMATS, convert
from .data import save_jsonl

logger = logging.getLogger("univtg_core.training.convert")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m univtg_core.training.convert",
                                     description="Convert benchmark annotations into QVHighlights-style jsonl.")
    parser.add_argument("format", choices=FORMATS)
    parser.add_argument("input", help="Charades-STA txt, TACoS / ActivityNet / MAD json, or Ego4D NLQ json")
    parser.add_argument("output", help="jsonl to write")
    parser.add_argument("--durations", help="charades: Charades_v1_<split>.csv, or JSON {vid: seconds}")
    parser.add_argument("--qid-start", type=int, default=0, help="first qid (keep splits apart)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", level=logging.INFO)
    try:
        records = convert(args.format, args.input, args.durations, args.qid_start)
        save_jsonl(records, args.output)
    except UniVTGError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("wrote %d queries over %d videos to %s", len(records), len({r["vid"] for r in records}),
                args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
