"""CLIP encoders with random weights (no downloads): feature arithmetic, determinism, loading paths."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from univtg_core import encoders
from univtg_core.encoders import QueryFeatures, load_clip_encoder
from univtg_core.errors import EncoderWeightsError, QueryError
from univtg_core.media import make_colour_video
from univtg_core.video import iter_clip_frames

REPO = Path(__file__).resolve().parents[1]
CYAN, PURPLE, YELLOW = (0, 255, 255), (128, 0, 128), (255, 255, 0)


@pytest.fixture(scope="module")
def enc():
    return load_clip_encoder("ViT-B-32", weights="random", device="cpu", seed=0)


TINY = "univtg-tiny-test"
TINY_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    """The tiny CLIP registered with open_clip under a test name for this module's tests, and taken out of
    open_clip's global registry afterwards (open_clip has no public way to remove one)."""
    assert TINY not in open_clip.list_models()
    config = tmp_path_factory.mktemp("config") / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(config)
    try:
        yield TINY
    finally:
        open_clip.factory._MODEL_CONFIG_PATHS.remove(config)
        open_clip.factory._MODEL_CONFIGS.pop(TINY, None)
        assert TINY not in open_clip.list_models()


@pytest.fixture(scope="module")
def small(tiny_config):
    """A tiny CLIP for the file-format round trips and the second process (the code paths do not depend
    on the size; files of a few MB keep the tests fast)."""
    return load_clip_encoder(tiny_config, weights="random", device="cpu", seed=0)


@pytest.fixture(scope="module")
def small_reference(small):
    frames = _probe_frames(224)
    return frames, small.encode_frames(frames), small.encode_text("a cat").tokens


def _probe_frames(image_size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (3, image_size, image_size, 3), dtype=np.uint8)


def _state_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def test_encoder_attributes(enc):
    assert (enc.model_name, enc.weights, enc.is_random) == ("ViT-B-32", "random", True)
    assert (enc.image_size, enc.embed_dim, enc.token_dim) == (224, 512, 512)
    assert enc.device == torch.device("cpu") and enc.dtype == torch.float32
    assert enc.fingerprint == "ViT-B-32+quickgelu:random-seed0"
    assert not enc.model.training
    assert isinstance(enc.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert isinstance(enc.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    # mean/std come from open_clip's preprocess config of the model
    assert tuple(enc.preprocess_cfg["mean"]) == open_clip.OPENAI_DATASET_MEAN
    assert tuple(enc.preprocess_cfg["std"]) == open_clip.OPENAI_DATASET_STD


def test_text_tokens_are_ln_final_rows_of_the_non_padding_tokens(enc):
    text = "A person opens the door."
    q = enc.encode_text(text)
    assert isinstance(q, QueryFeatures) and q.kind == "text" and q.text == text
    ids = enc.tokenizer([text])
    n_valid = int((ids != 0).sum())
    assert n_valid == int(ids[0].argmax()) + 1  # start, 5 words and '.', end
    assert q.tokens.shape == (n_valid, 512) and q.tokens.dtype == np.float32
    assert q.sentence.shape == (512,) and q.sentence.dtype == np.float32
    with torch.inference_mode():
        reference = enc.model.encode_text(ids)[0].numpy()
    np.testing.assert_allclose(q.sentence, reference, rtol=1e-5, atol=1e-5)
    # tokens are before text_projection: the end-token row projected is the sentence
    projected = q.tokens[-1] @ enc.model.text_projection.detach().numpy()
    np.testing.assert_allclose(projected, q.sentence, rtol=1e-4, atol=1e-4)
    # each row is the ln_final output at its position, computed independently here
    with torch.inference_mode():
        m = enc.model
        x = m.token_embedding(ids) + m.positional_embedding
        x = m.ln_final(m.transformer(x, attn_mask=m.attn_mask))[0, :n_valid].numpy()
    np.testing.assert_allclose(q.tokens, x, rtol=1e-5, atol=1e-5)


def test_text_query_errors_and_truncation(enc, caplog):
    for bad in ("", "   \n\t", None, 3):
        with pytest.raises(QueryError, match="empty"):
            enc.encode_text(bad)
    with caplog.at_level(logging.WARNING, logger="univtg_core.encoders"):
        q = enc.encode_text("walk " * 100)
    assert q.tokens.shape == (77, 512)
    assert "at most 77" in caplog.text


def test_image_query_token_maps_back_to_the_image_embedding(enc, tmp_path):
    red = np.zeros((90, 160, 3), np.uint8)
    red[..., 0] = 255
    q = enc.encode_image(red)
    assert q.kind == "image" and q.text is None
    assert q.tokens.shape == (1, 512) and q.sentence.shape == (512,)
    proj = enc.model.text_projection.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(q.tokens[0] @ proj, q.sentence, atol=1e-3 * np.abs(q.sentence).max())
    # the embedding is the (unnormalised) image embedding of CLIP's preprocessing of the image
    solid = np.zeros((1, 224, 224, 3), np.uint8)
    solid[..., 0] = 255
    np.testing.assert_allclose(q.sentence, enc.encode_frames(solid)[0], rtol=1e-4, atol=1e-4)
    assert abs(np.linalg.norm(q.sentence) - 1.0) > 0.05
    # a path and a PIL image give the same features
    path = tmp_path / "red.png"
    Image.fromarray(red).save(path)
    np.testing.assert_allclose(enc.encode_image(path).sentence, q.sentence, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(enc.encode_image(Image.open(path)).sentence, q.sentence, rtol=1e-5, atol=1e-5)


def test_image_query_errors(enc, tmp_path):
    with pytest.raises(QueryError, match="not found"):
        enc.encode_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(QueryError, match="junk.png"):
        enc.encode_image(junk)
    with pytest.raises(QueryError, match="uint8"):
        enc.encode_image(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(QueryError, match="PIL image"):
        enc.encode_image(42)


def test_encode_frames_batches_and_validates(enc):
    frames = _probe_frames(224)
    together = enc.encode_frames(frames)
    assert together.shape == (3, 512) and together.dtype == np.float32
    alone = np.concatenate([enc.encode_frames(frames[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-4)
    assert not np.allclose(np.linalg.norm(together, axis=1), 1.0)  # not normalised
    assert enc.encode_frames(frames[:0]).shape == (0, 512)
    with pytest.raises(ValueError, match=r"\(B, 224, 224, 3\)"):
        enc.encode_frames(np.zeros((2, 200, 200, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        enc.encode_frames(frames.astype(np.float32))


def test_different_colours_give_distinguishable_embeddings(enc, tmp_path):
    path = make_colour_video(tmp_path / "cpy.mp4", [(CYAN, 2), (PURPLE, 2), (YELLOW, 2)], fps=10)
    feats = np.concatenate([enc.encode_frames(b) for b in iter_clip_frames(path, clip_len=1.0, size=224)])
    assert feats.shape == (6, 512)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    cos = unit @ unit.T
    for a, b in ((0, 1), (2, 3), (4, 5)):
        assert cos[a, b] > 0.99
    for a, b in ((0, 2), (0, 4), (2, 4)):
        assert cos[a, b] < 0.5, cos


def test_random_init_is_deterministic_across_loads_and_processes(enc, tmp_path, caplog):
    state = torch.get_rng_state()
    with caplog.at_level(logging.WARNING, logger="univtg_core.encoders"):
        again = load_clip_encoder("ViT-B-32", weights="random", device="cpu", seed=0)
    assert torch.equal(state, torch.get_rng_state()), "loading must not touch the global RNG"
    assert "meaningless" in caplog.text
    reference_hash = _state_hash(enc.model)
    assert _state_hash(again.model) == reference_hash
    frames = _probe_frames(224)[:1]
    ours = enc.encode_frames(frames)
    np.testing.assert_array_equal(again.encode_frames(frames), ours)
    del again

    out = tmp_path / "child.npz"
    script = (
        "import hashlib, sys, numpy as np\n"
        "from univtg_core.encoders import load_clip_encoder\n"
        "e = load_clip_encoder('ViT-B-32', weights='random', device='cpu', seed=0)\n"
        "h = hashlib.sha256()\n"
        "for k, v in sorted(e.model.state_dict().items()):\n"
        "    h.update(k.encode()); h.update(v.contiguous().numpy().tobytes())\n"
        "frames = np.random.default_rng(0).integers(0, 256, (3, 224, 224, 3), dtype=np.uint8)[:1]\n"
        "np.savez(sys.argv[1], hash=h.hexdigest(), frames=e.encode_frames(frames),\n"
        "         text=e.encode_text('a dog runs').tokens, fingerprint=e.fingerprint)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO, check=True, capture_output=True)
    child = np.load(out)
    assert str(child["hash"]) == reference_hash, "the two processes built different weights"
    assert str(child["fingerprint"]) == enc.fingerprint
    np.testing.assert_allclose(child["frames"], ours, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(child["text"], enc.encode_text("a dog runs").tokens, rtol=1e-5, atol=1e-5)


def test_missing_download_raises_one_clear_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", offline)
    monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: True)
    with pytest.raises(EncoderWeightsError) as info:
        load_clip_encoder("ViT-B-32", weights="openai", device="cpu")
    message = str(info.value)
    assert "'openai'" in message and "couldn't connect" in message
    assert "--clip-weights PATH" in message and "--clip-weights random" in message


def test_unreachable_hub_only_looks_in_the_local_cache(monkeypatch):
    """Offline, huggingface_hub would retry for ~50 s: we switch it to its cache and fail at once."""
    import huggingface_hub.constants as hub_constants

    seen = []

    def download(*args, **kwargs):
        seen.append(hub_constants.HF_HUB_OFFLINE)
        raise FileNotFoundError("not in the local cache")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", download)
    monkeypatch.setattr(encoders, "_hub_reachable", lambda timeout=3.0: False)
    before = hub_constants.HF_HUB_OFFLINE
    with pytest.raises(EncoderWeightsError, match="cannot be reached") as info:
        load_clip_encoder("ViT-B-32", weights="openai", device="cpu")
    assert seen == [True] and hub_constants.HF_HUB_OFFLINE == before
    assert "\n" not in str(info.value) and "--clip-weights PATH" in str(info.value)


def test_openai_tag_uses_quick_gelu_and_loads_the_downloaded_file(enc, tmp_path, monkeypatch):
    """OpenAI's weights are published in half precision: stand in for the download with such a file."""
    path = tmp_path / "open_clip_pytorch_model.bin"
    half = {k: v.half() if v.is_floating_point() else v for k, v in enc.model.state_dict().items()}
    torch.save(half, path)
    asked = []

    def fake_download(cfg, **kwargs):
        asked.append(cfg)
        return str(path)

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", fake_download)
    tagged = load_clip_encoder("ViT-B-32", weights="openai", device="cpu")
    assert asked and asked[0]["quick_gelu"] is True
    assert tagged.fingerprint == "ViT-B-32+quickgelu:openai" and not tagged.is_random
    assert isinstance(tagged.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    loaded = tagged.model.state_dict()
    for key in ("visual.conv1.weight", "text_projection", "transformer.resblocks.11.mlp.c_proj.weight"):
        assert loaded[key].dtype == torch.float32
        torch.testing.assert_close(loaded[key], half[key].float(), rtol=0, atol=0)


@pytest.fixture(scope="module")
def small_files(small, tmp_path_factory):
    """The tiny random CLIP saved as an open_clip .pt, a .safetensors file and an OpenAI-style TorchScript
    archive (with OpenAI's extra ``input_resolution``/``context_length``/``vocab_size`` entries)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("weights")
    state = small.model.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "wrapped.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "weights.safetensors"))
    scripted_source = copy.deepcopy(small.model)
    for name, value in (("input_resolution", 224), ("context_length", 77), ("vocab_size", 49408)):
        if hasattr(scripted_source, name):
            delattr(scripted_source, name)
        scripted_source.register_buffer(name, torch.tensor(value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(scripted_source), str(folder / "torchscript.pt"))
    return folder


@pytest.mark.parametrize("name", ["wrapped.pt", "weights.safetensors", "torchscript.pt"])
def test_local_weight_files_reproduce_the_features(small, small_files, small_reference, name):
    loaded = load_clip_encoder(TINY, weights=small_files / name, device="cpu")
    assert not loaded.is_random and loaded.weights == str(small_files / name)
    digest = hashlib.sha256((small_files / name).read_bytes()).hexdigest()[:16]
    assert loaded.fingerprint == f"{TINY}+quickgelu:sha256-{digest}"
    assert isinstance(loaded.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    frames, frame_feats, text_tokens = small_reference
    np.testing.assert_array_equal(loaded.encode_frames(frames), frame_feats)
    np.testing.assert_array_equal(loaded.encode_text("a cat").tokens, text_tokens)


def test_quick_gelu_can_be_turned_off_for_local_files(small_files, small_reference):
    plain = load_clip_encoder(TINY, weights=small_files / "weights.safetensors", device="cpu", quick_gelu=False)
    assert "+quickgelu" not in plain.fingerprint
    assert not isinstance(plain.model.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    frames, frame_feats, _ = small_reference
    assert not np.allclose(plain.encode_frames(frames), frame_feats, atol=1e-4)


def test_bad_weight_paths_raise_encoder_weights_error(small_files, tmp_path):
    with pytest.raises(EncoderWeightsError, match="nope.pt"):
        load_clip_encoder(TINY, weights=tmp_path / "nope.pt", device="cpu")
    with pytest.raises(EncoderWeightsError, match="not a file"):
        load_clip_encoder(TINY, weights=tmp_path, device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(EncoderWeightsError, match="junk.pt"):
        load_clip_encoder(TINY, weights=junk, device="cpu")
    not_tensors = tmp_path / "config.pt"
    torch.save({"lr": 0.1}, not_tensors)
    with pytest.raises(EncoderWeightsError, match="state dict"):
        load_clip_encoder(TINY, weights=not_tensors, device="cpu")
    with pytest.raises(EncoderWeightsError, match="do not fit CLIP ViT-B-32"):
        load_clip_encoder("ViT-B-32", weights=small_files / "weights.safetensors", device="cpu")
    with pytest.raises(EncoderWeightsError, match="unknown CLIP model"):
        load_clip_encoder("ViT-Q-99", weights="random", device="cpu")


def test_no_cuda_calls_and_no_print_in_the_module():
    source = Path(encoders.__file__).read_text()
    assert ".cuda(" not in source and "print(" not in source
