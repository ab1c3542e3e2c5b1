"""Render the hardening suite's summary as README's "What we tested" table.

    python -m pytest tests/hardening                       # writes hardening-summary.json (path printed at the end)
    python -m scripts.hardening_table [SUMMARY.json]       # prints the table
    python -m scripts.hardening_table SUMMARY.json --readme README.md   # replaces the table in README

Without a path it reads ``$UNIVTG_HARDENING_REPORT/hardening-summary.json``, else the one in pytest's latest
temporary base (``pytest-current``). In README the table sits between the two ``what-we-tested`` markers.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

START, END = "<!-- what-we-tested:start -->", "<!-- what-we-tested:end -->"

GROUP_LABELS = {
    "codec": "codec × container pairs",
    "depth": "10-bit and 4:4:4",
    "broken": "broken files",
    "unusual": "unusual files",
    "rotation": "rotation tags",
    "process": "the command in a fresh process",
    "video reading": "mutated mp4 (hypothesis)",
}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


AREA_ORDER = ("media: Python API", "media: CLI", "media: CLI stderr", "fuzz", "crafted files", "queries",
              "code scan", "faults", "app")


def _short_reason(verdict: str) -> str:
    """'known bug: issue 9 item 6: HEVC in AVI ...' -> 'item 6'; without an item number, the part before ':'."""
    match = re.search(r"item (\d+)", verdict)
    if match:
        return f"item {match.group(1)}"
    return verdict.removeprefix("known bug:").strip().removeprefix("issue 9").split(":", 1)[0].strip()


def _case_names(rows: list[dict]) -> str:
    """Case names in order; the parametrized cases of one test ('name [param]') as 'name (N cases)'."""
    counts: OrderedDict[str, int] = OrderedDict()
    for row in rows:
        name = re.sub(r" \[.*\]$", "", row["case"])
        counts[name] = counts.get(name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} ({n} cases)" for name, n in counts.items())


def _skips(rows: list[dict]) -> str:
    """Skipped cases grouped by their reason: 'a, b: reason; c: other reason'."""
    by_reason: OrderedDict[str, list[str]] = OrderedDict()
    for row in rows:
        reason = row["verdict"].split(":", 2)[-1].strip()
        by_reason.setdefault(reason if len(reason) <= 70 else reason[:67] + "...", []).append(row["case"])
    return "; ".join(f"{', '.join(cases)}: {reason}" for reason, cases in by_reason.items())


def render(summary: dict) -> str:
    """Markdown: one line per (area, group) with counts, then every row in a collapsed table."""
    groups: OrderedDict[tuple[str, str], list[dict]] = OrderedDict()
    rows_in_order = sorted(summary["rows"], key=lambda r: AREA_ORDER.index(r["area"]) if r["area"] in AREA_ORDER
                           else len(AREA_ORDER))
    for row in rows_in_order:
        groups.setdefault((row["area"], row["group"]), []).append(row)
    lines = ["| Area | Inputs tried / faults injected | Expected | Held | Known bugs (fix pending) | Not tried |",
             "|---|---|---|---|---|---|"]
    for (area, group), rows in groups.items():
        held = [r for r in rows if r["verdict"] == "held"]
        known = [r for r in rows if r["verdict"].startswith("known bug")]
        skipped = [r for r in rows if r["verdict"].startswith("skipped")]
        other = [r for r in rows if r not in held and r not in known and r not in skipped]
        tried = [r for r in rows if r not in skipped]
        if len(rows) == 1:
            what = rows[0]["input"]
        else:
            what = f"{len(tried)} {GROUP_LABELS.get(group, group)}: " + _case_names(tried)
        expected = "; ".join(OrderedDict.fromkeys(r["expected"] for r in rows))
        held_text = f"{len(held)}/{len(tried)}" + (f" ({len(other)} FAILED: {', '.join(r['case'] for r in other)})"
                                                   if other else "")
        known_text = ", ".join(f"{r['case']} ({_short_reason(r['verdict'])})" for r in known) or "none"
        skip_text = _skips(skipped)
        lines.append(f"| {_cell(area)} | {_cell(what)} | {_cell(expected)} | {held_text} | {_cell(known_text)} | "
                     f"{_cell(skip_text)} |")
    lines += ["", "<details><summary>Every input, what happened and the verdict</summary>", "",
              "| Area | Case | Input | Expected | Outcome | Verdict |", "|---|---|---|---|---|---|"]
    for row in rows_in_order:
        lines.append(f"| {_cell(row['area'])} | {_cell(row['case'])} | {_cell(row['input'])} | "
                     f"{_cell(row['expected'])} | {_cell(row['outcome'])} | {_cell(row['verdict'])} |")
    lines += ["", "</details>", "",
              f"Produced by the suite on {summary['generated']} (Python {summary['python']}, torch {summary['torch']}, "
              f"{summary['ffmpeg']}); the suite ran {summary['seconds']:.0f} s{_load(summary)}."]
    return "\n".join(lines) + "\n"


def _load(summary: dict) -> str:
    """' (N s of CPU, load average L at the start)' where the summary has them (older ones do not)."""
    parts = []
    if summary.get("cpu_seconds") is not None:
        parts.append(f"{summary['cpu_seconds']:.0f} s of CPU")
    if summary.get("load_average") is not None:
        parts.append(f"load average {summary['load_average']:.1f} at the start")
    return f" ({', '.join(parts)})" if parts else ""


def default_summary() -> Path:
    folder = os.environ.get("UNIVTG_HARDENING_REPORT")
    if folder:
        return Path(folder) / "hardening-summary.json"
    base = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}" / "pytest-current"
    return base / "hardening-report" / "hardening-summary.json"


def replace_in_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"error: {readme} has no {START} ... {END} markers to put the table between")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.hardening_table", description=__doc__.splitlines()[0])
    parser.add_argument("summary", nargs="?", type=Path, help="hardening-summary.json (default: the latest run's)")
    parser.add_argument("--readme", type=Path, help="replace the table between the markers in this file")
    args = parser.parse_args(argv)
    path = args.summary or default_summary()
    if not path.is_file():
        print(f"error: no summary at {path}; run `python -m pytest tests/hardening` first", file=sys.stderr)
        return 2
    table = render(json.loads(path.read_text()))
    if args.readme:
        replace_in_readme(args.readme, table)
        print(f"updated the table in {args.readme}")
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
