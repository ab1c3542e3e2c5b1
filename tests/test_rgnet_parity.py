"""Our RGNet against the official outputs stored in ../shared/fixtures/rgnet_reference (see its README).

Forwards over 900-frame windows are the expensive part, so every distinct batch runs once per module (a cache
around the model's forward keyed by the input bytes); tests marked slow run the training pairs and the
two-query batch.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import shared_fixture
from rgnet_checkpoints import official_checkpoint

from univtg_core.errors import CheckpointError, QueryError
from univtg_core.inference import ground
from univtg_core.models.rgnet import RGNet, RGNetConfig, config_from_checkpoint, load_rgnet
from univtg_core.models.rgnet_inference import (
    clip_matching_scores,
    hull_overlap,
    long_video_moments,
    official_inference,
    proposal_scores,
    rank_rows,
    rank_windows,
    temporal_nms,
    window_grid,
    window_rows,
)
from univtg_core.query import Query
from univtg_core.training.rgnet_losses import RGNetBatch, RGNetCriterion, hungarian_match, training_losses

FORWARD_KEYS = ["pred_logits", "pred_spans", "prob_soft", "saliency_scores"]
TOL = dict(atol=2e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def ref():
    return shared_fixture("rgnet_reference")


class _ForwardCache:
    """Memoises forward / retrieval_logits of a model by the bytes of their inputs and the model's mode."""

    def __init__(self, model):
        self.model = model
        self.store: dict = {}
        for name in ("forward", "retrieval_logits"):
            setattr(model, name, self._wrap(getattr(model, name), name))

    def key(self, name: str, kwargs: dict) -> tuple:
        digest = hashlib.sha1(name.encode())
        for k in sorted(kwargs):
            digest.update(k.encode() + kwargs[k].detach().cpu().numpy().tobytes())
        return digest.hexdigest(), self.model.training, self.model.official_mask_layout

    def _wrap(self, fn, name):
        def call(**kwargs):
            key = self.key(name, kwargs)
            full = self.key("forward", kwargs)
            if name == "retrieval_logits" and full in self.store:  # the same batch's forward has prob_soft
                return self.store[full]["prob_soft"]
            if key not in self.store:
                self.store[key] = fn(**kwargs)
            return self.store[key]
        return call


@pytest.fixture(scope="module")
def cache(ref):
    return _ForwardCache(load_rgnet(ref / "model_best.ckpt", device="cpu"))


@pytest.fixture(scope="module")
def model(cache):
    return cache.model


@pytest.fixture(scope="module")
def data(ref):
    return np.load(ref / "io_forward.npz")


@pytest.fixture(scope="module")
def video(data):
    return data["video_feats"].astype(np.float32)


@pytest.fixture(scope="module")
def queries(ref):
    q = np.load(ref / "queries.npz")
    return {name: (q[f"{name}_tokens"], q[f"{name}_cls"]) for name in ("mad_q0", "mad_q1")}


def _windows(video, starts, lens, length=None):
    length = length or int(max(lens))
    out = np.zeros((len(starts), length, video.shape[1]), np.float32)
    mask = np.zeros((len(starts), length), np.float32)
    for i, (s, n) in enumerate(zip(starts, lens)):
        out[i, :n] = video[s:s + n]
        mask[i, :n] = 1
    return torch.from_numpy(out), torch.from_numpy(mask)


@pytest.fixture(scope="module")
def forward_case(cache, data, video):
    """The fixture's forward case with hooks on the intermediates the README stores (run past the cache so
    that the hooks fire, then cached for the inference tests, which run the same batch)."""
    model = cache.model
    captured = {}
    t = model.transformer
    hooks = [t.prop_instance.register_forward_hook(lambda m, i, o: captured.__setitem__("gate", o)),
             t.encoder.register_forward_hook(lambda m, i, o: captured.__setitem__("memory", o[0])),
             t.decoder.register_forward_hook(lambda m, i, o: captured.__setitem__("decoder", o))]
    vid, mask = _windows(video, data["window_start"], data["window_len"], 900)
    assert torch.equal(mask, torch.from_numpy(data["src_vid_mask"]))
    inputs = dict(src_txt=torch.from_numpy(data["src_txt"]), src_txt_mask=torch.from_numpy(data["src_txt_mask"]),
                  src_vid_motion=vid, src_vid_motion_mask=mask)
    try:
        with torch.no_grad():
            out = RGNet.forward(model, **inputs)
    finally:
        for h in hooks:
            h.remove()
    cache.store[cache.key("forward", inputs)] = out
    return out, captured


# ------------------------------------------------------------------------------------------------ loading
def test_config_and_input_spec_from_checkpoint(model):
    c = model.config
    assert (c.hidden_dim, c.enc_layers, c.dec_layers, c.dim_feedforward, c.num_queries, c.max_q_l, c.max_v_l) == (
        256, 2, 6, 128, 5, 25, 900)
    assert (c.qddetr, c.dabdetr, c.gumbel, c.gumbel_2, c.gumbel_3, c.gumbel_single_proj) == (True,) * 6
    assert c.pos_temperature == 100 and c.gumbel_eps == 0.3 and c.adapter_module == "none"
    assert (c.topk_window, c.nms_thd, c.max_after_nms, c.official_mask_layout) == (30, 0.5, 100, False)
    spec = model.input_spec
    assert [(s.name, s.dim) for s in spec.video] == [("clip", 512)]
    assert (spec.text.name, spec.text.dim, spec.clip_len, spec.window) == ("clip_tokens", 512, 0.2, 900)
    assert not model.training


def test_seeded_construction_gives_the_official_initial_weights(model, ref):
    """The fixture's weights are the official random initialisation at seed 2020: building ours in the same
    order draws the same numbers, in the same state_dict order."""
    torch.manual_seed(2020)
    fresh = RGNet(model.config).state_dict()
    with torch.serialization.safe_globals([argparse.Namespace]):
        official = torch.load(ref / "model_best.ckpt", map_location="cpu", weights_only=True)["model"]
    assert list(fresh) == list(official)
    assert all(torch.equal(fresh[k], official[k]) for k in official)


# ------------------------------------------------------------------------------------------------ forward
def test_forward_matches_official(forward_case, data):
    out, captured = forward_case
    for name in FORWARD_KEYS:
        np.testing.assert_allclose(out[name].numpy(), data[f"out_{name}"], err_msg=name, **TOL)
    for i, aux in enumerate(out["aux_outputs"]):
        np.testing.assert_allclose(aux["pred_logits"].numpy(), data["out_aux_pred_logits"][i], **TOL)
        np.testing.assert_allclose(aux["pred_spans"].numpy(), data["out_aux_pred_spans"][i], **TOL)
    assert np.array_equal(out["pred_prop_hard"].numpy(), data["out_pred_prop_hard"])
    assert np.array_equal(out["attn_weights"].numpy(), data["out_attn_weights"])
    assert np.array_equal(out["video_mask"].numpy(), data["out_video_mask"])
    np.testing.assert_allclose(captured["gate"].permute(1, 0, 2)[..., 0].numpy(), data["dbg_gate_logits"], **TOL)
    np.testing.assert_allclose(captured["memory"][0].numpy(), data["dbg_memory_global"], **TOL)
    hs, refs = captured["decoder"]
    np.testing.assert_allclose(hs.numpy(), data["dbg_dec_hs"], **TOL)
    np.testing.assert_allclose(refs.numpy(), data["dbg_dec_refs"], **TOL)


def test_single_window_unpadded(model, data, video):
    i = int(data["dbg1_window_index"])
    s, n = int(data["window_start"][i]), int(data["window_len"][i])
    with torch.no_grad():
        out = model(src_txt=torch.from_numpy(data["src_txt"][i:i + 1]), src_txt_mask=torch.ones(1, 12),
                    src_vid_motion=torch.from_numpy(video[s:s + n][None]), src_vid_motion_mask=torch.ones(1, n))
    for name in FORWARD_KEYS + ["pred_prop_hard"]:
        np.testing.assert_allclose(out[name][0].numpy(), data[f"dbg1_out_{name}"], err_msg=name, **TOL)


def _two_query_pair(data, queries, video):
    """mad_q0 (12 tokens) on window 0 (450 frames) batched with mad_q1 (6 tokens) on window 6 (150 frames)."""
    vid, vmask = _windows(video, [0, 2250], [450, 150])
    txt = np.zeros((2, 12, 512), np.float32)
    tmask = np.zeros((2, 12), np.float32)
    for row, name in enumerate(("mad_q0", "mad_q1")):
        tokens = queries[name][0][:25]
        tokens = tokens / (np.linalg.norm(tokens, axis=-1, keepdims=True) + 1e-5)
        txt[row, :len(tokens)], tmask[row, :len(tokens)] = tokens, 1
    return dict(src_txt=torch.from_numpy(txt), src_txt_mask=torch.from_numpy(tmask), src_vid_motion=vid,
                src_vid_motion_mask=vmask)


def test_batched_row_equals_its_single_run_unless_official_layout(model, data, queries, video):
    """Fixed layout (default): mad_q0's row in a batch with mad_q1 equals mad_q0 alone (row 0 of the forward
    case). The official layout lets mad_q1's padding mask block mad_q0's valid tokens (its longer text)."""
    batch = _two_query_pair(data, queries, video)
    with torch.no_grad():
        fixed = model(**batch)
        model.official_mask_layout = True
        try:
            official = model(**batch)
        finally:
            model.official_mask_layout = False
    for name in ("pred_logits", "pred_spans", "prob_soft"):
        np.testing.assert_allclose(fixed[name][0].numpy(), data[f"out_{name}"][0], err_msg=name, **TOL)
    np.testing.assert_allclose(fixed["saliency_scores"][0].numpy(), data["out_saliency_scores"][0, :450], **TOL)
    assert np.abs(official["pred_logits"][0].numpy() - data["out_pred_logits"][0]).max() > 1e-3
    np.testing.assert_allclose(official["pred_logits"][1].numpy(), fixed["pred_logits"][1].numpy(), **TOL)


@pytest.mark.slow
def test_two_query_batch_with_official_layout(model, data, queries, video):
    """The official eval batch (both queries' windows, text padded to 12) reproduced with the switch on."""
    vid, vmask = _windows(video, list(data["window_start"]) * 2, list(data["window_len"]) * 2, 900)
    txt = np.zeros((14, 12, 512), np.float32)
    for row in range(14):
        tokens = queries["mad_q0" if row < 7 else "mad_q1"][0]
        txt[row, :len(tokens)] = tokens / (np.linalg.norm(tokens, axis=-1, keepdims=True) + 1e-5)
    model.official_mask_layout = True
    try:
        with torch.no_grad():
            out = model(src_txt=torch.from_numpy(txt), src_txt_mask=torch.from_numpy(data["twoq_src_txt_mask"]),
                        src_vid_motion=vid, src_vid_motion_mask=vmask)
    finally:
        model.official_mask_layout = False
    for name in ("pred_logits", "pred_spans", "prob_soft"):
        np.testing.assert_allclose(out[name].numpy(), data[f"twoq_out_{name}"], err_msg=name, **TOL)


# ---------------------------------------------------------------------------------------------- inference
def test_window_grid_is_the_official_one(ref):
    meta = json.loads((ref / "meta.json").read_text())["train_window_grid"]
    grid = window_grid(2400, 900)
    assert grid[:, 0].tolist() == meta["starts"] and (grid[:, 1] - grid[:, 0]).tolist() == meta["lens"]
    assert window_grid(100, 900).tolist() == [[0, 100], [0, 100]]  # a short video: two windows, whole video
    assert window_grid(10, 4).tolist() == [[0, 2], [0, 4], [2, 6], [4, 8], [6, 10], [8, 10]]
    with pytest.raises(ValueError, match="max_v_l"):
        window_grid(10, 1)


def test_nms_uses_intersection_over_hull():
    # [0, 10] and [2, 12]: intersection 8, union 12 (IoU 0.667), hull 12 -> 0.667; [0, 10] and [4, 20]:
    # intersection 6, union 20 -> IoU 0.3, hull 20 -> 0.3; [0, 10] and [1, 9]: IoU 0.8, hull 10 -> 0.8.
    assert hull_overlap([0, 10], [2, 12]) == pytest.approx(8 / 12)
    assert hull_overlap([0, 10], [20, 30]) == 0.0 and hull_overlap([5, 5], [5, 5]) == 0.0
    rows = [[0, 10, 0.9], [1, 9, 0.8], [4, 20, 0.7], [15, 16, 0.6], [30, 32, 0.5]]
    assert temporal_nms(rows, 0.5, 100) == [[0, 10, 0.9], [4, 20, 0.7], [15, 16, 0.6], [30, 32, 0.5]]
    assert temporal_nms(rows, 0.5, 2) == [[0, 10, 0.9], [4, 20, 0.7]]
    # exactly at the threshold stays (the official test is overlap > nms_thd)
    assert temporal_nms([[0, 10, 1.0], [0, 5, 0.5]], 0.5) == [[0, 10, 1.0], [0, 5, 0.5]]


def _assert_rows_match(ours: list, reference: list, what: str) -> None:
    """README tolerances: same number of rows, rounded values within 1.01e-4, fusion within 2e-3 rank by rank
    (so rows may only trade places where their fusion scores are that close)."""
    assert len(ours) == len(reference), what
    for a, b in zip(ours, reference):
        assert abs(a[-1] - b[-1]) <= 2e-3, (what, a, b)
    unmatched = [list(r) for r in reference]
    for row in ours:
        hit = next((i for i, r in enumerate(unmatched)
                    if all(abs(x - y) <= 1.01e-4 for x, y in zip(row[:4], r[:4]))), None)
        assert hit is not None, (what, row)
        unmatched.pop(hit)


def _check_run(results, run: dict, qids=("mad_q0", "mad_q1")):
    for qid, res in zip(qids, results):
        assert res.window_order == run["query_id2windowidx"][qid]
        per_window = [m["pred_relevant_windows"] for m in run["mr_res"] if m["query_id"] == qid]
        assert len(per_window) == len(res.window_rows)
        for ours, theirs in zip(res.window_rows, per_window):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1.01e-4, rtol=0)
        submission = next(s["predicted_times"] for s in run["submission_file"] if s["query_id"] == qid)
        _assert_rows_match(res.ranked.fusion, submission, qid)


def test_postprocessing_from_stored_outputs(ref, data, video):
    """The pure functions alone, fed with the official forward outputs of mad_q0 (README: an independent
    re-implementation reproduced the inference records exactly this way)."""
    run = json.loads((ref / "inference.json").read_text())["single_query_batches_topk30"]
    cfg = RGNetConfig(max_v_l=900, clip_length=0.2)
    outputs = {k: torch.from_numpy(data[f"out_{k}"]) for k in ("pred_logits", "pred_spans", "prob_soft")}
    proposal, window_score = proposal_scores(outputs)
    np.testing.assert_allclose(window_score.numpy(), run["window_retrieval_score"], atol=1e-6, rtol=0)
    order = rank_windows(window_score)
    assert order.tolist() == run["query_id2windowidx"]["mad_q0"]
    vid, mask = _windows(video, data["window_start"], data["window_len"], 900)
    matching = clip_matching_scores(vid, mask.sum(-1), outputs["pred_spans"], torch.from_numpy(data["src_cls_txt"]),
                                    official_padding=True)
    np.testing.assert_allclose(matching[order].numpy(), run["matching_scores_first_batch"], atol=1e-5, rtol=0)
    rows = []
    for w in order:
        rows += window_rows(outputs["pred_spans"][w], proposal[w], matching[w], int(data["window_start"][w]),
                            int(data["window_len"][w]), cfg.clip_length)
    assert rows == run["score_fusion"][0]["input"]
    _assert_rows_match(rank_rows(rows).fusion, run["submission_file"][0]["predicted_times"], "mad_q0")


@pytest.mark.parametrize("qids", [("mad_q0",), pytest.param(("mad_q0", "mad_q1"), marks=pytest.mark.slow)])
def test_official_inference_reproduced(model, ref, video, queries, qids):
    runs = json.loads((ref / "inference.json").read_text())
    pairs = [queries[q] for q in qids]
    _check_run(official_inference(model, video, pairs, eval_bsz=1), runs["single_query_batches_topk30"], qids)
    _check_run(official_inference(model, video, pairs, eval_bsz=1, topk_window=3), runs["single_query_batches_topk3"],
               qids)


@pytest.mark.slow
def test_official_inference_script_default_batch(model, ref, video, queries):
    """eval_bsz 32 puts both queries in one batch: with the official mask layout, mad_q0's ranking changes as
    in the official run (its windows [3, 4, 0, 2, 5, 6, 1], top-1 106.4888 s)."""
    run = json.loads((ref / "inference.json").read_text())["script_default_eval_bsz32_topk30"]
    model.official_mask_layout = True
    try:
        results = official_inference(model, video, [queries["mad_q0"], queries["mad_q1"]], eval_bsz=32)
    finally:
        model.official_mask_layout = False
    _check_run(results, run)


@pytest.mark.parametrize("k, run", [(None, "single_query_batches_topk30"),
                                    pytest.param(3, "single_query_batches_topk3", marks=pytest.mark.slow)])
def test_product_through_the_contract_equals_official_then_clamped(model, ref, video, queries, k, run):
    """What a generic long-video ground() does with RGNet (grid, learned window scores, top-K, candidates, the
    model's own fusion and NMS) gives the official moments, then clamped to the 480 s video."""
    runs = json.loads((ref / "inference.json").read_text())
    tokens, sentence = queries["mad_q0"]
    query = Query(tokens=tokens, embedding=sentence)
    got = long_video_moments(model, video, query, coarse_top_k=k)
    assert got.window_order.tolist() == runs[run]["query_id2windowidx"]["mad_q0"]
    official = np.asarray(runs[run]["submission_file"][0]["predicted_times"])
    spans = np.clip(official[:, :2], 0, 480.0)
    keep = spans[:, 1] > spans[:, 0]
    assert len(got.windows) == keep.sum() and got.windows.min() >= 0 and got.windows.max() <= 480
    expected = [list(w) + [0, 0, s] for w, s in zip(spans[keep], official[keep, 4])]
    _assert_rows_match([list(w) + [0, 0, s] for w, s in zip(got.windows, got.scores)], expected, run)
    # ground(), the product's one entry point, runs the same batches (the cache answers) and the same moments
    pred = ground(video, query, clip_len=0.2, model=model, coarse_top_k=k, top_k=100)
    assert pred.mode == "model" and pred.saliency.shape == (2400,)
    _assert_rows_match([[m.start, m.end, 0, 0, m.score] for m in pred.moments], expected[:100], run)


def test_clip_matching_padding_quirk_and_product_fix(ref, video):
    """A span past a 150-frame window's end reads the zero padding officially (NaN), an empty span scores 0;
    the product stops at the valid length."""
    crafted = json.loads((ref / "meta.json").read_text())["clip_matching_crafted"]
    vid, mask = _windows(video, [2250], [150], 900)
    spans = torch.tensor([crafted["spans_cxw"]], dtype=torch.float32)
    sentence = torch.from_numpy(np.load(ref / "io_forward.npz")["src_cls_txt"][:1])
    official = clip_matching_scores(vid, mask.sum(-1), spans, sentence, official_padding=True)[0]
    assert np.isnan(official[0].item()) and official[1].item() == 0.0
    fixed = clip_matching_scores(vid, mask.sum(-1), spans, sentence, official_padding=False)[0]
    assert np.isfinite(fixed[0].item()) and fixed[1].item() == 0.0


# ----------------------------------------------------------------------------------------------------- losses
def _stored_outputs(loss, case):
    g = lambda k: torch.from_numpy(loss[f"{case}_{k}"])  # noqa: E731
    pos = {k: g(f"pos_out_{k}") for k in ("pred_logits", "pred_spans", "prob_soft", "saliency_scores",
                                          "pred_prop_hard", "video_mask")}
    pos["aux_outputs"] = [{"pred_logits": g("pos_out_aux_pred_logits")[i], "pred_spans": g("pos_out_aux_pred_spans")[i]}
                          for i in range(5)]
    neg = {k: g(f"pairneg_out_{k}") for k in ("pred_logits", "pred_spans", "prob_soft")}
    targets = {"span_labels": [{"spans": s} for s in g("span_labels_cxw")],
               "saliency_pos_labels": g("saliency_pos_labels"), "saliency_neg_labels": g("saliency_neg_labels")}
    return pos, neg, targets


def _assert_loss_dict(losses: dict, loss, case):
    keys, values = list(loss[f"{case}_loss_keys"]), loss[f"{case}_loss_values"]
    assert list(losses) == keys
    for k, v in zip(keys, values):
        assert float(losses[k]) == pytest.approx(v, abs=1e-4, rel=1e-4), k


@pytest.fixture(scope="module")
def loss(ref):
    return np.load(ref / "io_loss.npz")


@pytest.fixture(scope="module")
def criterion(ref):
    with torch.serialization.safe_globals([argparse.Namespace]):
        opt = torch.load(ref / "model_best.ckpt", map_location="cpu", weights_only=True)["opt"]
    return RGNetCriterion.from_options(opt)


@pytest.mark.parametrize("case", ["L1", "L2"])
def test_losses_on_stored_outputs(criterion, loss, case):
    pos, neg, targets = _stored_outputs(loss, case)
    indices = [hungarian_match(o, [t["spans"] for t in targets["span_labels"]])
               for o in [pos] + pos["aux_outputs"]]
    assert np.array_equal(np.array([[int(i[0]) for i, _ in layer] for layer in indices]),
                          loss[f"{case}_matcher_query_index"])
    losses = criterion(pos, targets, None, neg)
    losses["loss_overall"] = criterion.total(losses)
    _assert_loss_dict(losses, loss, case)
    assert criterion.weight_dict["loss_retrieval"] == 10 and "loss_retrieval_4" in criterion.weight_dict


def _loss_batch(loss, video, case):
    g = lambda k: torch.from_numpy(loss[f"{case}_{k}"])  # noqa: E731
    win, mask = _windows(video, loss[f"{case}_pos_window_start"], loss[f"{case}_pos_window_len"])
    return RGNetBatch(query_feat=g("query_feat"), query_mask=g("query_mask"), query_cls=g("query_cls"),
                      window_feat=win, window_mask=mask, span_labels=g("span_labels_cxw"),
                      saliency_pos_labels=g("saliency_pos_labels"), saliency_neg_labels=g("saliency_neg_labels"),
                      span_proposal=g("span_proposal").view(-1, 2))


@pytest.mark.slow
@pytest.mark.parametrize("case", ["L1", "L2"])
def test_training_step_losses_match_official(ref, model, criterion, loss, video, case):
    """The B^2 --winret pairs through our model (official mask layout, as the official training batches them):
    L1 in eval mode (the module's model), L2 in training mode with dropout 0 and the stored Gumbel draws."""
    if case == "L2":
        m = load_rgnet(ref / "model_best.ckpt", device="cpu", official_mask_layout=True, dropout=0.0,
                       input_dropout=0.0)
        draws = torch.from_numpy(loss["L2_gumbel_u_0"])
        m.train()
        m.transformer.gumble_gate.sample_uniform = lambda template: draws
    else:
        m = model
        m.official_mask_layout = True
    try:
        with torch.set_grad_enabled(case == "L2"):
            losses, total = training_losses(m, criterion, _loss_batch(loss, video, case),
                                            official_attn_selection=True)
    finally:
        model.official_mask_layout = False
    _assert_loss_dict({k: v.detach() if torch.is_tensor(v) else v for k, v in losses.items()}, loss, case)
    if case == "L2":
        total.backward()
        assert m.global_rep_token.grad is not None and m.global_rep_token.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ queries
def test_query_input_cuts_and_normalises(model):
    rng = np.random.default_rng(0)
    dataset = Query(tokens=rng.normal(size=(30, 512)) * 3, embedding=rng.normal(size=512) * 2)
    qi = model.query_input(dataset)
    assert (qi.rows_given, qi.rows_read) == (30, 25)
    expected = dataset.tokens[:25] / (np.linalg.norm(dataset.tokens[:25], axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(qi.tokens, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(qi.embedding), 1.0, rtol=1e-5)
    encoded = Query(tokens=rng.normal(size=(9, 512)), embedding=rng.normal(size=512), text_rows=7)
    qi = model.query_input(encoded)  # start + 5 words + end, then 2 image rows: the 5 words and 2 images stay
    kept = np.concatenate([encoded.tokens[1:6], encoded.tokens[7:]])
    np.testing.assert_allclose(qi.tokens, kept / (np.linalg.norm(kept, axis=1, keepdims=True) + 1e-5), rtol=1e-6)
    with pytest.raises(QueryError, match="width 512"):
        model.query_input(Query(tokens=np.ones((4, 300))))
    with pytest.raises(QueryError, match="start and end"):
        model.query_input(Query(tokens=np.ones((2, 512)), text_rows=2))


# --------------------------------------------------------------------------------- other configurations
EGO4D_LIKE = RGNetConfig(t_feat_dim=512, v_motion_feat_dim=256, v_appear_feat_dim=256, hidden_dim=256, nheads=4,
                         enc_layers=3, dec_layers=4, dim_feedforward=64, num_queries=7, max_q_l=20, max_v_l=90,
                         adapter_module="linear", qddetr=True, dabdetr=True, gumbel=True, gumbel_2=True,
                         gumbel_3=True, gumbel_single_proj=True, gumbel_eps=0.3, dset_name="ego4d",
                         clip_length=0.535)
OTHER_CONFIGS = {
    "ego4d_like": replace(EGO4D_LIKE, max_v_l=30),  # 30-frame windows: the layers, not the length, are checked
    "detr_gate2_txtpos": RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=32,
                                     nheads=4, enc_layers=1, dec_layers=3, dim_feedforward=16, num_queries=4,
                                     max_q_l=8, max_v_l=20, qddetr=True, gumbel=True, gumbel_3=True, n_input_proj=3,
                                     use_txt_pos=True, winret_neg_loss=True),
    "decoder_gating_prenorm": RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=32,
                                          nheads=2, enc_layers=2, dec_layers=2, dec_layers_2=3, dim_feedforward=16,
                                          num_queries=3, max_q_l=8, max_v_l=20, decoder_gating=True, pre_norm=True,
                                          n_input_proj=1),
    "multiscale_dab": RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=256,
                                  nheads=8, enc_layers=1, dec_layers=2, dim_feedforward=16, num_queries=3, max_q_l=8,
                                  max_v_l=40, qddetr=True, dabdetr=True, gumbel_3=True, multiscale=True),
}


@pytest.mark.parametrize("name", list(OTHER_CONFIGS))
def test_other_configurations_load_strictly_and_run(tmp_path, name):
    config = OTHER_CONFIGS[name]
    ckpt = official_checkpoint(config, seed=7)
    path = tmp_path / "model_e0009.ckpt"
    torch.save(ckpt, path)
    model = load_rgnet(path, device="cpu")
    for k, v in ckpt["model"].items():
        assert torch.equal(model.state_dict()[k], v), k
    c = model.config
    for field in ("hidden_dim", "nheads", "enc_layers", "dec_layers", "num_queries", "adapter_module", "qddetr",
                  "dabdetr", "gumbel_3", "decoder_gating", "multiscale", "pre_norm", "winret_neg_loss", "use_txt_pos"):
        assert getattr(c, field) == getattr(config, field), field
    rng = np.random.default_rng(1)
    lengths = [config.max_v_l, config.max_v_l // 2]
    vid, vmask = _windows(rng.normal(size=(config.max_v_l, config.v_motion_feat_dim)).astype(np.float32), [0, 3],
                          lengths)
    txt = torch.from_numpy(rng.normal(size=(2, 5, config.t_feat_dim)).astype(np.float32))
    with torch.no_grad():
        out = model(src_txt=txt, src_txt_mask=torch.tensor([[1.0] * 5, [1, 1, 1, 0, 0]]), src_vid_motion=vid,
                    src_vid_motion_mask=vmask)
    n_layers = config.dec_layers_2 if config.decoder_gating else config.dec_layers
    assert out["pred_spans"].shape == (2, config.num_queries, 2) and len(out["aux_outputs"]) == n_layers - 1
    assert torch.isfinite(out["pred_logits"]).all() and torch.isfinite(out["saliency_scores"]).all()
    assert (out["prob_soft"] is None) == (not config.qddetr)
    # the whole official inference runs (learned first stage, or CONE's pre-filter without a retrieval token)
    feats = rng.normal(size=(2 * config.max_v_l, config.v_motion_feat_dim)).astype(np.float32)
    tokens, sentence = rng.normal(size=(6, config.t_feat_dim)), rng.normal(size=config.v_appear_feat_dim)
    result = official_inference(model, feats, [(tokens, sentence)], topk_window=2)[0]
    assert sorted(result.window_order) == list(range(5)) and result.kept_windows == result.window_order[:2]
    assert 0 < len(result.ranked.fusion) <= 2 * config.num_queries


def test_ego4d_like_checkpoint_from_opt_json_and_ddp(tmp_path):
    ckpt = official_checkpoint(replace(EGO4D_LIKE, enc_layers=1, dec_layers=2), seed=3)
    opt = {k: (0 if k == "device" else v) for k, v in vars(ckpt.pop("opt")).items()}
    ckpt["model"] = {f"module.{k}": v for k, v in ckpt["model"].items()}
    path = tmp_path / "model_best.ckpt"
    torch.save(ckpt, path)
    (tmp_path / "opt.json").write_text(json.dumps(opt, indent=4))
    model = load_rgnet(path, device="cpu")
    spec = model.input_spec
    assert [(s.name, s.dim) for s in spec.video] == [("egovlp", 256)]
    assert (spec.text.name, spec.clip_len, spec.window, model.config.topk_window) == ("clip_tokens", 0.535, 90, 20)
    # Ego4D: matching through the adapter, scaled by the window score; the gate is [logit >= 0] in eval
    rng = np.random.default_rng(2)
    qi = model.query_input(Query(tokens=rng.normal(size=(6, 512)), embedding=rng.normal(size=256)))
    video = rng.normal(size=(2, 90, 256)).astype(np.float32)
    captured = {}
    hook = model.transformer.prop_instance.register_forward_hook(lambda m, i, o: captured.__setitem__("gate", o))
    out = model.predict_windows(video, qi, 0.535, lengths=np.array([90, 60]))
    hook.remove()
    assert out.windows.shape == (2, 7, 2) and out.saliency.shape == (2, 90)
    assert np.isfinite(out.extras["matching"]).all()
    with torch.no_grad():
        raw = model(**model._batch(video, qi, np.array([90, 60])))
    gates = (captured["gate"].permute(1, 0, 2)[..., 0] >= 0).float()[:, 1:]
    assert torch.equal(raw["pred_prop_hard"], gates)
    with torch.no_grad():
        frames = torch.from_numpy(video.copy())
        frames[1, 60:] = 0
        unscaled = clip_matching_scores(frames, torch.tensor([90.0, 60.0]), raw["pred_spans"],
                                        torch.from_numpy(qi.embedding)[None].expand(2, -1), model.adapt_appearance)
        scaled = (unscaled * raw["prob_soft"].sigmoid()).numpy()
    assert not np.allclose(unscaled.numpy(), scaled)
    np.testing.assert_allclose(out.extras["matching"], scaled, rtol=1e-5)


def test_strict_loading_refuses_mismatched_checkpoints(tmp_path, ref):
    ckpt = official_checkpoint(OTHER_CONFIGS["detr_gate2_txtpos"], seed=5)
    broken = copy.deepcopy(ckpt)
    del broken["model"]["saliency_proj3.bias"]
    torch.save(broken, tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="does not match the RGNet architecture.*saliency_proj3.bias"):
        load_rgnet(tmp_path / "missing.ckpt")
    wrong = copy.deepcopy(ckpt)
    wrong["model"]["transformer.decoder.norm.weight"] = torch.ones(16)
    torch.save(wrong, tmp_path / "shape.ckpt")
    with pytest.raises(CheckpointError, match="size mismatch"):
        load_rgnet(tmp_path / "shape.ckpt")
    bad = copy.deepcopy(ckpt)
    bad["opt"].nheads = 7
    torch.save(bad, tmp_path / "heads.ckpt")
    with pytest.raises(CheckpointError, match="hidden_dim=32 is not divisible by nheads=7"):
        load_rgnet(tmp_path / "heads.ckpt")
    with pytest.raises(CheckpointError, match="not an RGNet checkpoint"):
        load_rgnet(ref.parent / "univtg_reference" / "model_best.ckpt")
    with pytest.raises(CheckpointError, match="hidden_dim=128 with dabdetr"):
        RGNetConfig(hidden_dim=128, dabdetr=True).validate()
    assert config_from_checkpoint(ckpt, "x.ckpt").num_queries == 4


def test_unsafe_pickle_is_refused(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"model": {}, "opt": Payload()}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match=r"refused to read .*(io|builtins)\.open"):
        load_rgnet(tmp_path / "evil.ckpt")
    assert not marker.exists()
