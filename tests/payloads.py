"""Hostile pickle payloads for the tests that check nothing we load executes code."""

from __future__ import annotations

import os


class TouchesMarker:
    """Unpickling this runs `touch MARKER` (os.system): what a hostile checkpoint or pickle does. A test
    refuses the file, then checks that MARKER does not exist (the payload did not run)."""

    def __init__(self, marker: str | os.PathLike):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
