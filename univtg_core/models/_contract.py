"""The contract every architecture in the registry fulfils.

ground(), the long-video windows, NMS, summary, the app, the CLI, training and evaluation speak only this, so
none of them branches on the architecture. The official forward of each model stays its `forward`, callable
exactly as the official code calls it; the methods below are the product's view of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ..query import Query


@dataclass(frozen=True)
class FeatureSource:
    """One kind of features and its width: video sources `clip`, `slowfast`, `vgg`, `egovlp`, ...; text
    sources `clip_tokens` (CLIP's per-token `ln_final` rows), `glove` (300-d word vectors), ..."""

    name: str
    dim: int


def video_sources(names: str | None, total_dim: int, known_dims: dict[str, int] | None = None,
                  default: str = "clip") -> tuple[FeatureSource, ...]:
    """The video sources a checkpoint concatenates, from its option naming them (`v_feat_types`, e.g.
    "slowfast_clip") and the total width its weights read. Sources of a known fixed width take it; the one
    source left takes the rest (`known_dims` adds fixed widths). Without a usable name the width decides:
    2816 is SlowFast (2304) + CLIP (512), as the official QVHighlights features; anything else is one
    `default` source."""
    known = {"slowfast": 2304, **(known_dims or {})}
    parts = [p for p in str(names or "").lower().replace("+", "_").split("_") if p]
    if not parts and total_dim == known["slowfast"] + 512:
        parts = ["slowfast", "clip"]
    if not parts:
        return (FeatureSource(default, total_dim),)
    free = [p for p in parts if p not in known]
    fixed = sum(known[p] for p in parts if p in known)
    rest = total_dim - fixed
    if len(free) > 1 or rest < 0 or (not free and rest != 0) or (free and rest <= 0):
        return (FeatureSource("+".join(parts) if parts else default, total_dim),)
    return tuple(FeatureSource(p, known[p] if p in known else rest) for p in parts)


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

    def describe_video(self) -> str:
        """e.g. "slowfast (2304) + clip (512)": for messages that say which features a checkpoint needs."""
        return " + ".join(f"{s.name} ({s.dim})" for s in self.video) or "none"

    def describe(self) -> str:
        """e.g. "video clip (512) + slowfast (2304), text clip_tokens (512)"."""
        return f"video {self.describe_video()}, text {self.text.name} ({self.text.dim})"


@dataclass(frozen=True)
class FeatureSet:
    """The feature sources a front end can compute, each with its width: a checkpoint is run only when its
    `InputSpec` needs nothing else (`missing`). Front ends build it from their encoders (CLIP gives video
    `clip` and text `clip_tokens`); adding an encoder adds its source here, and no check changes."""

    video: tuple[FeatureSource, ...]
    text: tuple[FeatureSource, ...]

    def missing(self, spec: InputSpec) -> tuple[FeatureSource, ...]:
        """The sources `spec` needs that are not computed here (same name and width), video first."""
        video = tuple(s for s in spec.video if s not in self.video)
        return video + (() if spec.text in self.text else (spec.text,))

    def describe(self) -> str:
        """e.g. "video clip (512), text clip_tokens (512)"."""
        def names(sources: tuple[FeatureSource, ...]) -> str:
            return " or ".join(f"{s.name} ({s.dim})" for s in sources) or "none"

        return f"video {names(self.video)}, text {names(self.text)}"


@dataclass(frozen=True)
class QueryInput:
    """The token rows a model reads for one query, after its own cut and normalisation."""

    tokens: np.ndarray  # (T, D) float32: what the forward reads, prepared
    rows_read: int  # rows the model reads, len(tokens) (after the official cut)
    rows_given: int  # rows the Query held (text and image rows); rows_read < rows_given: the query was cut
    # The sentence embedding as the model's own second stage reads it (normalised as its dataset did), for
    # architectures that re-score candidates with it (RGNet's CLIP matching); None when not given.
    embedding: np.ndarray | None = None


@dataclass(frozen=True)
class WindowOutput:
    """Raw candidates of B windows, before any clamping or NMS (that is the product's, not the model's)."""

    windows: np.ndarray  # (B, K, 2) seconds from each window's first clip, unclamped
    scores: np.ndarray  # (B, K) confidence of each candidate
    saliency: np.ndarray  # (B, L) one value per clip (padded clips of a batch: whatever the model gives)
    # Architecture-specific per-window arrays (first axis B) that the same architecture's `rank_moments`
    # reads, e.g. RGNet's proposal and matching scores and its raw (center, width) spans.
    extras: dict = field(default_factory=dict)
    valid: np.ndarray | None = None  # (B, K) bool: which candidates exist (padding has none); None: all

    def candidates(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        """(K', 2) windows and (K',) scores of one row, padding left out."""
        if self.valid is None:
            return self.windows[row], self.scores[row]
        keep = self.valid[row]
        return self.windows[row][keep], self.scores[row][keep]


class GroundingModel:
    """Mixin for a registered architecture's nn.Module (see univtg_core/models/_registry.py).

    `config` is the architecture's config dataclass (what `Architecture.config_from_checkpoint` builds);
    giving the config an `input_spec` property too lets `load_model` refuse a checkpoint before building it.
    """

    architecture: str = ""
    config: Any = None

    @property
    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    @property
    def text_token_limit(self) -> int | None:
        """The most CLIP text tokens (start + BPE + end) this architecture's official extractor kept, or None
        for all. CLIP's attention is causal, so the end row of a cut sequence differs from the same position
        of the full sentence's rows: front ends ask the encoder for tokens cut at this limit
        (`encode_query(..., token_limit=model.text_token_limit)`), and `ground()` refuses encoder-made text
        rows longer than it rather than read inexact rows."""
        return None

    @property
    def default_coarse_top_k(self) -> int | None:
        """How many windows `coarse_top_k="auto"` reads at any length for an architecture with its own learned
        retrieval and an official K (RGNet: its checkpoint's `topk_window`), or None: then auto is the
        product's generic rule (`long_video.choose_top_k`: every window up to 16, the 8 best beyond)."""
        return None

    def query_text(self, text: str) -> str:
        """The text as this architecture's official text extractor fed it to CLIP (front ends encode this; the
        user's words stay the label). Default: unchanged."""
        return text

    def query_input(self, query: Query | np.ndarray) -> QueryInput:
        """The rows this model reads from a `Query` (a plain array: dataset tokens): encoder-made text cut as
        the official extractor cut it (`query.text_rows` says which rows those are), rows after them (an
        image's) kept, dataset tokens as they are; then normalised as the official dataset did. Raises
        CheckpointError when the token width is not the model's."""
        raise NotImplementedError

    def predict_windows(self, video: np.ndarray, query: QueryInput, clip_len: float) -> WindowOutput:
        """video: (B, L, D) raw (not normalised) clip features of B windows of one video, D = input_spec.video_dim
        (a (L, D) array is one window). Each window is prepared in its own frame (normalisation, tef,
        positions), as in training; runs under inference mode on the model's device; decodes with
        `decode_outputs`. An architecture whose `window_grid` makes windows of different lengths also takes
        `lengths=` (B,) valid clips per zero-padded row; ground() passes it only then."""
        raise NotImplementedError

    def decode_outputs(self, outputs: dict, video_mask, clip_len: float, durations=None) -> WindowOutput:
        """The one decoder of this architecture: the official forward's outputs -> candidates in seconds.
        `predict_windows`, training-time evaluation and the evaluation CLI all go through it.

        video_mask: (B, L) tensor, 1 on real clips. durations: (B,) seconds each row's clips cover, for
        architectures whose spans are fractions of the duration; None means L_b * clip_len (UniVTG always
        scales by L_b * clip_len, the span its anchors cover, and ignores it)."""
        raise NotImplementedError

    def window_scores(self, video: np.ndarray, query: QueryInput, clip_len: float) -> np.ndarray | None:  # noqa: ARG002 - the contract's default: no learned first stage
        """A learned first stage: one relevance score per window (B,), or None when the architecture has none
        (then the coarse stage uses the query embedding's cosine). Takes `lengths=` as predict_windows does."""
        return None

    def window_grid(self, n_clips: int) -> np.ndarray | None:  # noqa: ARG002 - the contract's default: ground() lays the windows
        """The architecture's own window layout over a whole video, (W, 2) int [start, end) clips in the order
        its first stage numbers them, or None (then ground() uses its generic half-overlapping windows).
        Windows may be shorter than `input_spec.window`: pass `lengths` to window_scores / predict_windows."""
        return None

    def staged_windows(self, video: np.ndarray, query: QueryInput, grid: np.ndarray,  # noqa: ARG002 - the contract's default: the stages run apart
                       top_k: int | None, clip_len: float, chunk: int):  # noqa: ARG002 - as above
        """Both stages over a whole video in one call, for an architecture whose first stage computes what its
        second reuses: video (N, D) all clips, grid (W, 2) [start, end) its `window_grid`. Returns (W,) window
        scores, the kept window indices best first (the first `top_k`, None: all) and their candidates
        (`WindowOutput`, rows in that order); None means ground() calls `window_scores` on every window, then
        `predict_windows` on the kept ones."""
        return None

    def rank_moments(self, outputs: WindowOutput, window_starts: np.ndarray,  # noqa: ARG002 - the contract's default: no second stage of its own
                     clip_len: float) -> tuple[np.ndarray, np.ndarray] | None:  # noqa: ARG002 - as above
        """The architecture's own second stage over the candidates of the selected windows: `outputs` holds
        them in first-stage rank order, `window_starts` (B,) their first clips. Returns absolute (N, 2)
        seconds (not clamped: the product clamps) and (N,) scores, best first, after the architecture's fusion
        and NMS; None means ground() fuses and suppresses with its generic rules."""
        return None
