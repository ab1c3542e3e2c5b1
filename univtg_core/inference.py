"""Grounding on features: the layer every front end calls (video features + a query -> Prediction), at any length.

One call serves a 30-second clip and a two-hour film. With a model, the video runs in windows of the model's
length (`input_spec.window`, half-overlapping), batched in chunks so memory stays bounded, each window
prepared in its own frame; with `coarse_top_k` a cheap first stage (the best clip-to-query cosine in each
window in CLIP's joint space, or guidance scores, or the architecture's own learned window score) picks the
K windows the model reads, and each moment's score fuses its window's score with the model's confidence.
Without a model (zero-shot) the cosine curve over the whole video is the answer; `coarse_top_k` then limits
the moment search to the best windows. The window layer itself lives in `long_video`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from . import long_video as lv
from . import postprocess
from .errors import CheckpointError, QueryError
from .guidance import GuidanceRecord
from .models._contract import GroundingModel, QueryInput, WindowOutput
from .query import Query
from .results import Moment, Prediction
from .similarity import cosine_curve as _cosine_curve
from .similarity import window_max

logger = logging.getLogger(__name__)

window_starts = lv.window_starts  # kept under its old name: tests and callers use it
DEFAULT_CHUNK = 16  # windows per forward: bounds the activations whatever the video's length


def cosine_curve(video_feats: np.ndarray, sentence: np.ndarray) -> np.ndarray:
    """Cosine similarity of every clip with the query embedding (the fast float32 one)."""
    return _cosine_curve(video_feats, sentence)


@dataclass
class WindowRun:
    """What the model gave on the selected windows: absolute candidates and the stitched saliency."""

    spans: np.ndarray  # (M, 2) absolute seconds, unclamped
    scores: np.ndarray  # (M,) model confidence
    owner: np.ndarray  # (M,) grid index of the window each candidate came from
    outputs: WindowOutput  # all rows, in the order the windows were given
    stitcher: lv.SaliencyStitcher
    query: QueryInput


def _batches(grid: lv.WindowGrid, order: np.ndarray, chunk: int):
    """Chunks of window indices (in the given order) with their padded length and whether lengths differ."""
    for first in range(0, len(order), chunk):
        rows = order[first : first + chunk]
        lengths = grid.lengths[rows]
        yield rows, lengths, bool((lengths != lengths.max()).any())


def _window_batch(video: np.ndarray, grid: lv.WindowGrid, rows: np.ndarray) -> np.ndarray:
    """(B, L, D) clips of the given windows, zero-padded to the longest (one gather when all are full)."""
    lengths = grid.lengths[rows]
    longest = int(lengths.max())
    if (lengths == longest).all():
        return video[grid.starts[rows][:, None] + np.arange(longest)]
    batch = np.zeros((len(rows), longest, video.shape[1]), dtype=np.float32)
    for i, w in enumerate(rows.tolist()):
        batch[i, : lengths[i]] = video[grid.starts[w] : grid.ends[w]]
    return batch


def _implements(model, method: str) -> bool:
    """Whether the architecture has its own version of an optional contract method (not the default)."""
    own = getattr(type(model), method, None)
    return own is not None and own is not getattr(GroundingModel, method)


def _call(method, batch: np.ndarray, query: QueryInput, clip_len: float, lengths: np.ndarray, ragged: bool):
    """A contract method on a batch of windows; `lengths=` only when the windows differ in length (the
    architectures with their own grids take it)."""
    return method(batch, query, clip_len, lengths=lengths) if ragged else method(batch, query, clip_len)


def learned_window_scores(model, video: np.ndarray, query: QueryInput, grid: lv.WindowGrid, clip_len: float,
                          chunk: int = DEFAULT_CHUNK) -> np.ndarray | None:
    """The architecture's own first stage over every window (its `window_scores`), or None when it has none."""
    if not _implements(model, "window_scores"):
        return None  # the contract's default: no need to build a batch to hear it
    parts = []
    for rows, lengths, ragged in _batches(grid, np.arange(len(grid)), chunk):
        scores = _call(model.window_scores, _window_batch(video, grid, rows), query, clip_len, lengths, ragged)
        if scores is None:
            return None
        parts.append(np.asarray(scores, dtype=np.float64).reshape(-1))
    return np.concatenate(parts)


def run_windows(model, video: np.ndarray, query: QueryInput, grid: lv.WindowGrid, kept: np.ndarray,
                clip_len: float, chunk: int = DEFAULT_CHUNK) -> WindowRun:
    """The model on the kept windows (in the given order), `chunk` windows per forward."""
    parts = [_call(model.predict_windows, _window_batch(video, grid, rows), query, clip_len, lengths, ragged)
             for rows, lengths, ragged in _batches(grid, kept, chunk)]
    return window_run(_concat(parts), kept, grid, clip_len, query)


def window_run(outputs: WindowOutput, rows: np.ndarray, grid: lv.WindowGrid, clip_len: float,
               query: QueryInput) -> WindowRun:
    """A WindowRun from the model's output on the windows `rows` (output row i is window rows[i])."""
    rows = np.asarray(rows, dtype=np.int64)
    # every row's candidates at once: window-local seconds moved by the window's start, padding left out
    windows = np.asarray(outputs.windows, dtype=np.float64).reshape(len(rows), -1, 2)
    row_scores = np.asarray(outputs.scores, dtype=np.float64).reshape(len(rows), -1)
    offset = (grid.starts[rows] * clip_len)[:, None, None]
    valid = np.ones(row_scores.shape, bool) if outputs.valid is None else np.asarray(outputs.valid, bool)
    owner = np.broadcast_to(rows[:, None], valid.shape)[valid].astype(np.int64)
    stitcher = lv.SaliencyStitcher(grid.n_clips)
    stitcher.add_rows(grid.starts[rows], np.asarray(outputs.saliency, dtype=np.float64), grid.lengths[rows])
    return WindowRun((windows + offset)[valid], row_scores[valid], owner, outputs, stitcher, query)


def _concat(parts: list[WindowOutput]) -> WindowOutput:
    width = max(p.saliency.shape[1] for p in parts)
    k = max(p.scores.shape[1] for p in parts)

    def pad(a: np.ndarray, size: int, axis: int, value) -> np.ndarray:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, size - a.shape[axis])
        return np.pad(a, widths, constant_values=value)

    valid = [p.valid if p.valid is not None else np.ones(p.scores.shape, bool) for p in parts]
    extras = {key: np.concatenate([p.extras[key] for p in parts]) for key in parts[0].extras
              if all(key in p.extras for p in parts) and len({np.shape(p.extras[key])[1:] for p in parts}) == 1}
    any_invalid = any(p.valid is not None for p in parts) or len({p.scores.shape[1] for p in parts}) > 1
    return WindowOutput(
        windows=np.concatenate([pad(np.asarray(p.windows), k, 1, 0.0) for p in parts]),
        scores=np.concatenate([pad(np.asarray(p.scores), k, 1, -np.inf) for p in parts]),
        saliency=np.concatenate([pad(np.asarray(p.saliency, np.float64), width, 1, np.nan) for p in parts]),
        extras=extras,
        valid=np.concatenate([pad(v, k, 1, False) for v in valid]) if any_invalid else None,
    )


def _take(outputs: WindowOutput, index: np.ndarray) -> WindowOutput:
    return WindowOutput(windows=outputs.windows[index], scores=outputs.scores[index],
                        saliency=outputs.saliency[index], extras={k: v[index] for k, v in outputs.extras.items()},
                        valid=None if outputs.valid is None else outputs.valid[index])


def run_model(model, video_feats: np.ndarray, query: Query | QueryInput | np.ndarray, clip_len: float,
              max_window: int | None = None) -> dict:
    """Candidate windows (seconds), their scores and the saliency curve of every window of one video.

    Windows of `max_window` clips (default: the model's `input_spec.window`) every half window, each prepared
    in its own frame by the model; saliency averaged where they overlap. `query` is the model's QueryInput,
    or a Query / token array that the model prepares first. The building block of ground()'s model path.
    """
    video = _check_video(model, video_feats)
    prepared = query if isinstance(query, QueryInput) else model.query_input(query)
    grid = lv.sliding_windows(len(video), max_window or model.input_spec.window or len(video))
    run = run_windows(model, video, prepared, grid, np.arange(len(grid)), clip_len)
    return {"scores": run.scores, "windows": run.spans, "saliency": run.stitcher.curve(), "query": prepared}


def _check_video(model, video_feats: np.ndarray) -> np.ndarray:
    video = np.asarray(video_feats, dtype=np.float32)
    spec = model.input_spec
    if video.shape[1] != spec.video_dim:
        raise CheckpointError(f"the model expects video features {spec.describe_video()} = {spec.video_dim} wide, "
                              f"got {video.shape[1]}; index the video with the features it was trained on")
    return video


def _as_query(query: Query | np.ndarray, query_sentence: np.ndarray | None) -> Query:
    if isinstance(query, Query):
        if query_sentence is None:
            return query
        from dataclasses import replace

        return replace(query, embedding=np.asarray(query_sentence, dtype=np.float32).reshape(-1))
    tokens = np.asarray(query, dtype=np.float32)
    if tokens.ndim not in (1, 2) or tokens.size == 0:
        raise QueryError(f"the query has no tokens (shape {tokens.shape}); give a text or an image")
    return Query(tokens, embedding=query_sentence)


def _guidance(guidance) -> GuidanceRecord | tuple | None:
    if guidance is None or isinstance(guidance, GuidanceRecord):
        return guidance
    if isinstance(guidance, tuple) and len(guidance) == 2:
        return guidance
    raise QueryError("guidance must be one query's GuidanceRecord (read_guidance(path)[qid]) or a pair "
                     f"(windows in seconds (N, 2), scores (N,)); got {type(guidance).__name__}")


def ground(
    video_feats: np.ndarray,
    query: Query | np.ndarray,
    clip_len: float = 2.0,
    model=None,
    query_sentence: np.ndarray | None = None,
    window: int | None = None,
    stride: int | None = None,
    coarse_top_k: int | str | None = None,
    guidance: GuidanceRecord | tuple | None = None,
    *,
    fusion: lv.Fusion = "sum",
    guidance_rule: str = "max",
    duration: float | None = None,
    label: str | None = None,
    nms_threshold: float = 0.7,
    top_k: int = 10,
    summary_budget: float = 0.15,
    chunk: int = DEFAULT_CHUNK,
) -> Prediction:
    """Moments (best first, in seconds, inside the video), saliency curve, highlight and summary for one query
    on one video's clip features, of any length.

    video_feats: (N, D) one row per clip of `clip_len` seconds, as the encoder gave them (not normalised).
    query: a `Query` from the encoder (tokens for the model, joint-space embedding for zero-shot and the first
        stage), or a (T, D) token array (a dataset's), then with `query_sentence=` for zero-shot.
    model: a model from `load_model`, or None for zero-shot (the clips' cosine with the embedding).
    window / stride: clips per window and between window starts (default: the model's `input_spec.window`
        and half of it; zero-shot needs windows only for `coarse_top_k`, 150 s by default). An architecture
        with its own window layout (`window_grid`) uses it instead.
    coarse_top_k: None or "all" runs every window; K runs only the K best windows of the first stage
        (zero-shot: keeps only moments inside them, scored on the film's one scale); "auto" (the front ends'
        default) picks by `long_video.choose_top_k`: the architecture's own K if it has one, else every
        window up to 16 and the 8 best beyond; zero-shot then reads every clip. What was read comes back in
        `Prediction.window_search`.
    guidance: one query's guidance record (`read_guidance(path)[qid]`, or (windows seconds, scores)): the first
        stage, and fused into the moment scores.
    fusion: "sum" (min-max normalised window score + model confidence) or "product".
    label: the query text written into the prediction (default: the Query's text or label).
    chunk: windows per forward pass (memory stays bounded for any number of windows).
    """
    video_feats = np.asarray(video_feats, dtype=np.float32)
    if video_feats.ndim != 2 or len(video_feats) == 0:
        raise ValueError(f"video_feats must be (N, D) with N >= 1; got shape {video_feats.shape}")
    if not clip_len > 0:
        raise ValueError(f"clip_len must be a positive number of seconds; got {clip_len!r}")
    if fusion not in ("sum", "product"):
        raise ValueError(f"fusion must be 'sum' or 'product'; got {fusion!r}")
    choice = lv.parse_coarse_top_k(coarse_top_k)  # OptionError (a ValueError) for anything else
    asked = _as_query(query, query_sentence)
    label = label if label is not None else (asked.text or asked.label)
    guidance = _guidance(guidance)
    n_clips = len(video_feats)
    duration = float(duration) if duration is not None else n_clips * clip_len

    if model is None:
        rows, saliency, read, cut, search = _zero_shot(video_feats, asked, clip_len, duration, window, stride, choice,
                                                       guidance, fusion, guidance_rule, nms_threshold, top_k)
        mode = "zero-shot"
    else:
        rows, saliency, read, cut, search = _with_model(model, video_feats, asked, clip_len, duration, window, stride,
                                                        choice, guidance, fusion, guidance_rule, nms_threshold,
                                                        top_k, chunk)
        mode = "model"

    return Prediction(
        moments=tuple(Moment(float(s), float(e), float(c)) for s, e, c in rows),
        saliency=np.asarray(saliency, dtype=np.float32),
        clip_len=float(clip_len),
        duration=duration,
        highlight=postprocess.top_highlight(saliency, clip_len),
        summary=tuple(float(t) for t in postprocess.summary_points(saliency, clip_len, summary_budget,
                                                                   duration=duration)),
        query=label,
        mode=mode,
        tokens_read=read,
        query_tokens=asked.text_tokens,
        query_cut=cut,
        window_search=search,
    )


def _zero_shot(video, asked: Query, clip_len, duration, window, stride, choice, guidance, fusion,
               guidance_rule, nms_threshold, top_k):
    if asked.embedding is None:
        raise QueryError("zero-shot compares the clips with the query's joint-space embedding, and this query has "
                         "none: pass a Query from the encoder (encoder.encode_query(text)) or query_sentence=; "
                         "token rows are not in CLIP's joint space")
    if asked.embedding.shape[-1] != video.shape[1]:
        raise QueryError(f"zero-shot needs the query embedding in the video's space (width {video.shape[1]}), "
                         f"got width {asked.embedding.shape[-1]}")
    cosine = _cosine_curve(video, asked.embedding)
    saliency = postprocess.smooth_curve(cosine)
    n_clips = len(video)
    read = asked.embedding_tokens
    cut = bool(asked.text_tokens is not None and read is not None and asked.text_tokens > read)
    if not isinstance(choice, int) and guidance is None:  # "auto" and "all": every clip, no windows
        moments = postprocess.zero_shot_moments(saliency, clip_len, duration, nms_threshold, top_k, raw=cosine)
        return moments, saliency, read, cut, None
    size = int(window) if window is not None else max(1, round(lv.DEFAULT_WINDOW_SECONDS / clip_len))
    grid = lv.sliding_windows(n_clips, size, stride)
    coarse_top_k, rule = lv.choose_top_k(choice, len(grid), zero_shot=True)
    firsts, lasts, scores = postprocess.zero_shot_runs(saliency, raw=cosine)
    tiebreak = None
    if guidance is not None:
        window_scores, tiebreak = _guidance_stage(guidance, grid, clip_len, guidance_rule)
        clip_scores = lv.guidance_clip_scores(guidance, n_clips, clip_len)
    else:
        window_scores = lv.cosine_window_scores(cosine, grid)
        clip_scores = None
    if coarse_top_k is not None:
        kept = lv.select_windows(window_scores, coarse_top_k, tiebreak)
        inside = lv.runs_inside(firsts, lasts, lv.covered_clips(grid, kept))
        firsts, lasts, scores = firsts[inside], lasts[inside], scores[inside]
    if clip_scores is not None and len(firsts):
        run_window = window_max(clip_scores, firsts, lasts - firsts + 1)
        scores = lv.fuse(scores, run_window, window_scores, fusion)
    spans = np.stack([firsts * clip_len, (lasts + 1) * clip_len], axis=1).astype(np.float64)
    search = lv.window_search(choice, coarse_top_k, len(grid), rule, "guidance" if guidance is not None else "cosine")
    return postprocess.rank_moments(spans, scores, duration, nms_threshold, top_k), saliency, read, cut, search


def _guidance_stage(guidance, grid: lv.WindowGrid, clip_len: float, rule: str):
    """Window scores by the chosen rule, and (for "max") the overlap-weighted mean to break its ties."""
    scores = lv.guidance_scores(guidance, grid, clip_len, rule)
    return scores, lv.guidance_scores(guidance, grid, clip_len, "mean") if rule == "max" else None


def _with_model(model, video_feats, asked: Query, clip_len, duration, window, stride, choice, guidance,
                fusion, guidance_rule, nms_threshold, top_k, chunk):
    video = _check_video(model, video_feats)
    if asked.tokens is None or len(asked.tokens) == 0:
        raise QueryError("the model reads query tokens and this query has only an embedding; encode the text "
                         "or image with the encoder (encoder.encode_query)")
    limit = getattr(model, "text_token_limit", None)
    if limit is not None and asked.text_rows is not None and asked.text_rows > limit:
        raise QueryError(f"the query's text has {asked.text_rows} token rows; this model reads at most {limit}, "
                         f"encoded from the cut sentence: encode it with encoder.encode_query(text, "
                         f"token_limit=model.text_token_limit) (Grounder does)")
    prepared = model.query_input(asked)
    cut = prepared.rows_read < prepared.rows_given or asked.text_cut
    if prepared.rows_read < prepared.rows_given:
        logger.warning("the model reads %d of the query's %d token rows, cut as its official feature extractor "
                       "cut them", prepared.rows_read, prepared.rows_given)
    n_clips = len(video)

    own = model.window_grid(n_clips)
    if own is not None:
        if window is not None or stride is not None:
            logger.warning("%s uses its own window layout; window=/stride= are ignored", model.architecture)
        grid = lv.WindowGrid.from_array(own, n_clips)
    else:
        grid = lv.sliding_windows(n_clips, window or model.input_spec.window or n_clips, stride)
    coarse_top_k, rule = lv.choose_top_k(choice, len(grid), getattr(model, "default_coarse_top_k", None))

    # The first stage: guidance when given, else the architecture's own window score, else (only when
    # windows are to be chosen) CONE's best cosine in CLIP's joint space.
    window_scores = clip_scores = tiebreak = first_stage = staged = None
    if guidance is not None:
        window_scores, tiebreak = _guidance_stage(guidance, grid, clip_len, guidance_rule)
        clip_scores = lv.guidance_clip_scores(guidance, n_clips, clip_len)
        first_stage = "guidance"
    else:
        # an architecture whose stages share work runs both at once (its own ranking), else the first alone
        staged = model.staged_windows(video, prepared, np.stack([grid.starts, grid.ends], axis=1), coarse_top_k,
                                      clip_len, chunk)
        window_scores = staged[0] if staged is not None else \
            learned_window_scores(model, video, prepared, grid, clip_len, chunk)
        if window_scores is not None:
            clip_scores = lv.spread_to_clips(window_scores, grid)
            first_stage = "model"
        elif coarse_top_k is not None:
            if asked.embedding is None or asked.embedding.shape[-1] != video.shape[1]:
                raise QueryError("coarse_top_k needs the query's joint-space embedding (a Query from the encoder) "
                                 "or guidance scores, to choose the windows the model reads")
            clip_scores = _cosine_curve(video, asked.embedding)
            window_scores = lv.cosine_window_scores(clip_scores, grid)
            first_stage = "cosine"
    if staged is not None:
        ranked = in_time = np.asarray(staged[1], dtype=np.int64)
        run = window_run(staged[2], ranked, grid, clip_len, prepared)
        by_rank = np.arange(len(ranked))
    else:
        ranked = lv.select_windows(window_scores, coarse_top_k, tiebreak) if window_scores is not None else \
            np.arange(len(grid))
        in_time = np.sort(ranked)
        run = run_windows(model, video, prepared, grid, in_time, clip_len, chunk)
        by_rank = np.searchsorted(in_time, ranked)
    saliency = run.stitcher.curve(fill=clip_scores)
    search = lv.window_search(choice, coarse_top_k, len(grid), rule, first_stage)
    logger.debug("model: %s (%s)", search.describe(), rule)

    own_rank = model.rank_moments(_take(run.outputs, by_rank), grid.starts[ranked], clip_len)
    if own_rank is not None:
        spans, scores = own_rank
        spans = np.clip(np.asarray(spans, dtype=np.float64).reshape(-1, 2), 0.0, duration)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        keep = spans[:, 1] - spans[:, 0] > 1e-3
        rows = np.concatenate([spans[keep], scores[keep, None]], axis=1)[:top_k]
        return rows, saliency, prepared.rows_read, cut, search

    spans, scores, owner = run.spans, run.scores, run.owner
    cut_off = lv.cut_by_window_edge(spans, owner, grid, in_time, clip_len)
    spans, scores, owner = spans[~cut_off], scores[~cut_off], owner[~cut_off]
    if window_scores is not None and len(scores):
        scores = lv.fuse(scores, window_scores[owner], window_scores, fusion)
    rows = postprocess.rank_moments(spans, scores, duration, nms_threshold, top_k)
    return rows, saliency, prepared.rows_read, cut, search
