"""UniVTG's unified labels as pure functions: one annotation -> per-clip targets.

Every annotation type becomes the same four things for a video of L clips (main/dataset.py, DatasetMR):

- `timestamp` (L, 2): each clip's span anchor (i + clip_len / 2) / L, twice.
- `span_labels_nn` (L, 2): for clips whose anchor lies inside a GT window, that window as fractions of
  L * clip_len (the boundary target); zeros elsewhere.
- `timestamp_window` (L,): 1 for those foreground clips (at least one clip is forced to 1).
- saliency: with a curve (`relevant_clip_ids` + `saliency_scores`) the mean score per clip; with only
  intervals the foreground mask itself. One positive clip (and one negative) are sampled for the
  saliency losses.

Interval annotations give windows only; curve annotations (QVHighlights, the CLIP teacher's curves) add
scores; point annotations are windows of about one clip, widened to a full clip for the datasets the
official code widens (`WIDEN_SHORT_WINDOWS`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..postprocess import clip_anchors

# Datasets whose windows shorter than one clip are widened to one clip around their centre (official list).
WIDEN_SHORT_WINDOWS = ("hacs", "ego4d", "videocc", "activitynet")


@dataclass
class ClipLabels:
    """Per-clip training targets of one (video, query) pair, numpy arrays of the official dtypes."""

    timestamp: np.ndarray  # (L, 2) float32
    span_labels_nn: np.ndarray  # (L, 2) float32
    timestamp_window: np.ndarray  # (L,) int64
    saliency_scores: np.ndarray  # (L,) float64 for curves, int64 for intervals (as the official tensors)
    saliency_pos_labels: list[int]
    saliency_neg_labels: list[int]


def clip_timestamps(n_clips: int, clip_len: float) -> np.ndarray:
    """Span anchors (i + clip_len / 2) / L repeated into two columns, float32 like the official tensor."""
    return np.repeat(clip_anchors(n_clips, clip_len)[:, None], 2, axis=1).astype(np.float32)


def widen_short_windows(windows: Sequence[Sequence[float]], clip_len: float, duration: float) -> list[list[float]]:
    """Windows shorter than one clip become one clip around their centre, clamped to [0, duration]."""
    out = []
    for start, end in windows:
        start, end = float(start), float(end)
        if end - start < clip_len:
            centre = (start + end) / 2
            start = max(0.0, centre - 0.5 * clip_len)
            end = min(float(duration), centre + 0.5 * clip_len)
            end = max(clip_len, end)
        out.append([start, end])
    return out


def nearest_windows(windows: np.ndarray, n_clips: int, clip_len: float) -> tuple[np.ndarray, np.ndarray]:
    """Assign each clip the GT window containing its anchor: returns (span_labels_nn, timestamp_window).

    Windows are in seconds; targets are fractions of L * clip_len. A clip is foreground when its anchor lies
    inside its assigned window (inclusive). When no anchor falls inside any window (a window shorter than
    a clip), every clip gets the first window and none is foreground; `ensure_foreground` then marks one.
    """
    timestamp = clip_timestamps(n_clips, clip_len)
    windows_ts = (np.asarray(windows, dtype=np.float32).reshape(-1, 2) / np.float32(n_clips * clip_len))
    inside = (timestamp[:, None, 0] >= windows_ts[None, :, 0]) & (windows_ts[None, :, 1] >= timestamp[:, None, 1])
    nn_window = np.zeros_like(timestamp)
    if not inside.any():
        nn_window[:] = windows_ts[0]
    else:
        clips, which = np.nonzero(inside)
        nn_window[clips] = windows_ts[which]  # overlapping windows: the later one wins, as in torch
    foreground = (timestamp[:, 0] >= nn_window[:, 0]) & (timestamp[:, 1] <= nn_window[:, 1])
    return nn_window.astype(np.float32), foreground.astype(np.int64)


def ensure_foreground(timestamp_window: np.ndarray, first_window: Sequence[float], clip_len: float) -> np.ndarray:
    """At least one foreground clip: the one holding the first window's start (ActivityNet's short windows)."""
    if timestamp_window.sum() < 1:
        timestamp_window = timestamp_window.copy()
        idx = int(float(first_window[0]) / clip_len)
        timestamp_window[max(0, min(idx, len(timestamp_window) - 1))] = 1
    return timestamp_window


def curve_saliency(relevant_clip_ids: Sequence[int], saliency_scores: Sequence, n_clips: int) -> np.ndarray:
    """Per-clip saliency from a curve: mean over annotators at the relevant clips, 0 elsewhere."""
    ids = np.asarray(relevant_clip_ids, dtype=np.int64)
    scores = _score_matrix(saliency_scores)
    keep = ids < n_clips
    out = np.zeros(n_clips, dtype=np.float64)
    limit = int(np.argmin(keep)) if not keep.all() else len(ids)  # official: up to the first id past the end
    out[ids[:limit]] = scores[:limit].mean(axis=-1)
    return out


def _score_matrix(saliency_scores: Sequence) -> np.ndarray:
    scores = np.asarray(saliency_scores, dtype=np.float64)
    return scores.reshape(len(scores), -1) if scores.ndim != 2 else scores


def curve_pos_neg(relevant_clip_ids: Sequence[int], saliency_scores: Sequence, n_clips: int,
                  add_easy_negative: int = 1, easy_negative_only: int = 1, max_n: int = 1,
                  rng: random.Random | None = None) -> tuple[list[int], list[int]]:
    """Saliency pairs from a curve (official get_saliency_labels).

    Hard pairs: the highest- and lowest-scored relevant clips (the same clip when all scores are equal).
    Easy pairs: a random relevant clip and a random clip outside the relevant ones.
    """
    rng = rng or random
    ids = [int(i) for i in relevant_clip_ids]
    agg = _score_matrix(saliency_scores).sum(axis=1)
    order = np.argsort(agg, kind="stable")
    hard_pos = [min(ids[i], n_clips - 1) for i in order[-max_n:]]
    hard_neg = [min(ids[i], n_clips - 1) for i in order[:max_n]]
    if agg[order[-1]] == agg[order[0]]:
        hard_neg = hard_pos
    easy_pos: list[int] = []
    easy_neg: list[int] = []
    if add_easy_negative > 0:
        easy_neg_pool = sorted(set(range(n_clips)) - set(ids))
        if len(easy_neg_pool) >= max_n:
            in_range = [i for i in ids if i < n_clips] or [n_clips - 1]
            easy_pos = rng.sample(in_range, k=min(max_n, len(in_range)))
            easy_neg = rng.sample(easy_neg_pool, k=max_n)
        else:
            easy_pos, easy_neg = hard_pos, hard_neg
    if easy_negative_only > 0:
        return easy_pos, easy_neg
    return hard_pos + easy_pos, hard_neg + easy_neg


def interval_pos_neg(first_window: Sequence[float], foreground: np.ndarray, clip_len: float, max_n: int = 1,
                     rng: random.Random | None = None) -> tuple[list[int], list[int]]:
    """Saliency pairs from an interval (official get_saliency_labels_sub_as_query + its override).

    The negative is a random clip outside the first window's clips (the positive itself when none is
    outside); the positive is a random foreground clip.
    """
    rng = rng or random
    n_clips = len(foreground)
    gt_st = min(int(float(first_window[0]) / clip_len), n_clips - 1)
    gt_ed = max(0, min(int(float(first_window[1]) / clip_len), n_clips) - 1)
    gt_ed = max(gt_ed, gt_st)
    # The official code draws a positive here too (then replaces it): keep the draw so streams line up.
    pos = rng.sample(range(gt_st, gt_ed + 1), k=max_n) if gt_st != gt_ed else [gt_st] * max_n
    neg_pool = list(range(0, gt_st)) + list(range(gt_ed + 1, n_clips))
    neg = rng.sample(neg_pool, k=max_n) if len(neg_pool) >= max_n else pos
    pos = [rng.choice(np.nonzero(foreground)[0].tolist())]
    return pos, neg


def make_clip_labels(record: dict, n_clips: int, clip_len: float, dset_name: str | None = None,
                     add_easy_negative: int = 1, easy_negative_only: int = 1,
                     rng: random.Random | None = None) -> ClipLabels:
    """All per-clip targets of one annotation record (QVHighlights jsonl keys)."""
    windows = [list(map(float, w)) for w in record["relevant_windows"]]
    if not windows:
        raise ValueError(f"qid {record.get('qid')!r} has no relevant_windows")
    if dset_name in WIDEN_SHORT_WINDOWS:
        windows = widen_short_windows(windows, clip_len, float(record.get("duration", n_clips * clip_len)))
    timestamp = clip_timestamps(n_clips, clip_len)
    span_nn, foreground = nearest_windows(np.asarray(windows), n_clips, clip_len)
    foreground = ensure_foreground(foreground, windows[0], clip_len)
    if record.get("saliency_scores") is not None and record.get("relevant_clip_ids"):
        saliency = curve_saliency(record["relevant_clip_ids"], record["saliency_scores"], n_clips)
        pos, neg = curve_pos_neg(record["relevant_clip_ids"], record["saliency_scores"], n_clips,
                                 add_easy_negative, easy_negative_only, rng=rng)
    else:
        saliency = foreground.copy()
        pos, neg = interval_pos_neg(windows[0], foreground, clip_len, rng=rng)
    return ClipLabels(timestamp, span_nn, foreground, saliency, pos, neg)


def windows_to_clip_ids(windows: Sequence[Sequence[float]], clip_len: float, n_clips: int) -> list[int]:
    """Clip indices covered by windows in seconds: clip i spans [i * clip_len, (i + 1) * clip_len)."""
    ids: set[int] = set()
    for start, end in windows:
        first = int(np.floor(float(start) / clip_len + 1e-6))
        last = int(np.ceil(float(end) / clip_len - 1e-6)) - 1
        ids.update(range(max(first, 0), min(max(last, first), n_clips - 1) + 1))
    return sorted(ids)
