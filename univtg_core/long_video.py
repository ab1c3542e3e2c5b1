"""The window layer of long-video grounding, model-agnostic and pure: the window grid, the coarse first stage,
the selection of the top-K windows, score fusion, the removal of candidates cut by a window's edge, and the
stitching of per-window saliency into one curve over the whole video.

`inference.ground()` chains these with a model's contract methods (`predict_windows`, and `window_grid`,
`window_scores`, `rank_moments` where an architecture has its own), so an architecture never appears here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import OptionError
from .guidance import GuidanceRecord, guidance_window_scores
from .results import WindowSearch
from .similarity import window_max

# Zero-shot has no training window: with coarse_top_k its windows span what the official checkpoints read.
DEFAULT_WINDOW_SECONDS = 150.0
Fusion = Literal["sum", "product"]

# The `coarse_top_k="auto"` rule (what the app and the CLI use by default). A video of at most
# AUTO_ALL_WINDOWS windows has every one read: that is one forward of ground()'s default chunk (16 windows),
# about 20 minutes of 2 s clips at the official 75-clip windows. Beyond that the model reads the AUTO_TOP_K
# best of the first stage, so the cost stops growing with the length; 8 is twice the smallest K (4) whose
# first-stage recall stayed 1.00 at every length and clip length of bench/bench_long_video.py's sweep until
# the planted moments faded to the noise's level (README, *Benchmarks*). An architecture with its own
# retrieval and official K (`default_coarse_top_k` in the model contract, e.g. RGNet's `topk_window`) keeps
# that K at any length.
AUTO_ALL_WINDOWS = 16
AUTO_TOP_K = 8
CoarseTopK = int | str | None
_CHOICES = "'auto', 'all' or a whole number of windows (1 or more)"


@dataclass(frozen=True)
class WindowGrid:
    """Windows [starts, ends) in clips over a video of `n_clips` clips, in the first stage's numbering."""

    starts: np.ndarray  # (W,) int64
    ends: np.ndarray  # (W,) int64
    n_clips: int

    @property
    def lengths(self) -> np.ndarray:
        return self.ends - self.starts

    def __len__(self) -> int:
        return int(self.starts.size)

    @classmethod
    def from_array(cls, grid: np.ndarray, n_clips: int) -> WindowGrid:
        """From a model's (W, 2) [start, end) clips (its `window_grid`), checked."""
        grid = np.asarray(grid, dtype=np.int64).reshape(-1, 2)
        if len(grid) == 0 or (grid[:, 0] < 0).any() or (grid[:, 1] > n_clips).any() or \
                (grid[:, 1] <= grid[:, 0]).any():
            raise ValueError(f"a window grid must hold non-empty [start, end) windows inside [0, {n_clips}); "
                             f"got {grid[:3].tolist()}...")
        return cls(grid[:, 0].copy(), grid[:, 1].copy(), int(n_clips))


def sliding_windows(n_clips: int, window: int, stride: int | None = None) -> WindowGrid:
    """Windows of `window` clips every `stride` clips (default half a window) covering [0, n_clips); the last
    one ends at the video's end, so every window is full length (one window when the video is shorter)."""
    if n_clips < 1:
        raise ValueError("the video has no clips")
    window = int(window)
    if window < 1:
        raise ValueError(f"window must be at least one clip; got {window}")
    window = min(window, n_clips)
    stride = max(1, window // 2) if stride is None else int(stride)
    if stride < 1:
        raise ValueError(f"stride must be at least one clip; got {stride}")
    starts = np.arange(0, n_clips - window + 1, stride, dtype=np.int64)
    if starts[-1] != n_clips - window:
        starts = np.append(starts, n_clips - window)
    return WindowGrid(starts, starts + window, int(n_clips))


def window_starts(n_clips: int, window: int) -> list[int]:
    """Start clips of half-overlapping windows of exactly `window` clips that cover [0, n_clips)."""
    return sliding_windows(n_clips, window).starts.tolist()


# ------------------------------------------------------------------------------ how many windows to read
def parse_coarse_top_k(value: CoarseTopK, name: str = "coarse_top_k") -> int | str:
    """A front end's coarse-to-fine choice as ground() takes it: "auto", "all" (None too) or K >= 1 (an int
    or its digits). Anything else raises OptionError, one line naming `name`, what was given and what is
    accepted."""
    if value is None:
        return "all"
    if isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{name} must be {_CHOICES}; got {value!r}")
    if isinstance(value, (int, np.integer)):
        k = int(value)
    else:
        text = str(value).strip().lower()
        if text in ("auto", "all"):
            return text
        k = int(text) if text.isdigit() else 0
    if k < 1:
        raise OptionError(f"{name} must be {_CHOICES}; got {value!r}")
    return k


def choose_top_k(choice: CoarseTopK, n_windows: int, default_k: int | None = None,
                 zero_shot: bool = False) -> tuple[int | None, str]:
    """The K windows to read (None: every one) for a parsed-or-raw `choice` on a grid of `n_windows`, and the
    rule in words. "auto": the architecture's own K (`default_k`) when it has one; else every window up to
    AUTO_ALL_WINDOWS and the AUTO_TOP_K best beyond; in zero-shot every clip (no windows). "all": every window.
    K: the K best (every window when K >= n_windows)."""
    choice = parse_coarse_top_k(choice)
    if choice == "all":
        return None, "every window, as asked"
    if choice == "auto":
        if zero_shot:
            return None, "auto: zero-shot reads every clip"
        if default_k is not None:
            return (int(default_k) if int(default_k) < n_windows else None), \
                f"auto: the architecture's own K={int(default_k)}"
        if n_windows <= AUTO_ALL_WINDOWS:
            return None, f"auto: {n_windows} window{'s' if n_windows != 1 else ''}, at most {AUTO_ALL_WINDOWS}"
        return AUTO_TOP_K, f"auto: {n_windows} windows, more than {AUTO_ALL_WINDOWS}"
    return (choice if choice < n_windows else None), f"K={choice}, as asked"


def window_search(choice: CoarseTopK, top_k: int | None, n_windows: int, rule: str,
                  first_stage: str | None) -> WindowSearch:
    """The record of what was read, for the Prediction (and the front ends' status lines)."""
    asked = parse_coarse_top_k(choice)
    searched = n_windows if top_k is None else min(int(top_k), n_windows)
    return WindowSearch(searched=searched, total=n_windows, asked=str(asked), rule=rule, first_stage=first_stage)


# -------------------------------------------------------------------------------------------- first stage
def cosine_window_scores(curve: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """CONE's pre-filter: the best clip-to-query cosine inside each window, (W,)."""
    return window_max(curve, grid.starts, grid.lengths)


def guidance_scores(record: GuidanceRecord | tuple, grid: WindowGrid, clip_len: float,
                    rule: Literal["max", "mean"] = "max") -> np.ndarray:
    """Guidance scores (the seed's records, windows in seconds) mapped onto the grid by overlap, (W,)."""
    return guidance_window_scores(record, grid.starts * clip_len, grid.lengths * clip_len, rule=rule)


def guidance_clip_scores(record: GuidanceRecord | tuple, n_clips: int, clip_len: float) -> np.ndarray:
    """Each clip's guidance score: the best guidance window overlapping it, (N,)."""
    starts = np.arange(n_clips, dtype=np.float64) * clip_len
    return guidance_window_scores(record, starts, clip_len, rule="max")


def spread_to_clips(scores: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """Each clip's best score among the windows that hold it (a learned first stage shown per clip), (N,)."""
    out = np.full(grid.n_clips, -np.inf)
    for s, e, value in zip(grid.starts.tolist(), grid.ends.tolist(), np.asarray(scores, np.float64).tolist()):
        np.maximum(out[s:e], value, out=out[s:e])
    finite = np.isfinite(out)
    return np.where(finite, out, out[finite].min() if finite.any() else 0.0)


def select_windows(scores: np.ndarray, top_k: int | None, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Window indices by descending first-stage score, the first `top_k` (None: all). Ties go to the higher
    `tiebreak` (e.g. the overlap-weighted guidance mean: of the windows a high guidance window touches, the
    one it covers most), then to the earlier window."""
    scores = np.asarray(scores, dtype=np.float64)
    second = np.zeros_like(scores) if tiebreak is None else np.asarray(tiebreak, dtype=np.float64)
    order = np.lexsort((np.arange(scores.size), -second, -scores))
    if top_k is None:
        return order
    if int(top_k) < 1:
        raise ValueError(f"coarse_top_k must be at least 1; got {top_k}")
    return order[: int(top_k)]


def covered_clips(grid: WindowGrid, kept: np.ndarray) -> np.ndarray:
    """(N,) bool: the clips inside at least one kept window."""
    marks = np.zeros(grid.n_clips + 1, dtype=np.int64)
    np.add.at(marks, grid.starts[kept], 1)
    np.add.at(marks, grid.ends[kept], -1)
    return np.cumsum(marks[:-1]) > 0


def runs_inside(firsts: np.ndarray, lasts: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(R,) bool: the runs [first, last] whose every clip is covered, from one prefix sum."""
    prefix = np.concatenate(([0], np.cumsum(covered.astype(np.int64))))
    return (prefix[lasts + 1] - prefix[firsts]) == (lasts - firsts + 1)


# ------------------------------------------------------------------------------------------------ fusion
def minmax(values: np.ndarray) -> np.ndarray:
    """Values scaled to [0, 1]; all zeros when they are all equal (they then decide nothing)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(values)


def fuse(confidence: np.ndarray, window_score: np.ndarray, all_window_scores: np.ndarray,
         rule: Fusion = "sum") -> np.ndarray:
    """One score per candidate from its model confidence and its window's first-stage score.

    "sum" (CONE, RGNet): both min-max normalised over the candidates, then added. "product" (the guidance
    model's rule): confidence x the window score min-max normalised over every window of the film, so the
    windows the first stage ranks highest keep their candidates' confidence and weaker ones are damped.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    window_score = np.asarray(window_score, dtype=np.float64)
    if rule == "sum":
        return minmax(confidence) + minmax(window_score)
    if rule == "product":
        lo, hi = float(np.min(all_window_scores)), float(np.max(all_window_scores))
        scaled = (window_score - lo) / (hi - lo) if hi - lo > 1e-12 else np.ones_like(window_score)
        return confidence * scaled
    raise ValueError(f"fusion must be 'sum' or 'product'; got {rule!r}")


# ------------------------------------------------------------------------------------- window boundaries
def cut_by_window_edge(spans: np.ndarray, owner: np.ndarray, grid: WindowGrid, kept: np.ndarray,
                       clip_len: float, margin: float | None = None) -> np.ndarray:
    """(M,) bool: candidates that reach an inner edge of their own window while another kept window holds
    their start (or end) and reaches further past that edge. Such a candidate is a moment seen cut by the
    window, which the other window sees whole (with half-overlapping windows every moment shorter than half
    a window lies inside one): dropping it is what returns a moment across a boundary once, not twice.

    spans: (M, 2) absolute seconds; owner: (M,) index into the grid of the window that predicted each;
    margin: how close to the edge counts as reaching it (default one clip).
    """
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    owner = np.asarray(owner, dtype=np.int64)
    margin = clip_len if margin is None else float(margin)
    video_end = grid.n_clips * clip_len
    w_start, w_end = grid.starts * clip_len, grid.ends * clip_len
    k_start, k_end = w_start[kept], w_end[kept]
    cut = np.zeros(len(spans), dtype=bool)
    if len(kept) < 2 or len(spans) == 0:
        return cut
    s, e = spans[:, 0], spans[:, 1]
    own_s, own_e = w_start[owner], w_end[owner]
    at_end = (e >= own_e - margin) & (own_e < video_end - 1e-9)
    at_start = (s <= own_s + margin) & (own_s > 1e-9)
    # another kept window that holds the candidate's start and goes further than its window's end
    for rows, reach in ((np.flatnonzero(at_end & ~at_start), "end"), (np.flatnonzero(at_start & ~at_end), "start")):
        if rows.size == 0:
            continue
        if reach == "end":
            holds = k_start[None] <= np.maximum(s[rows], 0)[:, None] + 1e-9
            better = holds & (k_end[None] > own_e[rows, None] + 1e-9)
        else:
            holds = k_end[None] >= np.minimum(e[rows], video_end)[:, None] - 1e-9
            better = holds & (k_start[None] < own_s[rows, None] - 1e-9)
        cut[rows] = better.any(axis=1)
    return cut


# ------------------------------------------------------------------------------------------------ saliency
class SaliencyStitcher:
    """Per-window saliency added into one curve; overlaps averaged; clips no window covered filled in."""

    def __init__(self, n_clips: int):
        self.total = np.zeros(n_clips, dtype=np.float64)
        self.count = np.zeros(n_clips, dtype=np.int64)

    def add(self, start: int, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        self.total[start : start + len(values)] += values
        self.count[start : start + len(values)] += 1

    def add_rows(self, starts: np.ndarray, values: np.ndarray, lengths: np.ndarray) -> None:
        """A batch of windows: row i's first `lengths[i]` values from clip `starts[i]` (padding left out)."""
        for start, row, n in zip(np.asarray(starts).tolist(), values, np.asarray(lengths).tolist()):
            self.add(start, row[:n])

    def curve(self, fill: np.ndarray | None = None) -> np.ndarray:
        """The stitched curve. Clips outside every window take `fill` (the first stage's per-clip score)
        mapped onto the model's scale: its mean over the covered clips goes to the model's mean there, and its
        spread (over the covered clips, or over all clips when it is flat there, as window-level guidance
        scores are) to the model's spread, so the curve keeps one meaning across the whole video and the
        clips the first stage ranked lower lie lower."""
        covered = self.count > 0
        out = np.divide(self.total, np.maximum(self.count, 1))
        if covered.all():
            return out
        if fill is None or not covered.any():
            out[~covered] = out[covered].min() if covered.any() else 0.0
            return out
        fill = np.asarray(fill, dtype=np.float64)
        f_in, m_in = fill[covered], out[covered]
        f_std, m_std = float(f_in.std()), float(m_in.std())
        if f_std <= 1e-12:
            f_std = float(fill.std())
        scale = m_std / f_std if f_std > 1e-12 else 0.0
        out[~covered] = m_in.mean() + (fill[~covered] - f_in.mean()) * scale
        return out
