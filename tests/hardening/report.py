"""What the hardening suite tried and what happened: rows collected by the tests, written once at the end.

Each row says which input was tried (or which fault injected), what must happen, and what did happen; its
verdict comes from the test's own outcome (held, known bug with the issue 9 item that fixes it, skipped with
the reason, or FAILED). ``write`` puts ``hardening-summary.json`` (and the rendered ``.md``) in a folder
outside the checkout; ``scripts/hardening_table.py`` renders the JSON as README's "What we tested" table.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    area: str  # e.g. "media: Python API", "crafted files"
    group: str  # rows of one group are summed up in one line of the table
    case: str
    input: str  # what was tried, or the fault injected
    expected: str
    outcome: str = ""
    nodeid: str = ""
    verdict: str = ""  # filled from the test outcome when the session ends


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (the worker, ffmpeg, fresh CLI runs)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Report:
    def __init__(self, folder: Path, scrub: Path | None = None):
        self.folder = folder
        self.scrub = str(scrub) if scrub else None  # a temporary base folder, shown as <tmp> in outcomes
        self.rows: list[Row] = []
        self.outcomes: dict[str, tuple[str, str]] = {}  # nodeid -> (verdict, detail)
        self.durations: dict[str, float] = {}
        self.notes: dict[str, object] = {}
        self.started = time.time()
        self.load_average = os.getloadavg()[0] if hasattr(os, "getloadavg") else None

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def settle(self) -> None:
        for row in self.rows:
            verdict, detail = self.outcomes.get(row.nodeid, ("not run", ""))
            row.verdict = verdict if not detail else f"{verdict}: {detail}"
            if self.scrub:
                row.outcome = row.outcome.replace(self.scrub, "<tmp>")

    def to_json(self) -> dict:
        import torch

        from univtg_core.media import ffmpeg_exe

        self.settle()
        return {
            "generated": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "seconds": round(time.time() - self.started, 1),
            "cpu_seconds": round(_cpu_seconds(), 1),
            "load_average": None if self.load_average is None else round(self.load_average, 2),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ffmpeg": Path(ffmpeg_exe()).name,
            "notes": self.notes,
            "test_seconds": {k: round(v, 2) for k, v in sorted(self.durations.items())},
            "rows": [asdict(r) for r in self.rows],
        }

    def write(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        data = self.to_json()
        path = self.folder / "hardening-summary.json"
        path.write_text(json.dumps(data, indent=1))
        try:
            from scripts.hardening_table import render
        except ImportError:  # run from elsewhere than the checkout root: the JSON is still there
            return path
        (self.folder / "hardening-summary.md").write_text(render(data))
        return path
