"""The app's structure: it calls only `univtg_core`'s public API, and its static files are read at start-up."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import univtg_core

REPO = Path(__file__).resolve().parents[1]
APP_MODULES = sorted((REPO / "app").glob("*.py"))


def _core_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every import of univtg_core in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "univtg_core":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "univtg_core"]
    return found


def test_the_app_imports_only_the_public_core_api():
    assert len(APP_MODULES) >= 5
    seen = set()
    for path in APP_MODULES:
        for module, name in _core_imports(path):
            assert module == "univtg_core", f"{path.name} imports the core's internals: {module}"
            assert name in univtg_core.__all__, f"{path.name} imports {name!r}, which univtg_core does not export"
            seen.add(name)
    assert {"read_frames_at", "cut_clip", "write_summary_video", "results_are_meaningful"} <= seen


def test_the_app_does_not_reach_into_the_grounder():
    for path in APP_MODULES:
        text = path.read_text()
        assert not re.search(r"\.encoder\b|\.is_random\b", text), f"{path.name} looks inside the encoder"


def test_public_core_functions_resolve_lazily():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, univtg_core as u; before = 'torch' in sys.modules; "
         "fns = [u.read_frames_at, u.cut_clip, u.write_summary_video]; print(before, 'torch' in sys.modules)"],
        capture_output=True, text=True, cwd=REPO, check=True,
    ).stdout.split()
    assert out == ["False", "False"]  # frames and clips need neither torch nor the model


def test_static_files_are_read_by_load_assets():
    from app.assets import STATIC_DIR, load_assets

    assets = load_assets()
    assert assets.css == (STATIC_DIR / "app.css").read_text(encoding="utf-8")
    assert "#banner-random" in assets.css and "#points" in assets.css
    code = [line for line in assets.play_segment_js.splitlines() if not line.startswith("//")]
    assert code[0].startswith("(segment) =>") and "#player video" in assets.play_segment_js
