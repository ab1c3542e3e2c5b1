"""RGNet's fast long-video path (every window encoded once, the retrieval token scored from its own row, the
decoder only on the top K, decoded from the kept encodings) against a straightforward reference: every window
through the public forward, unpadded, then the official pure functions. A long case in seconds: 43
windows of three lengths (the half first window, full ones, two shorter at the end), K = 9 of them, chunks of 4
so that encodings are dropped while the first stage runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rgnet_checkpoints import official_checkpoint

from univtg_core.inference import ground
from univtg_core.models.rgnet import RGNet, RGNetConfig
from univtg_core.models.rgnet_inference import (
    clip_matching_scores,
    first_stage,
    proposal_scores,
    rank_rows,
    rank_windows,
    staged_windows,
    temporal_nms,
    window_grid,
    windows_rows,
)
from univtg_core.query import Query

# MAD's flags (train_mad.sh) at a small size; dabdetr needs hidden 256
LONG = RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=256, nheads=8, enc_layers=2,
                   dec_layers=2, dim_feedforward=64, num_queries=5, max_q_l=8, max_v_l=24, qddetr=True, dabdetr=True,
                   gumbel=True, gumbel_2=True, gumbel_3=True, gumbel_single_proj=True, gumbel_eps=0.3,
                   pos_temperature=100.0, clip_length=0.2)
N_FRAMES, K, CHUNK = 500, 9, 4


@pytest.fixture(scope="module")
def case():
    model = RGNet(LONG)
    model.load_state_dict(official_checkpoint(LONG, seed=3)["model"])
    model.eval()
    rng = np.random.default_rng(8)
    video = (rng.normal(size=(N_FRAMES, LONG.v_motion_feat_dim)) + 0.2).astype(np.float32)
    query = Query(rng.normal(size=(6, LONG.t_feat_dim)).astype(np.float32),
                  embedding=rng.normal(size=LONG.v_appear_feat_dim).astype(np.float32))
    return model, video, query


@torch.no_grad()
def reference(model: RGNet, video: np.ndarray, query: Query, top_k: int | None):
    """Window scores, ranking and the clamped ranked moments, every window through model(...) unpadded."""
    c = model.config
    prepared = model.query_input(query)
    grid = window_grid(len(video), c.max_v_l)
    txt = torch.from_numpy(prepared.tokens)[None]
    sentence = torch.from_numpy(prepared.embedding)[None]
    outs = [None] * len(grid)
    lengths = grid[:, 1] - grid[:, 0]
    for length in np.unique(lengths).tolist():  # windows of one length together: no padding at all
        rows = np.flatnonzero(lengths == length)
        frames = torch.from_numpy(np.stack([video[s:e] for s, e in grid[rows].tolist()]))
        out = model(src_txt=txt.expand(len(rows), -1, -1), src_txt_mask=torch.ones(len(rows), txt.shape[1]),
                    src_vid_motion=frames, src_vid_motion_mask=torch.ones(len(rows), length))
        for i, w in enumerate(rows.tolist()):
            outs[w] = {k: out[k][i:i + 1] for k in ("pred_logits", "pred_spans", "prob_soft")}
    scores = torch.cat([o["prob_soft"][:, 0] for o in outs]).sigmoid()
    order = rank_windows(scores)
    kept = order if top_k is None else order[:top_k]
    rows = []
    for w in kept.tolist():
        s, e = grid[w].tolist()
        proposal, _ = proposal_scores(outs[w])
        frames = torch.from_numpy(video[s:e])[None]
        matching = clip_matching_scores(frames, torch.tensor([e - s]), outs[w]["pred_spans"], sentence,
                                        model.adapt_appearance)
        rows += _rows_alone(outs[w]["pred_spans"][0], proposal[0], matching[0], s, e - s, c.clip_length, c.topk_span)
    fused = np.asarray(rank_rows(rows, c.nms_thd, c.max_before_nms, c.max_after_nms).fusion, dtype=np.float64)
    spans = np.clip(fused[:, :2], 0.0, len(video) * c.clip_length)
    keep = spans[:, 1] - spans[:, 0] > 1e-3
    return scores.numpy(), order, kept, spans[keep], fused[keep, 4]


@pytest.mark.parametrize("top_k, official_layout", [(K, False), (K, True), (None, False)],
                         ids=["top9", "top9_official_mask_layout", "all_windows"])
def test_fast_path_equals_the_straightforward_reference(case, top_k, official_layout):
    model, video, query = case
    model.official_mask_layout = official_layout  # one query, unpadded text: the layouts agree, both checked
    try:
        scores, order, kept, spans, fused = reference(model, video, query, top_k)
        grid = model.window_grid(len(video))
        lengths = set((grid[:, 1] - grid[:, 0]).tolist())
        assert len(grid) == 43 and len(lengths) >= 3, lengths
        gaps = np.diff(np.sort(scores))
        assert gaps.min() > 1e-5, "the case needs distinct window scores for its ranking to be float-noise free"

        decoded = []
        decode = model.transformer.decode_windows
        model.transformer.decode_windows = lambda e, q: decoded.append(e.src.shape[1]) or decode(e, q)
        try:
            staged = staged_windows(model, video, model.query_input(query), grid, top_k, LONG.clip_length, CHUNK)
        finally:
            del model.transformer.decode_windows
        np.testing.assert_allclose(staged.scores, scores, atol=1e-6, rtol=0)
        assert staged.order.tolist() == order.tolist() and staged.kept.tolist() == kept.tolist()
        assert sum(decoded) == len(kept)  # the decoder ran on the kept windows only, each once

        pred = ground(video, query, clip_len=LONG.clip_length, model=model, coarse_top_k=top_k, top_k=100,
                      chunk=CHUNK)
        got = np.asarray([[m.start, m.end, m.score] for m in pred.moments], dtype=np.float64)
        assert len(got) == min(100, len(spans)) and len(got) >= 10
        np.testing.assert_allclose(got[:, :2], spans[:len(got)], atol=1.01e-4, rtol=0)
        np.testing.assert_allclose(got[:, 2], fused[:len(got)], atol=2e-4, rtol=0)
    finally:
        model.official_mask_layout = False


def test_first_stage_holds_only_the_encodings_it_may_need(case):
    """While scoring, encodings that can no longer be among the top K are dropped: at the end at most K + chunk
    are held and every one of the top K is there; keep=0 holds none, keep=None all."""
    model, video, query = case
    prepared = model.query_input(query)
    grid = model.window_grid(len(video))
    scores, cache = first_stage(model, video, prepared, grid, keep=K, chunk=CHUNK)
    top = rank_windows(torch.from_numpy(scores))[:K]
    assert set(top.tolist()) <= set(cache) and len(cache) <= K + CHUNK
    assert first_stage(model, video, prepared, grid, keep=0, chunk=CHUNK)[1] == {}
    assert len(first_stage(model, video, prepared, grid, keep=None, chunk=CHUNK)[1]) == len(grid)


def _nms_loop(rows: list[list[float]], thd: float, top: int) -> list[list[float]]:
    """The official temporal_nms as written there: a Python loop over the sorted rows."""
    def overlap(a, b):
        inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
        hull = max(a[1], b[1]) - min(a[0], b[0])
        return 0.0 if hull == 0 else inter / hull

    if len(rows) == 1:
        return rows
    remaining = sorted(rows, key=lambda x: x[2], reverse=True)
    kept = []
    while len(remaining) > 1 and len(kept) < top:
        best = remaining.pop(0)
        remaining = [r for r in remaining if overlap(best, r) <= thd]
        kept.append(best)
    if len(kept) < top and remaining:
        kept.append(remaining.pop(0))
    return [r[:3] for r in kept]


def test_vectorised_nms_keeps_the_official_loops_rows():
    """Random rows at the official rounding: tied scores, zero-width spans, spans sharing an edge, thresholds
    0 and 1, few and many kept."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(0, 220))
        start = np.round(rng.uniform(0, 60, n), int(rng.integers(0, 4)))
        width = np.round(rng.uniform(0, 12, n), int(rng.integers(0, 3))) * (rng.uniform(size=n) > 0.1)
        score = np.round(rng.uniform(size=n), int(rng.integers(1, 4)))
        rows = [[float(s), float(s + w), float(c)] for s, w, c in zip(start, width, score)]
        thd, top = float(rng.choice([0.0, 0.3, 0.5, 1.0])), int(rng.choice([1, 7, 100]))
        assert temporal_nms(rows, thd, top) == _nms_loop(rows, thd, top)


def _rows_alone(spans_cxw, proposal, matching, start: int, length: int, clip_len: float, topk_span: int):
    """One window's official rows as the official code writes them (scalar start and length)."""
    xx = torch.stack([spans_cxw[:, 0] - 0.5 * spans_cxw[:, 1], spans_cxw[:, 0] + 0.5 * spans_cxw[:, 1]], -1)
    seconds = (xx * length + start) * clip_len
    rows = torch.cat([seconds, proposal[:, None], matching[:, None]], dim=1).tolist()
    key = (lambda x: x[2] + x[3]) if topk_span < len(rows) else (lambda x: x[2])
    return [[float(f"{e:.4f}") for e in row] for row in sorted(rows, key=key, reverse=True)[:topk_span]]


def test_rows_of_many_windows_are_each_windows_rows():
    """The rows of all kept windows built at once equal each window's built alone (float32 seconds of frames
    up to 2 h at 5 fps, then the official 4-decimal rounding)."""
    rng = np.random.default_rng(2)
    spans = torch.from_numpy(rng.uniform(0, 1, (7, 5, 2)).astype(np.float32))
    proposal, matching = (torch.from_numpy(rng.uniform(size=(7, 5)).astype(np.float32)) for _ in range(2))
    starts, lengths = [0, 0, 450, 900, 35100, 35550, 35550], [450, 900, 900, 900, 900, 450, 17]
    for topk in (5, 3):
        together = windows_rows(spans, proposal, matching, starts, lengths, 0.2, topk)
        assert together == [_rows_alone(spans[b], proposal[b], matching[b], starts[b], lengths[b], 0.2, topk)
                            for b in range(7)]
