"""The training command, `python -m univtg_core.training ...`: train a registered architecture (`--model_id`,
default univtg) with UniVTG's option names (see --help).

Under torchrun every process runs this; only rank 0 logs at INFO, writes files and evaluates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    from ..errors import UniVTGError
    from .loop import train
    from .options import parse_options

    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.INFO if rank == 0 else logging.WARNING)
    opt = parse_options(argv)
    try:
        result = train(opt)
    except UniVTGError as exc:
        logger.error("%s", exc)
        return 1
    if rank == 0 and result.best_checkpoint is not None:
        score = "" if result.best_score is None else f" ({result.best_metric} {result.best_score:.2f})"
        logger.info("best checkpoint: %s%s", result.best_checkpoint, score)
    return 0

