"""The model registry and the one loading path: recognition, refusal of unknown checkpoints, validated
settings (through load_model and the CLI), and an architecture registered from outside."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import univtg_core
from univtg_core import CheckpointError, UnknownModelError, load_model
from univtg_core.models import (
    Architecture,
    FeatureSet,
    FeatureSource,
    GroundingModel,
    InputSpec,
    get_architecture,
    list_models,
    read_checkpoint,
    video_sources,
)
from univtg_core.models import _registry as registry
from univtg_core.models.univtg import UniVTG, UniVTGConfig


def _read_back(path):
    """A checkpoint this test saved, read back the safe way (its options are an argparse.Namespace)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, weights_only=True)


SMALL = dict(video_dim=512, text_dim=512, hidden_dim=32, enc_layers=1, nheads=4, dim_feedforward=32)


def _save(path, opt: dict | None = None, **config):
    torch.manual_seed(0)
    model = UniVTG(UniVTGConfig(**{**SMALL, **config}))
    checkpoint = {"model": model.state_dict()}
    if opt is not None:
        checkpoint["opt"] = argparse.Namespace(**{"model_id": "univtg", "ctx_mode": "video_tef", **opt})
    torch.save(checkpoint, path)
    return path


def test_list_models_and_lookup():
    assert "univtg" in list_models() and univtg_core.list_models() == list_models()
    arch = get_architecture("UniVTG")
    assert arch.name == "univtg" and arch.module is UniVTG and argparse.Namespace in arch.safe_globals
    with pytest.raises(UnknownModelError, match="univtg"):
        get_architecture("nope")


def test_recognised_by_option_then_by_keys_and_by_name(tmp_path):
    by_option = load_model(_save(tmp_path / "a.ckpt", opt={"nheads": 4}), device="cpu")
    by_keys = load_model(_save(tmp_path / "b.ckpt"), device="cpu")  # no options at all: the keys decide
    by_name = load_model(tmp_path / "b.ckpt", model="univtg", device="cpu")
    for model in (by_option, by_keys, by_name):
        assert isinstance(model, UniVTG) and not model.training and model.config.hidden_dim == 32
    assert by_option.config.nheads == 4
    with pytest.raises(UnknownModelError, match="known architectures: .*rgnet .*univtg") as info:
        load_model(tmp_path / "b.ckpt", model="mesm-typo", device="cpu")
    assert all(f"{name} (" in str(info.value) for name in list_models())


def test_unknown_checkpoint_is_refused_listing_the_known_architectures(tmp_path):
    path = tmp_path / "detr.ckpt"
    torch.save({"model": {"class_embed.weight": torch.zeros(2, 8), "query_embed.weight": torch.zeros(10, 8)},
                "opt": argparse.Namespace(model_id="moment_detr")}, path)
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu")
    message = str(info.value)
    assert "not a checkpoint of a known architecture" in message and "moment_detr" in message
    assert all(name in message for name in list_models())


def test_input_spec_names_the_video_sources():
    assert video_sources("slowfast_clip", 2816) == (FeatureSource("slowfast", 2304), FeatureSource("clip", 512))
    assert video_sources(None, 2816) == (FeatureSource("slowfast", 2304), FeatureSource("clip", 512))
    assert video_sources("clip", 768) == (FeatureSource("clip", 768),)
    assert video_sources(None, 512) == (FeatureSource("clip", 512),)
    spec = UniVTGConfig(**{**SMALL, "video_dim": 2816, "video_types": "slowfast_clip"}).input_spec
    assert spec.video_dim == 2816 and spec.describe_video() == "slowfast (2304) + clip (512)"


def test_a_checkpoint_needing_other_features_is_refused_naming_them(tmp_path):
    path = _save(tmp_path / "sf.ckpt", opt={"nheads": 4, "v_feat_types": "slowfast_clip"}, video_dim=2816)
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu", video_dim=512, text_dim=512)
    assert "slowfast (2304) + clip (512)" in str(info.value) and "512" in str(info.value)
    clip = FeatureSet(video=(FeatureSource("clip", 512),), text=(FeatureSource("clip_tokens", 512),))
    with pytest.raises(CheckpointError) as info:  # the front ends' check, by source: the same for every model
        load_model(path, device="cpu", features=clip)
    assert "(univtg) needs video slowfast (2304) + clip (512)" in str(info.value)
    assert "slowfast (2304) missing" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("setting, value, named", [
    ("nheads", 0, "nheads"), ("nheads", 3, "divisible by nheads 3"), ("nheads", "eight", "nheads"),
    ("max_v_l", -5, "max_v_l"), ("clip_length", 0.0, "clip_length"), ("dropout", 1.5, "dropout"),
    ("span_loss_type", "ce", "span_loss_type"), ("use_txt_pos", "maybe", "use_txt_pos"),
])
def test_nonsense_settings_are_refused_naming_the_setting(tmp_path, setting, value, named):
    path = _save(tmp_path / "bad.ckpt", opt={"nheads": 4, setting: value})
    with pytest.raises(CheckpointError, match=named) as info:
        load_model(path, device="cpu")
    assert "\n" not in str(info.value)


def test_a_fourth_projection_layer_is_refused(tmp_path):
    path = _save(tmp_path / "deep.ckpt", opt={"nheads": 4})
    checkpoint = _read_back(path)
    for key in [k for k in checkpoint["model"] if k.startswith("input_vid_proj.1.")]:
        checkpoint["model"][key.replace(".1.", ".3.")] = checkpoint["model"][key]
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="n_input_proj must be 1, 2 or 3"):
        load_model(path, device="cpu")


def test_nonsense_setting_through_the_cli_is_one_error_line(tmp_path):
    from univtg_core.media import make_colour_video

    video = make_colour_video(tmp_path / "v.mp4", [((255, 0, 0), 3)])
    path = _save(tmp_path / "zero_heads.ckpt", opt={"nheads": 0})
    proc = subprocess.run([sys.executable, "-m", "univtg_core", "predict", str(video), "--query", "x",
                           "--clip-weights", "random", "--resume", str(path), "--cache-dir", str(tmp_path / "c")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nheads" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "ZeroDivisionError" not in proc.stderr


# ---------------------------------------------------------------------------------------------------------
# An architecture registered from outside: what a new model module does
@dataclass(frozen=True)
class _TinyConfig:
    width: int

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(video=(FeatureSource("clip", self.width),), text=FeatureSource("clip_tokens", self.width),
                         clip_len=1.0, window=50)


class _Tiny(nn.Module, GroundingModel):
    architecture = "tiny"

    def __init__(self, config: _TinyConfig):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.width, 1)

    @property
    def input_spec(self) -> InputSpec:
        return self.config.input_spec


class _Marker:
    """A plain data class the tiny architecture's checkpoints pickle (as MESM's pickle torch.device)."""

    def __init__(self, value=0):
        self.value = value


def test_a_registered_architecture_is_recognised_built_and_filtered(tmp_path, monkeypatch):
    def config(contents):
        return _TinyConfig(int(contents.state_dict["proj.weight"].shape[1]))

    def drop_text_tower(state):
        return OrderedDict((k, v) for k, v in state.items() if "text_encoder" not in k)

    arch = Architecture(name="tiny", summary="a test architecture", module=_Tiny, config_from_checkpoint=config,
                        model_ids=("tiny",), signature_keys=("proj.weight",), safe_globals=(_Marker,),
                        filter_state_dict=drop_text_tower)
    monkeypatch.setitem(registry._REGISTRY, "tiny", arch)
    assert "tiny" in list_models()
    state = {"proj.weight": torch.ones(1, 6), "proj.bias": torch.zeros(1), "text_encoder.w": torch.zeros(2)}
    path = tmp_path / "tiny.ckpt"
    torch.save({"model": state, "opt": {"model_id": "tiny"}, "marker": _Marker(3)}, path)
    model = load_model(path, device="cpu", video_dim=6)
    assert isinstance(model, _Tiny) and model.config.width == 6
    assert read_checkpoint(path).checkpoint["marker"].value == 3  # its safe global is allowed, by itself
    with pytest.raises(CheckpointError, match="expects video features clip \\(6\\)"):
        load_model(path, device="cpu", video_dim=512)
    torch.save({"model": state}, tmp_path / "keys_only.ckpt")  # no options: its keys decide
    assert isinstance(load_model(tmp_path / "keys_only.ckpt", device="cpu"), _Tiny)
    with pytest.raises(UnknownModelError, match="cannot be trained"):
        arch.training_recipe()


def test_register_refuses_a_second_architecture_of_the_same_name():
    twin = Architecture(name="univtg", summary="", module=UniVTG, config_from_checkpoint=lambda c: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(twin)


def test_query_rows_are_l2_normalised_and_widths_checked():
    model = UniVTG(UniVTGConfig(**SMALL))
    rows = np.full((3, 512), 2.0, np.float32)
    np.testing.assert_allclose(np.linalg.norm(model.query_input(rows).tokens, axis=1), 1.0, atol=1e-4)
    with pytest.raises(CheckpointError, match="width 512"):
        model.query_input(np.zeros((3, 300), np.float32))
