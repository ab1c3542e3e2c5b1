"""The Gradio app around `univtg_core`: `app.ui.build_demo` builds the page, `app.cli.main` launches it.

Importing this package does nothing heavy: gradio, torch and the model load only when asked for.
"""

__all__ = ["build_demo", "main"]


def __getattr__(name: str):
    if name == "build_demo":
        from .ui import build_demo

        return build_demo
    if name == "main":
        from .cli import main

        return main
    raise AttributeError(f"module 'app' has no attribute {name!r}")
