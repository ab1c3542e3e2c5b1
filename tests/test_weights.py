"""The one weights reader: crafted pickles are refused naming what they refer to (and never run), on every
wording torch has used; nesting and DDP prefixes are unwrapped; CLIP weights go through the same reader."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from tests.payloads import TouchesMarker
from univtg_core import CheckpointError, EncoderWeightsError, load_model
from univtg_core import weights as weights_module
from univtg_core.weights import read_state_dict, read_weights


@pytest.fixture
def crafted(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"model": {"w": torch.zeros(2)}, "evil": TouchesMarker(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_crafted_checkpoint_is_refused_naming_the_global_and_never_runs(crafted):
    path, marker = crafted
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu")
    assert f"{os.system.__module__}.system" in str(info.value) and "refused" in str(info.value)
    assert not marker.exists(), "the payload ran"


def test_crafted_clip_weights_are_refused_too(crafted):
    from univtg_core.encoders import load_clip_encoder

    path, marker = crafted
    with pytest.raises(EncoderWeightsError, match=f"{os.system.__module__}.system"):
        load_clip_encoder("ViT-B-32", weights=path, device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("wording", [
    "Weights only load failed. Unsupported global: GLOBAL builtins.eval was not an allowed global by default.",
    "Weights only load failed.\n\nTrying to load unsupported GLOBAL builtins.eval whose module builtins is blocked.",
])
def test_the_refused_global_is_named_in_every_torch_wording(tmp_path, monkeypatch, wording):
    path = tmp_path / "x.ckpt"
    torch.save({"model": {"w": torch.zeros(1)}}, path)

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError(wording)

    monkeypatch.setattr(weights_module.torch, "load", refuse)
    with pytest.raises(CheckpointError, match="refers to builtins.eval"):
        read_weights(path)


def test_an_unknown_wording_falls_back_to_listing_the_pickles_globals(crafted, monkeypatch):
    path, marker = crafted

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError("Weights only load failed for a reason worded some new way")

    monkeypatch.setattr(weights_module.torch, "load", refuse)
    with pytest.raises(CheckpointError, match=f"refers to {os.system.__module__}.system"):
        read_weights(path)
    assert not marker.exists()


def test_nesting_and_ddp_prefixes_are_unwrapped(tmp_path):
    from safetensors.torch import save_file

    tensor = torch.arange(3.0)
    for i, payload in enumerate([{"model": {"module.a": tensor}}, {"state_dict": {"a": tensor}},
                                 {"model_state_dict": {"module.a": tensor}, "epoch": 3}, {"a": tensor}]):
        torch.save(payload, tmp_path / f"{i}.pt")
        assert list(read_state_dict(tmp_path / f"{i}.pt")) == ["a"]
    save_file({"a": tensor}, str(tmp_path / "w.safetensors"))
    torch.testing.assert_close(read_state_dict(tmp_path / "w.safetensors")["a"], tensor)


def test_unreadable_files_raise_the_callers_error(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint at all")
    with pytest.raises(EncoderWeightsError, match="cannot read CLIP weights"):
        read_weights(tmp_path / "junk.bin", error=EncoderWeightsError, what="CLIP weights")
    with pytest.raises(CheckpointError, match="not found"):
        read_weights(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="not a file"):
        read_weights(tmp_path)
    torch.save({"lr": 0.1}, tmp_path / "options.pt")
    with pytest.raises(CheckpointError, match="holds no weights"):
        read_state_dict(tmp_path / "options.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="safetensors"):
        read_weights(tmp_path / "bad.safetensors")
