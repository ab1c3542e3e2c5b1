"""Checkpoint I/O of a run: the files it writes (in the architecture's format), resuming from them, and the
record of the best epoch.

Files in the results folder: `model_best.ckpt` (best by --main_metric), `model_latest.ckpt` (every eval),
`model_eNNNN.ckpt` (every --save_interval epochs), `opt.json` (the options, v_feat_dim without tef, as the
official parser writes it), `best_metric.json`, and `lf_selector.pt` beside a checkpoint in language-free
mode (the pseudo-query selector, which the model checkpoint does not hold).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UniVTGError
from ..models import Architecture, CheckpointContents, detect_architecture, read_checkpoint
from ..weights import read_weights

logger = logging.getLogger(__name__)

BEST_NAME = "model_best.ckpt"
LATEST_NAME = "model_latest.ckpt"
OPTIONS_FILE = "opt.json"
BEST_METRIC_FILE = "best_metric.json"
LF_SELECTOR_NAME = "lf_selector.pt"


def periodic_name(epoch: int) -> str:
    return f"model_e{epoch:04d}.ckpt"


def write_atomically(path: str | os.PathLike, payload: dict) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def save_checkpoint(path: Path, payload: dict, selector: tuple[nn.Module, Any] | None = None) -> Path:
    """The checkpoint file, and the language-free selector (module, optimizer) beside it when given."""
    write_atomically(path, payload)
    if selector is not None:
        module, optimizer = selector
        write_atomically(path.with_name(LF_SELECTOR_NAME),
                         {"model": module.state_dict(), "optimizer": optimizer.state_dict()})
    return path


def write_options(results_dir: Path, saved: dict) -> None:
    with (results_dir / OPTIONS_FILE).open("w") as f:
        json.dump(saved, f, indent=2, default=str)


def read_resume(path: str | os.PathLike, architecture: Architecture) -> CheckpointContents:
    """The --resume checkpoint, refused when it is of another architecture than the one being trained."""
    contents = read_checkpoint(path, architecture.safe_globals)
    try:
        found = detect_architecture(contents).name
    except UniVTGError:
        found = None
    if found is not None and found != architecture.name:
        raise UniVTGError(f"--resume {path} is a {found} checkpoint, but --model_id is {architecture.name}")
    return contents


def restore(contents: CheckpointContents, architecture: Architecture, model: nn.Module, optimizer: Any,
            scheduler: Any, resume_all: bool, selector: tuple[nn.Module, Any] | None = None) -> int | None:
    """Load the weights (strict); with `resume_all` also optimizer, scheduler and the language-free selector.
    Returns the epoch to continue from (with `resume_all`), else None."""
    state = contents.state_dict
    if architecture.filter_state_dict is not None:
        state = architecture.filter_state_dict(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UniVTGError(f"--resume {contents.path} does not fit this model: "
                          f"{' '.join(line.strip() for line in str(exc).splitlines()[1:3])}") from exc
    epoch = contents.checkpoint.get("epoch")
    logger.info("loaded weights saved at epoch %s from %s%s", epoch, contents.path,
                " (with optimizer, scheduler and epoch)" if resume_all else "")
    if not resume_all:
        return None
    if contents.checkpoint.get("optimizer"):
        optimizer.load_state_dict(contents.checkpoint["optimizer"])
    if scheduler is not None and contents.checkpoint.get("lr_scheduler"):
        scheduler.load_state_dict(contents.checkpoint["lr_scheduler"])
    selector_file = contents.path.with_name(LF_SELECTOR_NAME)
    if selector is not None and selector_file.is_file():
        saved = read_weights(selector_file, error=UniVTGError, what="language-free selector")
        selector[0].load_state_dict(saved["model"])
        selector[1].load_state_dict(saved["optimizer"])
    return int(epoch) + 1


def best_so_far(results_dir: Path, resume_all: bool) -> tuple[float, int | None]:
    """(score, epoch) of the best checkpoint of the run being continued; (-inf, None) for a new run."""
    best = results_dir / BEST_METRIC_FILE
    if resume_all and best.is_file():
        state = json.loads(best.read_text())
        return float(state["score"]), state.get("epoch")
    return -math.inf, None


def record_best(results_dir: Path, metric: str, score: float, epoch: int) -> None:
    with (results_dir / BEST_METRIC_FILE).open("w") as f:
        json.dump({"metric": metric, "score": score, "epoch": epoch}, f)

