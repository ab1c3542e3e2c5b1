"""ground() on a two-hour video of synthetic features: zero-shot, the full windowed model path, coarse-to-fine,
stitching across window boundaries, guidance, and an architecture's own grid / first stage / fusion through
the contract. Features are generated directly (3,600 clips of 2 s, no decoding)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from univtg_core import Query, QueryError, ground
from univtg_core import long_video as lv
from univtg_core.models._contract import FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput
from univtg_core.models.univtg import UniVTG, UniVTGConfig
from univtg_core.postprocess import l2_normalize
from univtg_core.spans import temporal_iou

N_CLIPS, DIM, CLIP = 3600, 64, 2.0
# Clip ranges [first, last) of the planted moments; (70, 80) crosses the end of the first window of 75 clips
# (and of the zero-shot 150 s window), (3590, 3600) touches the end of the film.
PLANTED = [(500, 510), (70, 80), (2000, 2030), (3590, 3600), (1111, 1126)]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def film():
    """(features, one query direction per planted moment): noise, plus each query's direction inside its
    moment, strong enough to stand out of 3,600 clips of noise."""
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(N_CLIPS, DIM)).astype(np.float32)
    queries = _unit(rng.normal(size=(len(PLANTED), DIM)))
    for (a, b), q in zip(PLANTED, queries):
        feats[a:b] += (0.6 * np.sqrt(DIM) * q).astype(np.float32)
    return feats, queries.astype(np.float32)


def _iou(moment, span_clips) -> float:
    return float(temporal_iou([[moment.start, moment.end]], [[span_clips[0] * CLIP, span_clips[1] * CLIP]])[0, 0])


class PlantFinder(GroundingModel, torch.nn.Module):
    """A model that can localise (for the pipeline's sake): in each window, clips whose cosine with the mean
    query token is above 0.4 of the window's best form runs (short dips bridged); the run with the most mass
    above that level is the window's one candidate (window-local seconds), scored by its mean cosine; the
    saliency is the cosine. Counts the windows it reads."""

    architecture = "plant-finder"

    def __init__(self, dim: int = DIM, window: int = 75):
        torch.nn.Module.__init__(self)
        self.spec = InputSpec(video=(FeatureSource("clip", dim),), text=FeatureSource("clip_tokens", dim),
                              clip_len=CLIP, window=window)
        self.windows_read = 0

    @property
    def input_spec(self) -> InputSpec:
        return self.spec

    def query_input(self, query) -> QueryInput:
        tokens = np.asarray(query.tokens if isinstance(query, Query) else query, np.float32)
        return QueryInput(l2_normalize(tokens), rows_read=len(tokens), rows_given=len(tokens))

    def predict_windows(self, video, query: QueryInput, clip_len: float) -> WindowOutput:
        video = np.asarray(video, np.float32)
        self.windows_read += len(video)
        q = _unit(query.tokens.mean(0))
        cos = l2_normalize(video) @ q  # (B, L)
        spans = np.zeros((len(video), 1, 2), np.float32)
        scores = np.zeros((len(video), 1), np.float32)
        for b, row in enumerate(cos):
            threshold = 0.4 * row.max()
            above = np.flatnonzero(row >= threshold)
            runs = np.split(above, np.flatnonzero(np.diff(above) > 2) + 1)  # a one-clip dip does not split
            best = max(runs, key=lambda r: (row[r[0] : r[-1] + 1] - threshold).sum())
            best = np.arange(best[0], best[-1] + 1)
            spans[b, 0] = (best[0] * clip_len, (best[-1] + 1) * clip_len)
            scores[b, 0] = row[best].mean()
        return WindowOutput(windows=spans, scores=scores, saliency=cos)

    def decode_outputs(self, outputs, video_mask, clip_len, durations=None):
        raise NotImplementedError


def _query(queries, k, tokens=True) -> Query:
    rng = np.random.default_rng(k)
    rows = queries[k][None] + 0.05 * rng.normal(size=(3, DIM)) if tokens else None
    return Query(rows, embedding=queries[k], text_rows=None)


def test_zero_shot_and_coarse_to_fine_find_every_planted_moment_at_rank_one(film):
    feats, queries = film
    for k, span in enumerate(PLANTED):
        asked = Query(embedding=queries[k])
        for top in (None, 8):
            pred = ground(feats, asked, CLIP, coarse_top_k=top)
            assert _iou(pred.moments[0], span) >= 0.5, (k, top, pred.moments[:2])
            assert len(pred.saliency) == N_CLIPS
        model = PlantFinder()
        pred = ground(feats, _query(queries, k), CLIP, model=model, coarse_top_k=8)
        assert model.windows_read == 8, "only the K best windows go through the model"
        assert _iou(pred.moments[0], span) >= 0.5, (k, pred.moments[:2])
        assert len(pred.saliency) == N_CLIPS and np.isfinite(pred.saliency).all()


def test_a_moment_across_a_window_boundary_comes_back_once(film):
    """Windows [0, 75) and [37, 112) both see the moment at clips 70..79; the first sees it cut at its edge.
    Every window runs: the moment must come back once (the cut candidate dropped), not as two moments."""
    feats, queries = film
    model = PlantFinder()
    pred = ground(feats, _query(queries, 1), CLIP, model=model, top_k=50)
    assert model.windows_read == len(lv.sliding_windows(N_CLIPS, 75))
    near = [m for m in pred.moments if m.end > 70 * CLIP and m.start < 80 * CLIP]
    assert len(near) == 1 and _iou(near[0], (70, 80)) >= 0.99
    # the pure rule: the first window's candidate [140, 150) is cut by its edge at 150 s; the second window
    # holds its start and reaches further; the second window's [140, 160) is inside it, not cut
    grid = lv.sliding_windows(N_CLIPS, 75)
    cut = lv.cut_by_window_edge(np.array([[140.0, 150.0], [140.0, 160.0]]), np.array([0, 1]), grid,
                                np.arange(len(grid)), CLIP)
    assert cut.tolist() == [True, False]
    # when the second window is not selected, the cut view is the best there is, and is kept
    cut = lv.cut_by_window_edge(np.array([[140.0, 150.0]]), np.array([0]), grid, np.array([0, 5]), CLIP)
    assert cut.tolist() == [False]


def test_random_univtg_runs_the_full_windowed_path_over_the_whole_film(film):
    feats, queries = film
    torch.manual_seed(0)
    model = UniVTG(UniVTGConfig(video_dim=DIM, text_dim=DIM, hidden_dim=32, enc_layers=1, nheads=4,
                                dim_feedforward=32, max_v_l=75)).eval()
    seen = []
    original = model.predict_windows

    def counting(video, query, clip_len):
        seen.append(len(video))
        return original(video, query, clip_len)

    model.predict_windows = counting
    pred = ground(feats, _query(queries, 0), CLIP, model=model, chunk=16)
    assert sum(seen) == len(lv.sliding_windows(N_CLIPS, 75)) == 97 and max(seen) <= 16
    assert pred.mode == "model" and len(pred.saliency) == N_CLIPS and np.isfinite(pred.saliency).all()
    assert pred.moments and all(0 <= m.start < m.end <= N_CLIPS * CLIP for m in pred.moments)
    assert [m.score for m in pred.moments] == sorted((m.score for m in pred.moments), reverse=True)
    # coarse-to-fine: the 8 windows with the best cosine, and clips outside them still get a finite curve
    seen.clear()
    coarse = ground(feats, _query(queries, 0), CLIP, model=model, coarse_top_k=8)
    assert sum(seen) == 8 and len(coarse.saliency) == N_CLIPS and np.isfinite(coarse.saliency).all()
    assert all(0 <= m.start < m.end <= N_CLIPS * CLIP for m in coarse.moments)


def test_stitched_saliency_averages_overlaps_and_fills_the_rest_from_the_first_stage():
    stitch = lv.SaliencyStitcher(10)
    stitch.add(0, np.array([1.0, 1.0, 1.0, 1.0]))
    stitch.add(2, np.array([3.0, 3.0, 3.0]))
    fill = np.array([0, 0, 0, 0, 0, 5.0, 6.0, 7.0, 8.0, 9.0])
    curve = stitch.curve(fill=fill)
    np.testing.assert_allclose(curve[:5], [1, 1, 2, 2, 3])
    # the fill is mapped onto the model's scale (mean/spread of the covered clips matched), order kept
    assert np.all(np.diff(curve[5:]) > 0) and np.isfinite(curve).all()
    assert lv.SaliencyStitcher(3).curve().tolist() == [0.0, 0.0, 0.0]


def test_guidance_changes_the_ranking(film):
    """Two equal plantings of one query; guidance records (in the seed's format, windows in seconds) score the
    second one's window highest: it must come first, in zero-shot and with a model, and with coarse_top_k=1
    only its window is read."""
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(N_CLIPS, DIM)).astype(np.float32)
    q = _unit(rng.normal(size=DIM)).astype(np.float32)
    first, second = (400, 410), (2500, 2510)
    for a, b in (first, second):
        feats[a:b] += (0.6 * np.sqrt(DIM) * q).astype(np.float32)
    feats[first[0]:first[1]] += (0.1 * np.sqrt(DIM) * q).astype(np.float32)  # the cosine prefers the first
    starts = np.arange(0, N_CLIPS * CLIP - 128, 64.0)
    windows = np.stack([starts, starts + 128], axis=1)
    scores = np.full(len(windows), 0.1, np.float32)
    scores[(windows[:, 0] <= second[0] * CLIP) & (windows[:, 1] >= second[1] * CLIP)] = 0.9
    guidance = (windows, scores)
    asked = Query(embedding=q)
    assert _iou(ground(feats, asked, CLIP).moments[0], first) >= 0.5
    assert _iou(ground(feats, asked, CLIP, guidance=guidance).moments[0], second) >= 0.5
    assert _iou(ground(feats, asked, CLIP, guidance=guidance, coarse_top_k=2).moments[0], second) >= 0.5
    model = PlantFinder()
    tokens = Query(q[None], embedding=q)
    assert _iou(ground(feats, tokens, CLIP, model=model, coarse_top_k=4).moments[0], first) >= 0.5
    model.windows_read = 0
    pred = ground(feats, tokens, CLIP, model=model, coarse_top_k=1, guidance=guidance)
    assert model.windows_read == 1 and _iou(pred.moments[0], second) >= 0.5
    assert _iou(ground(feats, tokens, CLIP, model=model, guidance=guidance, fusion="product").moments[0],
                second) >= 0.5


def test_coarse_to_fine_needs_an_embedding_or_guidance(film):
    feats, queries = film
    with pytest.raises(QueryError, match="embedding"):
        ground(feats, queries[0][None], CLIP, model=PlantFinder(), coarse_top_k=4)
    with pytest.raises(ValueError, match="coarse_top_k"):
        ground(feats, Query(embedding=queries[0]), CLIP, coarse_top_k=0)


class OwnWindows(PlantFinder):
    """An architecture with its own grid (a half first window, as RGNet's), learned window scores and its own
    second stage, through the contract hooks only: records what ground() handed it."""

    def __init__(self):
        super().__init__(window=100)
        self.lengths_seen, self.ranked_starts = [], None

    def window_grid(self, n_clips):
        stride = 50
        count = int(np.ceil(n_clips / stride)) + 1
        return np.array([[max((i - 1) * stride, 0), min((i - 1) * stride + 100, n_clips)] for i in range(count)])

    def window_scores(self, video, query, clip_len, lengths=None):
        lengths = np.full(len(video), video.shape[1]) if lengths is None else np.asarray(lengths)
        cos = l2_normalize(video) @ _unit(query.tokens.mean(0))
        return np.array([row[:n].max() for row, n in zip(cos, lengths)])

    def predict_windows(self, video, query, clip_len, lengths=None):
        self.lengths_seen.append(None if lengths is None else np.asarray(lengths).tolist())
        out = super().predict_windows(video, query, clip_len)
        out.extras["tag"] = np.arange(len(video))
        return out

    def rank_moments(self, outputs, window_starts, clip_len):
        self.ranked_starts = np.asarray(window_starts).tolist()
        spans = outputs.windows[:, 0] + np.asarray(window_starts)[:, None] * clip_len
        spans[0, 1] += 1e6  # past the end: ground() must clamp what the architecture returns
        return spans, outputs.scores[:, 0]


def test_an_architecture_with_its_own_grid_first_stage_and_fusion_is_used_through_the_contract(film):
    feats, queries = film
    model = OwnWindows()
    pred = ground(feats, Query(queries[2][None]), CLIP, model=model, coarse_top_k=3)
    grid = model.window_grid(N_CLIPS)
    assert model.windows_read == 3
    # its own scores ranked the windows: rank_moments got the kept windows in that order
    scores = model.window_scores(np.stack([np.pad(feats[s:e], ((0, 100 - (e - s)), (0, 0))) for s, e in grid]),
                                 model.query_input(Query(queries[2][None])), CLIP, lengths=grid[:, 1] - grid[:, 0])
    assert model.ranked_starts == grid[np.argsort(-scores, kind="stable")[:3], 0].tolist()
    # its best candidate (the planted moment's start, its end pushed past the film) came back first, clamped
    assert pred.moments[0].start == PLANTED[2][0] * CLIP and pred.moments[0].end == N_CLIPS * CLIP
    assert all(0 <= m.start < m.end <= N_CLIPS * CLIP for m in pred.moments) and len(pred.moments) == 3
    # the half first window makes a ragged batch: lengths are passed then
    model = OwnWindows()
    ground(feats[:300], Query(queries[0][None]), CLIP, model=model)
    assert model.lengths_seen[0][:2] == [50, 100]
