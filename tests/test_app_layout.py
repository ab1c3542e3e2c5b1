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


def _readme_example_outputs() -> tuple[list[str], str]:
    """The names README's gradio_client example unpacks /predict's outputs into, and its view_api() comment."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "client.predict(" in b)
    unpacked = re.search(r"\(([^()]*?)\)\s*=\s*client\.predict\(", block, flags=re.S).group(1)
    comment = re.search(r"client\.view_api\(\)\s*#\s*(.*)", block).group(1)
    return [name.strip() for name in unpacked.split(",")], comment


def test_the_api_names_every_input_and_output_as_readme_does():
    """The page built around a stand-in grounder (no model, no server): /predict's inputs, whether each is
    optional, and its outputs as `view_api()` names them, which README's gradio_client example uses."""
    from types import SimpleNamespace

    from app_server import PREDICT_INPUTS, PREDICT_OUTPUTS, output_names

    from app.layout import build_demo

    grounder = SimpleNamespace(encoder=SimpleNamespace(is_random=True), mode="zero-shot", clip_len=2.0)
    info = build_demo(grounder).get_api_info()
    assert list(info["named_endpoints"]) == ["/predict"]  # UI events (player, picks, uploads) stay private
    params = info["named_endpoints"]["/predict"]["parameters"]
    assert [(p["parameter_name"], p["label"], p["parameter_has_default"]) for p in params] == PREDICT_INPUTS
    assert [p.get("parameter_default") for p in params[1:]] == ["", None, "auto"]
    assert output_names(info) == PREDICT_OUTPUTS
    unpacked, comment = _readme_example_outputs()
    assert unpacked == PREDICT_OUTPUTS
    assert comment.startswith('predict(video, text, image, coarse_top_k, api_name="/predict")')
