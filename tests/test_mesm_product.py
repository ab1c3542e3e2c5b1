"""MESM through the product: the registry recognises it, load_model gives the official forward, a checkpoint
that needs features we cannot compute is refused in one line (load_model, app start-up, CLI), and the Python
API, the app's handler and the CLI run a CLIP-only MESM end to end on a generated video."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import shared_fixture
from mesm_checkpoints import CLIP_ONLY, CLIP_SLOWFAST, VGG_GLOVE, write_mesm
from PIL import Image

import univtg_core
from univtg_core import CheckpointError, Grounder, load_model
from univtg_core.media import make_colour_video
from univtg_core.models import FeatureSet, FeatureSource, get_architecture, list_models
from univtg_core.models.mesm import MESM

RED, CYAN, PURPLE = (230, 20, 20), (0, 230, 230), (140, 20, 200)


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
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(path, weights_only=True)
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


CLIP_B32 = FeatureSet(video=(FeatureSource("clip", 512),), text=(FeatureSource("clip_tokens", 512),))


@pytest.mark.parametrize("config, needs, missing", [
    (CLIP_SLOWFAST, "video clip (512) + slowfast (2304), text clip_tokens (512)", "slowfast (2304) missing"),
    (VGG_GLOVE, "video vgg (4096), text glove (300)", "vgg (4096) + glove (300) missing")])
def test_a_checkpoint_needing_other_features_is_refused_in_one_line(tmp_path, config, needs, missing):
    """The refusal names what the checkpoint needs, what we compute and what is missing, in one line."""
    path = write_mesm(tmp_path / "other.ckpt", **config)
    with pytest.raises(CheckpointError) as info:
        load_model(path, device="cpu", features=CLIP_B32)
    message = str(info.value)
    assert f"needs {needs}" in message and "we compute video clip (512), text clip_tokens (512)" in message
    assert missing in message and "\n" not in message
    # the check is by source, not by width: the same checkpoint runs once its sources are computable
    wider = FeatureSet(video=(*CLIP_B32.video, FeatureSource("slowfast", 2304), FeatureSource("vgg", 4096)),
                       text=(*CLIP_B32.text, FeatureSource("glove", 300)))
    assert isinstance(load_model(path, device="cpu", features=wider), MESM)


def test_a_clip_only_checkpoint_needs_what_clip_computes(tmp_path):
    from univtg_core.pipeline import computable_features

    class Encoder:  # what the front end reads of its CLIP encoder
        embed_dim, token_dim = 512, 512

    assert computable_features(Encoder()) == CLIP_B32
    model = load_model(write_mesm(tmp_path / "m.ckpt"), device="cpu", features=CLIP_B32)
    assert CLIP_B32.missing(model.input_spec) == ()
    reference = load_model(shared_fixture("mesm_reference") / "model_test_best.ckpt", device="cpu")
    assert CLIP_B32.missing(reference.input_spec) == (FeatureSource("slowfast", 2304),)


@pytest.fixture(scope="module")
def tiny_grounder(tmp_path_factory):
    """A random-init MESM shaped for the tiny CLIP (the code paths do not depend on the widths), behind the
    front ends' Grounder: the checkpoint passes the start-up check against what that CLIP computes."""
    from tiny_clip import tiny_clip_encoder

    from univtg_core.pipeline import computable_features

    root = tmp_path_factory.mktemp("mesm-tiny")
    encoder = tiny_clip_encoder()
    path = write_mesm(root / "m.ckpt", **dict(CLIP_ONLY, v_feat_dim=encoder.embed_dim + 2,
                                              t_feat_dim=encoder.token_dim,
                                              video_sources=(("clip", encoder.embed_dim),)))
    model = load_model(path, device="cpu", features=computable_features(encoder))
    return Grounder(encoder, model, cache_dir=root / "cache")


def _check_result(record: dict, pred, duration: float = 30.0) -> None:
    """Every part of a model result, as for UniVTG: moments in the video, sorted scores, curve, highlight,
    summary."""
    assert len(record["pred_saliency_scores"]) == int(duration / 2) and record["mode"] == "model"
    assert 1 <= len(pred.moments) <= CLIP_ONLY["num_queries"]
    assert all(0 <= m.start < m.end <= duration + 1e-6 for m in pred.moments)
    scores = [m.score for m in pred.moments]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert 0 <= pred.highlight < duration and list(pred.summary) == sorted(pred.summary)


def test_a_random_clip_only_checkpoint_runs_through_the_python_api(tiny_grounder, tmp_path):
    video = make_colour_video(tmp_path / "v.mp4", [(RED, 10), (PURPLE, 10), (CYAN, 10)], fps=5, size=(64, 48))
    assert tiny_grounder.mode == "model" and tiny_grounder.clip_len == 2.0
    assert tiny_grounder.text_token_limit == CLIP_ONLY["max_words_l"]
    pred = tiny_grounder.query(tiny_grounder.index(video), text="a cyan wall",
                               image=Image.new("RGB", (64, 64), CYAN))
    _check_result(pred.to_dict(), pred)


def test_the_app_answers_with_a_mesm_checkpoint(tiny_grounder, tmp_path):
    """The page's handler (what the UI event and the API call) on a MESM grounder: the table, the curve, the
    highlight and summary gallery and the downloads come out as for UniVTG, with nothing MESM-specific."""
    from app.handlers import QueryHandler
    from app.session import SessionStore

    video = make_colour_video(tmp_path / "v.mp4", [(RED, 10), (PURPLE, 10), (CYAN, 10)], fps=5, size=(64, 48))
    handler = QueryHandler(tiny_grounder, SessionStore(tmp_path / "sessions"))
    result, rows, plot, gallery, summary_video, downloads, status, curve = handler.answer(
        str(video), "a cyan wall", None, handler.sessions.open("s"), None)
    assert result["mode"] == "model" and len(result["pred_saliency_scores"]) == 15
    assert rows and rows[0][4] == f"{result['pred_relevant_windows'][0][2]:.4f}"  # the top moment first
    assert open(plot, "rb").read(4) == b"\x89PNG" and gallery and "Highlight" in gallery[0][1]
    assert downloads and len(curve) == 15


def test_the_app_refuses_a_vgg_glove_checkpoint_at_start_up_in_one_line(tmp_path, monkeypatch, capsys):
    """main_gradio.py's start-up (app.cli) with a checkpoint needing VGG + GloVe: one error line, exit 2, before
    any server starts (the tiny CLIP stands in for ViT-B-32, whose widths it is given)."""
    from tiny_clip import tiny_clip_encoder

    import univtg_core.encoders
    from app import cli

    monkeypatch.setattr(univtg_core.encoders, "load_clip_encoder",
                        lambda *a, **k: tiny_clip_encoder(embed_dim=512))
    path = write_mesm(tmp_path / "cs.ckpt", **VGG_GLOVE)
    assert cli.main(["--clip-weights", "random", "--resume", str(path), "--port", "0"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    assert errors[0].startswith("main_gradio.py: error: cs.ckpt (mesm) needs video vgg (4096), text glove (300)")
    assert "vgg (4096) + glove (300) missing" in errors[0]


@pytest.mark.slow
def test_cli_runs_a_mesm_checkpoint_end_to_end(tmp_path):
    """`python -m univtg_core predict --resume MESM.ckpt` on a generated video, text + image query (random
    ViT-B-32 and a random-init CLIP-shaped MESM): one record per query, every part present and possible."""
    video = make_colour_video(tmp_path / "colours.mp4", [(RED, 10), (PURPLE, 10), (CYAN, 10)], fps=5,
                              size=(64, 48))
    image = tmp_path / "cyan.png"
    Image.new("RGB", (64, 64), CYAN).save(image)
    out = tmp_path / "preds.jsonl"
    proc = subprocess.run([sys.executable, "-m", "univtg_core", "predict", str(video), "--query", "a cyan wall",
                           "--query-image", str(image), "--clip-weights", "random", "--resume",
                           str(write_mesm(tmp_path / "m.ckpt")), "--json", str(out), "--cache-dir",
                           str(tmp_path / "cache")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["mode"] == "model" and r["clip_len"] == 2.0 for r in records)
    for record in records:
        assert len(record["pred_saliency_scores"]) == 15 and 0 <= record["pred_highlight"] < 30
        windows = record["pred_relevant_windows"]
        assert 1 <= len(windows) <= CLIP_ONLY["num_queries"]
        assert all(0 <= a < b <= 30.0 + 1e-6 and 0 <= s <= 1 for a, b, s in windows)
        assert [w[2] for w in windows] == sorted((w[2] for w in windows), reverse=True)
        assert record["pred_summary"] == sorted(record["pred_summary"])


@pytest.mark.parametrize("config, start, rest", [
    (VGG_GLOVE, "error: cs.ckpt (mesm) needs video vgg (4096), text glove (300)", "vgg (4096) + glove (300) missing"),
    (dict(CLIP_SLOWFAST, t_feat_dim=64), "error: cs.ckpt reads video features clip (512) + slowfast (2304)",
     "pass --slowfast-weights PATH")])
def test_cli_refuses_a_checkpoint_it_cannot_feed_with_one_error_line(tmp_path, monkeypatch, capsys, config, start,
                                                                     rest):
    """`python -m univtg_core predict --resume` (its main, in this process; the tiny CLIP given ViT-B-32's
    video width stands in for it) with a checkpoint needing VGG + GloVe, or SlowFast without its weights:
    exit 2, one `error:` line naming what is needed."""
    from tiny_clip import tiny_clip_encoder

    import univtg_core.encoders
    from univtg_core import cli

    monkeypatch.setattr(univtg_core.encoders, "load_clip_encoder",
                        lambda *a, **k: tiny_clip_encoder(embed_dim=512))
    video = make_colour_video(tmp_path / "v.mp4", [(RED, 4)], fps=5, size=(64, 48))
    monkeypatch.delenv("UNIVTG_SLOWFAST_WEIGHTS", raising=False)
    path = write_mesm(tmp_path / "cs.ckpt", **config)
    code = cli.main(["predict", str(video), "--query", "x", "--clip-weights", "random", "--resume", str(path),
                     "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1, err
    assert errors[0].startswith(start), errors
    assert rest in errors[0] and "Traceback" not in err
