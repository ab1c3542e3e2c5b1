"""The Gradio app around `univtg_core`: `app.layout.build_demo` builds the page, `app.cli.main` launches it.

`layout` places the components and wires the events to `handlers` (what each event does); `builders` are
the pure functions that turn a prediction into what the page shows; `session` owns per-session output
folders; `assets` reads the static CSS/JS in `static/`; `examples` reads the bundled examples. Importing
this package does nothing heavy: gradio, torch and the model load only when asked for.
"""

__all__ = ["build_demo", "main"]


def __getattr__(name: str):
    if name == "build_demo":
        from .layout import build_demo

        return build_demo
    if name == "main":
        from .cli import main

        return main
    raise AttributeError(f"module 'app' has no attribute {name!r}")
