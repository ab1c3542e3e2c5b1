"""Clip-to-query similarity at any length: the cosine curve and the best value inside many windows.

Both are what zero-shot answers with and what a coarse-to-fine first stage ranks windows by (CONE's
pre-filter: the best clip-to-query cosine inside each window), so they must stay cheap for a two-hour film
at 5 clips per second (36,000 clips).
"""

from __future__ import annotations

import numpy as np


def cosine_curve(video_feats: np.ndarray, embedding: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Cosine similarity of every clip with the query embedding, (N,) float64.

    dot(clip, q / |q|) / (|clip| + eps), as l2-normalising both first would give (a zero clip scores 0), but
    without normalised or float64 copies of the (N, D) features: the two reductions run in float32 through
    einsum (no BLAS threads, which compete badly on a busy CPU) and only the N results are widened. The
    values agree with a float64 computation to about 1e-7.
    """
    video = np.asarray(video_feats, dtype=np.float32)
    query = np.asarray(embedding, dtype=np.float64).reshape(-1)
    if video.ndim != 2 or video.shape[1] != query.size:
        raise ValueError(f"video features {video.shape} and query embedding ({query.size},) do not match")
    query = (query / (np.linalg.norm(query) + eps)).astype(np.float32)
    dots = np.einsum("ij,j->i", video, query).astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", video, video).astype(np.float64))
    return dots / (norms + eps)


def window_max(curve: np.ndarray, starts: np.ndarray, lengths: np.ndarray | int) -> np.ndarray:
    """max(curve[start : start + length]) for every window, (W,) float64, in O(N log N + W).

    A sparse table of maxima over power-of-two spans answers each window with two look-ups, whatever the
    windows' number, lengths or overlaps. Windows are clipped to the curve; one that holds no clip is -inf.
    """
    curve = np.asarray(curve, dtype=np.float64).reshape(-1)
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    ends = np.minimum(starts + np.broadcast_to(np.asarray(lengths, dtype=np.int64), starts.shape), curve.size)
    starts = np.maximum(starts, 0)
    out = np.full(starts.shape, -np.inf)
    valid = ends > starts
    if not valid.any():
        return out
    table = [curve]
    while 2 ** len(table) <= curve.size:
        half = 2 ** (len(table) - 1)
        previous = table[-1]
        table.append(np.maximum(previous[:-half], previous[half:]))
    s, e = starts[valid], ends[valid]
    level = np.floor(np.log2(e - s)).astype(np.int64)
    for k in np.unique(level):
        pick = level == k
        row = table[k]
        out_k = np.maximum(row[s[pick]], row[e[pick] - 2**k])
        out[np.flatnonzero(valid)[pick]] = out_k
    return out
