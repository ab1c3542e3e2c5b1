"""Pure interval arithmetic on (start, end) spans, shared by post-processing, training and evaluation."""

from __future__ import annotations

import numpy as np


def temporal_iou(spans_a: np.ndarray, spans_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two lists of [start, end] spans: (N, 2) x (M, 2) -> (N, M)."""
    a = np.asarray(spans_a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(spans_b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(
        np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def temporal_nms(windows: np.ndarray, scores: np.ndarray, iou_threshold: float, top_k: int | None = None) -> np.ndarray:
    """Greedy NMS over windows; returns the indices kept, best score first.

    A window is dropped when its IoU with an already kept one is at least `iou_threshold`
    (the official `temporal_nms` drops at >= too).
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    for idx in order:
        if top_k is not None and len(kept) >= top_k:
            break
        if kept and temporal_iou(windows[idx][None], windows[kept]).max() >= iou_threshold:
            continue
        kept.append(int(idx))
    return np.asarray(kept, dtype=np.int64)
