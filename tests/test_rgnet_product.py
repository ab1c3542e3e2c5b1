"""RGNet as a registered architecture: `load_model` recognises it, `ground()` runs its own window grid, learned
first stage, fusion and NMS through the contract and returns the official inference's moments (clamped), the
CLI answers with it at the checkpoint's frame rate, and a checkpoint needing features we cannot compute
(EgoVLP) is refused naming them. Small checkpoints made here (tests/rgnet_checkpoints.py), no fixture needed
except for the official MAD checkpoint's recognition."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import shared_fixture
from rgnet_checkpoints import official_checkpoint
from test_cli import run_cli

from univtg_core.errors import CheckpointError
from univtg_core.inference import ground
from univtg_core.media import make_colour_video
from univtg_core.models import get_architecture, list_models, load_model, read_checkpoint
from univtg_core.models.rgnet import RGNet, RGNetConfig
from univtg_core.models.rgnet_inference import official_inference
from univtg_core.query import Query

SMALL = RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=32, nheads=4, enc_layers=1,
                    dec_layers=2, dim_feedforward=32, num_queries=4, max_q_l=8, max_v_l=20, qddetr=True, gumbel=True,
                    gumbel_2=True, clip_length=0.2)  # with random weights gumbel_3 gates every frame off: NaN
EGO4D_SMALL = replace(SMALL, v_motion_feat_dim=256, v_appear_feat_dim=256, adapter_module="linear", dset_name="ego4d",
                      clip_length=0.535)
NO_RETRIEVAL = RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=32, nheads=2,
                           enc_layers=1, dec_layers=2, dec_layers_2=2, dim_feedforward=16, num_queries=3, max_q_l=8,
                           max_v_l=20, decoder_gating=True)


def _saved(tmp_path, config: RGNetConfig, name: str = "model_best.ckpt", seed: int = 7, **opt):
    path = tmp_path / name
    torch.save(official_checkpoint(config, seed=seed, **opt), path)
    return path


def test_load_model_recognises_rgnet_and_reads_its_input_spec(tmp_path):
    assert "rgnet" in list_models() and get_architecture("RGNet").name == "rgnet"
    model = load_model(_saved(tmp_path, EGO4D_SMALL), device="cpu")
    assert isinstance(model, RGNet) and not model.training
    spec = model.input_spec
    assert ([(s.name, s.dim) for s in spec.video], spec.clip_len, spec.window) == ([("egovlp", 256)], 0.535, 20)
    assert model.config.adapter_module == "linear" and model.config.topk_window == 20
    # weights alone (no options anywhere): the retrieval token's encoder under transformer. says RGNet
    bare = tmp_path / "bare"
    bare.mkdir()
    torch.save({"model": official_checkpoint(SMALL, seed=1)["model"]}, bare / "weights.ckpt")
    assert isinstance(load_model(bare / "weights.ckpt", device="cpu"), RGNet)


def test_official_checkpoints_of_every_architecture_are_told_apart():
    rgnet = shared_fixture("rgnet_reference") / "model_best.ckpt"
    model = load_model(rgnet, device="cpu")  # torch.device, Counter and Namespace in the pickle: allowed
    assert isinstance(model, RGNet)
    assert (model.input_spec.clip_len, model.input_spec.window, model.config.topk_window) == (0.2, 900, 30)
    for other, name in (("univtg_reference", "univtg"), ("mesm_reference", "mesm")):
        folder = shared_fixture(other)
        ckpt = next(p for p in sorted(folder.glob("*.ckpt")))
        from univtg_core.models import detect_architecture

        assert detect_architecture(read_checkpoint(ckpt)).name == name


def _official_rows(model, video, tokens, sentence, top_k):
    result = official_inference(model, video, [(tokens, sentence)], topk_window=top_k)[0]
    rows = np.asarray(result.ranked.fusion, dtype=np.float64)
    duration = len(video) * model.config.clip_length
    spans = np.clip(rows[:, :2], 0.0, duration)
    keep = spans[:, 1] - spans[:, 0] > 1e-3
    return spans[keep], rows[keep, 4], result


def _assert_same_moments(pred, spans, scores, count=20):
    got = np.asarray([[m.start, m.end, m.score] for m in pred.moments], dtype=np.float64)
    n = min(count, len(spans))
    assert len(got) >= n
    np.testing.assert_allclose(got[:n, :2], spans[:n], atol=2e-4)
    np.testing.assert_allclose(got[:n, 2], scores[:n], atol=2e-4)


# Without a retrieval token the pre-filter scores of overlapping windows often share their best frame: the
# official order of such ties is float noise of its whole-video product, so that case keeps every window.
@pytest.mark.parametrize("config, top_k", [(EGO4D_SMALL, 20), (SMALL, None), (NO_RETRIEVAL, None)],
                         ids=["ego4d_adapter_top20", "mad_all_windows", "no_retrieval_token_prefilter"])
def test_ground_reproduces_the_official_inference(tmp_path, config, top_k):
    """ground() with an RGNet model: its grid (half first window), its window score (or CONE's pre-filter
    without a retrieval token), the top K, foreground x window score + CLIP matching, NMS on the hull, top 100
    -> the official ranked moments, clamped to the video."""
    model = load_model(_saved(tmp_path, config, seed=11), device="cpu")
    rng = np.random.default_rng(3)
    video = (rng.normal(size=(330, config.v_motion_feat_dim)) + 0.3).astype(np.float32)  # 34 windows
    tokens = rng.normal(size=(6, config.t_feat_dim)).astype(np.float32)
    sentence = rng.normal(size=config.v_appear_feat_dim).astype(np.float32)
    spans, scores, official = _official_rows(model, video, tokens, sentence, top_k or 10_000)
    assert len(official.window_order) == 34 and len(official.kept_windows) == (top_k or 34)
    pred = ground(video, Query(tokens, embedding=sentence), clip_len=config.clip_length, model=model,
                  coarse_top_k=top_k, top_k=100)
    _assert_same_moments(pred, spans, scores)
    assert pred.saliency.shape == (330,) and np.isfinite(pred.saliency).all()
    assert all(0.0 <= m.start < m.end <= 330 * config.clip_length + 1e-6 for m in pred.moments)


def test_planted_moment_found_on_a_long_video(tmp_path):
    """An RGNet without a retrieval token ranks windows by the sentence's best cosine and re-scores spans by
    CLIP matching: a moment planted in a 40-minute feature sequence (12,000 frames, 1,201 windows, K = 5) is
    the top answer, though the spans' decoder is untrained."""
    model = load_model(_saved(tmp_path, NO_RETRIEVAL, seed=2), device="cpu")
    rng = np.random.default_rng(5)
    n, dim = 12_000, NO_RETRIEVAL.v_motion_feat_dim
    video = rng.normal(size=(n, dim)).astype(np.float32)
    sentence = rng.normal(size=dim).astype(np.float32)
    planted = slice(7_403, 7_415)  # 1480.6 s - 1483.0 s
    video[planted] = video[planted] * 0.3 + sentence * 2.0
    tokens = rng.normal(size=(5, NO_RETRIEVAL.t_feat_dim)).astype(np.float32)
    pred = ground(video, Query(tokens, embedding=sentence), clip_len=0.2, model=model, coarse_top_k=5, top_k=5)
    top = pred.moments[0]
    assert top.start < planted.stop * 0.2 and top.end > planted.start * 0.2, (top, planted)
    assert pred.duration == pytest.approx(2400.0)


def test_features_we_cannot_compute_are_refused_with_one_line(tmp_path):
    path = _saved(tmp_path, replace(EGO4D_SMALL, t_feat_dim=512))
    with pytest.raises(CheckpointError) as caught:
        load_model(path, device="cpu", video_dim=512, text_dim=512)  # what CLIP ViT-B/32 gives
    message = str(caught.value)
    assert "\n" not in message and "egovlp (256)" in message and "precomputed" in message
    # the same checkpoint runs on precomputed EgoVLP features (CLI evaluation, predict-split)
    assert isinstance(load_model(path, device="cpu"), RGNet)


@pytest.mark.slow
def test_cli_predict_with_an_rgnet_checkpoint(tmp_path):
    """`predict --resume rgnet.ckpt`: CLIP features at the checkpoint's 5 fps, RGNet's own path, moments inside
    the video (a subprocess loading random CLIP: ~15 s idle). The EgoVLP refusal is the CheckpointError above,
    which the CLI and the app show as their one error line."""
    video = make_colour_video(tmp_path / "v.mp4", [((230, 20, 20), 3), ((0, 230, 230), 3)], fps=10)
    ckpt = _saved(tmp_path, replace(SMALL, t_feat_dim=512, v_motion_feat_dim=512, v_appear_feat_dim=512))
    out = tmp_path / "preds.jsonl"
    result = run_cli("predict", str(video), "--query", "a cyan wall", "--clip-weights", "random", "--resume",
                     str(ckpt), "--json", str(out), "--device", "cpu", cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text().splitlines()[0])
    assert record["clip_len"] == pytest.approx(0.2) and len(record["pred_saliency_scores"]) == 30
    assert record["pred_relevant_windows"] and all(0 <= s < e <= 6.0 + 1e-6 for s, e, _ in
                                                   record["pred_relevant_windows"])


def _h5(path, entries: dict) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for key, value in entries.items():
            f.create_dataset(key, data=value)


@pytest.mark.parametrize("dataset", ["mad", "ego4d"])
def test_split_evaluation_with_an_rgnet_checkpoint(tmp_path, dataset, capsys):
    """predict-split --resume rgnet.ckpt on official-layout features (video h5 keyed by movie / clip, query
    tokens and sentence features h5 keyed by qid), then eval --metrics mad (R@{1,5,10,50,100} at IoU
    {0.1,0.3,0.5}) or ego4d (R@{1,5} at {0.3,0.5} and the challenge JSON). Each query's file rows are the
    official inference's moments."""
    from univtg_core.cli import main as cli_main
    from univtg_core.evaluation.cli import main as eval_main

    config = EGO4D_SMALL if dataset == "ego4d" else SMALL
    ckpt = _saved(tmp_path, config, seed=4)
    rng = np.random.default_rng(9)
    clip, dim = config.clip_length, config.v_motion_feat_dim
    videos = {"movie_a": rng.normal(size=(260, dim)).astype(np.float32),
              "movie_b": rng.normal(size=(140, dim)).astype(np.float32)}
    tokens, sentences, records = {}, {}, []
    for i, (vid, a, b) in enumerate([("movie_a", 40, 52), ("movie_a", 200, 230), ("movie_b", 10, 30)]):
        qid = f"{'ann' if dataset == 'ego4d' else 'q'}{i}_{i}"
        tokens[qid] = rng.normal(size=(5, config.t_feat_dim)).astype(np.float32)
        sentences[qid] = rng.normal(size=config.v_appear_feat_dim).astype(np.float32)
        records.append({"qid": qid, "query": f"query {i}", "vid": vid, "duration": len(videos[vid]) * clip,
                        "relevant_windows": [[a * clip, b * clip]]})
    _h5(tmp_path / "video.h5", videos)
    _h5(tmp_path / "tokens.h5", tokens)
    _h5(tmp_path / "sentences.h5", sentences)
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    preds = tmp_path / "preds.jsonl"
    assert cli_main(["predict-split", "--jsonl", str(tmp_path / "test.jsonl"), "--features", str(tmp_path / "video.h5"),
                     "--text-features", str(tmp_path / "tokens.h5"), "--sentence-features",
                     str(tmp_path / "sentences.h5"), "--out", str(preds), "--resume", str(ckpt), "--coarse-top-k",
                     str(config.topk_window), "--top-k", "100", "--no-saliency", "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["qid"] for r in lines] == [r["qid"] for r in records] and lines[0]["clip_len"] == pytest.approx(clip)
    model = load_model(ckpt, device="cpu")
    spans, scores, _ = _official_rows(model, videos["movie_a"], tokens[records[0]["qid"]],
                                      sentences[records[0]["qid"]], config.topk_window)
    got = np.asarray(lines[0]["pred_relevant_windows"], dtype=np.float64)
    np.testing.assert_allclose(got[:10], np.concatenate([spans, scores[:, None]], axis=1)[:10], atol=2e-4)

    metrics = tmp_path / "metrics.json"
    extra = ["--ego4d_submission", str(tmp_path / "challenge.json")] if dataset == "ego4d" else []
    assert eval_main(["--submission", str(preds), "--gt", str(tmp_path / "test.jsonl"), "--metrics", dataset,
                      "--out", str(metrics), *extra]) == 0
    report = json.loads(metrics.read_text())
    if dataset == "mad":
        expected = {f"R{k}@{iou}" for k in (1, 5, 10, 50, 100) for iou in (0.1, 0.3, 0.5)}
    else:
        expected = {f"R{k}@{iou}" for k in (1, 5) for iou in (0.3, 0.5)}
        challenge = json.loads((tmp_path / "challenge.json").read_text())
        assert len(challenge["results"]) == 3 and challenge["results"][0]["clip_uid"] == "movie_a"
    assert expected <= set(report) and all(0.0 <= report[k] <= 100.0 for k in expected), report


def test_app_queries_are_encoded_as_the_official_mad_extractor_rewrote_them(tmp_path):
    """CONE's MAD text extractor (RGNet's features) strips ".", " ", "?" from both ends and appends "."; the
    Grounder encodes that form for an RGNet MAD checkpoint, keeps the user's words as the label, and leaves
    Ego4D checkpoints' text alone."""
    from tiny_clip import tiny_clip_encoder

    from univtg_core import Grounder

    encoder = tiny_clip_encoder(embed_dim=48)
    mad = RGNet(SMALL).eval()
    assert mad.query_text("Where is the cat?") == "Where is the cat." and mad.query_text("run") == "run."
    assert mad.query_text(" Where is the cat?. ") == "Where is the cat?.."  # one strip after the other, as CONE
    asked = Grounder(encoder, mad).encode_query("Where is the cat?")
    np.testing.assert_array_equal(asked.tokens, encoder.encode_query("Where is the cat.").tokens)
    assert asked.text == "Where is the cat?"
    ego = RGNet(replace(SMALL, dset_name="ego4d")).eval()
    assert ego.query_text("Where is the cat?") == "Where is the cat?"
    with pytest.raises(CheckpointError, match="egovlp"):  # a front end cannot index EgoVLP features
        Grounder(encoder, ego)
