"""MESM's raw outputs -> moments, as pure functions.

- `decode_windows`: the one decoder of the architecture (the registry contract): foreground probability
  softmax(logits)[..., 0] and windows (centre -/+ width / 2) x duration, unclamped and unsorted.
- `official_ranked_windows` + `official_postprocess`: what the official evaluation writes into a submission
  (sorted, 4-decimal rounding, then PostProcessorDETR: clamp to [0, max_ts_val] (150 s, not the video) and
  round to multiples of clip_len, half to even, in float32). Use these to reproduce published numbers.
- `product_moments`: our product's version: clamp to the video, drop empty windows, sort, NMS.
"""

from __future__ import annotations

import numpy as np
import torch

from ..postprocess import rank_moments
from ._contract import WindowOutput


def _array(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)


def foreground_scores(pred_logits) -> np.ndarray:
    """(..., K, 2) raw logits -> (..., K) foreground probabilities (class 0 is foreground)."""
    logits = torch.as_tensor(_array(pred_logits))
    return torch.softmax(logits, dim=-1)[..., 0].numpy()


def decode_windows(outputs: dict, video_mask, clip_len: float, durations=None) -> WindowOutput:
    """Official forward outputs -> candidates in seconds: (B, K, 2) windows, (B, K) scores, (B, L) saliency.

    Spans are (centre, width) relative to the duration the model was trained with (the annotation's); by
    default that is the number of valid clips x clip_len. Pass `durations` (B,) when known (clip_len -1,
    TACoS-style normalised positions, needs it).
    """
    spans = torch.as_tensor(_array(outputs["pred_spans"]))
    if durations is None:
        if clip_len <= 0:
            raise ValueError("clip_len is not positive (normalised positions): pass the videos' durations")
        valid = torch.as_tensor(np.asarray(_array(video_mask) > 0)).sum(dim=1).float()
        durations = valid * float(clip_len)
    durations = torch.as_tensor(np.asarray(durations, dtype=np.float32)).reshape(-1)
    xx = torch.stack([spans[..., 0] - 0.5 * spans[..., 1], spans[..., 0] + 0.5 * spans[..., 1]], dim=-1)
    windows = (xx * durations[:, None, None]).numpy().astype(np.float64)
    return WindowOutput(windows=windows, scores=foreground_scores(outputs["pred_logits"]).astype(np.float64),
                        saliency=_array(outputs["saliency_scores"]))


def official_ranked_windows(pred_logits, pred_spans, duration: float) -> list[list[float]]:
    """One query's (K, 2) logits and spans -> [[start, end, score], ...] as the official compute_mr_results
    writes them: float32 seconds, sorted by score (descending, on full precision, stable), then every value
    rounded to 4 decimals."""
    spans = torch.as_tensor(_array(pred_spans))
    scores = torch.softmax(torch.as_tensor(_array(pred_logits)), dim=-1)[:, 0]
    xx = torch.stack([spans[:, 0] - 0.5 * spans[:, 1], spans[:, 0] + 0.5 * spans[:, 1]], dim=-1)
    seconds = xx * torch.tensor(duration, dtype=torch.float32)
    rows = torch.cat([seconds, scores[:, None]], dim=1).tolist()
    rows = sorted(rows, key=lambda r: r[2], reverse=True)
    return [[float(f"{v:.4f}") for v in row] for row in rows]


def official_postprocess(ranked: list[list[float]], clip_len: float, max_ts_val: float = 150.0) -> list[list[float]]:
    """PostProcessorDETR as the official evaluation configures it: clamp to [0, max_ts_val], then (unless
    clip_len is -1) torch.round(x / clip_len) * clip_len on float32; scores re-rounded to 4 decimals."""
    if not ranked:
        return []
    table = torch.tensor(ranked)
    windows = torch.clamp(table[:, :2], min=0, max=max_ts_val)
    if clip_len != -1:
        windows = torch.round(windows / clip_len) * clip_len
    rows = torch.cat([windows, table[:, 2:3]], dim=1).tolist()
    return [row[:2] + [float(f"{row[2]:.4f}")] for row in rows]


def product_moments(windows: np.ndarray, scores: np.ndarray, duration: float, nms_threshold: float | None = 0.7,
                    top_k: int | None = 10) -> np.ndarray:
    """Our product's moments: clamp to [0, duration] (the video, not 150 s), drop empty windows, sort by score
    and NMS. Rows [start, end, score], best first."""
    return rank_moments(windows, scores, duration, nms_threshold=nms_threshold, top_k=top_k)


__all__ = ["decode_windows", "foreground_scores", "official_postprocess", "official_ranked_windows",
           "product_moments"]
