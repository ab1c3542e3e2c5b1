"""Dependencies have one source: requirements.txt and requirements-dev.txt (see their first lines).

pyproject.toml declares them dynamic; this reads the "# [section]" blocks of those files into the package
metadata: `core` -> `pip install .`, `app` -> `pip install .[app]`, `dev` (+ `app`) -> `pip install .[dev]`.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def sections(name: str) -> dict[str, list[str]]:
    """Requirement lines of a requirements file, grouped by the "# [section]" line above them."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in (HERE / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("# [") and line.endswith("]"):
            current = found.setdefault(line[3:-1], [])
            continue
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):  # comments, and -r/-e lines pip follows itself
            continue
        if current is None:
            raise SystemExit(f"{name}: requirement {line!r} comes before any '# [section]' line")
        current.append(line)
    return found


runtime = sections("requirements.txt")
tools = sections("requirements-dev.txt")
setup(
    install_requires=runtime["core"],
    extras_require={"app": runtime["app"], "dev": runtime["app"] + tools["dev"]},
)
