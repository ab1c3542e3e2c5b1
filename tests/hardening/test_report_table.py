"""The summary renders as README's table: counts per group, known bugs with their item, skips with the reason."""

from __future__ import annotations

from scripts.hardening_table import END, START, render, replace_in_readme


def _summary() -> dict:
    def row(case, verdict, group="codec"):
        return {"area": "media: Python API", "group": group, "case": case, "input": f"{case} file",
                "expected": "correct result", "outcome": "result", "nodeid": case, "verdict": verdict}

    return {"generated": "2026-01-01 00:00:00", "python": "3.11", "torch": "2.x", "ffmpeg": "ffmpeg", "seconds": 12,
            "rows": [row("h264-mp4", "held"), row("hevc-avi", "known bug: issue 9 item 6: hangs"),
                     row("h264-webm", "skipped: the bundled ffmpeg cannot write it: Only VP8"),
                     row("vp9-mkv", "FAILED"), row("empty", "held", group="broken")]}


def test_render_counts_each_group():
    table = render(_summary())
    codec = next(line for line in table.splitlines() if line.startswith("| media: Python API | 3 codec"))
    cells = [c.strip() for c in codec.strip("|").split("|")]
    assert cells[3] == "1/3 (1 FAILED: vp9-mkv)"
    assert cells[4] == "hevc-avi (item 6)" and cells[5] == "h264-webm: Only VP8"
    assert "| media: Python API | empty file |" in table  # a group of one row shows its input
    assert table.count("\n| media: Python API | ") == 2 + 5  # two summary lines, five detail rows


def test_the_table_replaces_only_what_is_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{START}\nold table\n{END}\nafter\n")
    replace_in_readme(readme, "new table\n")
    assert readme.read_text() == f"# Title\n\nbefore\n{START}\nnew table\n{END}\nafter\n"
