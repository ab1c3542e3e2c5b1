"""The coarse-to-fine choice front ends pass (`coarse_top_k="auto" | "all" | K`): the auto rule, an
architecture's own K through the contract, what the Prediction says was searched, and the CLI's
`--coarse-top-k` on a two-hour synthetic feature set (one error line for nonsense)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from univtg_core import OptionError, Query, ground
from univtg_core import long_video as lv
from univtg_core.models._contract import FeatureSource, GroundingModel, InputSpec, QueryInput, WindowOutput
from univtg_core.models.rgnet import RGNet, RGNetConfig
from univtg_core.postprocess import l2_normalize

DIM, CLIP = 32, 2.0
# A small RGNet without a retrieval token (its windows ranked by the best frame-sentence cosine), K = 7.
NO_RETRIEVAL = RGNetConfig(t_feat_dim=64, v_motion_feat_dim=48, v_appear_feat_dim=48, hidden_dim=32, nheads=2,
                           enc_layers=1, dec_layers=2, dec_layers_2=2, dim_feedforward=16, num_queries=3, max_q_l=8,
                           max_v_l=20, decoder_gating=True, topk_window=7)


class WindowCounter(GroundingModel, torch.nn.Module):
    """Reads windows of 75 clips and counts them; one candidate per window (its best clip); `own_k` is the
    architecture default it declares (None: the product's generic auto rule)."""

    architecture = "window-counter"

    def __init__(self, own_k: int | None = None):
        torch.nn.Module.__init__(self)
        self.own_k = own_k
        self.read = 0

    @property
    def input_spec(self) -> InputSpec:
        return InputSpec(video=(FeatureSource("clip", DIM),), text=FeatureSource("clip_tokens", DIM), clip_len=CLIP,
                         window=75)

    @property
    def default_coarse_top_k(self) -> int | None:
        return self.own_k

    def query_input(self, query) -> QueryInput:
        tokens = np.asarray(query.tokens, np.float32)
        return QueryInput(tokens, rows_read=len(tokens), rows_given=len(tokens))

    def predict_windows(self, video, query: QueryInput, clip_len: float) -> WindowOutput:
        video = np.asarray(video, np.float32)
        self.read += len(video)
        cos = l2_normalize(video) @ l2_normalize(query.tokens.mean(0))
        best = cos.argmax(1)
        spans = np.stack([best * clip_len, (best + 1) * clip_len], 1)[:, None].astype(np.float32)
        return WindowOutput(windows=spans, scores=cos.max(1, keepdims=True), saliency=cos)

    def decode_outputs(self, outputs, video_mask, clip_len, durations=None):
        raise NotImplementedError


def _film(n_clips: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n_clips, DIM)).astype(np.float32)
    direction = rng.normal(size=DIM).astype(np.float32)
    direction /= np.linalg.norm(direction)
    feats[n_clips // 2 : n_clips // 2 + 5] += 10.0 * direction  # cosine about 0.87; noise reaches about 0.6
    return feats, Query(direction[None] + 0.01 * rng.normal(size=(3, DIM)).astype(np.float32), embedding=direction)


@pytest.mark.parametrize("windows, own, expected", [
    (1, None, None), (16, None, None),  # every window while a video has at most 16
    (17, None, lv.AUTO_TOP_K), (97, None, lv.AUTO_TOP_K), (1000, None, lv.AUTO_TOP_K),
    (81, 30, 30), (10, 5, 5), (20, 30, None),  # the architecture's own K at any length; all when fewer
])
def test_auto_picks_every_window_up_to_16_then_the_8_best_or_the_architectures_own_k(windows, own, expected):
    k, rule = lv.choose_top_k("auto", windows, own)
    assert k == expected and rule.startswith("auto")
    assert lv.AUTO_ALL_WINDOWS == 16 and lv.AUTO_TOP_K == 8


@pytest.mark.parametrize("choice, windows, expected", [
    ("all", 97, None), (None, 97, None), ("ALL ", 3, None), (5, 97, 5), ("5", 97, 5), (np.int64(4), 97, 4),
    (200, 97, None), (97, 97, None), (96, 97, 96),
])
def test_all_and_a_number_are_respected(choice, windows, expected):
    assert lv.choose_top_k(choice, windows, default_k=30)[0] == expected  # the architecture's K only for auto


def test_zero_shot_auto_reads_every_clip_and_a_number_limits_it():
    assert lv.choose_top_k("auto", 97, zero_shot=True)[0] is None
    assert lv.choose_top_k(4, 97, zero_shot=True)[0] == 4


@pytest.mark.parametrize("bad", ["0", "-3", "8.5", "eight", "", "auto8", True, 0, -1, 2.5])
def test_nonsense_is_refused_with_one_line_naming_the_option(bad):
    with pytest.raises(OptionError) as caught:
        lv.parse_coarse_top_k(bad, name="--coarse-top-k")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("--coarse-top-k must be") and repr(bad) in message
    assert isinstance(caught.value, ValueError)  # ground()'s callers that caught ValueError still do
    with pytest.raises(ValueError, match="coarse_top_k"):
        ground(np.zeros((10, DIM), np.float32), Query(embedding=np.ones(DIM, np.float32)), CLIP, coarse_top_k=bad)


def test_ground_reads_what_the_choice_says_and_the_prediction_says_so():
    feats, query = _film(3600)  # 97 windows of 75 clips
    for choice, read, described in (("auto", 8, "searched the 8 best of 97 windows"),
                                    ("all", 97, "searched all 97 windows"), (3, 3, "searched the 3 best of 97 windows"),
                                    (None, 97, "searched all 97 windows")):
        model = WindowCounter()
        pred = ground(feats, query, CLIP, model=model, coarse_top_k=choice)
        search = pred.window_search
        assert model.read == read and (search.searched, search.total) == (read, 97), choice
        assert search.describe() == described
        assert search.first_stage == ("cosine" if read < 97 else None)
        record = json.loads(pred.to_json_line())["window_search"]
        assert record == {"searched": read, "total": 97, "asked": str(lv.parse_coarse_top_k(choice)),
                          "rule": search.rule, "first_stage": search.first_stage}
        top = pred.moments[0]
        assert top.start <= 1800 * CLIP + 10 and top.end >= 1800 * CLIP  # the planted moment survives the cut
    for n_clips, windows, read in ((600, 16, 16), (640, 17, 8)):  # 20 and 21 minutes: either side of the rule
        assert len(lv.sliding_windows(n_clips, 75)) == windows
        counter = WindowCounter()
        pred = ground(*_film(n_clips), CLIP, model=counter, coarse_top_k="auto")
        assert counter.read == read and pred.window_search.searched == read
    assert pred.window_search.rule == "auto: 17 windows, more than 16"


def test_an_architectures_own_k_is_what_auto_reads():
    feats, query = _film(3600)
    model = WindowCounter(own_k=5)
    pred = ground(feats, query, CLIP, model=model, coarse_top_k="auto")
    assert model.read == 5 and pred.window_search.rule == "auto: the architecture's own K=5"
    few = WindowCounter(own_k=5)
    assert ground(*_film(300), CLIP, model=few, coarse_top_k="auto").window_search.searched == 5  # 7 windows
    assert few.read == 5


def test_rgnet_declares_its_topk_window_as_its_default():
    torch.manual_seed(0)
    model = RGNet(NO_RETRIEVAL).eval()
    assert model.default_coarse_top_k == 7
    rng = np.random.default_rng(1)
    video = rng.normal(size=(2000, NO_RETRIEVAL.v_motion_feat_dim)).astype(np.float32)
    sentence = rng.normal(size=NO_RETRIEVAL.v_appear_feat_dim).astype(np.float32)
    tokens = rng.normal(size=(5, NO_RETRIEVAL.t_feat_dim)).astype(np.float32)
    pred = ground(video, Query(tokens, embedding=sentence), clip_len=0.2, model=model, coarse_top_k="auto")
    assert pred.window_search.searched == 7 and pred.window_search.total > 100
    assert pred.window_search.first_stage == "model"  # its own window score ranked them


def test_zero_shot_keeps_every_clip_unless_a_number_is_given():
    feats, query = _film(3600)
    for choice in ("auto", "all", None):
        assert ground(feats, query, CLIP, coarse_top_k=choice).window_search is None
    limited = ground(feats, query, CLIP, coarse_top_k=4).window_search
    assert (limited.searched, limited.total, limited.first_stage) == (4, 97, "cosine")  # half-overlapping 150 s


# ------------------------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def two_hours(tmp_path_factory):
    """A two-hour feature set (3,600 clips of 2 s, 32-d, one planted moment), its query features, and a small
    random-init UniVTG checkpoint that reads them."""
    from univtg_core.models.univtg import UniVTG, UniVTGConfig
    from univtg_core.store import FeatureStore

    root = tmp_path_factory.mktemp("two-hours")
    feats, query = _film(3600)
    (root / "vid").mkdir()
    np.savez(root / "vid" / "film.npz", features=feats)
    FeatureStore(root / "txt").put("q0", {"last_hidden_state": query.tokens, "pooler_output": query.embedding})
    (root / "test.jsonl").write_text(json.dumps({"qid": "q0", "query": "the planted moment", "vid": "film",
                                                 "duration": 7200.0, "relevant_windows": [[3600, 3610]]}) + "\n")
    torch.manual_seed(0)
    config = UniVTGConfig(video_dim=DIM, text_dim=DIM, hidden_dim=32, enc_layers=1, nheads=4, dim_feedforward=32)
    torch.save({"model": UniVTG(config).state_dict(), "opt": argparse.Namespace(nheads=4, ctx_mode="video_tef")},
               root / "small.ckpt")
    return root


def _split(capsys, root, out, *extra):
    from univtg_core.cli import main

    code = main(["predict-split", "--jsonl", str(root / "test.jsonl"), "--features", str(root / "vid"),
                 "--text-features", str(root / "txt"), "--resume", str(root / "small.ckpt"), "--clip-len", "2",
                 "--device", "cpu", "--no-saliency", "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_cli_reports_the_windows_it_searched(two_hours, tmp_path, capsys):
    out = tmp_path / "auto.jsonl"
    code, stdout, err = _split(capsys, two_hours, out)  # the default: auto
    assert code == 0, err
    assert "windows: searched the 8 best of 97 windows (auto: 97 windows, more than 16; by cosine)" in stdout
    record = json.loads(out.read_text())
    assert record["window_search"]["searched"] == 8 and record["window_search"]["asked"] == "auto"
    code, stdout, err = _split(capsys, two_hours, tmp_path / "all.jsonl", "--coarse-top-k", "all")
    assert code == 0, err
    assert "windows: searched all 97 windows (every window, as asked)" in stdout
    code, stdout, err = _split(capsys, two_hours, tmp_path / "k.jsonl", "--coarse-top-k", "12")
    assert code == 0 and "searched the 12 best of 97 windows (K=12, as asked; by cosine)" in stdout


def test_the_cli_refuses_nonsense_with_one_line(two_hours, tmp_path, capsys):
    for bad in ("lots", "0", "-2", "1.5"):
        code, stdout, err = _split(capsys, two_hours, tmp_path / "bad.jsonl", "--coarse-top-k", bad)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert lines[0].startswith("error: --coarse-top-k must be 'auto', 'all' or a whole number") and bad in lines[0]
        assert not (tmp_path / "bad.jsonl").exists()
