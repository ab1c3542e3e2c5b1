"""`python -m univtg_core.training`: train a registered architecture (the command lives in `cli`)."""

import sys

from .cli import main

sys.exit(main())
