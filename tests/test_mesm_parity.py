"""Our MESM against the official outputs stored in ../shared/fixtures/mesm_reference (see its README)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from conftest import shared_fixture

from univtg_core.errors import CheckpointError
from univtg_core.models import QueryInput
from univtg_core.models.mesm import load_mesm, read_mesm_checkpoint
from univtg_core.models.mesm_inputs import prepare_video, prepare_windows, query_rows
from univtg_core.models.mesm_postprocess import official_postprocess, official_ranked_windows, product_moments
from univtg_core.query import Query

OUTPUTS = ["pred_logits", "pred_spans", "saliency_scores", "neg_saliency_scores", "projed_video_feat", "recon_feat",
           "projed_recon_feat", "expanded_words_feat", "expanded_words_mask", "enhanced_video_feat",
           "projed_words_feat"]
TOL = {"atol": 1e-5, "rtol": 1e-4}


@pytest.fixture(scope="module")
def reference():
    return shared_fixture("mesm_reference")


@pytest.fixture(scope="module")
def model(reference):
    return load_mesm(reference / "model_test_best.ckpt", device="cpu")


@pytest.fixture(scope="module")
def cases(reference):
    return {name: dict(np.load(reference / f"{name}.npz")) for name in ("io_single", "io_batch", "io_grouped")}


def _batch(data, rows=None, prefix="in_"):
    rows = slice(None) if rows is None else rows
    return dict(video_feat=torch.from_numpy(data["in_video_feat"][rows]),
                video_mask=torch.from_numpy(data["in_video_mask"][rows]),
                words_feat=torch.from_numpy(data["in_txt_hidden"][rows]),
                words_mask=torch.from_numpy(data["in_words_mask"][rows, :16]))


def _run(model, data, official=False, neg_key="mid_neg_index", training=False, **kwargs):
    """The forward with forward hooks recording the intermediates the fixture stores."""
    model.official_batch_mask = official
    seen: dict[str, list] = {"t2v": [], "transformer": [], "enhance": []}
    hooks = [getattr(model, name if name != "enhance" else "enhance_encoder").register_forward_hook(
        lambda _m, _i, o, name=name: seen[name].append(o)) for name in ("t2v_encoder", "transformer", "enhance")]
    seen["t2v_encoder"] = seen.pop("t2v")
    extra = {}
    if training:
        extra = dict(is_training=True, unknown_mask=torch.from_numpy(data["train_in_unknown_mask"]),
                     clip_mask=torch.from_numpy(data["in_clip_mask"]),
                     words_weight=torch.from_numpy(data["in_words_weight"]),
                     masked_words=torch.from_numpy(data["train_mid_mlm_masked_words"]))
    try:
        with torch.no_grad():
            out = model(**_batch(data), num_clips=torch.from_numpy(data["in_num_clips"]),
                        neg_index=torch.from_numpy(data[neg_key]), **extra, **kwargs)
    finally:
        for h in hooks:
            h.remove()
        model.official_batch_mask = False
    return out, seen


def _compare(out, seen, data, prefix=""):
    for name in OUTPUTS:
        np.testing.assert_allclose(out[name].numpy(), data[f"{prefix}out_{name}"], err_msg=name, **TOL)
    for key in ("pred_logits", "pred_spans"):
        aux = torch.stack([a[key] for a in out["aux_outputs"]]).numpy()
        np.testing.assert_allclose(aux, data[f"{prefix}out_aux_{key}"], err_msg=key, **TOL)
    hs, reference, memory, memory_global = seen["transformer"][0]
    mids = {"hs": hs, "reference": reference, "memory": memory, "memory_global": memory_global,
            "t2v_out": seen["t2v_encoder"][0], "neg_t2v_out": seen["t2v_encoder"][1],
            "neg_memory": seen["transformer"][1][2], "neg_memory_global": seen["transformer"][1][3],
            "neg_enhanced_video_feat": seen["enhance"][1]}
    for name, value in mids.items():
        np.testing.assert_allclose(value.numpy(), data[f"{prefix}mid_{name}"], err_msg=name, **TOL)


def test_single_matches_official(model, cases):
    data = cases["io_single"]
    out, seen = _run(model, data)
    _compare(out, seen, data)
    words, mask, sentence = model.prepare_text(torch.from_numpy(data["in_txt_hidden"]),
                                               torch.from_numpy(data["in_words_mask"][:, :16]))
    np.testing.assert_allclose(words.numpy(), data["mid_words_feat"], **TOL)
    np.testing.assert_allclose(sentence.numpy(), data["mid_sentence_feat"], **TOL)
    assert np.array_equal(mask.numpy(), data["mid_words_mask"])


@pytest.mark.parametrize("case", ["io_batch", "io_grouped"])
def test_official_batch_mask_reproduces_official_batches(model, cases, case):
    data = cases[case]
    out, seen = _run(model, data, official=True)
    _compare(out, seen, data)


@pytest.mark.parametrize("case", ["io_batch", "io_grouped"])
def test_training_branch_matches_official(model, cases, case):
    data = cases[case]
    out, seen = _run(model, data, official=True, neg_key="train_mid_neg_index", training=True)
    _compare(out, seen, data, prefix="train_")
    np.testing.assert_allclose(out["recfw_words_logit"].numpy(), data["train_out_recfw_words_logit"], **TOL)
    np.testing.assert_allclose(seen["enhance"][2].numpy(), data["train_mid_mlm_enhance_out"], **TOL)
    assert np.array_equal(out["words_mask"].numpy(), data["train_out_words_mask"])


def _alone(model, data, rows, num_clips):
    with torch.no_grad():
        return model(**_batch(data, rows), num_clips=num_clips, with_negative=False)


def test_default_batch_rows_equal_single_runs(model, cases):
    data = cases["io_batch"]
    out, _ = _run(model, data)
    single = cases["io_single"]
    for name in ("pred_logits", "pred_spans", "saliency_scores"):
        np.testing.assert_allclose(out[name][0].numpy(), single[f"out_{name}"][0], err_msg=name, **TOL)
    second = _alone(model, data, slice(1, 2), [1])
    for name in ("pred_logits", "pred_spans"):
        np.testing.assert_allclose(out[name][1].numpy(), second[name][0].numpy(), err_msg=name, **TOL)
    valid = data["in_video_mask"][1]
    np.testing.assert_allclose(out["saliency_scores"][1].numpy()[valid], second["saliency_scores"][0].numpy()[:25],
                               **TOL)
    # ... while the official layout makes row 0 depend on row 1 (the README's 0.037)
    assert np.abs(data["out_pred_logits"][0] - single["out_pred_logits"][0]).max() > 1e-2


def test_default_grouped_rows_equal_their_video_alone(model, cases):
    data = cases["io_grouped"]
    out, _ = _run(model, data)
    first = _alone(model, data, slice(0, 2), [2])
    second = _alone(model, data, slice(2, 3), [1])
    for name in ("pred_logits", "pred_spans", "recon_feat"):
        np.testing.assert_allclose(out[name][:2].numpy(), first[name].numpy(), err_msg=name, **TOL)
        np.testing.assert_allclose(out[name][2].numpy(), second[name][0].numpy(), err_msg=name, **TOL)
    # the reconstructed sentence does not read the other sentences, so q0 in its group equals q0 alone
    np.testing.assert_allclose(out["pred_logits"][0].numpy(), cases["io_single"]["out_pred_logits"][0], **TOL)


def test_text_padding_length_does_not_matter(model, cases):
    data = cases["io_batch"]
    batch = _batch(data)
    with torch.no_grad():
        full = model(**batch, with_negative=False)
        batch["words_feat"], batch["words_mask"] = batch["words_feat"][:, :12], batch["words_mask"][:, :12]
        cut = model(**batch, with_negative=False)
        # the fixture's padded rows hold (ignored) values; as our encoder gives them, zero rows are padding
        zeroed = batch["words_feat"].masked_fill(~batch["words_mask"][..., None], 0)
        derived = model(**{**batch, "words_feat": zeroed, "words_mask": None}, with_negative=False)
    np.testing.assert_allclose(full["pred_logits"].numpy(), cut["pred_logits"].numpy(), **TOL)
    np.testing.assert_allclose(full["pred_logits"].numpy(), derived["pred_logits"].numpy(), **TOL)


def test_one_video_needs_no_negative(model, cases):
    data = cases["io_grouped"]
    with torch.no_grad():
        out = model(**_batch(data, slice(0, 2)), num_clips=[2])
    assert "neg_saliency_scores" not in out and out["pred_logits"].shape == (2, 10, 2)
    with pytest.raises(ValueError, match="num_clips"):
        model(**_batch(data), num_clips=[1, 1])
    with pytest.raises(TypeError, match="negative_index"):
        model(**_batch(data), negative_index=[1, 0, 0])


def test_postprocess_single_as_official(model, cases, reference):
    expected = json.loads((reference / "postprocess_single.json").read_text())
    data = cases["io_single"]
    duration = float(data["in_duration"][0])
    with torch.no_grad():
        out = model(**_batch(data), with_negative=False)
    ranked = official_ranked_windows(out["pred_logits"][0], out["pred_spans"][0], duration)
    stored = expected["ranked_before_postprocessor"][0]["pred_relevant_windows"]
    np.testing.assert_allclose(np.array(ranked), np.array(stored), atol=1.5e-4)
    # ranks 1-4 in the same order; ranks 5/6 are 3.6e-6 apart: compare them as a set
    assert [r[:2] for r in ranked[:4]] == [r[:2] for r in stored[:4]]
    mr = official_postprocess(ranked, clip_len=1, max_ts_val=150)
    assert mr[:4] == expected["mr_res"][0]["pred_relevant_windows"][:4]
    assert sorted(map(tuple, mr)) == sorted(map(tuple, expected["mr_res"][0]["pred_relevant_windows"]))
    assert official_postprocess(stored, clip_len=1, max_ts_val=150) == expected["mr_res"][0]["pred_relevant_windows"]
    assert [20.0, 44.0] in [r[:2] for r in mr]  # clamped to 150 s, not to the 37.5 s video
    saliency = out["saliency_scores"][0].half().tolist()
    np.testing.assert_allclose(saliency, expected["mr_res"][0]["pred_saliency_scores"], atol=2e-3)

    # our product: the same candidates, clamped to the video and NMS-ed
    decoded = model.decode_outputs(out, torch.from_numpy(data["in_video_mask"]), 1.0, durations=[duration])
    moments = product_moments(decoded.windows[0], decoded.scores[0], duration, nms_threshold=0.7)
    assert moments[:, 1].max() <= duration and moments[:, 0].min() >= 0
    assert moments[0, 2] == pytest.approx(0.5634264, abs=1e-5)
    from univtg_core.spans import temporal_iou

    iou = temporal_iou(moments[:, :2], moments[:, :2])
    assert (iou[np.triu_indices(len(moments), 1)] < 0.7).all()


def test_input_spec_and_video_preparation(model, reference, cases):
    spec = model.input_spec
    assert [(s.name, s.dim) for s in spec.video] == [("clip", 512), ("slowfast", 2304)]
    assert (spec.text.name, spec.text.dim, spec.clip_len, spec.window) == ("clip_tokens", 512, 1.0, 194)
    raw = np.load(reference / "raw_features.npz")
    data = cases["io_batch"]
    for row, vid in enumerate(("VIDA1", "VIDB2")):
        feats = prepare_video([raw[f"clip_image__{vid}"], raw[f"slowfast__{vid}"]], model.config)
        length = int(data["in_video_mask"][row].sum())
        np.testing.assert_allclose(feats, data["in_video_feat"][row, :length], atol=1e-6)


def test_predict_windows_on_raw_features(model, reference, cases):
    raw = np.load(reference / "raw_features.npz")
    data = cases["io_single"]
    video = np.concatenate([raw["clip_image__VIDA1"][:37], raw["slowfast__VIDA1"][:37]], axis=1)[None]
    tokens = data["in_txt_hidden"][0, :12]
    query = model.query_input(Query(tokens=tokens))
    assert query.rows_read == 12 and query.rows_given == 12
    result = model.predict_windows(video, query, clip_len=1.0)
    spans = data["out_pred_spans"][0]
    np.testing.assert_allclose(result.windows[0], np.stack([spans[:, 0] - spans[:, 1] / 2,
                                                            spans[:, 0] + spans[:, 1] / 2], 1) * 37, atol=1e-4)
    logits = data["out_pred_logits"][0]
    np.testing.assert_allclose(result.scores[0], np.exp(logits[:, 0]) / np.exp(logits).sum(1), atol=1e-5)
    np.testing.assert_allclose(result.saliency[0], data["out_saliency_scores"][0], **TOL)


def test_long_videos_are_pooled_and_saliency_maps_back(model, cases):
    rng = np.random.default_rng(0)
    video = rng.standard_normal((2, 400, 2816)).astype(np.float32)
    feats = prepare_windows(video, model.config)
    assert feats.shape == (2, 194, 2818)
    np.testing.assert_allclose(feats[0, :, -2], np.arange(194) / 194, atol=1e-6)
    query = QueryInput(tokens=cases["io_single"]["in_txt_hidden"][0, :12], rows_read=12, rows_given=12)
    result = model.predict_windows(video, query, clip_len=1.0)
    assert result.saliency.shape == (2, 400) and result.windows.shape == (2, 10, 2)
    centres = result.windows.mean(axis=-1)  # spans are relative to the whole 400 s, not the 194 pooled rows
    assert centres.max() > 194 and np.all((centres > 0) & (centres < 400))


def test_query_rows_cut_as_the_official_extractor(model):
    config = model.config
    rows = np.arange(40 * 512, dtype=np.float32).reshape(40, 512)
    cut = query_rows(Query(tokens=rows[:30], text_rows=30), config)
    assert cut.rows_read == 16 and cut.rows_given == 30
    np.testing.assert_array_equal(cut.tokens[:15], rows[:15])
    np.testing.assert_array_equal(cut.tokens[15], rows[29])  # the end token, not the 15th word
    # text + image: the image row takes a word's place (the model reads 16 rows), start and end rows kept
    both = query_rows(Query(tokens=rows[:31], text_rows=30), config)
    assert both.rows_read == 16 and both.rows_given == 31
    np.testing.assert_array_equal(both.tokens, rows[[*range(14), 29, 30]])
    short = query_rows(Query(tokens=rows[:10], text_rows=10), config)
    np.testing.assert_array_equal(short.tokens, rows[:10])  # not normalised: the model normalises
    with pytest.raises(CheckpointError, match="512-d"):
        query_rows(Query(tokens=np.ones((5, 300), np.float32)), config)


def test_loading_refuses_unsafe_and_mismatched_checkpoints(reference, tmp_path):
    ckpt = read_mesm_checkpoint(reference / "model_test_best.ckpt")
    assert len(ckpt.state_dict) == 273 and ckpt.epoch == -1 and ckpt.options["hidden_dim"] == 160
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"model": ckpt.state_dict, "opt": Payload()}, tmp_path / "unsafe.ckpt")
    with pytest.raises(CheckpointError, match="refers to io.open"):
        load_mesm(tmp_path / "unsafe.ckpt", device="cpu")
    assert not marker.exists()
    broken = dict(ckpt.state_dict)
    broken["span_embed.layers.0.weight"] = torch.zeros(3, 3)
    torch.save({"model": broken, "opt": ckpt.raw["opt"]}, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError, match="wrong shape.*span_embed.layers.0.weight"):
        load_mesm(tmp_path / "broken.ckpt", device="cpu")
    model = load_mesm(reference / "model_test_best.ckpt", device="cpu", official_batch_mask=True)
    assert model.official_batch_mask and all(s.official_batch_mask for s in model.modules()
                                             if type(s).__name__ == "T2VStack")


@pytest.mark.parametrize("case", ["io_batch", "io_grouped"])
def test_masked_word_draw_equals_official_when_seeded(cases, case):
    from univtg_core.models.mesm import draw_masked_words

    data = cases[case]
    np.random.seed(12345)  # the fixture's seed: numpy's global RNG draws, as in the official _mask_words
    mask, weight = torch.from_numpy(data["in_words_mask"][:, :16]), torch.from_numpy(data["in_words_weight"])
    drawn = draw_masked_words(mask, weight)
    assert np.array_equal(drawn.numpy(), data["train_mid_mlm_masked_words"])
    counts = drawn.sum(1).numpy()
    assert counts.tolist() == [max(int(n) // 3, 1) for n in data["in_words_mask"][:, :16].sum(1)]
    assert not (drawn.numpy() & (data["in_words_weight"] == 0)).any()  # never the start/end tokens


def test_released_charades_shapes_load_and_keys_keep_the_official_order(model, reference, tmp_path):
    manifest = json.loads((reference / "checkpoint_manifest.json").read_text())
    assert list(model.state_dict()) == [e[0] for e in manifest["model"]["entries"]]
    released = manifest["released_config_state_dict_shapes"]["entries"]
    options = json.loads((reference / "opt.json").read_text()) | {"hidden_dim": 256}
    state = {name: torch.zeros(shape) for name, shape in released}
    torch.save({"model": state, "epoch": 0, "opt": argparse.Namespace(**options)}, tmp_path / "released.ckpt")
    big = load_mesm(tmp_path / "released.ckpt", device="cpu")
    assert big.config.hidden_dim == 256 and sum(p.numel() for p in big.parameters()) == 12_806_789
    assert list(big.state_dict()) == [name for name, _ in released]
