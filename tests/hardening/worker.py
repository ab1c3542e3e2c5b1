"""A child process that runs one hostile input at a time, so that a hang or a crash costs one case, not the suite.

Started by ``sandbox.Sandbox`` as ``python worker.py CONFIG.json``. It reads one JSON request per line on stdin
and answers one JSON line on the protocol pipe (the original stdout; fd 1 is pointed at stderr so that
nothing a library prints can corrupt the protocol). Requests:

- ``{"op": "ground", "path": ..., "image": [r, g, b] | null, "text": ... | null}``: ``Grounder.index`` then
  ``Grounder.query``, as the Python API runs them;
- ``{"op": "cli", "argv": [...]}``: ``univtg_core.cli.main(argv)`` with its fd-level stderr and stdout
  captured (decoder libraries write there directly);
- ``{"op": "frames", "path": ..., "seconds": [...]}``: ``video.read_frames_at`` (thumbnails) and the clip
  frames CLIP sees, both summarised.

Every answer says ``status``: ``"result"``, ``"refused"`` (a UniVTGError: the message is the user's one line),
or ``"error"`` (any other exception: a bug), with the log records at WARNING and above.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def _summary(frame):
    """Size and the mean colour of each quadrant of an RGB frame (enough to tell which way up it is)."""
    import numpy as np

    h, w = frame.shape[:2]
    quads = [frame[: h // 2, : w // 2], frame[: h // 2, w // 2:], frame[h // 2:, : w // 2], frame[h // 2:, w // 2:]]
    return {"shape": list(frame.shape), "quadrants": [np.asarray(q, float).mean(axis=(0, 1)).round(1).tolist()
                                                      for q in quads]}


class _FdCapture:
    """Point fds 1 and 2 at files for the duration of a CLI call (what a terminal would show)."""

    def __enter__(self):
        self.files = [tempfile.TemporaryFile(), tempfile.TemporaryFile()]
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.files[0].fileno(), 1)
        os.dup2(self.files[1].fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        texts = []
        for f in self.files:
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
            f.close()
        self.stdout, self.stderr = texts


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything printed to stdout (fd 1) lands on stderr, never in the protocol

    import numpy as np
    import open_clip
    import torch

    torch.set_num_threads(1)
    open_clip.add_model_config(config["model_config"])
    from univtg_core import Grounder, UniVTGError, VideoReadError
    from univtg_core.encoders import load_clip_encoder

    records = _Records()
    logging.getLogger().addHandler(records)
    logging.getLogger().setLevel(logging.WARNING)
    encoder = load_clip_encoder(config["model_name"], weights="random", device="cpu", seed=0)
    grounder = Grounder(encoder, clip_len=config["clip_len"], cache_dir=config["cache_dir"], use_cache=True)
    protocol.write(json.dumps({"ready": True}) + "\n")

    for line in sys.stdin:
        request = json.loads(line)
        records.lines.clear()
        started = time.perf_counter()
        answer: dict = {"id": request.get("id")}
        try:
            if request["op"] == "ground":
                index = grounder.index(request["path"])
                image = None
                if request.get("image") is not None:
                    image = np.zeros((64, 64, 3), np.uint8)
                    image[...] = np.asarray(request["image"], np.uint8)
                pred = grounder.query(index, text=request.get("text"), image=image)
                feats = index.features / (np.linalg.norm(index.features, axis=1, keepdims=True) + 1e-8)
                answer.update(status="result", duration=index.duration, n_clips=index.n_clips, fps=index.info.fps,
                              width=index.info.width, height=index.info.height, backend=index.info.backend,
                              clip_len=index.clip_len, saliency=[float(s) for s in pred.saliency],
                              moments=[[m.start, m.end, m.score] for m in pred.moments],
                              highlight=pred.highlight, summary=list(pred.summary),
                              cosine=(feats @ feats.T).round(4).tolist(), json=pred.to_dict())
            elif request["op"] == "cli":
                from univtg_core.cli import main as cli_main

                with _FdCapture() as captured:
                    try:
                        rc = cli_main(request["argv"])
                    except SystemExit as exc:  # argparse
                        rc = exc.code if isinstance(exc.code, int) else 2
                answer.update(status="result", rc=rc, stdout=captured.stdout, stderr=captured.stderr)
            elif request["op"] == "frames":
                from univtg_core.video import iter_clip_frames, read_frames_at

                thumbs = read_frames_at(request["path"], request["seconds"], max_side=None)
                clips = np.concatenate(list(iter_clip_frames(request["path"], clip_len=config["clip_len"],
                                                             size=encoder.image_size)))
                answer.update(status="result", thumbnails=[_summary(f) for f in thumbs],
                              clip_frames=[_summary(f) for f in clips])
            else:
                raise ValueError(f"unknown op {request['op']!r}")
        except UniVTGError as exc:
            answer.update(status="refused", type=type(exc).__name__, message=str(exc),
                          video_error=isinstance(exc, VideoReadError))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
            answer.update(status="error", type=type(exc).__name__, message=str(exc),
                          traceback=traceback.format_exc(limit=8))
        answer["warnings"] = list(records.lines)
        answer["seconds"] = time.perf_counter() - started
        protocol.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
