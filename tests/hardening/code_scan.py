"""A scan of the source tree for calls that would run code from a file, reach a shell, or expose a server.

Each rule reads the syntax tree (``ast``), never text patterns, so comments and strings cannot hide a call
or raise a false alarm:

- ``torch.load`` without ``weights_only=True`` (a pickle that can call anything);
- ``torch.jit.load`` (compiles the archive's code and runs its ``__setstate__``);
- ``pickle.load`` / ``pickle.loads`` / ``pickle.Unpickler(...)``, and ``dill``, ``joblib``, ``marshal``,
  ``shelve`` loaders (use ``univtg_core.safe_pickle.load``);
- ``numpy.load`` with ``allow_pickle`` other than a literal ``False`` in library code (tests may rely on
  numpy's safe default), and ``allow_pickle=True`` anywhere;
- ``yaml.load`` without ``SafeLoader``, builtins ``eval`` / ``exec``;
- ``shell=True`` in any call, ``os.system`` / ``os.popen``;
- ``share=True`` in any call, an ``--share`` flag whose default is ``True``;
- the address ``"0.0.0.0"`` used as a value, except under a test of ``SPACE_ID`` (a Hugging Face Space, whose
  proxy must reach the app).

Tests may show the unsafe way on a file they made themselves (the crafted-file tests run the payload first,
so that they could fail): such a line says ``the unsafe way`` in a comment. Library code has no such pass.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize
from dataclasses import dataclass
from pathlib import Path

PASS_PHRASE = "the unsafe way"
ANY_ADDRESS = ".".join("0" * 4)  # spelled so that this file does not bind it
SKIPPED_DIRS = {".git", "__pycache__", "node_modules", "build", "dist", ".venv", "venv", "shared", "fixtures"}
_PICKLE_LIKE = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
                ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"), ("joblib", "load"),
                ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"), ("pandas", "read_pickle"),
                ("pd", "read_pickle")}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}"


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name/Attribute chain, else ''."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.expr | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _passed_lines(source: str) -> set[int]:
    """Lines whose comment says the unsafe call is on purpose."""
    lines = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and PASS_PHRASE in tok.string:
                lines.add(tok.start[0])
    except (tokenize.TokenError, IndentationError):
        pass
    return lines


def _is_docstring(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    expr = parents.get(id(node))
    owner = parents.get(id(expr)) if isinstance(expr, ast.Expr) else None
    return isinstance(owner, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) \
        and bool(owner.body) and owner.body[0] is expr


def scan_source(source: str, path: str = "<source>", *, library: bool = True) -> list[Finding]:
    """Findings in one file's source. ``library``: code users run (no pass phrase, numpy must say so)."""
    tree = ast.parse(source, filename=path)
    passed = _passed_lines(source) if not library and PASS_PHRASE in source else set()
    parents: dict[int, ast.AST] = {}
    found: list[Finding] = []

    def add(node: ast.AST, rule: str) -> None:
        if node.lineno not in passed:
            found.append(Finding(path, node.lineno, rule))

    for node in ast.walk(tree):  # breadth first: a node's ancestors are in `parents` before it is checked
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            tail = tuple(name.split(".")[-2:]) if name else ()
            if name == "torch.load" and not _is_const(_keyword(node, "weights_only"), True):
                add(node, "torch.load without weights_only=True")
            elif name == "torch.jit.load":
                add(node, "torch.jit.load runs the archive's code")
            elif tail in _PICKLE_LIKE:
                add(node, f"{name} can run code (use univtg_core.safe_pickle.load)")
            elif name in ("np.load", "numpy.load"):
                allow = _keyword(node, "allow_pickle")
                if allow is not None and not _is_const(allow, False):
                    add(node, "numpy.load with allow_pickle other than False")
                elif allow is None and library:
                    add(node, "numpy.load without an explicit allow_pickle=False")
            elif name == "yaml.load" and "SafeLoader" not in ast.unparse(node):
                add(node, "yaml.load without SafeLoader")
            elif name in ("eval", "exec"):
                add(node, f"builtin {name}")
            elif name in ("os.system", "os.popen"):
                add(node, f"{name} runs a shell")
            if _is_const(_keyword(node, "shell"), True):
                add(node, "shell=True")
            if _is_const(_keyword(node, "share"), True):
                add(node, "share=True")
            if name.endswith("add_argument") and any(isinstance(a, ast.Constant) and a.value == "--share"
                                                     for a in node.args) \
                    and _is_const(_keyword(node, "default"), True):
                add(node, "--share defaults to True")
        elif isinstance(node, ast.Constant) and node.value == ANY_ADDRESS:
            if not (_is_docstring(node, parents) or _under_space_test(node, parents)
                    or _is_help_text(node, parents)):
                add(node, "binds 0.0.0.0 outside a Space")
    return sorted(found, key=lambda f: f.line)


def _under_space_test(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    current = parents.get(id(node))
    while current is not None:
        if isinstance(current, (ast.IfExp, ast.If)) and "SPACE_ID" in ast.unparse(current.test):
            return True
        current = parents.get(id(current))
    return False


def _is_help_text(node: ast.AST, parents: dict[int, ast.AST]) -> bool:
    """A string inside a ``help=`` argument, an f-string or a log/print call: words, not an address bound."""
    current = parents.get(id(node))
    while current is not None and not isinstance(current, ast.stmt):
        if isinstance(current, ast.keyword) and current.arg in ("help", "description", "epilog"):
            return True
        if isinstance(current, ast.JoinedStr):
            return True
        current = parents.get(id(current))
    return False


def python_files(root: Path) -> list[Path]:
    """Every .py file of the checkout (what CI clones), without caches, environments and shared fixtures."""
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.startswith("."))  # never into .git
        out += [Path(folder) / name for name in sorted(files) if name.endswith(".py")]
    return out


def scan_tree(root: Path) -> tuple[int, list[Finding]]:
    """(files scanned, findings) for the checkout at ``root``; tests get the pass phrase, nothing else does."""
    files = python_files(root)
    found: list[Finding] = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        library = not rel.startswith("tests/")
        found += scan_source(path.read_text(encoding="utf-8"), rel, library=library)
    return len(files), found
