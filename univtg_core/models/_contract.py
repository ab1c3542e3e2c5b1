"""The contract every architecture in the registry fulfils.

ground(), the long-video windows, NMS, summary, the app, the CLI, training and evaluation speak only this, so
none of them branches on the architecture. The official forward of each model stays its `forward`, callable
exactly as the official code calls it; the methods below are the product's view of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FeatureSource:
    """One kind of features and its width: video sources `clip`, `slowfast`, `vgg`, `egovlp`, ...; text
    sources `clip_tokens` (CLIP's per-token `ln_final` rows), `glove` (300-d word vectors), ..."""

    name: str
    dim: int


@dataclass(frozen=True)
class InputSpec:
    """What a checkpoint was trained on; front ends compute exactly these or refuse with one line."""

    video: tuple[FeatureSource, ...]  # in the order the model concatenates them
    text: FeatureSource
    clip_len: float  # seconds per feature row
    window: int  # clips per window at inference (the checkpoint's max_v_l)

    @property
    def video_dim(self) -> int:
        return sum(s.dim for s in self.video)


@dataclass(frozen=True)
class QueryInput:
    """The token rows a model reads for one query, after its own cut and normalisation."""

    tokens: np.ndarray  # (T, D) float32
    rows_read: int  # rows of the encoder's text output the model reads (after the official cut)
    rows_given: int  # rows the encoder gave
    # The sentence embedding as the model's own second stage reads it (normalised as its dataset did), for
    # architectures that re-score candidates with it (RGNet's CLIP matching); None when not given.
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class WindowOutput:
    """Raw candidates of B windows, before any clamping or NMS (that is the product's, not the model's)."""

    windows: np.ndarray  # (B, K, 2) seconds from each window's first clip, unclamped
    scores: np.ndarray  # (B, K) confidence of each candidate
    saliency: np.ndarray  # (B, L) one value per clip
    # Architecture-specific per-window arrays (first axis B) that the same architecture's `rank_moments`
    # reads, e.g. RGNet's proposal and matching scores and its raw (center, width) spans.
    extras: dict = field(default_factory=dict)


class GroundingModel:
    """Mixin for a registered architecture's nn.Module (see univtg_core/models/_registry.py)."""

    architecture: str = ""

    @property
    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    def query_input(self, query) -> QueryInput:
        """The rows this model reads from a `Query`: encoder-made text cut as the official extractor cut it
        (`query.text_rows` says which rows those are), dataset tokens as they are; then normalised as the
        official dataset did."""
        raise NotImplementedError

    def predict_windows(self, video: np.ndarray, query: QueryInput, clip_len: float) -> WindowOutput:
        """video: (B, L, D) raw (not normalised) clip features of B windows of one video, D = input_spec.video_dim.
        Each window is prepared in its own frame (normalisation, tef, positions), as in training."""
        raise NotImplementedError

    def decode_outputs(self, outputs: dict, video_mask, clip_len: float, durations=None) -> WindowOutput:
        """The one decoder of this architecture: the official forward's outputs -> candidates in seconds.
        `predict_windows`, training-time evaluation and the evaluation CLI all go through it."""
        raise NotImplementedError

    def window_scores(self, video: np.ndarray, query: QueryInput, clip_len: float) -> np.ndarray | None:
        """A learned first stage: one relevance score per window (B,), or None when the architecture has none
        (then the coarse stage uses the query embedding's cosine)."""
        return None

    def window_grid(self, n_clips: int) -> np.ndarray | None:
        """The architecture's own window layout over a whole video, (W, 2) int [start, end) clips in the order
        its first stage numbers them, or None (then ground() uses its generic half-overlapping windows).
        Windows may be shorter than `input_spec.window`: pass `lengths` to window_scores / predict_windows."""
        return None

    def rank_moments(self, outputs: WindowOutput, window_starts: np.ndarray,
                     clip_len: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The architecture's own second stage over the candidates of the selected windows: `outputs` holds
        them in first-stage rank order, `window_starts` (B,) their first clips. Returns absolute (N, 2)
        seconds (not clamped: the product clamps) and (N,) scores, best first, after the architecture's fusion
        and NMS; None means ground() fuses and suppresses with its generic rules."""
        return None
