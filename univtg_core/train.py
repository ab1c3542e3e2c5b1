"""`python -m univtg_core.train ...`: train a registered architecture (`--model_id`, default univtg) with
UniVTG's option names (see --help).

Under torchrun every process runs this; only rank 0 logs at INFO, writes files and evaluates.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from .errors import UniVTGError
    from .training.loop import train
    from .training.options import parse_options

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if rank == 0 else logging.WARNING)
    opt = parse_options(argv)
    try:
        result = train(opt)
    except UniVTGError as exc:
        logging.getLogger("univtg_core.train").error("%s", exc)
        return 1
    if rank == 0 and result.best_checkpoint is not None:
        score = "" if result.best_score is None else f" ({result.best_metric} {result.best_score:.2f})"
        logging.getLogger("univtg_core.train").info("best checkpoint: %s%s", result.best_checkpoint, score)
    return 0


if __name__ == "__main__":
    sys.exit(main())
