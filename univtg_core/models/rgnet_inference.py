"""RGNet's long-video inference (rgnet/inference.py, MAD and Ego4D-NLQ branches) as small pure functions.

The official pipeline for one query over a whole video:

1. `window_grid`: windows of `max_v_l` frames with stride `int(max_v_l / 2)`; window i covers
   [max((i-1)s, 0), min((i-1)s + max_v_l, n)), so the first one is a half window; ceil(n / s) + 1 windows.
2. Every window runs through the model; the window score is sigmoid(prob_soft) and windows are ranked by it
   (`torch.sort`, descending); the first `topk_window` are kept (`rank_windows`). Without a retrieval token
   the official code ranks by CONE's pre-filter instead (`prefilter_window_scores`).
3. Per kept window and decoder query: proposal score = P(foreground) x window score (`proposal_scores`);
   matching score = sum of the top-3 frame-sentence cosines inside the span (`clip_matching_scores`; Ego4D
   passes the frames through the adapter and multiplies by the window score).
4. Rows [start s, end s, proposal, matching] per window, sorted by proposal, rounded to 4 decimals
   (`window_rows`); per query, proposal and matching min-max normalised over all rows and summed, rows keyed by
   their rounded span (`score_fusion`); sorted, the first `max_before_nms` go through NMS on intersection over
   hull at `nms_thd`, `max_after_nms` kept (`suppress`).

`official_inference` chains these exactly as `eval_epoch` does (padded batches, the official CLIP-matching
slice of the padding, several queries per batch). The product's version (`staged_windows`, what ground() and
`long_video_moments` run) computes the same with no work done twice: each window is encoded once
(`first_stage`), the retrieval score needs only the token's row of the last encoder layer, and only the kept
windows are decoded, from their kept encodings; it clips the matching slices to each window's valid length,
and `long_video_moments` clamps the moments to the video.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import QueryError
from ._contract import WindowOutput
from .rgnet import EncodedWindows


# ------------------------------------------------------------------------------------------- first stage
def window_grid(n_frames: int, window: int) -> np.ndarray:
    """(W, 2) int64 [start, end) frames of the official windows over a video of `n_frames` frames."""
    stride = int(window / 2)
    if n_frames < 1:
        raise ValueError("the video has no features")
    if stride < 1:
        raise ValueError(f"RGNet windows need max_v_l >= 2, got {window}")
    count = math.ceil(n_frames / stride) + 1
    return np.array([[max((i - 1) * stride, 0), min((i - 1) * stride + window, n_frames)] for i in range(count)],
                    dtype=np.int64)


def rank_windows(window_scores: torch.Tensor | np.ndarray, top_k: int | None = None) -> np.ndarray:
    """Window indices by descending score (the official `torch.sort(descending=True)`), the first `top_k`."""
    scores = torch.as_tensor(np.asarray(window_scores, dtype=np.float32) if isinstance(window_scores, np.ndarray)
                             else window_scores)
    order = torch.sort(scores, descending=True)[1].cpu().numpy()
    return order if top_k is None else order[:top_k]


def prefilter_window_scores(frames: torch.Tensor, sentence: torch.Tensor, grid: np.ndarray,
                            adapt: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """CONE's first stage, used by the official code when the checkpoint has no retrieval token: the best
    cosine between the (adapted) L2-normalised frames and the sentence inside each window."""
    feats = frames / (frames.norm(dim=-1, keepdim=True) + 1e-5)
    if adapt is not None:
        feats = adapt(feats)
        feats = feats / feats.norm(dim=-1, keepdim=True)
    per_frame = feats @ sentence
    return torch.stack([per_frame[s:e].max() for s, e in grid])


# ------------------------------------------------------------------------------------------ second stage
def proposal_scores(outputs: dict, winret_neg_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, Q) P(foreground) x window score (just P(foreground) for --winret_neg_loss checkpoints) and the
    (B,) window score sigmoid(prob_soft), or None when the model has no retrieval token."""
    prob = F.softmax(outputs["pred_logits"].float(), -1)[..., 0]
    if outputs.get("prob_soft") is None:
        return prob, None
    window = outputs["prob_soft"].float().sigmoid()
    return (prob if winret_neg_loss else prob * window), window[:, 0]


def _normalise_rows(feats: torch.Tensor) -> torch.Tensor:
    return feats / feats.norm(dim=-1, keepdim=True)  # no epsilon: a zero row becomes NaN, as officially


def clip_matching_scores(frames: torch.Tensor, lengths: torch.Tensor, spans_cxw: torch.Tensor,
                         sentence: torch.Tensor, adapt: Callable[[torch.Tensor], torch.Tensor] | None = None,
                         official_padding: bool = False) -> torch.Tensor:
    """(B, Q) CLIP-matching score of each predicted span: frames [max(floor(start), 0), ceil(end)) of the span
    in frames of the valid length, (adapted and) normalised, the k = min(#frames, 3) most similar to the
    normalised sentence summed and dotted with it; an empty span scores 0.

    official_padding: slice the zero-padded rows as the official code does (a span past a shorter window's
    valid length reads padding: NaN without adapter); otherwise the slice stops at the valid length.
    """
    b, length, _ = frames.shape
    text = sentence / sentence.norm(dim=1, keepdim=True)
    duration = lengths.to(frames.dtype)
    xx = torch.stack([spans_cxw[..., 0] - 0.5 * spans_cxw[..., 1], spans_cxw[..., 0] + 0.5 * spans_cxw[..., 1]], -1)
    proposal = xx * duration[:, None, None]
    start = F.relu(torch.floor(proposal[..., 0])).to(torch.int64)
    end = torch.ceil(proposal[..., 1]).to(torch.int64)
    limit = torch.full_like(end, length) if official_padding else lengths.to(torch.int64)[:, None].expand_as(end)
    end = torch.minimum(end, limit)
    feats = _normalise_rows(adapt(frames) if adapt is not None else frames)
    sims = torch.einsum("bld,bd->bl", feats, text)
    position = torch.arange(length, device=frames.device)
    inside = (position >= start[..., None]) & (position < end[..., None])  # (B, Q, L)
    count = inside.sum(-1)
    k = min(3, length)
    masked = sims[:, None, :].expand_as(inside).masked_fill(~inside, float("-inf"))
    top = masked.topk(k, dim=-1).indices  # (B, Q, k)
    rows = torch.gather(feats[:, None].expand(-1, top.shape[1], -1, -1), 2,
                        top[..., None].expand(-1, -1, -1, feats.shape[-1]))  # (B, Q, k, D)
    taken = (torch.arange(k, device=frames.device) < count[..., None])[..., None]
    pooled = torch.where(taken, rows, torch.zeros((), dtype=rows.dtype, device=rows.device)).sum(2)
    return torch.einsum("bqd,bd->bq", pooled, text)


def ground_truth_matching(frames: torch.Tensor, spans: torch.Tensor, sentence: torch.Tensor,
                          adapt: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """(B, B) score of sample b's ground-truth frames [start, end) against every sample's sentence (the
    adapter loss): per sentence, its top-3 frames of the span summed and dotted with it."""
    text = sentence / sentence.norm(dim=1, keepdim=True)
    rows = []
    for feat, (s, e) in zip(frames, spans.tolist()):
        clip = feat[s:e]
        clip = _normalise_rows(adapt(clip) if adapt is not None else clip)
        top = torch.topk(clip @ text.t(), min(clip.shape[0], 3), dim=0).indices  # (k, B)
        pooled = clip[top].sum(0)  # (B, D): sentence t's top frames
        rows.append((pooled * text).sum(-1))
    return torch.vstack(rows)


def window_rows(spans_cxw: torch.Tensor, proposal: torch.Tensor, matching: torch.Tensor, start: int, length: int,
                clip_len: float, topk_span: int = 5) -> list[list[float]]:
    """The official rows of one window: [start s, end s, proposal, matching] (seconds in float32, not clamped),
    sorted by proposal (or by proposal + matching and cut, when topk_span < #queries), rounded to 4 decimals."""
    return windows_rows(torch.as_tensor(spans_cxw)[None], torch.as_tensor(proposal)[None],
                        torch.as_tensor(matching)[None], [start], [length], clip_len, topk_span)[0]


def windows_rows(spans_cxw, proposal, matching, starts, lengths, clip_len: float,
                 topk_span: int = 5) -> list[list[list[float]]]:
    """`window_rows` of B windows at once ((B, Q, 2) spans, (B, Q) scores, (B,) first frames and lengths): the
    same float32 operations, element by element, as for each window alone."""
    spans_cxw = torch.as_tensor(spans_cxw, dtype=torch.float32)
    xx = torch.stack([spans_cxw[..., 0] - 0.5 * spans_cxw[..., 1], spans_cxw[..., 0] + 0.5 * spans_cxw[..., 1]], -1)
    lengths = torch.as_tensor(np.asarray(lengths, dtype=np.int64))[:, None, None]
    starts = torch.as_tensor(np.asarray(starts, dtype=np.int64))[:, None, None]
    seconds = (xx * lengths + starts) * float(clip_len)
    table = torch.cat([seconds, torch.as_tensor(proposal, dtype=torch.float32)[..., None],
                       torch.as_tensor(matching, dtype=torch.float32)[..., None]], dim=-1).tolist()
    out = []
    for rows in table:
        if topk_span < len(rows):
            rows = sorted(rows, key=lambda x: x[2] + x[3], reverse=True)[:topk_span]
        else:
            rows = sorted(rows, key=lambda x: x[2], reverse=True)
        out.append([[float(f"{e:.4f}") for e in row] for row in rows])
    return out


def normalize_score(values: list[float]) -> list[float]:
    """Min-max to [0, 1]; unchanged when all equal (the official `normalize_score`)."""
    low, high = min(values), max(values)
    if low == high:
        return list(values)
    return [(v - low) / (high - low) for v in values]


def score_fusion(rows: Sequence[Sequence[float]]) -> dict[tuple[float, float], list[float]]:
    """{(start, end): [proposal, matching, fusion]}: both scores min-max normalised over all rows, summed;
    rows with the same rounded span collapse (the last wins, at the first one's position)."""
    fused: dict[tuple[float, float], list[float]] = {}
    if not rows:
        return fused
    proposal = normalize_score([r[2] for r in rows])
    matching = normalize_score([r[3] for r in rows])
    for row, p, m in zip(rows, proposal, matching):
        fused[(row[0], row[1])] = [row[2], row[3], p + m]
    return fused


def hull_overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the hull of two [start, end] spans (the official NMS overlap; 0 for an empty hull)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    hull = max(a[1], b[1]) - min(a[0], b[0])
    return 0.0 if hull == 0 else inter / hull


def temporal_nms(predictions: list[list[float]], nms_thd: float, max_after_nms: int = 100) -> list[list[float]]:
    """Greedy NMS on [start, end, score] rows (the official `utils/temporal_nms.py`): best first, a row is
    dropped when its overlap with a kept one is > nms_thd. The overlaps of each kept row with all the others
    are computed at once, in float64 with Python's own min / max choices (`hull_overlap`), so the rows kept
    are the official loop's."""
    if len(predictions) == 1:
        return predictions
    ranked = sorted(predictions, key=lambda x: x[2], reverse=True)
    start = np.array([r[0] for r in ranked], dtype=np.float64)
    end = np.array([r[1] for r in ranked], dtype=np.float64)
    alive = np.ones(len(ranked), dtype=bool)
    kept: list[int] = []
    while alive.sum() > 1 and len(kept) < max_after_nms:
        best = int(np.argmax(alive))  # the first row still in the running
        alive[best] = False
        s, e = start[best], end[best]
        # max(a, b) is a unless b > a, min(a, b) a unless b < a (as hull_overlap(best, row) computes them)
        inter = np.where(end < e, end, e) - np.where(start > s, start, s)
        inter = np.where(inter > 0.0, inter, 0.0)
        hull = np.where(end > e, end, e) - np.where(start < s, start, s)
        with np.errstate(divide="ignore", invalid="ignore"):
            overlap = np.where(hull == 0, 0.0, inter / hull)
        alive &= overlap <= nms_thd
        kept.append(best)
    if len(kept) < max_after_nms and alive.any():
        kept.append(int(np.argmax(alive)))
    return [[ranked[i][0], ranked[i][1], ranked[i][2]] for i in kept]


@dataclass(frozen=True)
class RankedRows:
    """One query's final rows [start, end, proposal, matching, fusion] for each ranking the official code writes
    (fusion is the submission; proposal-only and matching-only are its ablations)."""

    fusion: list[list[float]]
    proposal: list[list[float]]
    matching: list[list[float]]
    fused: dict = field(default_factory=dict)  # the score_fusion dict, before NMS


def suppress(fused: dict[tuple[float, float], list[float]], index: int, nms_thd: float = 0.5,
             max_before_nms: int = 200, max_after_nms: int = 100) -> list[list[float]]:
    """The official `post_processing_mr_nms`: rank the fused rows by score `index` (0 proposal, 1 matching,
    2 fusion; stable), NMS the first `max_before_nms` (nms_thd -1: none), rows [start, end, p, m, fusion]."""
    ranked = sorted(([k[0], k[1], v[index]] for k, v in fused.items()), key=lambda x: x[2], reverse=True)
    if nms_thd == -1:
        return [[r[0], r[1]] + fused[(r[0], r[1])] for r in ranked][:max_after_nms]
    kept = temporal_nms(ranked[:max_before_nms], nms_thd=nms_thd, max_after_nms=max_after_nms)
    return [[r[0], r[1]] + fused[(r[0], r[1])] for r in kept]


def rank_rows(rows: list[list[float]], nms_thd: float = 0.5, max_before_nms: int = 200,
              max_after_nms: int = 100) -> RankedRows:
    """Fusion and NMS of one query's rows (all its kept windows, in retrieval order)."""
    fused = score_fusion(rows)
    return RankedRows(*(suppress(fused, i, nms_thd, max_before_nms, max_after_nms) for i in (2, 0, 1)), fused=fused)


def rank_window_candidates(outputs: WindowOutput, window_starts: np.ndarray, clip_len: float,
                           config) -> tuple[np.ndarray, np.ndarray]:
    """The contract's `rank_moments` for RGNet: official rows of every window of `outputs` (in rank order),
    fused and suppressed. Without matching scores (no sentence embedding) fusion uses the proposal alone."""
    extras = outputs.extras
    proposal = extras["proposal"]
    matching = extras.get("matching", np.zeros_like(proposal))
    per_window = windows_rows(extras["spans_cxw"], proposal, matching, window_starts, extras["lengths"], clip_len,
                              config.topk_span) if len(proposal) else []
    rows = [row for window in per_window for row in window]
    ranked = suppress(score_fusion(rows), 2, config.nms_thd, config.max_before_nms, config.max_after_nms)
    if not ranked:
        return np.zeros((0, 2)), np.zeros(0)
    table = np.asarray(ranked, dtype=np.float64)
    return table[:, :2], table[:, 4]


# ------------------------------------------------------------------------------------- official pipeline
@dataclass(frozen=True)
class OfficialQueryResult:
    """What the official evaluation computes for one query."""

    window_order: list[int]  # all windows by retrieval score (query_id2windowidx)
    window_scores: np.ndarray  # (W,) sigmoid(prob_soft) per window index (or the pre-filter score)
    kept_windows: list[int]  # the first topk_window of window_order
    window_rows: list[list[list[float]]]  # rows of each kept window (mr_res pred_relevant_windows)
    ranked: RankedRows


def _pad(rows: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad to the longest (the official pad_sequences_1d); mask 1 = valid."""
    length = max(len(r) for r in rows)
    out = np.zeros((len(rows), length) + rows[0].shape[1:], dtype=np.float32)
    mask = np.zeros((len(rows), length), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)


def _prepare_query(tokens: np.ndarray, sentence: np.ndarray, config) -> tuple[np.ndarray, np.ndarray]:
    """The official dataset: the first max_q_l token rows, normalised (eps 1e-5); the sentence normalised."""
    tokens = np.asarray(tokens, dtype=np.float32)[: config.max_q_l]
    if config.normalize_text:
        tokens = tokens / (np.linalg.norm(tokens, axis=-1, keepdims=True) + 1e-5)
    sentence = np.asarray(sentence, dtype=np.float32).reshape(-1)
    return tokens, sentence / (np.linalg.norm(sentence) + 1e-5)


@torch.no_grad()
def official_inference(model, video_feats: np.ndarray, queries: Sequence[tuple[np.ndarray, np.ndarray]], *,
                       topk_window: int | None = None, eval_bsz: int = 1,
                       appearance_feats: np.ndarray | None = None) -> list[OfficialQueryResult]:
    """`eval_epoch` for queries on one video: `queries` are (tokens (T, D), sentence (E,)) as the feature files
    store them, `video_feats` (N, D) the raw features (`appearance_feats`, if different, for CLIP matching).
    `eval_bsz` queries share a forward batch, as the official loader batches them (with the official mask
    layout the rows of a batch then interact, as they do there)."""
    config = model.config
    topk = config.topk_window if topk_window is None else topk_window
    step = max(1, int(config.input_fps_reduction))
    motion = np.asarray(video_feats, dtype=np.float32)[::step]
    appear = motion if appearance_feats is None else np.asarray(appearance_feats, dtype=np.float32)[::step]
    grid = window_grid(len(motion), config.max_v_l)
    prepared = [_prepare_query(t, s, config) for t, s in queries]
    results: list[OfficialQueryResult] = []
    for first in range(0, len(prepared), eval_bsz):
        results += _official_batch(model, motion, appear, grid, prepared[first:first + eval_bsz], topk)
    return results


def _official_batch(model, motion, appear, grid, batch, topk) -> list[OfficialQueryResult]:
    config = model.config
    device = next(model.parameters()).device
    if config.qddetr:  # --ret_eval: every window goes through the model, which ranks them
        prefilter = [None] * len(batch)
        windows = [np.arange(len(grid)) for _ in batch]
    else:  # no retrieval token: CONE's pre-filter ranks the windows, only the first topk are run
        adapt = model.adapt_appearance if config.adapter_module == "linear" else None
        prefilter = [prefilter_window_scores(torch.from_numpy(appear).to(device), torch.from_numpy(s).to(device),
                                             grid, adapt).cpu() for _, s in batch]
        windows = [rank_windows(p, topk) for p in prefilter]
    owners = np.concatenate([np.full(len(w), q) for q, w in enumerate(windows)])
    rows_windows = np.concatenate(windows)
    vid, vid_mask = _pad([motion[s:e] for s, e in grid[rows_windows]])
    app, app_mask = _pad([appear[s:e] for s, e in grid[rows_windows]])
    txt, txt_mask = _pad([batch[q][0] for q in owners])
    sentences = torch.from_numpy(np.stack([batch[q][1] for q in owners]))
    out = model(src_txt=txt.to(device), src_txt_mask=txt_mask.to(device), src_vid_motion=vid.to(device),
                src_vid_motion_mask=vid_mask.to(device))

    orders, scores, selected = [], [], []
    for q in range(len(batch)):
        rows = np.flatnonzero(owners == q)
        if config.qddetr:
            score = out["prob_soft"][rows, 0].sigmoid()
            order = torch.sort(score, descending=True)[1].cpu().numpy()
            orders.append(order)
            scores.append(score.cpu().numpy())
            selected.append(rows[order[:topk]])
        else:
            orders.append(rank_windows(prefilter[q]))
            scores.append(prefilter[q].numpy())
            selected.append(rows)
    flat = np.concatenate(selected)
    prob = F.softmax(out["pred_logits"][flat], -1)[..., 0]
    matching = model.forward_clip_matching(sentences[flat].to(device), app[flat].to(device),
                                           app_mask[flat].to(device), proposal=out["pred_spans"][flat])
    if out["prob_soft"] is None:
        # the official code multiplies by the sigmoid of the sorted pre-filter scores of the kept windows
        kept_scores = np.concatenate([scores[q][orders[q][:topk]] for q in range(len(batch))])
        proposal = prob * torch.from_numpy(kept_scores.copy()).to(prob)[:, None].sigmoid()
    else:
        if config.dset_name == "ego4d":
            matching = matching * out["prob_soft"][flat].sigmoid()
        proposal = prob if config.winret_neg_loss else prob * out["prob_soft"][flat].sigmoid()

    results, n = [], 0
    for q in range(len(batch)):
        per_window = []
        for row in selected[q]:
            s, e = grid[rows_windows[row]]
            per_window.append(window_rows(out["pred_spans"][row].cpu(), proposal[n].cpu(), matching[n].cpu(), int(s),
                                          int(e - s), config.clip_length, config.topk_span))
            n += 1
        rows = [r for w in per_window for r in w]
        results.append(OfficialQueryResult(
            window_order=[int(i) for i in orders[q]], window_scores=scores[q],
            kept_windows=[int(rows_windows[r]) for r in selected[q]], window_rows=per_window,
            ranked=rank_rows(rows, config.nms_thd, config.max_before_nms, config.max_after_nms)))
    return results


# --------------------------------------------------------------------------------- product (the contract)
def _concat_outputs(parts: list[WindowOutput]) -> WindowOutput:
    width = max(p.saliency.shape[1] for p in parts)
    saliency = np.concatenate([np.pad(p.saliency, ((0, 0), (0, width - p.saliency.shape[1])),
                                      constant_values=np.nan) for p in parts])
    extras = {k: np.concatenate([p.extras[k] for p in parts]) for k in parts[0].extras}
    return WindowOutput(windows=np.concatenate([p.windows for p in parts]),
                        scores=np.concatenate([p.scores for p in parts]), saliency=saliency, extras=extras)


def _take(outputs: WindowOutput, index: np.ndarray) -> WindowOutput:
    return WindowOutput(windows=outputs.windows[index], scores=outputs.scores[index],
                        saliency=outputs.saliency[index], extras={k: v[index] for k, v in outputs.extras.items()})


def _padded_windows(video: np.ndarray, grid: np.ndarray, rows: np.ndarray, length: int):
    """(B, length, D) zero-padded frames of the windows `rows` and their (B,) lengths."""
    lengths = grid[rows, 1] - grid[rows, 0]
    batch = np.zeros((len(rows), length, video.shape[1]), dtype=np.float32)
    for i, (s, e) in enumerate(grid[rows].tolist()):
        batch[i, : e - s] = video[s:e]
    return batch, lengths


def _window_inputs(model, video: np.ndarray, grid: np.ndarray, rows: np.ndarray, length: int, query) -> dict:
    frames, lengths = _padded_windows(video, grid, rows, length)
    return model._batch(frames, query, lengths)


@torch.no_grad()
def first_stage(model, video: np.ndarray, query, grid: np.ndarray, keep: int | None = 0,
                chunk: int = 8) -> tuple[np.ndarray, dict]:
    """The learned window score (sigmoid(prob_soft), float32) of every window, `chunk` windows per forward, each
    padded to the longest window as the official evaluation batches them; and the encodings
    (`RGNet.encode_windows`) of the windows that may still rank among the first `keep` (None: all, 0: none),
    so the second stage decodes them without encoding them again. Memory stays bounded: at most
    keep + chunk encodings are held (more only on exact ties)."""
    length = int((grid[:, 1] - grid[:, 0]).max())
    scores = np.zeros(len(grid), dtype=np.float32)
    cache: dict = {}
    for first in range(0, len(grid), chunk):
        rows = np.arange(first, min(first + chunk, len(grid)))
        batch = _window_inputs(model, video, grid, rows, length, query)
        encoded = model.encode_windows(**batch)
        scores[rows] = torch.sigmoid(model.retrieval_from(encoded)[:, 0]).cpu().numpy()
        if keep == 0:
            continue
        cache.update({int(w): encoded.take(torch.tensor([i], device=encoded.src.device)) for i, w in enumerate(rows)})
        if keep is not None and len(cache) > keep:
            seen = scores[: rows[-1] + 1]
            bar = np.sort(seen)[-keep]  # a window below the keep-th best seen so far can no longer be kept
            cache = {w: e for w, e in cache.items() if not scores[w] < bar}
    return scores, cache


@dataclass(frozen=True)
class StagedWindows:
    """Both stages over a whole video: every window's first-stage score, the ranking and the kept windows'
    candidates."""

    scores: np.ndarray  # (W,) first-stage score per window index
    order: np.ndarray  # all windows, best first (torch.sort descending, the official ranking)
    kept: np.ndarray  # the first top_k of `order`
    outputs: WindowOutput  # the kept windows' candidates, in `kept` order


@torch.no_grad()
def staged_windows(model, video: np.ndarray, query, grid: np.ndarray, top_k: int | None, clip_len: float,
                   chunk: int = 8) -> StagedWindows | None:
    """RGNet's official two stages with no work done twice: the first stage encodes every window once and
    scores it with the retrieval token; the top `top_k` (None: all) are decoded from their kept encodings (the
    decoder never runs on a discarded window); candidates as `predict_windows` gives them. Without a
    retrieval token the official pre-filter (CONE's best frame cosine) ranks the windows, and only the kept
    ones are encoded; with neither (no sentence embedding) None."""
    video = np.asarray(video, dtype=np.float32)
    grid = np.asarray(grid, dtype=np.int64).reshape(-1, 2)
    prefilter = None
    if model.config.qddetr:
        scores, cache = first_stage(model, video, query, grid, top_k, chunk)
    elif query.embedding is None:
        return None
    else:
        device = next(model.parameters()).device
        adapt = model.adapt_appearance if model.config.adapter_module == "linear" else None
        prefilter = prefilter_window_scores(torch.from_numpy(video).to(device),
                                            torch.from_numpy(query.embedding).to(device), grid, adapt).cpu()
        scores, cache = prefilter.numpy(), {}
    order = rank_windows(torch.from_numpy(scores))
    kept = order if top_k is None else order[:top_k]
    in_time = np.sort(kept)  # decoded in temporal order (the order of the encodings), then put in rank order
    length = int((grid[:, 1] - grid[:, 0]).max())
    parts = []
    for first in range(0, len(in_time), chunk):
        rows = in_time[first:first + chunk]
        batch = _window_inputs(model, video, grid, rows, length, query)
        encoded = EncodedWindows.cat([cache[int(w)] for w in rows]) if cache else model.encode_windows(**batch)
        parts.append(model.window_output(batch, model.outputs_from(encoded), query, clip_len,
                                         None if prefilter is None else prefilter[rows]))
    outputs = _take(_concat_outputs(parts), np.searchsorted(in_time, kept))
    return StagedWindows(scores=scores, order=order, kept=kept, outputs=outputs)


@dataclass(frozen=True)
class LongVideoMoments:
    """Ranked moments over a whole video and what produced them."""

    windows: np.ndarray  # (N, 2) seconds, clamped to the video, best first
    scores: np.ndarray  # (N,) fusion scores
    window_order: np.ndarray  # all windows by first-stage score
    window_scores: np.ndarray  # (W,) first-stage score per window index
    grid: np.ndarray  # (W, 2) [start, end) clips
    outputs: WindowOutput  # the kept windows' candidates, in rank order


def clamp_moments(windows: np.ndarray, scores: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Moments clipped to [0, duration]; those left empty are dropped, the order is kept."""
    windows = np.clip(np.asarray(windows, dtype=np.float64).reshape(-1, 2), 0.0, duration)
    keep = windows[:, 1] > windows[:, 0]
    return windows[keep], np.asarray(scores, dtype=np.float64)[keep]


def long_video_moments(model, video_feats: np.ndarray, query, clip_len: float | None = None,
                       coarse_top_k: int | None = None, chunk: int = 8) -> LongVideoMoments:
    """RGNet over a whole video as `ground()` runs it: its window grid, its learned window scores, its candidates
    on the top `coarse_top_k` windows (None: all; `staged_windows`) and its own fusion and NMS; then the
    moments are clamped to the video."""
    clip_len = model.input_spec.clip_len if clip_len is None else clip_len
    video = np.asarray(video_feats, dtype=np.float32)
    grid = model.window_grid(len(video))
    staged = staged_windows(model, video, model.query_input(query), grid, coarse_top_k, clip_len, chunk)
    if staged is None:
        raise QueryError("this RGNet checkpoint has no learned window score: the query needs its sentence "
                         "embedding to pre-filter the windows")
    windows, fused = model.rank_moments(staged.outputs, grid[staged.kept, 0], clip_len)
    windows, fused = clamp_moments(windows, fused, len(video) * clip_len)
    return LongVideoMoments(windows=windows, scores=fused, window_order=staged.order, window_scores=staged.scores,
                            grid=grid, outputs=staged.outputs)
