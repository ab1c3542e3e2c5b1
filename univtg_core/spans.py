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
    limit = len(order) if top_k is None else max(int(top_k), 0)
    # The greedy loop on Python floats: a candidate meets at most `top_k` kept ones, so one small numpy call
    # per candidate (what this was) cost more than the arithmetic; the IEEE float64 steps are temporal_iou's.
    kept: list[int] = []
    kept_spans: list[tuple[float, float, float]] = []
    for idx, start, end in zip(order.tolist(), windows[order, 0].tolist(), windows[order, 1].tolist()):
        if len(kept) >= limit:
            break
        length = end - start
        for k_start, k_end, k_length in kept_spans:
            inter = min(end, k_end) - max(start, k_start)
            if inter < 0:
                inter = 0.0
            union = length + k_length - inter
            if (inter / union if union > 0 else 0.0) >= iou_threshold:
                break
        else:
            kept.append(idx)
            kept_spans.append((start, end, length))
    return np.asarray(kept, dtype=np.int64)
