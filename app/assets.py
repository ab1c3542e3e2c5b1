"""The page's static files (`app/static/`): read once at start-up by `load_assets`, never at import."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class Assets:
    """The page's own CSS (given to `launch`) and the player script the row/point/range events run."""

    css: str
    play_segment_js: str


def load_assets(folder: str | Path = STATIC_DIR) -> Assets:
    folder = Path(folder)
    return Assets(
        css=(folder / "app.css").read_text(encoding="utf-8"),
        play_segment_js=(folder / "play_segment.js").read_text(encoding="utf-8"),
    )
