"""Write the app's bundled examples: small colour-segment videos, query images and `examples.json`.

    python -m scripts.make_examples [--out examples]      (from the repository root)

The files are ours (generated, no licence questions) and small enough to commit; run again to rebuild them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from univtg_core.media import make_colour_video

logger = logging.getLogger("make_examples")

RED, CYAN, PURPLE = (220, 30, 30), (0, 200, 220), (130, 40, 170)
GREEN, YELLOW, GREY = (30, 170, 60), (240, 200, 20), (70, 70, 70)
NAVY, ORANGE, PINK = (20, 30, 90), (245, 130, 30), (235, 120, 170)

# name -> (title, [(colour, seconds), ...], [queries]); a query is {"text": ..., "image": colour name or None}
VIDEOS = {
    "colour-blocks.mp4": (
        "Colour blocks (30 s)",
        [(RED, 10), (CYAN, 10), (PURPLE, 10)],
        [
            {"text": "", "image": "cyan"},
            {"text": "a red screen", "image": None},
            {"text": "something purple", "image": "purple"},
        ],
    ),
    "traffic-light.mp4": (
        "Traffic light (40 s)",
        [(GREY, 6), (GREEN, 10), (YELLOW, 6), (RED, 12), (GREY, 6)],
        [
            {"text": "the light turns yellow", "image": None},
            {"text": "", "image": "red"},
        ],
    ),
    "sunset.mp4": (
        "Sunset (24 s)",
        [(NAVY, 6), (PINK, 6), (ORANGE, 8), (NAVY, 4)],
        [
            {"text": "an orange sunset sky", "image": None},
            {"text": "", "image": "orange"},
        ],
    ),
}
IMAGES = {"cyan": CYAN, "purple": PURPLE, "red": RED, "orange": ORANGE}


def write_image(path: Path, colour: tuple[int, int, int], size: int = 64) -> None:
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "examples"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    for name, colour in IMAGES.items():
        write_image(out / f"{name}.png", colour)
    listing = []
    for video, (title, segments, queries) in VIDEOS.items():
        make_colour_video(out / video, segments, fps=10, size=(160, 120))
        size_kb = (out / video).stat().st_size / 1024
        logger.info("%s: %.0f s, %.0f KB", video, sum(s for _, s in segments), size_kb)
        if size_kb > 300:
            raise SystemExit(f"{video} is {size_kb:.0f} KB; examples must stay under 300 KB")
        listing.append(
            {
                "video": video,
                "title": title,
                "segments": [{"colour": "#{:02x}{:02x}{:02x}".format(*c), "seconds": s} for c, s in segments],
                "queries": [
                    {"text": q["text"], "image": f"{q['image']}.png" if q["image"] else None} for q in queries
                ],
            }
        )
    (out / "examples.json").write_text(json.dumps({"videos": listing}, indent=2) + "\n")
    logger.info("wrote %s", out / "examples.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
