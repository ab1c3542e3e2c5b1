"""`python -m univtg_core.evaluation`: score predictions (the command lives in `cli`)."""

import sys

from .cli import main

sys.exit(main())
