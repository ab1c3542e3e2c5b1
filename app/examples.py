"""The bundled examples: rows of `examples.json` turned into what `gr.Examples` shows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def load_examples(examples_dir: str | Path) -> list[dict]:
    """Rows of `examples.json`: {video, text, image, label} with paths resolved; missing files are skipped."""
    folder = Path(examples_dir)
    listing = folder / "examples.json"
    if not listing.is_file():
        logger.info("no examples at %s", listing)
        return []
    rows = []
    for entry in json.loads(listing.read_text()).get("videos", []):
        video = folder / entry["video"]
        if not video.is_file():
            logger.warning("example video missing: %s", video)
            continue
        for query in entry.get("queries", []):
            image = folder / query["image"] if query.get("image") else None
            if image is not None and not image.is_file():
                logger.warning("example image missing: %s", image)
                continue
            text = query.get("text", "")
            asked = " + ".join(([f"“{text}”"] if text else []) + ([f"{image.stem} image"] if image else []))
            label = query.get("label") or f"{entry.get('title', video.stem)} · {asked}"
            rows.append({"video": str(video), "text": text, "image": str(image) if image else None,
                         "label": label})
    return rows
