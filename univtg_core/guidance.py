"""Guidance score files (Barrios et al., "Localizing Moments in Long Video Via Multimodal Guidance", ICCV'23).

The published files score every sliding window of a MAD movie for one query: a pickle of a list of dicts

    {"qid": "0", "vid": "3001_21_JUMP_STREET",
     "windows": int array (N, 2) of [first, end) frame indices at 5 fps (64- or 128-frame windows, half overlap),
     "score": float32 array (N,)}

They come from strangers, so they are unpickled with `safe_pickle` (numpy arrays and plain containers only,
nothing that could run code) and every record is checked before use. `guidance_window_scores` maps one
query's scores onto any other window grid (ours), for a coarse-to-fine first stage or for fusion.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import safe_pickle
from .errors import UniVTGError

GUIDANCE_FPS = 5.0  # the MAD features (and so the published guidance windows) are 5 frames per second
REQUIRED_KEYS = ("qid", "vid", "windows", "score")


class GuidanceError(UniVTGError, ValueError):
    """A guidance score file is not in the expected format (the message names the record)."""


@dataclass(frozen=True)
class GuidanceRecord:
    """One query's guidance scores: `windows` (N, 2) [start, end) in seconds, `scores` (N,), higher is better."""

    qid: str
    vid: str
    windows: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def read_guidance(path: str | os.PathLike, fps: float = GUIDANCE_FPS) -> dict[str, GuidanceRecord]:
    """Read a guidance score pickle into {qid: GuidanceRecord}, windows converted to seconds.

    `fps` is the rate of the file's window indices: 5 for the published MAD files (frames at 5 fps); for
    indices of clips of `clip_len` seconds pass `1 / clip_len`. Raises `UnsafeFileError` for a pickle that
    refers to anything but plain data (before anything in it runs) or for bytes that are not a pickle, and
    `GuidanceError` naming the record for anything that is not the format above.
    """
    if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise GuidanceError(f"fps must be a positive number (the rate of the window indices), got {fps!r}")
    label = f"guidance file {os.fspath(path)}"
    data = safe_pickle.load(path, what=label)
    return parse_guidance(data, fps=float(fps), source=label)


def parse_guidance(data: Any, fps: float = GUIDANCE_FPS, source: str = "guidance data") -> dict[str, GuidanceRecord]:
    """Validate already-unpickled guidance data (a list of record dicts) and convert it; see `read_guidance`."""
    if not isinstance(data, (list, tuple)):
        raise GuidanceError(f"{source}: expected a list of records (dicts with {', '.join(REQUIRED_KEYS)}), "
                            f"got {type(data).__name__}")
    if not data:
        raise GuidanceError(f"{source}: holds no records")
    records: dict[str, GuidanceRecord] = {}
    for i, raw in enumerate(data):
        record = _parse_record(raw, i, fps, source)
        if record.qid in records:
            raise GuidanceError(f"{source}: record {i} repeats qid {record.qid!r}; give one record per query")
        records[record.qid] = record
    return records


def _identifier(value: Any, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
        raise GuidanceError(f"{where}: '{name}' must be a string (or an integer id), got {type(value).__name__}")
    return str(value)


def _parse_record(raw: Any, index: int, fps: float, source: str) -> GuidanceRecord:
    where = f"{source}, record {index}"
    if not isinstance(raw, dict):
        raise GuidanceError(f"{where}: expected a dict with {', '.join(REQUIRED_KEYS)}, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise GuidanceError(f"{where}: missing {', '.join(repr(k) for k in missing)}")
    qid = _identifier(raw["qid"], "qid", where)
    where = f"{where} (qid {qid!r})"
    vid = _identifier(raw["vid"], "vid", where)

    windows = _numeric_array(raw["windows"], "windows", where)
    if windows.ndim != 2 or windows.shape[1] != 2 or len(windows) == 0:
        raise GuidanceError(f"{where}: 'windows' must be an (N, 2) array of [first, end) indices with N >= 1, "
                            f"got shape {windows.shape}")
    if not np.all(np.isfinite(windows)) or not np.all(windows == np.round(windows)):
        raise GuidanceError(f"{where}: 'windows' must hold integer frame or clip indices")
    if np.any(windows[:, 0] < 0) or np.any(windows[:, 1] <= windows[:, 0]):
        bad = int(np.flatnonzero((windows[:, 0] < 0) | (windows[:, 1] <= windows[:, 0]))[0])
        raise GuidanceError(f"{where}: window {bad} is {windows[bad].tolist()}; each must satisfy 0 <= first < end")

    scores = _numeric_array(raw["score"], "score", where)
    if scores.ndim != 1 or len(scores) != len(windows):
        raise GuidanceError(f"{where}: 'score' must be a (N,) array with one score per window ({len(windows)}), "
                            f"got shape {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise GuidanceError(f"{where}: 'score' holds {int(np.sum(~np.isfinite(scores)))} non-finite values")
    seconds = windows.astype(np.float64) / fps
    seconds.flags.writeable = False
    scores = scores.astype(np.float64)
    scores.flags.writeable = False
    return GuidanceRecord(qid=qid, vid=vid, windows=seconds, scores=scores)


def _numeric_array(value: Any, name: str, where: str) -> np.ndarray:
    """A numpy array or a (nested) list of real numbers; anything else (objects, strings, bools) is refused."""
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple)):
        try:
            array = np.asarray(value)
        except ValueError:
            raise GuidanceError(f"{where}: '{name}' is a ragged list; expected a regular array") from None
    else:
        raise GuidanceError(f"{where}: '{name}' must be a numpy array, got {type(value).__name__}")
    if array.dtype.kind not in "iuf":
        raise GuidanceError(f"{where}: '{name}' must hold real numbers, got dtype {array.dtype}")
    return array


def guidance_window_scores(
    record: GuidanceRecord | tuple[np.ndarray, np.ndarray],
    window_starts_s: Sequence[float] | np.ndarray,
    window_len_s: float | Sequence[float] | np.ndarray,
    rule: Literal["max", "mean"] = "max",
    fill: float | None = None,
    block: int = 1024,
) -> np.ndarray:
    """Guidance scores mapped onto another window grid by temporal overlap, (W,) float64.

    Target window w = [start_w, start_w + len_w) takes, over the guidance windows g that overlap it by more
    than zero seconds:

    - `rule="max"` (default): max_g score_g. The best guidance window touching w decides, so a short
      high-scoring guidance window is never diluted by the long target window around it; this is what a
      first stage needs to keep every window that may contain the moment.
    - `rule="mean"`: sum_g overlap_gw * score_g / sum_g overlap_gw, the overlap-weighted mean, a smoother
      score when both grids have similar window lengths.

    A target window that no guidance window overlaps (past the last scored window, say) gets `fill`,
    by default the lowest score of the record, so it ranks last but stays finite for normalisation.
    The guidance paper itself gives each proposal the score of the guidance window it falls in and
    multiplies it into the proposal's score; either rule reproduces that for proposals inside one window.

    `record` is a `GuidanceRecord` or a pair (windows in seconds (N, 2), scores (N,)). Cost: O((W + N) log N)
    for windows of similar lengths (each block of `block` target windows meets only the guidance windows
    near it), memory bounded by the block.
    """
    if rule not in ("max", "mean"):
        raise ValueError(f"rule must be 'max' or 'mean', got {rule!r}")
    if isinstance(record, GuidanceRecord):
        g_windows, g_scores = record.windows, record.scores
    else:
        g_windows, g_scores = record
    g_windows = np.asarray(g_windows, dtype=np.float64).reshape(-1, 2)
    g_scores = np.asarray(g_scores, dtype=np.float64).reshape(-1)
    if len(g_windows) != len(g_scores) or len(g_scores) == 0:
        raise ValueError(f"need one score per guidance window and at least one: {len(g_windows)} windows, "
                         f"{len(g_scores)} scores")
    starts = np.asarray(window_starts_s, dtype=np.float64).reshape(-1)
    ends = starts + np.broadcast_to(np.asarray(window_len_s, dtype=np.float64), starts.shape)
    fill_value = float(g_scores.min()) if fill is None else float(fill)

    order = np.argsort(g_windows[:, 0], kind="stable")
    g_start, g_end, g_score = g_windows[order, 0], g_windows[order, 1], g_scores[order]
    longest = float((g_end - g_start).max())
    by_start = np.argsort(starts, kind="stable")  # blocks of neighbouring target windows stay local
    out = np.full(starts.shape, fill_value)
    for lo in range(0, len(starts), block):
        rows = by_start[lo : lo + block]
        s, e = starts[rows], ends[rows]
        # Guidance windows that can overlap this block: they start before its last end and end after its
        # first start, i.e. start after (first start - longest guidance window).
        first = int(np.searchsorted(g_start, s.min() - longest, side="left"))
        last = int(np.searchsorted(g_start, e.max(), side="left"))
        if last <= first:
            continue
        gs, ge, gv = g_start[first:last], g_end[first:last], g_score[first:last]
        overlap = np.minimum(e[:, None], ge[None]) - np.maximum(s[:, None], gs[None])
        touches = overlap > 0
        any_touch = touches.any(axis=1)
        if rule == "max":
            values = np.where(touches, gv[None], -np.inf).max(axis=1)
        else:
            weights = np.where(touches, overlap, 0.0)
            total = weights.sum(axis=1)
            values = (weights @ gv) / np.where(total > 0, total, 1.0)
        out[rows] = np.where(any_touch, values, fill_value)
    return out


__all__ = ["GUIDANCE_FPS", "GuidanceError", "GuidanceRecord", "guidance_window_scores", "parse_guidance",
           "read_guidance"]
