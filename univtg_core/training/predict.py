"""Predictions on an evaluation set during (or after) training, decoded by the architecture's one decoder.

The model's own `decode_outputs` (the decoder `ground()`, the CLI and the app use) turns each batch into
candidate windows; then the official inference options apply: clamp to the video, optional rounding to clip
multiples, sort, NMS. Each query becomes a `Prediction`, written with the QVHighlights keys.
"""

from __future__ import annotations

import argparse
import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import UniVTGError
from ..postprocess import rank_moments, top_highlight
from ..results import Moment, Prediction
from .recipes import TrainingRecipe


@dataclass
class DecodeSettings:
    """How candidates become ranked windows (the official inference options)."""

    clip_length: float
    nms_thd: float = -1
    max_before_nms: int = 10
    max_after_nms: int = 10
    round_multiple: int = 1

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> DecodeSettings:
        return cls(opt.clip_length, opt.nms_thd, opt.max_before_nms, opt.max_after_nms, opt.round_multiple)


def rank_windows(windows: np.ndarray, scores: np.ndarray, duration: float, settings: DecodeSettings) -> np.ndarray:
    """Rows [start, end, score], best first: clamped, rounded to clip multiples when asked, sorted, NMS-ed."""
    windows = np.clip(np.asarray(windows, dtype=np.float64), 0.0, duration)
    if settings.round_multiple > 0:
        windows = np.round(windows / settings.clip_length) * settings.clip_length
    use_nms = settings.nms_thd is not None and 0 <= settings.nms_thd < 1
    return rank_moments(windows, scores, duration, nms_threshold=settings.nms_thd if use_nms else None,
                        top_k=settings.max_after_nms if use_nms else None,
                        max_before_nms=settings.max_before_nms if use_nms else None)


def decode_batch(model: nn.Module, recipe: TrainingRecipe, outputs: dict, inputs: dict, metas: Sequence[dict],
                 settings: DecodeSettings, opt: argparse.Namespace) -> list[Prediction]:
    """One batch's outputs -> one Prediction per query."""
    video_mask = inputs[recipe.video_mask_key]
    lengths = video_mask.sum(1).long().cpu().tolist()
    durations = [float(m.get("duration", n * settings.clip_length)) for m, n in zip(metas, lengths)]
    decoded = model.decode_outputs(outputs, video_mask, settings.clip_length, durations)
    saliency = recipe.eval_saliency(decoded, opt)
    predictions = []
    for row, meta in enumerate(metas):
        n, duration = int(lengths[row]), durations[row]
        windows, scores = decoded.candidates(row)
        ranked = rank_windows(windows, scores, duration, settings)
        curve = np.asarray(saliency[row, :n], dtype=np.float32)
        predictions.append(Prediction(
            moments=tuple(Moment(float(s), float(e), float(c)) for s, e, c in ranked), saliency=curve,
            clip_len=float(settings.clip_length), duration=duration,
            highlight=top_highlight(curve, settings.clip_length), summary=(), query=meta.get("query"),
            qid=meta.get("qid"), vid=meta.get("vid"),
        ))
    return predictions


def _scalar(value: torch.Tensor | float) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, recipe: TrainingRecipe, settings: DecodeSettings,
            opt: argparse.Namespace, device: torch.device, criterion: nn.Module | None = None,
            autocast: Callable[[], Any] | None = None, progress: bool = False) -> tuple[list[Prediction], dict]:
    """Predictions for every query of `loader`, and the mean eval losses when the batches carry labels."""
    from tqdm import tqdm

    model.eval()
    predictions: list[Prediction] = []
    sums: dict[str, float] = defaultdict(float)
    batches = 0
    for metas, batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        inputs, targets = recipe.prepare_batch(batch, device)
        with autocast() if autocast is not None else contextlib.nullcontext():
            outputs = model(**inputs)
        predictions += decode_batch(model, recipe, outputs, inputs, metas, settings, opt)
        if criterion is not None and recipe.labelled(targets):
            losses = criterion(outputs, targets)
            sums["loss_overall"] += _scalar(criterion.total(losses))
            for k, v in losses.items():
                if k in criterion.weight_dict:
                    sums[k] += _scalar(v) * criterion.weight_dict[k]
            batches += 1
    return predictions, {k: v / max(batches, 1) for k, v in sums.items()}


def resolve_metric(brief: dict[str, float], name: str) -> str:
    """The brief key for --main_metric: exact, else with the '-key' suffix the report uses, else without."""
    for candidate in (name, f"{name}-key", name.removesuffix("-key")):
        if candidate in brief:
            return candidate
    raise UniVTGError(f"--main_metric {name!r} is not in the evaluation report; choose one of "
                      f"{', '.join(sorted(brief))}")
