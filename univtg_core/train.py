"""Deprecated: the command is `python -m univtg_core.training` (`univtg_core.training.cli`).

This thin alias keeps `python -m univtg_core.train` working while scripts move; it holds no code of its own.
"""

import sys

from .training.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
