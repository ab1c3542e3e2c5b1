"""One place that decides where tensors live, so no module hard-codes a device."""

from __future__ import annotations

import torch


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The caller's choice if given, else cuda, then mps, then cpu."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """Half precision on GPUs, float32 elsewhere; `precision` overrides ('fp32', 'fp16', 'bf16')."""
    table = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if precision != "auto":
        if precision not in table:
            raise ValueError(f"precision must be one of auto, {', '.join(table)}; got {precision!r}")
        return table[precision]
    return torch.float16 if device.type == "cuda" else torch.float32
