"""MESM through the product: the registry recognises it, load_model gives the official forward, a checkpoint
that needs features we cannot compute is refused in one line, and the CLI runs a CLIP-only MESM end to end
on a generated video (a MESM trained on random-CLIP colours finds the planted colour from an image query)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import shared_fixture
from mesm_checkpoints import CLIP_ONLY, CLIP_SLOWFAST, PALETTE, VGG_GLOVE, train_colour_mesm, write_mesm
from PIL import Image

import univtg_core
from univtg_core import CheckpointError, Grounder, load_model
from univtg_core.media import make_colour_video
from univtg_core.models import get_architecture, list_models
from univtg_core.models.mesm import MESM
from univtg_core.spans import temporal_iou

RED, CYAN, PURPLE = PALETTE[0], PALETTE[1], PALETTE[2]
PLANTED = (20.0, 30.0)  # the cyan part of the test video


def test_both_architectures_are_listed():
    assert {"mesm", "univtg"} <= set(univtg_core.list_models()) and univtg_core.list_models() == list_models()
    arch = get_architecture("MESM")
    assert arch.module is MESM and {argparse.Namespace, torch.device} <= set(arch.safe_globals)
    assert arch.training is not None and "mesm" in arch.summary.lower()


def test_the_official_checkpoint_is_detected_and_gives_the_official_forward():
    reference = shared_fixture("mesm_reference")
    model = load_model(reference / "model_test_best.ckpt", device="cpu")
    assert isinstance(model, MESM) and not model.training
    assert model.input_spec.describe_video() == "clip (512) + slowfast (2304)"  # MESM's order: CLIP first
    data = np.load(reference / "io_single.npz")
    valid = int(data["in_words_mask"].sum())  # the rows of the truncated token sequence (the padding is not 0)
    with torch.no_grad():
        out = model(video_feat=torch.from_numpy(data["in_video_feat"]),
                    video_mask=torch.from_numpy(data["in_video_mask"]),
                    words_feat=torch.from_numpy(data["in_txt_hidden"][:, :valid]), words_mask=None, num_clips=None)
    for key in ("pred_logits", "pred_spans", "saliency_scores"):
        np.testing.assert_allclose(out[key].numpy(), data[f"out_{key}"], atol=1e-5, rtol=1e-4, err_msg=key)


def test_recognised_by_its_keys_and_by_its_option(tmp_path):
    path = write_mesm(tmp_path / "model_best.ckpt")
    by_option = load_model(path, device="cpu")
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["opt"].model_id = "mesm"
    torch.save(checkpoint, tmp_path / "named.ckpt")
    named = load_model(tmp_path / "named.ckpt", device="cpu")
    keys_only = tmp_path / "keys.ckpt"
    torch.save({"model": checkpoint["model"]}, keys_only)
    bare = load_model(keys_only, model=None, device="cpu")
    for model in (by_option, named, bare):
        assert isinstance(model, MESM) and model.config.hidden_dim == 32
    # the text tower the official training script strips would be dropped too
    checkpoint["model"]["text_encoder.token_embedding.weight"] = torch.zeros(3, 4)
    torch.save(checkpoint, tmp_path / "tower.ckpt")
    assert isinstance(load_model(tmp_path / "tower.ckpt", device="cpu"), MESM)


@pytest.mark.parametrize("config, needs", [(CLIP_SLOWFAST, "clip (512) + slowfast (2304)"),
                                           (VGG_GLOVE, "vgg (4096)")])
def test_a_checkpoint_needing_other_features_is_refused_in_one_line(tmp_path, config, needs):
    path = write_mesm(tmp_path / "other.ckpt", **config)
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu", video_dim=512, text_dim=512)
    message = str(info.value)
    assert needs in message and "512" in message and "\n" not in message
    if config is VGG_GLOVE:
        assert "glove (300)" in message


def test_a_random_clip_only_checkpoint_runs_through_the_python_api(tmp_path):
    """A random-init MESM of the CLIP-only shape: every part of the result comes out as for UniVTG."""
    video = make_colour_video(tmp_path / "v.mp4", [(RED, 10), (PURPLE, 10), (CYAN, 10)])
    grounder = Grounder.from_options(clip_weights="random", resume=write_mesm(tmp_path / "m.ckpt"), device="cpu",
                                     cache_dir=tmp_path / "cache")
    assert grounder.mode == "model" and grounder.clip_len == 2.0
    pred = grounder.query(grounder.index(video), text="a cyan wall", image=Image.new("RGB", (64, 64), CYAN))
    record = pred.to_dict()
    assert len(record["pred_saliency_scores"]) == 15 and record["mode"] == "model"
    assert 1 <= len(pred.moments) <= CLIP_ONLY["num_queries"]
    assert all(0 <= m.start < m.end <= 30.0 + 1e-6 for m in pred.moments)
    scores = [m.score for m in pred.moments]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert 0 <= pred.highlight < 30 and list(pred.summary) == sorted(pred.summary)


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    return train_colour_mesm(tmp_path_factory.getbasetemp() / "mesm-colours")


@pytest.mark.slow
def test_cli_runs_a_mesm_checkpoint_and_an_image_query_finds_the_planted_segment(colour_model, tmp_path):
    video = make_colour_video(tmp_path / "colours.mp4", [(RED, 10), (PURPLE, 10), (CYAN, 10)])
    image = tmp_path / "cyan.png"
    Image.new("RGB", (64, 64), CYAN).save(image)
    out = tmp_path / "preds.jsonl"
    proc = subprocess.run([sys.executable, "-m", "univtg_core", "predict", str(video), "--query", "a cyan wall",
                           "--query-image", str(image), "--clip-weights", "random", "--resume", str(colour_model),
                           "--json", str(out), "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["mode"] == "model" for r in records)
    image_record = records[1]
    top = image_record["pred_relevant_windows"][0]
    assert float(temporal_iou([top[:2]], [PLANTED])[0, 0]) >= 0.8, image_record["pred_relevant_windows"][:3]
    assert len(image_record["pred_saliency_scores"]) == 15 and image_record["clip_len"] == 2.0
    assert PLANTED[0] <= image_record["pred_highlight"] < PLANTED[1]
    assert image_record["pred_summary"] == sorted(image_record["pred_summary"])
    assert "00:20–00:30" in proc.stdout


@pytest.mark.slow
def test_cli_refuses_a_slowfast_checkpoint_with_one_error_line(tmp_path):
    video = make_colour_video(tmp_path / "v.mp4", [(RED, 4)])
    path = write_mesm(tmp_path / "cs.ckpt", **CLIP_SLOWFAST)
    proc = subprocess.run([sys.executable, "-m", "univtg_core", "predict", str(video), "--query", "x",
                           "--clip-weights", "random", "--resume", str(path), "--cache-dir", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "clip (512) + slowfast (2304)" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
