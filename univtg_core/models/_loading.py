"""One loading path: a checkpoint file -> a ready model of its architecture, in eval mode, on a device.

Order of sources: the file (`univtg_core.weights`: safetensors, or torch.load(weights_only=True) with only
the safe globals the architectures' checkpoints need); its training options from the checkpoint's own
`opt`, else `opt.json` beside the file, else none; the architecture from the option naming it (`model_id`),
else from the state-dict keys; the dimensions always from the tensor shapes. The weights load with
strict=True after the architecture's own key filter.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..device import pick_device
from ..errors import CheckpointError
from ..weights import read_weights, state_dict_of
from ._contract import FeatureSet
from ._registry import Architecture, CheckpointContents, architectures, detect_architecture, get_architecture

logger = logging.getLogger(__name__)

OPTIONS_FILE = "opt.json"
# Video features no encoder here computes (released checkpoints need them precomputed): EgoVLP (Ego4D-NLQ).
PRECOMPUTED_ONLY = frozenset({"egovlp"})


def _options_of(checkpoint: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    opt = checkpoint.get("opt")
    if isinstance(opt, argparse.Namespace):
        return dict(vars(opt)), "checkpoint"
    if isinstance(opt, dict):
        return dict(opt), "checkpoint"
    beside = path.parent / OPTIONS_FILE
    if beside.is_file():
        try:
            options = json.loads(beside.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {beside}: {exc}") from exc
        if not isinstance(options, dict):
            raise CheckpointError(f"{beside} does not hold an options object (got {type(options).__name__})")
        return options, OPTIONS_FILE
    return {}, "none"


def read_checkpoint(path: str | Path, safe_globals: tuple[Any, ...] | None = None) -> CheckpointContents:
    """Read a checkpoint without building anything. `safe_globals` default: those every registered
    architecture declares (each of them plain data), since the architecture is not known yet."""
    path = Path(path)
    if safe_globals is None:
        safe_globals = tuple(dict.fromkeys(g for arch in architectures() for g in arch.safe_globals))
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path} (pass the path of a model checkpoint, e.g. "
                              f"model_best.ckpt)")
    checkpoint = read_weights(path, safe_globals, error=CheckpointError, what="checkpoint")
    options, source = _options_of(checkpoint, path)
    return CheckpointContents(path, checkpoint, state_dict_of(checkpoint), options, source)


def _check_widths(arch: Architecture, config: Any, path: Path, video_dim: int | None, text_dim: int | None) -> None:
    spec = getattr(config, "input_spec", None)
    if spec is None:
        return
    if video_dim is not None and spec.video_dim != video_dim:
        uncomputable = [s.name for s in spec.video if s.name in PRECOMPUTED_ONLY]
        advice = (f"{' and '.join(uncomputable)} features cannot be computed from a video here: run the checkpoint "
                  f"on precomputed features (python -m univtg_core predict-split, or evaluation)") if uncomputable \
            else "use the features (CLIP model) the checkpoint was trained with"
        raise CheckpointError(
            f"{path.name} ({arch.name}) expects video features {spec.describe_video()} = {spec.video_dim} wide, "
            f"but the encoder gives {video_dim}; {advice}")
    if text_dim is not None and spec.text.dim != text_dim:
        raise CheckpointError(
            f"{path.name} ({arch.name}) expects query tokens {spec.text.name} of width {spec.text.dim}, but the "
            f"encoder gives {text_dim}; use the CLIP model the checkpoint was trained with")


def _check_sources(arch: Architecture, config: Any, path: Path, features: FeatureSet | None) -> None:
    """One line naming the features the checkpoint needs, the ones the front end computes and what is
    missing (SlowFast, VGG, GloVe text, another CLIP's width, ...)."""
    spec = getattr(config, "input_spec", None)
    if spec is None or features is None:
        return
    missing = features.missing(spec)
    if missing:
        absent = " + ".join(f"{s.name} ({s.dim})" for s in missing)
        raise CheckpointError(f"{path.name} ({arch.name}) needs {spec.describe()}, but we compute "
                              f"{features.describe()}: {absent} missing; use a checkpoint trained on the features "
                              f"we compute, or compute the missing ones yourself and pass them to ground()")


def load_model(path: str | Path, model: str | None = None, device: str | torch.device | None = None,
               video_dim: int | None = None, text_dim: int | None = None,
               features: FeatureSet | None = None) -> torch.nn.Module:
    """Load a checkpoint (plain or DDP-saved) of any registered architecture into an eval-mode model.

    model: the architecture's name (see `list_models()`), or None to recognise it from the checkpoint.
    features: the feature sources the caller can compute (names and widths); a checkpoint whose
    `input_spec` needs another is refused before anything is built, in one line naming what it needs, what
    the caller computes and what is missing. video_dim / text_dim: only the widths (the same check by width).
    """
    path = Path(path)
    arch = get_architecture(model) if model is not None else None
    contents = read_checkpoint(path, arch.safe_globals if arch is not None else None)
    arch = arch or detect_architecture(contents)
    config = arch.config_from_checkpoint(contents)
    _check_sources(arch, config, path, features)
    _check_widths(arch, config, path, video_dim, text_dim)
    network = arch.build(config)
    state = contents.state_dict if arch.filter_state_dict is None else arch.filter_state_dict(contents.state_dict)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:4])
        raise CheckpointError(f"{path} does not match the {arch.name} architecture: {detail}") from exc
    logger.info("loaded %s checkpoint %s (options from %s)", arch.name, path, contents.options_source)
    return network.to(pick_device(device)).eval()
