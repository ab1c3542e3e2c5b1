"""Deprecated: the command is `python -m univtg_core.evaluation` (`univtg_core.evaluation.cli`).

This thin alias keeps `python -m univtg_core.eval` working while scripts move; it holds no code of its own.
"""

import sys

from .evaluation.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
