"""Our UniVTG against the official outputs stored in ../shared/fixtures/univtg_reference."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from univtg_core import CheckpointError, load_model
from univtg_core.models import read_checkpoint
from univtg_core.models.univtg import UniVTG, config_from_checkpoint

OUTPUTS = ["pred_logits", "pred_spans", "saliency_scores", "vid_mem_proj", "txt_mem_proj"]


def _forward(model, data):
    with torch.no_grad():
        return model(src_txt=torch.from_numpy(data["src_txt"]), src_txt_mask=torch.from_numpy(data["src_txt_mask"]),
                     src_vid=torch.from_numpy(data["src_vid"]), src_vid_mask=torch.from_numpy(data["src_vid_mask"]))


@pytest.mark.parametrize("case", ["io_single", "io_batch"])
def test_forward_matches_official(univtg_model, univtg_reference, case):
    data = np.load(univtg_reference / f"{case}.npz")
    out = _forward(univtg_model, data)
    for name in OUTPUTS:
        np.testing.assert_allclose(out[name].numpy(), data[f"out_{name}"], atol=1e-5, rtol=1e-4, err_msg=name)
    assert not univtg_model.training


def test_config_read_from_checkpoint(univtg_model):
    cfg = univtg_model.config
    assert (cfg.video_input_dim, cfg.text_dim, cfg.hidden_dim, cfg.enc_layers, cfg.n_input_proj, cfg.nheads) == (
        514, 512, 1024, 4, 2, 8)
    assert cfg.use_tef and cfg.video_dim == 512 and cfg.clip_length == 2.0
    spec = univtg_model.input_spec
    assert [(s.name, s.dim) for s in spec.video] == [("clip", 512)] and spec.text.dim == 512
    assert spec.window == 75 and spec.clip_len == 2.0


def test_ddp_prefixed_checkpoint_loads(univtg_reference, tmp_path):
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(univtg_reference / "model_best.ckpt", map_location="cpu", weights_only=True)
    ckpt["model"] = {f"module.{k}": v for k, v in ckpt["model"].items()}
    path = tmp_path / "model_best_ddp.ckpt"
    torch.save(ckpt, path)
    data = np.load(univtg_reference / "io_batch.npz")
    out = _forward(load_model(path, device="cpu"), data)
    np.testing.assert_allclose(out["pred_logits"].numpy(), data["out_pred_logits"], atol=1e-5, rtol=1e-4)


def test_opt_json_used_when_checkpoint_has_no_opt(univtg_reference, tmp_path):
    ckpt = read_checkpoint(univtg_reference / "model_best.ckpt")
    torch.save({"model": ckpt.state_dict}, tmp_path / "model_best.ckpt")
    opt = json.loads((univtg_reference / "opt.json").read_text())
    opt["nheads"] = 4  # a value only opt.json can carry: the loader must read it
    (tmp_path / "opt.json").write_text(json.dumps(opt))
    contents = read_checkpoint(tmp_path / "model_best.ckpt")
    assert contents.options_source == "opt.json"
    config = config_from_checkpoint(contents)
    assert config.nheads == 4 and config.video_input_dim == 514 and config.video_dim == 512 and config.use_tef


def test_shapes_alone_give_the_dimensions(univtg_reference, tmp_path):
    ckpt = read_checkpoint(univtg_reference / "model_best.ckpt")
    torch.save({"model": ckpt.state_dict}, tmp_path / "weights.ckpt")
    data = np.load(univtg_reference / "io_single.npz")
    out = _forward(load_model(tmp_path / "weights.ckpt", device="cpu"), data)
    np.testing.assert_allclose(out["pred_spans"].numpy(), data["out_pred_spans"], atol=1e-5, rtol=1e-4)


def test_mismatched_encoder_is_refused_with_both_widths(univtg_reference):
    with pytest.raises(CheckpointError) as err:
        load_model(univtg_reference / "model_best.ckpt", device="cpu", video_dim=768, text_dim=768)
    assert "512" in str(err.value) and "768" in str(err.value)


def test_checkpoint_of_other_architecture_is_refused(univtg_reference, tmp_path):
    ckpt = dict(read_checkpoint(univtg_reference / "model_best.ckpt").checkpoint)
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("weightedpool")}
    torch.save(ckpt, tmp_path / "broken.ckpt")
    with pytest.raises(CheckpointError, match="weightedpool"):
        load_model(tmp_path / "broken.ckpt", device="cpu")


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(tmp_path / "junk.ckpt")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.ckpt")


def test_seeded_initialisation_equals_the_official_one(univtg_reference):
    """The fixture checkpoint is the official model right after torch.manual_seed(0): ours must draw the same."""
    contents = read_checkpoint(univtg_reference / "model_best.ckpt")
    config = config_from_checkpoint(contents)
    torch.manual_seed(0)
    ours = UniVTG(config).state_dict()
    official = contents.state_dict
    assert list(ours) == list(official)
    differing = [k for k in ours if not torch.equal(ours[k], official[k])]
    assert differing == []
