"""The import layering ARCHITECTURE.md draws, read from the source (no import runs): no cycle at import time,
the core never imports a front end, the lower layers never import the upper ones.

A rule that breaks here is a design question: move the code to the layer it belongs to rather than
widening the rule. (`tests/test_app_layout.py` checks that `app/` uses only the names `univtg_core` exports.)
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# What each lower layer may import from univtg_core (any import, lazy ones inside functions included).
FOUNDATION = {"errors", "device", "hashing", "formatting", "spans", "safe_pickle", "weights", "query", "results"}
MAY_IMPORT = {
    "errors": set(),
    "spans": set(),
    "hashing": set(),
    "formatting": set(),
    "weights": {"errors"},
    "safe_pickle": {"errors"},
    "video": {"errors", "prefetch", "avfilter", "video"},
    "evaluation": {"errors", "spans", "evaluation"},
    "models": FOUNDATION | {"postprocess", "models"},
}
# The training package is the top of the library: only the command lines and itself reach it.
MAY_IMPORT_TRAINING = {"training", "cli", "split_predict"}
FRONT_ENDS = ("app", "bench", "scripts", "tests", "gradio", "main_gradio")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imports_of(path: Path, root: Path, *, module_level_only: bool) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved); `from m import x` also
    gives `m.x`, which is a module when x is one."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = _parsed(path)
    found: set[str] = set()
    for node in (tree.body if module_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def import_graph(root: Path, *, module_level_only: bool) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    return {m: {d for d in imports_of(p, root, module_level_only=module_level_only) if d in files and d != m}
            for m, p in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            step = next(edges, None)
            if step is not None:
                if step not in index:
                    index[step] = low[step] = len(index)
                    stack.append(step)
                    on_stack.add(step)
                    work.append((step, iter(sorted(graph[step]))))
                elif step in on_stack:
                    low[node] = min(low[node], index[step])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _layer(module: str) -> str:
    """`univtg_core.video.reader` -> `video`; `univtg_core` -> `` (the package's public face)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


CORE = REPO / "univtg_core"


@pytest.fixture(scope="module")
def core_graph() -> dict[str, set[str]]:
    """The core's import graph with lazy imports (inside functions) included."""
    return import_graph(CORE, module_level_only=False)


def test_no_import_cycle_at_import_time():
    assert cycles(import_graph(CORE, module_level_only=True)) == []


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\n")
    (package / "b.py").write_text("from .c import thing\n")
    (package / "c.py").write_text("def thing():\n    from .a import x\n")
    assert cycles(import_graph(package, module_level_only=False)) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert cycles(import_graph(package, module_level_only=True)) == []  # the lazy import closes it


def test_the_core_never_imports_a_front_end():
    for path in CORE.rglob("*.py"):
        for name in imports_of(path, CORE, module_level_only=False):
            assert name.split(".")[0] not in FRONT_ENDS, f"{path.relative_to(REPO)} imports {name}"



def test_lower_layers_import_only_what_is_below_them(core_graph):
    for module, deps in core_graph.items():
        rule = MAY_IMPORT.get(_layer(module))
        if rule is None:
            continue
        above = sorted(d for d in deps if _layer(d) and _layer(d) not in rule)
        assert not above, f"{module} imports {above}; its layer may import only {sorted(rule)}"


def test_only_the_command_lines_reach_training(core_graph):
    for module, deps in core_graph.items():
        if _layer(module) in MAY_IMPORT_TRAINING:
            continue
        assert not [d for d in deps if _layer(d) == "training"], f"{module} imports the training package"


def test_the_commands_live_in_their_packages(monkeypatch, capsys):
    import runpy
    import sys

    for package in ("evaluation", "training"):  # what `python -m univtg_core.<package> --help` runs
        monkeypatch.setattr(sys, "argv", [f"univtg_core.{package}", "--help"])
        with pytest.raises(SystemExit) as done:
            runpy.run_module(f"univtg_core.{package}", run_name="__main__")
        assert done.value.code == 0
        usage = capsys.readouterr().out
        assert usage.startswith(f"usage: python -m univtg_core.{package} "), usage[:200]
    # the deprecated aliases are gone: one name per command
    for old in ("eval", "train"):
        assert importlib.util.find_spec(f"univtg_core.{old}") is None, old
