"""Training any registered architecture (UniVTG today): data, unified labels, losses, the loop and its
pieces, one recipe per architecture (`recipes/`), converters, CLIP teacher, language-free mode.

Nothing here is imported by `univtg_core` itself; heavy modules load on use. Entry points:
`python -m univtg_core.training`, `python -m univtg_core.training.convert`, `python -m univtg_core.training.teacher`,
`python -m univtg_core.training.extract`.
"""

from __future__ import annotations

__all__ = ["TrainResult", "parse_options", "train"]


def __getattr__(name: str):
    if name in ("train", "TrainResult"):
        from . import loop

        return getattr(loop, name)
    if name == "parse_options":
        from .options import parse_options

        return parse_options
    raise AttributeError(f"module 'univtg_core.training' has no attribute {name!r}")
