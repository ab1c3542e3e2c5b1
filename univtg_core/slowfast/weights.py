"""SlowFast weights: PySlowFast's released Caffe2 pickle, a safetensors/torch state dict, or seeded values.

Reading order for a path (``read_slowfast_weights``):

1. ``.pkl``: PySlowFast's Caffe2 checkpoint (``SLOWFAST_8x8_R50.pkl`` as released), a Python 2 pickle
   ``{"blobs": {caffe2_name: ndarray}}``. It is read with the allow-list unpickler (numpy arrays and plain
   containers only, never ``pickle.load``) and each blob name is turned into PySlowFast's parameter name by
   :func:`pyslowfast_name`. Blobs that name no parameter are skipped only when PySlowFast skips them
   (optimizer state and counters: ``*_momentum``, ``lr``, ``model_iter``); any other is refused.
2. ``.safetensors``: a state dict under PySlowFast's names (what :func:`convert_caffe2_to_safetensors` writes).
3. ``.pyth``/``.pt``/``.pth``: a PySlowFast torch checkpoint (``model_state``) read with ``weights_only=True``.

Unlike PySlowFast (``strict=False``), every parameter and BatchNorm statistic must come from the file with
the model's shape: a missing, extra or mismatched tensor is refused with its name, instead of leaving part
of the network at its initial values. Arrays are copied as they are (Caffe2's ``_riv`` goes to
``running_var`` unchanged), as PySlowFast does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ..errors import EncoderWeightsError, UnsafeFileError
from ..hashing import file_sha256
from .network import SlowFastR50

logger = logging.getLogger(__name__)

OFFICIAL_WEIGHTS_URL = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl"
WEIGHTS_HELP = (
    f"SlowFast features need PySlowFast's Kinetics-400 SLOWFAST_8x8_R50.pkl ({OFFICIAL_WEIGHTS_URL}); pass its "
    "path (or a .safetensors converted from it), or 'random' for an offline smoke run (meaningless features)."
)

# Blob names PySlowFast's Caffe2 loader skips without a word: optimizer state and iteration counters.
_SKIPPED_BLOB_PARTS = ("momentum", "lr", "model_iter")

_SUFFIX = {"w": "weight", "b": "bias", "s": "weight", "rm": "running_mean", "riv": "running_var"}
_BN = r"bn_(s|b|rm|riv)"


def _bn_suffix(code: str) -> str:
    return _SUFFIX[code]


# (pattern, builder) pairs; the first full match names the parameter. `t_` marks the Fast pathway.
_RULES: list[tuple[re.Pattern, object]] = [
    (re.compile(r"(t_)?conv1_w"), lambda m: f"s1.pathway{_p(m[1])}_stem.conv.weight"),
    (re.compile(rf"(t_)?res_conv1_{_BN}"), lambda m: f"s1.pathway{_p(m[1])}_stem.bn.{_bn_suffix(m[2])}"),
    (re.compile(r"t_pool1_subsample_w"), lambda _m: "s1_fuse.conv_f2s.weight"),
    (re.compile(rf"t_pool1_subsample_{_BN}"), lambda m: f"s1_fuse.bn.{_bn_suffix(m[1])}"),
    (re.compile(r"t_res(\d+)_\d+_branch2c_bn_subsample_w"), lambda m: f"s{m[1]}_fuse.conv_f2s.weight"),
    (re.compile(rf"t_res(\d+)_\d+_branch2c_bn_subsample_{_BN}"), lambda m: f"s{m[1]}_fuse.bn.{_bn_suffix(m[2])}"),
    (re.compile(r"(t_)?res(\d+)_(\d+)_branch2([abc])_w"),
     lambda m: f"s{m[2]}.pathway{_p(m[1])}_res{m[3]}.branch2.{m[4]}.weight"),
    (re.compile(rf"(t_)?res(\d+)_(\d+)_branch2([abc])_{_BN}"),
     lambda m: f"s{m[2]}.pathway{_p(m[1])}_res{m[3]}.branch2.{m[4]}_bn.{_bn_suffix(m[5])}"),
    (re.compile(r"(t_)?res(\d+)_(\d+)_branch1_w"), lambda m: f"s{m[2]}.pathway{_p(m[1])}_res{m[3]}.branch1.weight"),
    (re.compile(rf"(t_)?res(\d+)_(\d+)_branch1_{_BN}"),
     lambda m: f"s{m[2]}.pathway{_p(m[1])}_res{m[3]}.branch1_bn.{_bn_suffix(m[4])}"),
    (re.compile(r"pred_(w|b)"), lambda m: f"head.projection.{_SUFFIX[m[1]]}"),
]


def _p(fast_prefix: str | None) -> int:
    return 1 if fast_prefix else 0


def pyslowfast_name(blob: str) -> str | None:
    """PySlowFast's parameter name for a Caffe2 blob of SlowFast R50 (None: the blob names no parameter).

    ``res4_2_branch2b_bn_riv`` -> ``s4.pathway0_res2.branch2.b_bn.running_var``; ``t_`` is the Fast
    pathway; a fusion takes its name from the Fast pathway's last block of the stage
    (``t_res2_2_branch2c_bn_subsample_w`` -> ``s2_fuse.conv_f2s.weight``).
    """
    for pattern, build in _RULES:
        m = pattern.fullmatch(blob)
        if m is not None:
            return build(m)  # type: ignore[operator]
    return None


def caffe2_name(key: str) -> str | None:
    """The Caffe2 blob name of a PySlowFast parameter (the inverse of :func:`pyslowfast_name`)."""
    global _caffe2_table
    if _caffe2_table is None:
        _caffe2_table = {k: _invert(k) for k in _float_keys()}
    return _caffe2_table.get(key)


_caffe2_table: dict[str, str] | None = None


_INV_SUFFIX = {"weight": "w", "bias": "b"}
_INV_BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}


def _invert(key: str) -> str:
    """Build the blob name for a key; checked against the forward rules below."""
    parts = key.split(".")
    if m := re.fullmatch(r"s1\.pathway(\d)_stem\.(conv|bn)\.(\w+)", key):
        t = "t_" if m[1] == "1" else ""
        name = f"{t}conv1_w" if m[2] == "conv" else f"{t}res_conv1_bn_{_INV_BN[m[3]]}"
    elif m := re.fullmatch(r"s(\d)_fuse\.(conv_f2s|bn)\.(\w+)", key):
        stage = int(m[1])
        base = "t_pool1_subsample" if stage == 1 else f"t_res{stage}_{_LAST_BLOCK[stage]}_branch2c_bn_subsample"
        name = f"{base}_w" if m[2] == "conv_f2s" else f"{base}_bn_{_INV_BN[m[3]]}"
    elif m := re.fullmatch(r"s(\d)\.pathway(\d)_res(\d+)\.(branch1|branch1_bn|branch2\.[abc]|branch2\.[abc]_bn)\.(\w+)",
                           key):
        t = "t_" if m[2] == "1" else ""
        branch = m[4].replace("branch2.", "branch2")
        if branch.endswith("_bn"):
            name = f"{t}res{m[1]}_{m[3]}_{branch}_{_INV_BN[m[5]]}"
        else:
            name = f"{t}res{m[1]}_{m[3]}_{branch}_{_INV_SUFFIX[m[5]]}"
    elif parts[:2] == ["head", "projection"]:
        name = f"pred_{_INV_SUFFIX[parts[2]]}"
    else:
        raise KeyError(key)
    if pyslowfast_name(name) != key:
        raise AssertionError(f"name mapping is not one-to-one for {key!r} ({name!r})")
    return name


_LAST_BLOCK = {2: 2, 3: 3, 4: 5}  # index of the last block of res2..res4 (3, 4, 6 blocks)


# --------------------------------------------------------------------------------------------------------
# Keys and seeded values


def _model_shapes() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    with torch.device("meta"):
        model = SlowFastR50()
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


_shapes_cache: dict | None = None


def state_dict_shapes() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every state-dict key of SlowFast R50 in order, with its shape and dtype (no weights are built)."""
    global _shapes_cache
    if _shapes_cache is None:
        _shapes_cache = _model_shapes()
    return dict(_shapes_cache)


def _float_keys() -> list[str]:
    return [k for k, (_, dt) in state_dict_shapes().items() if dt.is_floating_point]


def seeded_tensor(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """One tensor of the seeded-weight rule of the SlowFast fixture (float32, C order).

    A fresh PCG64 generator seeded with ``[seed, crc32(name)]`` draws exactly ``numel`` float64 values in one
    call: ``uniform(0.5, 1.5)`` for running variances, ``normal(0, 0.1)`` for running means and biases,
    ``uniform(0.5, 1.0)`` for the other 1-D tensors (BatchNorm weights), ``normal(0, sqrt(2 / fan_in))`` with
    ``fan_in = numel // shape[0]`` for convolution and linear weights.
    """
    numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
    rng = np.random.Generator(np.random.PCG64([int(seed), zlib.crc32(name.encode("utf-8"))]))
    if name.endswith("running_var"):
        values = rng.uniform(0.5, 1.5, numel)
    elif name.endswith(("running_mean", "bias")):
        values = rng.normal(0.0, 0.1, numel)
    elif len(shape) == 1:
        values = rng.uniform(0.5, 1.0, numel)
    else:
        fan_in = numel // shape[0]
        values = rng.normal(0.0, (2.0 / fan_in) ** 0.5, numel)
    return values.astype(np.float32).reshape(shape)


def seeded_slowfast_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Weights for tests and smoke runs that anyone can regenerate bit for bit (the fixture's rule).

    Float tensors follow :func:`seeded_tensor`; the ``num_batches_tracked`` counters are 0.
    """
    out: dict[str, torch.Tensor] = {}
    for key, (shape, dtype) in state_dict_shapes().items():
        if dtype.is_floating_point:
            out[key] = torch.from_numpy(seeded_tensor(key, shape, seed))
        else:
            out[key] = torch.zeros(shape, dtype=dtype)
    return out


def state_dict_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the float32 little-endian bytes of every float tensor, in state-dict order."""
    h = hashlib.sha256()
    for key in state_dict_shapes():
        t = state_dict[key]
        if t.dtype.is_floating_point:
            h.update(np.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4").tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------------
# Reading files


def read_slowfast_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A complete, checked SlowFast R50 state dict from a Caffe2 ``.pkl``, ``.safetensors`` or torch file."""
    p = Path(path).expanduser()
    if not p.exists():
        raise EncoderWeightsError(f"SlowFast weights not found: {str(p)!r}. {WEIGHTS_HELP}")
    if not p.is_file():
        raise EncoderWeightsError(f"SlowFast weights path {str(p)!r} is not a file. {WEIGHTS_HELP}")
    suffix = p.suffix.lower()
    if suffix == ".pkl":
        tensors = _read_caffe2(p)
    elif suffix == ".safetensors":
        tensors = _read_safetensors(p)
    elif suffix in (".pyth", ".pt", ".pth"):
        tensors = _read_torch(p)
    else:
        raise EncoderWeightsError(
            f"cannot tell the format of {str(p)!r}: SlowFast weights are read from a Caffe2 .pkl, a .safetensors "
            f"or a PySlowFast .pyth file. {WEIGHTS_HELP}")
    return complete_state_dict(tensors, str(p), caffe2=suffix == ".pkl")


def _read_caffe2(path: Path) -> dict[str, torch.Tensor]:
    from .. import safe_pickle

    try:
        data = safe_pickle.load(path, encoding="latin1", what=f"the SlowFast checkpoint {str(path)!r}")
    except UnsafeFileError as exc:
        raise EncoderWeightsError(f"{exc}. {WEIGHTS_HELP}") from exc
    blobs = data.get("blobs") if isinstance(data, dict) else None
    if not isinstance(blobs, dict):
        raise EncoderWeightsError(
            f"{str(path)!r} is a pickle but not a Caffe2 checkpoint (no 'blobs' dictionary). {WEIGHTS_HELP}")
    return caffe2_blobs_to_state_dict(blobs, str(path))


def caffe2_blobs_to_state_dict(blobs: Mapping[str, object], source: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Caffe2 blobs -> PySlowFast-named tensors; optimizer blobs skipped, any other unknown blob refused."""
    out: dict[str, torch.Tensor] = {}
    skipped = 0
    unknown = []
    for blob, value in blobs.items():
        name = pyslowfast_name(str(blob))
        if name is None:
            if any(part in str(blob) for part in _SKIPPED_BLOB_PARTS):
                skipped += 1
                continue
            unknown.append(str(blob))
            continue
        if name in out:
            raise EncoderWeightsError(f"{source}: two blobs fill {name!r} (one is {blob!r})")
        out[name] = _as_tensor(value, f"{source}: blob {blob!r}")
    if unknown:
        raise EncoderWeightsError(
            f"{source} holds {len(unknown)} blob(s) that are not SlowFast R50 parameters (e.g. "
            f"{', '.join(sorted(unknown)[:3])}); it is not the SLOWFAST_8x8_R50 checkpoint. {WEIGHTS_HELP}")
    logger.debug("%s: %d blobs used, %d optimizer blobs skipped", source, len(out), skipped)
    return out


def _as_tensor(value: object, what: str) -> torch.Tensor:
    if not isinstance(value, np.ndarray):
        raise EncoderWeightsError(f"{what} is a {type(value).__name__}, not an array")
    if not np.issubdtype(value.dtype, np.floating):
        raise EncoderWeightsError(f"{what} has dtype {value.dtype}, not a floating-point type")
    return torch.from_numpy(np.array(value, dtype=np.float32, copy=True))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise EncoderWeightsError(f"cannot read {str(path)!r} as safetensors ({exc}). {WEIGHTS_HELP}") from exc


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    from ..weights import read_weights

    try:  # the one weights reader: weights_only, refusals name the global, TorchScript archives refused
        obj = read_weights(path, error=EncoderWeightsError, what="SlowFast checkpoint")
    except EncoderWeightsError as exc:
        raise EncoderWeightsError(f"{exc}. {WEIGHTS_HELP}") from exc
    for key in ("model_state", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise EncoderWeightsError(f"{str(path)!r} does not hold a SlowFast state dict of tensors. {WEIGHTS_HELP}")
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def complete_state_dict(tensors: Mapping[str, torch.Tensor], source: str = "the weights",
                        caffe2: bool = False) -> dict[str, torch.Tensor]:
    """Check that ``tensors`` fill every SlowFast R50 tensor with the right shape; add the BN counters.

    Raises EncoderWeightsError naming the missing, unexpected or mismatched tensors (with their Caffe2 blob
    names when ``caffe2``).
    """
    shapes = state_dict_shapes()
    floats = [k for k, (_, dt) in shapes.items() if dt.is_floating_point]
    counters = [k for k in shapes if k not in floats]
    missing = [f"{k} (blob {caffe2_name(k)})" if caffe2 else k for k in floats if k not in tensors]
    unexpected = sorted(k for k in tensors if k not in shapes)
    wrong = [f"{k} {tuple(tensors[k].shape)} (model: {shapes[k][0]})" for k in floats
             if k in tensors and tuple(tensors[k].shape) != shapes[k][0]]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("with the wrong shape", wrong)):
        if items:
            problems.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
    if problems:
        raise EncoderWeightsError(
            f"{source} does not fit SlowFast R50 8x8: {'; '.join(problems)}. Refusing to run with part of the "
            f"network at its initial values. {WEIGHTS_HELP}")
    out = {k: tensors[k].detach().to(torch.float32) for k in floats}
    for k in counters:
        t = tensors.get(k)
        out[k] = t.detach().to(torch.int64).reshape(()) if t is not None else torch.zeros((), dtype=torch.int64)
    return {k: out[k] for k in shapes}


def convert_caffe2_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the released Caffe2 checkpoint as a safetensors file under PySlowFast's names (checked first)."""
    from safetensors.torch import save_file

    state = read_slowfast_weights(src)
    out = Path(dst)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out))
    return out


def weights_fingerprint(path: str | os.PathLike) -> str:
    """``sha256-`` and the first 16 hex digits of the file's sha256 (what names cached features)."""
    return "sha256-" + file_sha256(path)[:16]


__all__ = [
    "OFFICIAL_WEIGHTS_URL",
    "caffe2_blobs_to_state_dict",
    "caffe2_name",
    "complete_state_dict",
    "convert_caffe2_to_safetensors",
    "pyslowfast_name",
    "read_slowfast_weights",
    "seeded_slowfast_state_dict",
    "seeded_tensor",
    "state_dict_sha256",
]
