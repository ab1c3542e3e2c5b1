"""A SlowFast + CLIP checkpoint (2818 wide: 2304 + 512 + 2 tef) end to end, on a generated video.

The checkpoint is built here with seeded weights (nothing committed); both encoders are random. The CLI
and the app's grounding path must compute both sources, in the checkpoint's order, each normalised on its
own as the official dataset does, and give what the official construction of the model input gives. The
refusals (a source we cannot compute, no or missing SlowFast weights) are one line each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import univtg_core.encoders as encoders_module
import univtg_core.slowfast as slowfast_module
from univtg_core import CheckpointError, EncoderWeightsError, Grounder
from univtg_core import cli as cli_module
from univtg_core.media import make_colour_video
from univtg_core.models.univtg import UniVTG, UniVTGConfig
from univtg_core.postprocess import l2_normalize, tef
from univtg_core.sources import index_sources

pytestmark = pytest.mark.slow  # SlowFast on the CPU: ~5-15 s per clip on a shared 2-core machine


def _checkpoint(path: Path, video_dim: int, feat_types: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    config = UniVTGConfig(video_dim=video_dim, text_dim=512, hidden_dim=32, enc_layers=1, nheads=4,
                          dim_feedforward=32, clip_length=2.0, video_types=feat_types)
    opt = argparse.Namespace(nheads=4, ctx_mode="video_tef", v_feat_types=feat_types, v_feat_dim=video_dim + 2,
                             clip_length=2.0, max_v_l=75)
    torch.save({"model": UniVTG(config).state_dict(), "opt": opt}, path)
    return path


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A 4 s video (2 clips of 2 s), a 2818-wide checkpoint, and both random encoders loaded once."""
    root = tmp_path_factory.mktemp("sf_clip")
    video = make_colour_video(root / "two_colours.mp4", [((230, 20, 20), 2.0), ((0, 230, 230), 2.0)], fps=10,
                              size=(96, 64))
    ckpt = _checkpoint(root / "qvhl_slowfast_clip.ckpt", 2816, "slowfast_clip")
    clip = encoders_module.load_clip_encoder(weights="random", device="cpu")
    slowfast = slowfast_module.load_slowfast_encoder("random", device="cpu")
    return {"root": root, "video": video, "ckpt": ckpt, "clip": clip, "slowfast": slowfast}


@pytest.fixture()
def shared_encoders(setting, monkeypatch):
    """The CLI's loaders hand out the module's encoders (same weights as it would build: random, seed 0)."""
    loads = []

    def clip_loader(model_name="ViT-B-32", weights="openai", **kwargs):
        assert weights == "random" and model_name == "ViT-B-32"
        loads.append("clip")
        return setting["clip"]

    def slowfast_loader(weights, **kwargs):
        if str(weights) != "random":  # a path: the real loader, which must refuse a missing file
            return real_slowfast(weights, **kwargs)
        loads.append("slowfast")
        return setting["slowfast"]

    real_slowfast = slowfast_module.load_slowfast_encoder
    monkeypatch.setattr(encoders_module, "load_clip_encoder", clip_loader)
    monkeypatch.setattr(slowfast_module, "load_slowfast_encoder", slowfast_loader)
    return loads


def _official_saliency(model: UniVTG, sources: list[np.ndarray], tokens: np.ndarray) -> np.ndarray:
    """The official dataset's input: each source L2-normalised, cut to the shortest, concatenated, tef."""
    n = min(len(s) for s in sources)
    return _saliency(model, np.concatenate([l2_normalize(np.asarray(s[:n], np.float32)) for s in sources], axis=1),
                     tokens)


def _saliency(model: UniVTG, video: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The official forward's saliency for (n, D) prepared clip features (tef appended here)."""
    n = len(video)
    video = np.concatenate([video, tef(n)], axis=1)[None].astype(np.float32)
    txt = torch.from_numpy(l2_normalize(tokens))[None]
    with torch.inference_mode():
        out = model(src_txt=txt, src_txt_mask=torch.ones(txt.shape[:2]), src_vid=torch.from_numpy(video),
                    src_vid_mask=torch.ones(1, n))
    return out["saliency_scores"][0].numpy()


@pytest.fixture(scope="module")
def cli_run(setting, tmp_path_factory):
    """One CLI predict on a fresh cache (computes both sources); what it printed and wrote."""
    mp = pytest.MonkeyPatch()
    out = tmp_path_factory.mktemp("cli_out")
    try:
        mp.setattr(encoders_module, "load_clip_encoder", lambda *a, **k: setting["clip"])
        mp.setattr(slowfast_module, "load_slowfast_encoder", lambda *a, **k: setting["slowfast"])
        capture = _Capture()
        with capture:
            code = cli_module.main(["predict", str(setting["video"]), "--query", "a red square", "--resume",
                                    str(setting["ckpt"]), "--clip-weights", "random", "--slowfast-weights",
                                    "random", "--json", str(out / "pred.jsonl"), "--cache-dir",
                                    str(out / "cache"), "--progress", "--device", "cpu"])
    finally:
        mp.undo()
    return {"code": code, "stdout": capture.stdout, "stderr": capture.stderr, "cache": out / "cache",
            "record": json.loads((out / "pred.jsonl").read_text().splitlines()[0])}


class _Capture:
    """stdout/stderr of an in-process CLI run (capsys is function-scoped; the run is shared by the module)."""

    def __enter__(self):
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self.stdout, self.stderr = self._out.getvalue(), self._err.getvalue()
        return False


def test_cli_predict_computes_slowfast_then_clip_and_gives_the_official_saliency(setting, cli_run):
    assert cli_run["code"] == 0, cli_run["stderr"]
    assert "[slowfast]" in cli_run["stderr"] and "[clip]" in cli_run["stderr"]  # a bar for each source
    assert "2816 values per clip from 2 sources" in cli_run["stdout"]
    saliency = np.asarray(cli_run["record"]["pred_saliency_scores"])
    assert saliency.shape == (2,)

    # each source as the CLI stored it (its values: the fixture parity of tests/test_slowfast.py)
    stored = index_sources(setting["video"], [("slowfast", setting["slowfast"]), ("clip", setting["clip"])], 2.0,
                           cache_dir=cli_run["cache"])
    assert stored.from_cache and [p.features.shape[1] for p in stored.sources] == [2304, 512]
    sf, clip = (np.asarray(p.features) for p in stored.sources)
    model = cli_module_load(setting["ckpt"])
    tokens = setting["clip"].encode_query("a red square", token_limit=model.text_token_limit).tokens
    expected = _official_saliency(model, [sf, clip], tokens)
    np.testing.assert_allclose(saliency, expected, atol=1e-4)  # the JSON rounds to 4 decimals
    # one normalisation over both sources together (what a port that ignores the sources does) reads otherwise
    naive = _saliency(model, l2_normalize(np.concatenate([sf, clip], axis=1)), tokens)
    assert np.abs(naive - expected).max() > 1e-3


def cli_module_load(path: Path) -> UniVTG:
    from univtg_core.models import load_model

    return load_model(path, device="cpu")


def test_app_grounding_path_names_each_source_and_reads_the_store(setting, cli_run, shared_encoders):
    from app.handlers import QueryHandler
    from app.session import SessionStore

    grounder = Grounder.from_options(clip_weights="random", resume=setting["ckpt"], device="cpu",
                                     slowfast_weights="random", cache_dir=cli_run["cache"])
    assert grounder.sources == ("slowfast", "clip") and shared_encoders == ["clip", "slowfast"]
    descs = []
    handler = QueryHandler(grounder, SessionStore(setting["root"] / "sessions"))
    info, prediction, _ = handler._ground(str(setting["video"]), "a red square", None,
                                          progress=lambda value, desc="", unit="": descs.append(desc))
    assert any(d.startswith("SlowFast:") for d in descs) and any(d.startswith("CLIP:") for d in descs)
    assert info["n_clips"] == 2 and info["from_cache"]  # both sources from the CLI's store entries
    np.testing.assert_allclose(prediction.saliency, cli_run["record"]["pred_saliency_scores"], atol=1e-4)


def test_sources_are_concatenated_in_the_spec_order_cut_to_the_shortest(setting, tmp_path):
    class Rows:
        """A stand-in encoder giving `n` rows of `value` (the indexer's stream protocol)."""

        def __init__(self, name, n, value, dim):
            self.fingerprint, self.embed_dim, self.n, self.value = f"rows-{name}", dim, n, value

        def expected_clips(self, path, clip_len=2.0):
            return self.n

        def iter_video_features(self, path, clip_len=2.0, progress=None, *, start_clip=0):
            progress(self.n, self.n)
            yield np.full((self.n - start_clip, self.embed_dim), self.value, np.float32)

    seen = []
    index = index_sources(setting["video"], [("clip", Rows("a", 3, 1.0, 4)), ("slowfast", Rows("b", 2, 2.0, 6))],
                          2.0, progress_for=lambda name: (lambda done, total: seen.append((name, done, total))),
                          cache_dir=tmp_path)
    assert index.features.shape == (2, 10)  # MESM's order: clip columns first; the longer source cut
    np.testing.assert_array_equal(index.features[:, :4], 1.0)
    np.testing.assert_array_equal(index.features[:, 4:], 2.0)
    assert {name for name, _, _ in seen} == {"clip", "slowfast"} and len(index.sources) == 2


def test_a_source_we_cannot_compute_is_refused_in_one_line(setting, tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "i3d.ckpt", 1024, "i3d")
    code = cli_module.main(["predict", str(setting["video"]), "-q", "x", "--resume", str(ckpt), "--clip-weights",
                            "random", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:")
    assert "needs video i3d (1024)" in err[0] and "we compute video clip or slowfast" in err[0]
    assert "i3d (1024) missing" in err[0]


def test_missing_slowfast_weights_are_refused_before_the_encoders_load(setting, tmp_path, capsys, monkeypatch,
                                                                       shared_encoders):
    monkeypatch.delenv("UNIVTG_SLOWFAST_WEIGHTS", raising=False)
    args = ["predict", str(setting["video"]), "-q", "x", "--resume", str(setting["ckpt"]), "--clip-weights",
            "random", "--cache-dir", str(tmp_path / "c")]
    assert cli_module.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--slowfast-weights" in err[0] and "SLOWFAST_8x8_R50.pkl" in err[0]
    assert "dl.fbaipublicfiles.com" in err[0] and shared_encoders == []  # nothing loaded

    assert cli_module.main([*args, "--slowfast-weights", str(tmp_path / "SLOWFAST_8x8_R50.pkl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "SlowFast weights not found" in err[0] and "dl.fbaipublicfiles.com" in err[0]
    assert shared_encoders == []  # refused before CLIP loads too
    with pytest.raises(EncoderWeightsError, match="--slowfast-weights"):
        Grounder(setting["clip"], cli_module_load(setting["ckpt"]))  # the library refuses the same way


def test_the_slowfast_flags_and_their_variable(monkeypatch, tmp_path):
    from app.cli import build_parser as app_parser

    monkeypatch.setenv("UNIVTG_SLOWFAST_WEIGHTS", str(tmp_path / "sf.safetensors"))
    assert app_parser().parse_args([]).slowfast_weights == str(tmp_path / "sf.safetensors")
    assert cli_module.build_parser().parse_args(["index", "v.mp4"]).slowfast_weights == str(
        tmp_path / "sf.safetensors")
    assert app_parser().parse_args(["--slowfast-weights", "x.pkl"]).slowfast_weights == "x.pkl"


def test_a_clip_only_checkpoint_never_runs_slowfast(setting, tmp_path):
    ckpt = _checkpoint(tmp_path / "clip_only.ckpt", 512, "clip")
    grounder = Grounder(setting["clip"], cli_module_load(ckpt))
    assert grounder.sources == ("clip",)
    with pytest.raises(CheckpointError, match="2816 wide"):
        Grounder(setting["clip"], cli_module_load(setting["ckpt"]), video_encoders={"slowfast": setting["clip"]})


def test_the_app_says_when_a_query_was_cut():
    from app.handlers import query_cut_notice
    from univtg_core import Prediction

    base = dict(moments=(), saliency=np.zeros(2), clip_len=2.0, duration=4.0, highlight=0.0, summary=())
    assert query_cut_notice(Prediction(**base, tokens_read=12, query_tokens=10, query_cut=False)) is None
    notice = query_cut_notice(Prediction(**base, tokens_read=32, query_tokens=41, query_cut=True))
    assert "41 tokens" in notice and "read 32 token rows" in notice and notice.startswith("Query shortened")


def test_the_app_refuses_a_slowfast_checkpoint_without_its_weights_in_one_line(tmp_path, capsys, monkeypatch):
    from app.cli import main as app_main

    monkeypatch.delenv("UNIVTG_SLOWFAST_WEIGHTS", raising=False)
    ckpt = _checkpoint(tmp_path / "qvhl_slowfast_clip.ckpt", 2816, "slowfast_clip")
    assert app_main(["--resume", str(ckpt), "--clip-weights", "random", "--device", "cpu"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "slowfast (2304) + clip (512)" in err[0] and "--slowfast-weights" in err[0]
