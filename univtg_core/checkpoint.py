"""One loading path: an official UniVTG checkpoint (or one of ours) -> a ready model in eval mode.

Where the settings come from, in order: the checkpoint's own `opt`, else `opt.json` beside the file, else
defaults. Tensor shapes in the state_dict always decide the dimensions (input widths, hidden size, number
of layers, projector depth, text-position table), so a checkpoint without any `opt` still loads.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .device import pick_device
from .errors import CheckpointError
from .model import ModelConfig, UniVTG

logger = logging.getLogger(__name__)

# Everything an official checkpoint pickles besides tensors and plain containers.
SAFE_GLOBALS = [argparse.Namespace]


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint file safely: safetensors, or torch.load(weights_only=True) with the safe globals."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (pass the path of a UniVTG model_best.ckpt)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return {"model": load_file(str(path))}
        except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
            raise CheckpointError(f"cannot read {path} as safetensors: {exc}") from exc
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if unsafe:
            raise CheckpointError(
                f"cannot read checkpoint {path}: it pickles {unsafe.group(1)}, which safe loading refuses "
                f"(only tensors and argparse.Namespace are allowed); re-save its state_dict if you trust it") from exc
        raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint (torch.save) "
                              f"or .safetensors file ({type(exc).__name__})") from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a checkpoint dictionary (got {type(obj).__name__})")
    return obj


def extract_state_dict(checkpoint: dict[str, Any]) -> OrderedDict[str, torch.Tensor]:
    """Unwrap `model`/`state_dict` nesting and strip DistributedDataParallel's `module.` prefix."""
    state = checkpoint
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    tensors = OrderedDict((k, v) for k, v in state.items() if isinstance(v, torch.Tensor))
    if not tensors:
        raise CheckpointError("the checkpoint holds no model weights (expected a 'model' state_dict)")
    return OrderedDict((k[len("module."):] if k.startswith("module.") else k, v) for k, v in tensors.items())


def _options_from(checkpoint: dict[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    opt = checkpoint.get("opt")
    if isinstance(opt, argparse.Namespace):
        return vars(opt), "checkpoint"
    if isinstance(opt, dict):
        return opt, "checkpoint"
    opt_json = path.parent / "opt.json"
    if opt_json.is_file():
        try:
            values = json.loads(opt_json.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"cannot read {opt_json}: {exc}") from exc
        return values, "opt.json"
    return {}, "shapes"


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def config_from_checkpoint(checkpoint: dict[str, Any], path: str | Path = "") -> ModelConfig:
    """Build the architecture from `opt` (or opt.json), with dimensions read from the tensor shapes."""
    state = extract_state_dict(checkpoint)
    options, source = _options_from(checkpoint, Path(path))
    required = ["input_vid_proj.0.LayerNorm.weight", "input_txt_proj.0.LayerNorm.weight",
                "token_type_embeddings.weight", "txt_position_embed.position_embeddings.weight"]
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"{path} is not a UniVTG checkpoint: missing {', '.join(missing)}")

    ctx_mode = str(options.get("ctx_mode", "video_tef"))
    v_feat_dim = int(state["input_vid_proj.0.LayerNorm.weight"].shape[0])
    use_tef = "tef" in ctx_mode
    opt_v_dim = options.get("v_feat_dim")
    if opt_v_dim is not None and source == "opt.json" and use_tef:
        opt_v_dim = int(opt_v_dim) + 2  # opt.json is written before the official parser adds the tef columns
    if opt_v_dim is not None and int(opt_v_dim) != v_feat_dim:
        logger.warning("%s says v_feat_dim=%s but the weights have %d; using the weights", source, opt_v_dim,
                       v_feat_dim)

    max_q_l, hidden = state["txt_position_embed.position_embeddings.weight"].shape
    values = dict(
        v_feat_dim=v_feat_dim,
        t_feat_dim=int(state["input_txt_proj.0.LayerNorm.weight"].shape[0]),
        hidden_dim=int(hidden),
        enc_layers=_count(state, r"transformer\.encoder\.layers\.(\d+)\."),
        n_input_proj=_count(state, r"input_vid_proj\.(\d+)\."),
        max_q_l=int(max_q_l),
        pre_norm="transformer.encoder.norm.weight" in state,
        use_tef=use_tef,
    )
    if "transformer.encoder.layers.0.linear1.weight" in state:
        values["dim_feedforward"] = int(state["transformer.encoder.layers.0.linear1.weight"].shape[0])
    for name in ("nheads", "input_dropout", "dropout", "droppath", "max_v_l", "span_loss_type"):
        if name in options and options[name] is not None:
            values[name] = options[name]
    values["use_txt_pos"] = bool(options.get("use_txt_pos", False))
    if options.get("clip_length") is not None:
        values["clip_length"] = float(options["clip_length"])
    values["normalize_video"] = not bool(options.get("no_norm_vfeat", False))
    values["normalize_text"] = not bool(options.get("no_norm_tfeat", False))
    if values["hidden_dim"] % int(values.get("nheads", 8)):
        raise CheckpointError(f"{path}: hidden size {values['hidden_dim']} is not divisible by "
                              f"nheads={values.get('nheads', 8)} (check opt.json)")
    return ModelConfig.from_dict(values)


def load_model(path: str | Path, device: str | torch.device | None = None, video_dim: int | None = None,
               text_dim: int | None = None) -> UniVTG:
    """Load an official UniVTG checkpoint (plain or DDP-saved) into an eval-mode model on `device`.

    `video_dim` / `text_dim` are the widths the caller's encoder produces; a checkpoint that expects other
    widths is refused with a message naming both.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    config = config_from_checkpoint(checkpoint, path)
    if video_dim is not None and config.video_feature_dim != video_dim:
        raise CheckpointError(
            f"{path.name} expects video features of width {config.video_feature_dim} "
            f"(v_feat_dim={config.v_feat_dim}{' with 2 tef columns' if config.use_tef else ''}), but the "
            f"encoder gives {video_dim}; use the CLIP model the checkpoint was trained with")
    if text_dim is not None and config.t_feat_dim != text_dim:
        raise CheckpointError(
            f"{path.name} expects query tokens of width {config.t_feat_dim}, but the encoder gives "
            f"{text_dim}; use the CLIP model the checkpoint was trained with")
    model = UniVTG(config)
    try:
        model.load_state_dict(extract_state_dict(checkpoint), strict=True)
    except RuntimeError as exc:
        detail = str(exc).splitlines()
        raise CheckpointError(f"{path} does not match the UniVTG architecture: "
                              f"{' '.join(line.strip() for line in detail[1:4])}") from exc
    return model.to(pick_device(device)).eval()
