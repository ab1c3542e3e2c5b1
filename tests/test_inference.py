"""ground(), the official demo post-processing, and the pure post-processing functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from univtg_core import Moment, Query, QueryError, ground
from univtg_core import postprocess as pp
from univtg_core.inference import run_model, window_starts
from univtg_core.spans import temporal_iou, temporal_nms


def test_inputs_built_like_the_official_demo(univtg_model, univtg_reference):
    data = np.load(univtg_reference / "io_single.npz")
    np.testing.assert_array_equal(univtg_model.prepare_video(data["vid_raw"][None])[0], data["src_vid"][0])
    np.testing.assert_array_equal(univtg_model.query_input(data["txt_raw"]).tokens, data["src_txt"][0])
    # Dataset tokens (no text_rows) are read as they are; encoder-made ones this short are not cut either.
    assert univtg_model.query_input(Query(data["txt_raw"], text_rows=9)).rows_read == 9
    np.testing.assert_allclose(pp.clip_anchors(37, 2.0), data["timestamp"][:, 0], atol=1e-7)


def test_demo_postprocess_matches_official(univtg_model, univtg_reference):
    data = np.load(univtg_reference / "io_single.npz")
    demo = json.loads((univtg_reference / "demo_postprocess.json").read_text())
    out = run_model(univtg_model, data["vid_raw"], data["txt_raw"], clip_len=demo["clip_len"])
    np.testing.assert_allclose(out["windows"], np.array(demo["pred_windows_seconds"]), atol=1e-4)
    assert int(np.argmax(out["scores"])) == demo["top1_index"]
    assert list(np.argsort(-out["scores"], kind="stable")[:5]) == demo["top5_indices"]
    np.testing.assert_allclose(np.sort(out["scores"])[::-1][:5], demo["top5_confidences"], atol=1e-6)
    assert int(np.argmax(out["saliency"])) == demo["top1_highlight_clip_index"]

    pred = ground(data["vid_raw"], data["txt_raw"], clip_len=2.0, model=univtg_model, label=demo["query"])
    assert pred.highlight == demo["top1_highlight_seconds"]
    top_start, top_end = demo["top1_window_seconds"]
    duration = 37 * 2.0
    # The product clamps the official top-1 window to the video; its score is the official confidence.
    assert pred.moments[0].start == pytest.approx(max(0.0, top_start), abs=1e-4)
    assert pred.moments[0].end == pytest.approx(min(duration, top_end), abs=1e-4)
    assert pred.moments[0].score == pytest.approx(demo["top1_confidence"], abs=1e-6)
    assert all(0 <= m.start < m.end <= duration for m in pred.moments)
    kept = np.array([[m.start, m.end] for m in pred.moments])
    iou = temporal_iou(kept, kept)
    assert (iou[~np.eye(len(kept), dtype=bool)] < 0.7).all(), "NMS must leave no pair above the threshold"


def test_prediction_json_has_the_standard_fields(univtg_model, univtg_reference):
    data = np.load(univtg_reference / "io_single.npz")
    pred = ground(data["vid_raw"], data["txt_raw"], clip_len=2.0, model=univtg_model, label="q", duration=73.5)
    record = pred.to_dict()
    assert record["query"] == "q" and record["duration"] == 73.5 and record["clip_len"] == 2.0
    assert len(record["pred_saliency_scores"]) == 37
    windows = record["pred_relevant_windows"]
    assert [w[2] for w in windows] == sorted((w[2] for w in windows), reverse=True)
    assert all(len(w) == 3 and w[1] <= 73.5 for w in windows)
    assert record["pred_highlight"] == 8.0
    assert record["pred_summary"] == sorted(record["pred_summary"]) and record["pred_summary"]
    assert json.loads(pred.to_json_line()) == record


def test_long_video_runs_in_overlapping_windows(univtg_model):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 512)).astype(np.float32)
    tokens = rng.normal(size=(6, 512)).astype(np.float32)
    pred = ground(feats, tokens, clip_len=2.0, model=univtg_model)
    assert pred.saliency.shape == (200,)
    assert all(0 <= m.start < m.end <= 400 for m in pred.moments)
    # The first window is the model run on the first 75 clips alone.
    alone = run_model(univtg_model, feats[:75], tokens, 2.0, max_window=75)
    both = run_model(univtg_model, feats, tokens, 2.0)
    np.testing.assert_allclose(both["scores"][:75], alone["scores"], atol=1e-6)


def test_window_starts_cover_the_video():
    assert window_starts(50, 75) == [0]
    starts = window_starts(200, 75)
    assert starts[0] == 0 and starts[-1] == 125 and all(b - a <= 37 for a, b in zip(starts, starts[1:]))


def _planted(rng, n_per_segment=5, noise=0.1):
    concepts = [rng.normal(size=512) for _ in range(3)]
    feats = np.concatenate([np.tile(c, (n_per_segment, 1)) for c in concepts])
    return concepts, feats + noise * rng.normal(size=feats.shape)


def test_zero_shot_finds_the_planted_segment():
    rng = np.random.default_rng(1)
    concepts, feats = _planted(rng)
    for k, expected in enumerate([(0, 10), (10, 20), (20, 30)]):
        pred = ground(feats, Query(embedding=concepts[k]), clip_len=2.0)
        assert pred.mode == "zero-shot"
        assert temporal_iou([[pred.moments[0].start, pred.moments[0].end]], [expected])[0, 0] >= 0.99
        assert expected[0] <= pred.highlight < expected[1]


def test_zero_shot_uses_query_sentence_over_tokens():
    rng = np.random.default_rng(2)
    concepts, feats = _planted(rng)
    tokens = rng.normal(size=(7, 512))  # token rows that mean nothing here
    pred = ground(feats, tokens, clip_len=2.0, query_sentence=concepts[1])
    assert (pred.moments[0].start, pred.moments[0].end) == (10.0, 20.0)


def test_rank_moments_clamps_sorts_and_suppresses():
    windows = np.array([[-5, 10], [0, 9], [20, 50], [22, 27], [40, 45]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.1])
    rows = pp.rank_moments(windows, scores, duration=30, nms_threshold=0.7, top_k=10)
    assert rows[:, 2].tolist() == [0.95, 0.9, 0.7]  # [0, 9] overlaps [0, 10] at 0.9; [40, 45] lies past the end
    assert rows[1, :2].tolist() == [0, 10] and rows[2, :2].tolist() == [20, 30]


def test_temporal_nms_keeps_order_and_top_k():
    windows = np.array([[0, 10], [1, 10], [20, 30], [40, 50]])
    kept = temporal_nms(windows, np.array([0.5, 0.9, 0.3, 0.4]), 0.5, top_k=2)
    assert kept.tolist() == [1, 3]


def _nms_reference(windows, scores, threshold, top_k=None) -> list[int]:
    """The greedy NMS written the plain way (one IoU row against every kept window per candidate)."""
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    kept: list[int] = []
    for idx in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        if top_k is not None and len(kept) >= top_k:
            break
        if kept and temporal_iou(windows[idx][None], windows[kept]).max() >= threshold:
            continue
        kept.append(int(idx))
    return kept


def test_temporal_nms_equals_the_plain_greedy_loop_on_ties_empty_spans_and_every_threshold():
    rng = np.random.default_rng(0)
    for trial in range(400):
        n = int(rng.integers(0, 40))
        starts = rng.uniform(0, 50, n)
        lengths = rng.choice([0.0, 0.5, 2.0, 10.0], n) * rng.uniform(0, 1, n)
        windows = np.stack([starts, starts + lengths], 1)
        if trial % 3 == 0:
            windows = np.round(windows)  # exact duplicates and touching spans
        scores = rng.integers(0, 4, n).astype(float)  # many ties: the stable order decides
        threshold = float(rng.choice([0.0, 0.3, 0.5, 0.7, 1.0]))
        top_k = [None, 0, 1, 3, 10][trial % 5]
        assert temporal_nms(windows, scores, threshold, top_k).tolist() == \
            _nms_reference(windows, scores, threshold, top_k), trial


def test_summary_points_respect_budget_and_spread():
    saliency = np.zeros(100)
    saliency[10:14] = [5, 6, 7, 6]
    saliency[70] = 4
    points = pp.summary_points(saliency, clip_len=2.0, budget=0.05)
    assert len(points) == 5 and list(points) == sorted(points)
    assert 25.0 in points and 141.0 in points  # the peak at clip 12 and the separate peak at clip 70
    assert sum(1 for t in points if 20 <= t <= 28) == 1, "neighbours of a chosen clip are skipped"


def test_zero_shot_prefers_whole_event_over_its_peak():
    curve = np.array([0, 0, 0, 0.6, 0.9, 1.0, 0.9, 0.6, 0, 0, 0, 0], dtype=float)
    rows = pp.zero_shot_moments(curve, clip_len=1.0, duration=12)
    assert (rows[0, 0], rows[0, 1]) == (3.0, 8.0)


def test_moment_serialises():
    assert Moment(1.23456, 5.0, 0.5).to_list() == [1.2346, 5.0, 0.5]


def test_saliency_is_averaged_over_every_overlap_of_windows():
    """37 clips in windows of 10 (starts 0, 5, ..., 25, 27): clips 5..34 lie in two or three windows; each
    clip's saliency must be the mean of the values the windows covering it gave it alone."""
    import torch

    from univtg_core.models.univtg import UniVTG, UniVTGConfig

    torch.manual_seed(0)
    model = UniVTG(UniVTGConfig(video_dim=16, text_dim=16, hidden_dim=32, enc_layers=1, nheads=4,
                                dim_feedforward=32, max_v_l=10)).eval()
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(37, 16)).astype(np.float32)
    tokens = rng.normal(size=(4, 16)).astype(np.float32)
    starts = window_starts(37, 10)
    assert starts == [0, 5, 10, 15, 20, 25, 27]
    query = model.query_input(tokens)
    per_clip: list[list[float]] = [[] for _ in range(37)]
    for s in starts:
        alone = model.predict_windows(feats[s : s + 10], query, 2.0).saliency[0]
        for i, value in enumerate(alone):
            per_clip[s + i].append(float(value))
    expected = np.array([np.mean(v) for v in per_clip])
    assert [len(v) for v in per_clip[:6]] == [1, 1, 1, 1, 1, 2]
    assert [len(v) for v in per_clip[25:]] == [2, 2, 3, 3, 3, 2, 2, 2, 2, 2, 1, 1]
    out = run_model(model, feats, tokens, 2.0)
    np.testing.assert_allclose(out["saliency"], expected, atol=1e-5)
    # The windows of later windows are shifted to the video's clock: window k's clip i sits at starts[k] + i.
    assert len(out["windows"]) == 10 * len(starts)
    np.testing.assert_allclose(out["windows"][60:70] - 27 * 2.0,
                               model.predict_windows(feats[27:37], query, 2.0).windows[0], atol=1e-4)


def test_encoder_made_text_longer_than_the_model_reads_is_refused_not_cut_inexactly(univtg_model):
    """CLIP's end row depends on where the sequence ends, so 32 official rows cannot be cut out of a 40-row
    encoding: the model refuses it and says how to encode the query; 32 text rows plus an image row are read
    as they are; dataset tokens (no text_rows) are never cut."""
    rng = np.random.default_rng(5)
    text = rng.normal(size=(40, 512)).astype(np.float32)
    image = rng.normal(size=(1, 512)).astype(np.float32)
    feats = rng.normal(size=(20, 512)).astype(np.float32)
    with pytest.raises(QueryError, match="token_limit"):
        univtg_model.query_input(Query(np.concatenate([text, image]), text_rows=40))
    with pytest.raises(QueryError, match="token_limit"):
        ground(feats, Query(np.concatenate([text, image]), text_rows=40), clip_len=2.0, model=univtg_model)
    assert univtg_model.text_token_limit == 32
    read = univtg_model.query_input(Query(np.concatenate([text[:32], image]), text_rows=32))
    np.testing.assert_array_equal(read.tokens, pp.l2_normalize(np.concatenate([text[:32], image])))
    assert (read.rows_read, read.rows_given) == (33, 33)
    assert univtg_model.query_input(text).rows_read == 40
    pred = ground(feats, Query(np.concatenate([text[:32], image]), text_rows=32, text_tokens=40, text="a long query"),
                  clip_len=2.0, model=univtg_model)
    assert pred.query == "a long query"
    record = pred.to_dict()
    assert (record["tokens_read"], record["query_tokens"], record["query_cut"]) == (33, 40, True)


def test_zero_shot_refuses_token_rows_without_their_embedding():
    rng = np.random.default_rng(6)
    feats = rng.normal(size=(30, 8)).astype(np.float32)
    with pytest.raises(QueryError, match="joint-space embedding"):
        ground(feats, rng.normal(size=(5, 8)), clip_len=2.0)
    with pytest.raises(QueryError, match="joint-space embedding"):
        ground(feats, Query(rng.normal(size=(5, 8))), clip_len=2.0)


def test_predictions_compare_by_value_without_asking_an_array_for_its_truth():
    from dataclasses import replace

    from univtg_core import Prediction

    a = Prediction(moments=(Moment(0.0, 4.0, 0.9),), saliency=np.array([0.1, 0.5, 0.2]), clip_len=2.0,
                   duration=6.0, highlight=2.0, summary=(3.0,), query="q")
    same = replace(a, saliency=a.saliency.copy())
    assert a == same and not (a != same)
    assert a != replace(a, saliency=np.array([0.1, 0.5, 0.3]))
    assert a != replace(a, saliency=np.array([0.1, 0.5]))
    assert a != replace(a, moments=())
    assert a.to_dict() == same.to_dict() and "qid" not in a.to_dict()
    with_ids = replace(a, qid=7, vid="v1").to_dict()
    assert list(with_ids)[:3] == ["qid", "query", "vid"]
