"""Components with the page's own input checks: what arrives that is not what it claims to be is one sentence
about the user's input, never Gradio's "Could not preprocess input component ..." with a server path.

The checks wrap one component's `preprocess` (a subclass would do, but Gradio's component metaclass writes
a `.pyi` stub next to the module of every subclass, i.e. into the checkout).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr


def query_image(**kwargs: Any) -> gr.Image:
    """`gr.Image(**kwargs)` whose input is checked: a file that is not an image is refused by its name."""
    image = gr.Image(**kwargs)
    preprocess = image.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error:
            raise
        except Exception as exc:  # PIL.UnidentifiedImageError, OSError, ValueError
            name = Path(getattr(payload, "orig_name", None) or getattr(payload, "path", None) or "file").name
            raise gr.Error(f"The image query {html.escape(repr(name))} is not an image this app can read; give "
                           "a PNG, JPEG or WebP picture.", title="Not an image", print_exception=False) from exc

    image.preprocess = checked
    return image
