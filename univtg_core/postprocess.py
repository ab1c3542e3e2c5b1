"""Pure functions that turn per-clip model outputs or similarity curves into moments, highlights and summaries.

Conventions follow the official code: clip i has anchor (i + clip_len / 2) / L (for clip_len 2 that is the
clip's end, not its centre), predicted spans are (-left, +right) offsets in fractions of the video, and a
window in seconds is (offset + anchor) * L * clip_len (UniVTG's decoder: `models.univtg.UniVTG.decode_outputs`).
"""

from __future__ import annotations

import numpy as np

from .spans import temporal_nms
from .video.sampling import INSIDE_END


def clip_anchors(n_clips: int, clip_len: float) -> np.ndarray:
    """Official span anchors, as fractions of the video: (i + clip_len / 2) / L, float32 like the demo."""
    return ((np.arange(n_clips, dtype=np.float32) + np.float32(clip_len / 2)) / np.float32(n_clips)).astype(
        np.float32
    )


def tef(n_clips: int) -> np.ndarray:
    """Temporal endpoint features [i / L, (i + 1) / L] appended to every clip."""
    start = np.arange(n_clips, dtype=np.float32) / np.float32(n_clips)
    return np.stack([start, start + np.float32(1.0 / n_clips)], axis=1).astype(np.float32)


def l2_normalize(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Row-wise x / (||x|| + eps), the official normalisation (rows end up slightly shorter than 1)."""
    x = np.asarray(x, dtype=np.float32)
    return x / (np.linalg.norm(x, axis=-1, keepdims=True) + np.float32(eps))


def rank_moments(
    windows: np.ndarray,
    scores: np.ndarray,
    duration: float,
    nms_threshold: float = 0.7,
    top_k: int | None = 10,
    max_before_nms: int | None = 1000,
    min_length: float = 1e-3,
) -> np.ndarray:
    """Clamp windows to [0, duration], drop empty ones, sort by score and apply NMS.

    Returns rows [start, end, score], best first.
    """
    windows = np.clip(np.asarray(windows, dtype=np.float64).reshape(-1, 2), 0.0, float(duration))
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = (windows[:, 1] - windows[:, 0]) > min_length
    windows, scores = windows[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    if max_before_nms is not None:
        order = order[:max_before_nms]
    windows, scores = windows[order], scores[order]
    if nms_threshold is not None and 0 < nms_threshold < 1:
        kept = temporal_nms(windows, scores, nms_threshold, top_k)
    else:
        kept = np.arange(len(scores))[:top_k]
    return np.concatenate([windows[kept], scores[kept, None]], axis=1) if len(kept) else np.zeros((0, 3))


def smooth_curve(curve: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 smoothing with edge padding: damps single-clip noise, keeps a step a step."""
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size < 3:
        return curve.copy()
    padded = np.pad(curve, 1, mode="edge")
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


def adaptive_threshold(curve: np.ndarray, spread: float = 0.5) -> float:
    """Midway between the curve's median and its maximum (scaled by `spread`): robust to the score scale."""
    curve = np.asarray(curve, dtype=np.float64)
    median, peak = float(np.median(curve)), float(curve.max())
    return median + spread * (peak - median)


def _run_bounds(above: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last indices of every run of True, in order: O(N) and vectorised."""
    edges = np.diff(np.concatenate(([False], np.asarray(above, dtype=bool), [False])).astype(np.int8))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def runs_above(curve: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Contiguous runs [first, last] of indices where curve >= threshold."""
    firsts, lasts = _run_bounds(np.asarray(curve) >= threshold)
    return list(zip(firsts.tolist(), lasts.tolist()))


def run_score(curve: np.ndarray, first: int, last: int) -> float:
    """How much a run stands out: (mean inside - mean outside) * 2 * sqrt(n_in * n_out) / N.

    This is the classic statistic for one raised segment in a sequence (a mean shift weighted by how well
    both sides are estimated). It prefers the whole event over a tight peak inside it, and over a loose run
    that swallows neighbouring clips of a lower level. Divided by the curve's range it lies in [0, 1].
    """
    n = curve.size
    n_in = last - first + 1
    n_out = n - n_in
    if n_out == 0:
        return 0.0
    inside = float(curve[first : last + 1].mean())
    outside = float((curve.sum() - curve[first : last + 1].sum()) / n_out)
    return (inside - outside) * 2.0 * np.sqrt(n_in * n_out) / n


def _run_scores(curve: np.ndarray, firsts: np.ndarray, lasts: np.ndarray) -> np.ndarray:
    """`run_score` for many runs at once from one prefix sum: O(N + runs) instead of O(N) per run.

    The curve is centred first: the statistic depends only on the difference of two means, so the shift
    changes nothing but keeps the prefix sums small and their rounding error far below any real score gap.
    """
    n = curve.size
    centred = curve - curve.mean()
    prefix = np.concatenate(([0.0], np.cumsum(centred)))
    n_in = (lasts - firsts + 1).astype(np.float64)
    n_out = n - n_in
    inside_sum = prefix[lasts + 1] - prefix[firsts]
    outside_sum = prefix[-1] - inside_sum
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = inside_sum / n_in - outside_sum / n_out
        scores = shift * 2.0 * np.sqrt(n_in * n_out) / n
    return np.where(n_out > 0, scores, 0.0)


def zero_shot_runs(
    curve: np.ndarray,
    raw: np.ndarray | None = None,
    spreads: tuple[float, ...] = (0.25, 0.5, 0.75),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate moments of a similarity curve: (firsts, lasts, scores), runs in (first, last) order.

    Thresholds between the curve's median and its peak give nested candidates (a tight peak and the wider
    event around it). When the unsmoothed curve `raw` is given, its runs are candidates too and every
    candidate is scored on it, so smoothing helps find events without blurring their edges. Every run is
    scored against the whole curve (so moments across a film compete on one scale) from one prefix sum, and
    divided by the curve's range: O(N log N) in the number of clips.
    """
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    scored = np.asarray(raw, dtype=np.float64) if raw is not None else curve
    if scored.shape != curve.shape:
        raise ValueError(f"raw curve has shape {scored.shape}, the smoothed one {curve.shape}; give one value per clip")
    bounds = [
        _run_bounds(source >= adaptive_threshold(source, spread))
        for source in {id(curve): curve, id(scored): scored}.values()
        for spread in spreads
    ]
    # One key per (first, last): unique keys come back sorted, i.e. the runs in (first, last) order.
    n = np.int64(curve.size)
    keys = np.unique(np.concatenate([firsts.astype(np.int64) * n + lasts for firsts, lasts in bounds]))
    firsts, lasts = keys // n, keys % n
    value_range = float(scored.max() - scored.min())
    scale = value_range if value_range > 1e-12 else 1.0
    # Rounded far below the 4 decimals we report, so that runs of equal value tie exactly (and keep their
    # time order) whatever the rounding of the prefix sums: the ranking the per-run sums gave.
    scores = np.round(_run_scores(scored, firsts, lasts) / scale, 10)
    return firsts, lasts, scores


def zero_shot_moments(
    curve: np.ndarray,
    clip_len: float,
    duration: float,
    nms_threshold: float = 0.7,
    top_k: int | None = 10,
    raw: np.ndarray | None = None,
    spreads: tuple[float, ...] = (0.25, 0.5, 0.75),
) -> np.ndarray:
    """Moments from a similarity curve: the `zero_shot_runs` candidates, clamped, sorted and NMS-ed.

    Returns rows [start, end, score], best first.
    """
    firsts, lasts, scores = zero_shot_runs(curve, raw, spreads)
    if firsts.size == 0:
        return np.zeros((0, 3))
    windows = np.stack([firsts * clip_len, (lasts + 1) * clip_len], axis=1).astype(np.float64)
    return rank_moments(windows, scores, duration, nms_threshold, top_k)


def summary_points(
    saliency: np.ndarray,
    clip_len: float,
    budget: float = 0.15,
    min_gap_clips: int | None = None,
    duration: float | None = None,
) -> np.ndarray:
    """Representative clips under a duration budget, picked greedily by saliency with temporal diversity.

    As in keyshot summarisation (TVSum/SumMe), the summary may cover at most `budget` of the video. A clip is
    skipped while it lies within `min_gap_clips` of one already chosen (default: spread the budget evenly),
    and the gap shrinks only when nothing else is left. Returns the chosen clips' centre times, ascending.
    With the video's ``duration`` every point lies inside it: a video of N clips may end at the last clip's
    centre (N is its length in clips, rounded), so a point is drawn at most to `INSIDE_END` s before the
    end, as the clip grid samples it.

    Each pass over the clips (one per gap) costs O(N log N): the distance of every clip to the nearest clip
    chosen in earlier passes comes from one binary search, only clips farther than the gap are visited, and
    clips chosen during the pass block their neighbours in a flat array. Passes whose gap no remaining clip
    exceeds are skipped, since they could choose nothing; there are at most `min_gap_clips` + 1 passes, 4 with
    the default gap for the default budget. The choice is exactly the clip-by-clip greedy's.
    """
    saliency = np.asarray(saliency, dtype=np.float64)
    n_clips = saliency.size
    if n_clips == 0:
        return np.zeros(0)
    count = max(1, int(np.floor(budget * n_clips + 1e-9)))
    if min_gap_clips is None:
        min_gap_clips = max(1, n_clips // (2 * count))
    order = np.argsort(-saliency, kind="stable")
    positions = np.arange(n_clips)
    chosen: list[int] = []
    gap = int(np.floor(min_gap_clips))
    while len(chosen) < count and gap >= 0:
        if chosen:
            distance = _distance_to_nearest(positions, np.sort(np.asarray(chosen)))
            farthest = int(distance.max())
            if farthest == 0:  # every clip is chosen
                break
            gap = min(gap, farthest - 1)  # larger gaps block every remaining clip: nothing to choose there
            candidates = order[distance[order] > gap].tolist()
        else:
            candidates = order.tolist()
        reach = min(gap, n_clips)  # a gap beyond the video blocks the same clips as one the video's length
        # Padded by `reach` on both sides so that marking needs no clipping: clip i lives at i + reach.
        blocked = bytearray(n_clips + 2 * reach)
        mark = b"\x01" * (2 * reach + 1)
        span = 2 * reach + 1
        remaining = count - len(chosen)
        for idx in candidates:
            if blocked[idx + reach]:
                continue
            chosen.append(idx)
            blocked[idx : idx + span] = mark
            remaining -= 1
            if not remaining:
                break
        gap -= 1
    centres = (np.sort(np.array(chosen)) + 0.5) * clip_len
    if duration is None:
        return centres
    return np.minimum(centres, max(float(duration) - INSIDE_END, 0.0))


def _distance_to_nearest(positions: np.ndarray, sorted_points: np.ndarray) -> np.ndarray:
    """|i - nearest point| for every position, by binary search in the sorted points."""
    right = np.searchsorted(sorted_points, positions)
    after = sorted_points[np.minimum(right, len(sorted_points) - 1)] - positions
    before = positions - sorted_points[np.maximum(right - 1, 0)]
    after = np.where(right < len(sorted_points), after, np.iinfo(np.int64).max)
    before = np.where(right > 0, before, np.iinfo(np.int64).max)
    return np.minimum(after, before)


def top_highlight(saliency: np.ndarray, clip_len: float) -> float:
    """Start second of the most salient clip (the official demo reports argmax * clip_len)."""
    return float(np.argmax(saliency)) * clip_len
