"""MESM's criterion against the loss values the official code gives on the fixture's batches (losses.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import shared_fixture

from univtg_core.models.mesm import load_mesm
from univtg_core.training.mesm_losses import MESMCriterion, MESMLossConfig, build_targets, clip_mask_from_moments


@pytest.fixture(scope="module")
def reference():
    return shared_fixture("mesm_reference")


@pytest.fixture(scope="module")
def setup(reference):
    model = load_mesm(reference / "model_test_best.ckpt", device="cpu", official_batch_mask=True)
    options = json.loads((reference / "opt.json").read_text())
    criterion = MESMCriterion(MESMLossConfig.from_options(options, model.config))
    return model, criterion, json.loads((reference / "losses.json").read_text())


def _targets(data, training):
    targets = {"norm_moment": torch.from_numpy(data["in_norm_moment"]),
               "video_mask": torch.from_numpy(data["in_video_mask"]),
               "clip_mask": torch.from_numpy(data["in_clip_mask"]),
               "num_clips": torch.from_numpy(data["in_num_clips"]),
               "pos_idx": torch.from_numpy(data["in_pos_idx"]), "neg_idx": torch.from_numpy(data["in_neg_idx"])}
    if training:
        targets["words_label"] = torch.from_numpy(data["train_in_words_label"])
    return targets


def _forward(model, data, training):
    kwargs = dict(video_feat=torch.from_numpy(data["in_video_feat"]),
                  video_mask=torch.from_numpy(data["in_video_mask"]),
                  words_feat=torch.from_numpy(data["in_txt_hidden"]),
                  words_mask=torch.from_numpy(data["in_words_mask"][:, :16]),
                  num_clips=torch.from_numpy(data["in_num_clips"]))
    if training:
        kwargs.update(is_training=True, neg_index=torch.from_numpy(data["train_mid_neg_index"]),
                      unknown_mask=torch.from_numpy(data["train_in_unknown_mask"]),
                      clip_mask=torch.from_numpy(data["in_clip_mask"]),
                      words_weight=torch.from_numpy(data["in_words_weight"]),
                      masked_words=torch.from_numpy(data["train_mid_mlm_masked_words"]))
    else:
        kwargs["neg_index"] = torch.from_numpy(data["mid_neg_index"])
    with torch.no_grad():
        return model(**kwargs)


@pytest.mark.parametrize("case", ["batch", "grouped"])
@pytest.mark.parametrize("branch", ["eval_mode_criterion", "training_branch_no_dropout"])
def test_losses_equal_official(setup, reference, case, branch):
    model, criterion, expected = setup
    expected = expected[case][branch]
    data = np.load(reference / f"io_{case}.npz")
    training = branch.startswith("training")
    outputs = _forward(model, data, training)
    losses, total = criterion(outputs, _targets(data, training), is_training=training)
    assert set(losses) == set(expected["loss_dict"])
    for name, value in expected["loss_dict"].items():
        assert float(losses[name]) == pytest.approx(value, rel=1e-5, abs=1e-7), name
    assert float(total) == pytest.approx(expected["weighted_total"], rel=1e-5)
    assert criterion.weight_dict == expected["weight_dict"]
    assert criterion.match(outputs, _targets(data, training)).tolist() == expected["matched_query"]["main"]
    aux = criterion.match(outputs["aux_outputs"][0], _targets(data, training))
    assert aux.tolist() == expected["matched_query"]["aux_0"]


def test_targets_from_records_equal_the_official_dataset(reference):
    data = np.load(reference / "io_grouped.npz")
    mask = torch.from_numpy(data["in_video_mask"])
    targets = build_targets(data["in_moment"], data["in_duration"], mask, [2, 1], clip_len=1.0)
    np.testing.assert_allclose(targets["norm_moment"].numpy(), data["in_norm_moment"], atol=1e-7)
    np.testing.assert_allclose(targets["norm_span"].numpy(), data["in_norm_span"], atol=1e-7)
    assert np.array_equal(targets["clip_mask"].numpy(), data["in_clip_mask"])
    for name in ("pos_idx", "neg_idx"):
        inside = np.take_along_axis(data["in_clip_mask"], targets[name].numpy(), axis=1)
        assert inside.all() if name == "pos_idx" else not inside.any()
    # a window past the end is clamped to the last frame; an inverted one collapses to its end
    assert clip_mask_from_moments(np.array([[30.0, 99.0]]), [40.0], [35], 1.0)[0].nonzero()[0].tolist() == list(
        range(30, 35))


def test_one_video_batch_trains_without_negatives(setup, reference):
    model, criterion, _ = setup
    data = np.load(reference / "io_grouped.npz")
    rows = slice(0, 2)
    with torch.no_grad():
        out = model(video_feat=torch.from_numpy(data["in_video_feat"][rows]),
                    video_mask=torch.from_numpy(data["in_video_mask"][rows]),
                    words_feat=torch.from_numpy(data["in_txt_hidden"][rows]),
                    words_mask=torch.from_numpy(data["in_words_mask"][rows, :16]), num_clips=[2])
    targets = build_targets(data["in_moment"][rows], data["in_duration"][rows],
                            torch.from_numpy(data["in_video_mask"][rows]), [2], clip_len=1.0)
    losses, total = criterion(out, targets, is_training=False)
    assert torch.isfinite(total) and float(losses["loss_saliency"]) > 0
