"""Training RGNet with the one trainer (`python -m univtg_core.training --model_id rgnet`): its data rule on a
hand-made case, the official loss values reached through the recipe's step, a planted-signal long-video run that
learns window retrieval, the checkpoint, an Ego4D-layout run with the adapter, and torchrun on CPU."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_fixture
from rgnet_synthetic import write_long_video_set

REPO = Path(__file__).resolve().parents[1]
SAFE = [argparse.Namespace, Counter, torch.device]
# A small RGNet of the MAD script's kind (retrieval token, --winret pairs, the three gates) that trains in
# seconds on CPU: hidden 32 (so the DETR decoder, the anchor decoder needs 256), light input dropout, a
# looser gradient clip than the official 0.1 and a higher learning rate for the short schedule.
MODEL = ["--hidden_dim", "32", "--nheads", "4", "--dim_feedforward", "64", "--enc_layers", "1", "--dec_layers", "2",
         "--num_queries", "5", "--qddetr", "--gumbel", "--gumbel_2", "--gumbel_3", "--gumbel_single_proj",
         "--gumbel_eps", "0.3", "--input_dropout", "0.1", "--grad_clip", "1", "--lr", "1e-3", "--max_q_l", "8"]
WINDOW = 60  # frames per window (12 s at 5 fps), stride 30: 21 windows per 2-minute video
EPOCHS = 16


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _train(args: list[str], torchrun: bool = False, timeout: int = 600) -> subprocess.CompletedProcess:
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2"] if torchrun else []
    cmd = [sys.executable, *launcher, "-m", "univtg_core.training", "--model_id", "rgnet", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------- the data rule
def test_positive_and_negative_windows_of_a_hand_made_case():
    from univtg_core.models.rgnet_inference import window_grid
    from univtg_core.training.rgnet_data import negative_windows, positive_weights, positive_windows, window_targets

    # 100 frames, windows of 20, stride 10: 11 windows, window i = [max(10(i-1), 0), min(10(i-1) + 20, 100)).
    grid = window_grid(100, 20)
    assert len(grid) == 11 and grid[0].tolist() == [0, 10] and grid[3].tolist() == [20, 40]
    assert grid[10].tolist() == [90, 100]
    # A moment over frames 23..37 overlaps windows 2 [10, 30), 3 [20, 40) and 4 [30, 50), not 1 [0, 20) or 5.
    assert positive_windows(23, 37, 100, 20) == [2, 3, 4]
    assert negative_windows([2, 3, 4], 100, 20) == [0, 1, 5, 6, 7, 8, 9, 10]
    # The middle one is drawn e^0.5 times as often as each neighbour (Normal pdf of index - mean index).
    weights = positive_weights([2, 3, 4])
    assert weights[1] / weights[0] == pytest.approx(math.exp(0.5)) and weights.sum() == pytest.approx(1)
    # Clipped to window 3: frames 3..17 of its 20: center 0.5, width 0.7; saliency pools inside / outside.
    t = window_targets(23, 37, 3, 100, 20)
    assert t["span"] == pytest.approx((0.5, 0.7)) and t["proposal"] == (3, 17) and t["bounds"] == (20, 40)
    assert t["inside"] == list(range(3, 17)) and t["outside"] == [0, 1, 2, 17, 18, 19]
    # Clipped to window 2 [10, 30): frames 13..20 of 20.
    assert window_targets(23, 37, 2, 100, 20)["span"] == pytest.approx((16.5 / 20, 7 / 20))
    # The grid's first window starts half a window before the video: a moment at frames 3..5 sits in [0, 10).
    assert positive_windows(3, 5, 100, 20) == [0, 1]
    assert window_targets(3, 5, 0, 100, 20)["span"] == pytest.approx((0.4, 0.2))
    # A moment at the very end is capped at the video and lies in the last two windows.
    assert positive_windows(95, 130, 100, 20) == [9, 10]


def test_the_rule_reproduces_the_fixtures_training_windows():
    """mad_qa (200-212.4 s at 5 fps in the 2400-frame movie, windows of 900) lies in windows 2 and 3; window 3
    is the one the official dataset drew, and its span label is the stored one."""
    from univtg_core.training.rgnet_data import positive_windows, window_targets

    loss = np.load(shared_fixture("rgnet_reference") / "io_loss.npz")
    assert positive_windows(1000, 1062, 2400, 900) == [2, 3]
    assert window_targets(1000, 1062, 3, 2400, 900)["span"] == pytest.approx(
        tuple(loss["L1_span_labels_cxw"][0, 0]), abs=1e-5)
    assert window_targets(1000, 1062, 3, 2400, 900)["proposal"] == tuple(loss["L1_span_proposal"][0, 0])


@pytest.mark.parametrize("layout", ["ego4d", "mad"])
def test_items_are_positive_and_negative_windows_of_the_querys_video(tmp_path, layout):
    """Ego4D layout (CONE's jsonl keys, <clip>.npz) and MAD's (converted annotations, .h5 read window by
    window): each item's windows are rows of its own video."""
    from univtg_core.models.rgnet_inference import window_grid
    from univtg_core.training import rgnet_data
    from univtg_core.training.data import FeatureStore
    from univtg_core.training.rgnet_options import parse_options

    data = write_long_video_set(tmp_path, layout=layout, n_train=3, n_val=1, dim=16, token_dim=8)
    reference = FeatureStore([str(data.video_feats)], None, normalize_video=False)  # whole videos, read apart
    opt = parse_options(["--dset_name", layout, "--train_path", str(data.train_path), "--motion_feat_dir",
                         str(data.video_feats), "--t_feat_dir", str(data.text_feats), "--max_v_l", str(WINDOW),
                         "--clip_length", "0.2", "--exp_id", "x", "--results_dir", str(tmp_path / "r")])
    from univtg_core.training.recipes.rgnet import RECIPE

    run = rgnet_data.setup_data(opt, RECIPE, progress=False)
    assert (opt.v_motion_feat_dim, opt.t_feat_dim, opt.v_appear_feat_dim) == (16, 8, 16)  # from the files
    dataset = run.train_dataset
    if layout == "mad":  # the .h5 is read window by window: no whole movie enters the cache
        dataset[0]
        assert dataset.features.store._cache.get(("v", dataset.records[0]["vid"])) is None
    np.random.seed(0)
    for index, record in enumerate(dataset.records):  # CONE's keys read into ours, features by clip_id
        item = dataset[index]
        video = reference.video(record["vid"])
        grid = window_grid(len(video), WINDOW)
        start, end = (t / 0.2 for t in record["relevant_windows"][0])
        positives = rgnet_data.positive_windows(start, end, len(video), WINDOW)
        chosen = item["meta"]["window"]
        assert chosen in positives
        s, e = grid[chosen]
        assert torch.equal(item["window_feat"], torch.from_numpy(video[s:e]))
        negatives = [j for j in range(len(grid)) if j not in positives and
                     len(item["neg_window_feat"]) == grid[j][1] - grid[j][0] and
                     torch.equal(item["neg_window_feat"], torch.from_numpy(video[grid[j][0]:grid[j][1]]))]
        assert negatives, "the negative window is another window of the same video"
        inside = window_targets_inside(start, end, chosen, len(video))
        assert item["saliency_pos"] in inside and item["saliency_neg"] not in inside
        assert item["query_feat"].norm(dim=-1).max() <= 1.0  # normalised tokens (eps 1e-5)
    metas, batch = rgnet_data.collate([dataset[0], dataset[1]])
    inputs, _ = rgnet_data.prepare_batch(batch, torch.device("cpu"))
    assert inputs["batch"].window_feat.shape[:2] == inputs["batch"].window_mask.shape and len(metas) == 2


def test_a_token_file_is_not_taken_for_the_sentence_features(tmp_path):
    """MAD's released text .h5 holds plain per-query token arrays: the sentence feature must come from
    --sentence_feat_dir, and reading it from the token file is refused with one line."""
    import h5py

    from univtg_core.training.data import DataError, FeatureStore
    from univtg_core.training.rgnet_data import RGNetFeatures

    tokens, sentences = tmp_path / "tokens.h5", tmp_path / "cls.h5"
    with h5py.File(tokens, "w") as f:
        f.create_dataset("q0", data=np.ones((5, 8), np.float32))
    with h5py.File(sentences, "w") as f:
        f.create_dataset("q0", data=np.full((1, 8), 2.0, np.float32))
    opt = argparse.Namespace(input_fps_reduction=1)
    alone = RGNetFeatures(FeatureStore([], str(tokens), normalize_text=False), None, opt)
    assert alone.tokens("q0").shape == (5, 8)
    with pytest.raises(DataError, match="--sentence_feat_dir"):
        alone.sentence("q0")
    both = RGNetFeatures(FeatureStore([], str(tokens), normalize_text=False),
                         FeatureStore([], str(sentences), normalize_text=False), opt)
    assert both.sentence("q0").tolist() == [2.0] * 8


def test_the_official_lmdb_folders_are_read_as_they_are(tmp_path):
    """CONE's / RGNet's offline_lmdb layout: one environment for the video, one for the text, each entry the
    bytes of an .npz (features; token_features and cls_features), read without unpickling; a missing entry
    is named before training."""
    import io

    lmdb = pytest.importorskip("lmdb")
    from univtg_core.training import rgnet_data
    from univtg_core.training.data import DataError
    from univtg_core.training.recipes.rgnet import RECIPE
    from univtg_core.training.rgnet_options import parse_options

    rng = np.random.default_rng(0)

    def write(path, entries):
        env = lmdb.open(str(path), map_size=1 << 26)
        with env.begin(write=True) as txn:
            for key, arrays in entries.items():
                buffer = io.BytesIO()
                np.savez(buffer, **arrays)
                txn.put(key.encode(), buffer.getvalue())
        env.close()

    video = rng.normal(size=(300, 16)).astype(np.float32)
    write(tmp_path / "video_lmdb", {"movie": {"features": video}})
    write(tmp_path / "text_lmdb", {"q0": {"token_features": np.ones((4, 8), np.float32),
                                          "cls_features": np.ones((1, 16), np.float32)}})
    rows = [{"query_id": "q0", "video_id": "movie", "timestamps": [10.0, 14.0], "duration": 60.0}]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["--dset_name", "mad", "--train_path", str(tmp_path / "train.jsonl"), "--motion_feat_dir",
            str(tmp_path / "video_lmdb"), "--t_feat_dir", str(tmp_path / "text_lmdb"), "--max_v_l", str(WINDOW),
            "--clip_length", "0.2", "--results_dir", str(tmp_path / "r")]
    run = rgnet_data.setup_data(parse_options(argv), RECIPE, progress=False)
    assert np.array_equal(run.train_dataset.features.video("movie"), video)  # raw, as the official dataset
    item = run.train_dataset[0]
    assert item["query_feat"].shape == (4, 8) and item["meta"]["window"] in [0, 1, 2]  # frames 50..70
    rows[0]["video_id"] = "another_movie"
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="another_movie"):
        rgnet_data.setup_data(parse_options(argv), RECIPE, progress=False)


def window_targets_inside(start, end, index, n):
    from univtg_core.training.rgnet_data import window_targets

    return window_targets(start, end, index, n, WINDOW)["inside"]


# --------------------------------------------------------------------------- the official loss, via the recipe
def _fixture_options(ref: Path) -> argparse.Namespace:
    """The fixture's own training command line (train_mad.sh's) parsed by our RGNet options."""
    from univtg_core.training.rgnet_options import parse_options

    argv = json.loads((ref / "meta.json").read_text())["train_argv"]
    return parse_options([*argv, "--results_dir", "unused"])


@pytest.mark.parametrize("case", ["L1", "L2"])
def test_the_recipes_step_gives_the_official_losses(case):
    """The fixture's loss case through RECIPE.train_step with the criterion our parser builds from the
    official launch line: L1 eval mode; L2 training mode, dropout 0, the stored Gumbel draws."""
    from univtg_core.models.rgnet import load_rgnet
    from univtg_core.training.recipes.rgnet import RECIPE
    from univtg_core.training.rgnet_losses import RGNetBatch

    ref = shared_fixture("rgnet_reference")
    loss = np.load(ref / "io_loss.npz")
    video = np.load(ref / "io_forward.npz")["video_feats"].astype(np.float32)
    opt = _fixture_options(ref)
    criterion = RECIPE.build_criterion(opt)
    assert criterion.weight_dict["loss_retrieval"] == 10 and "loss_adapter" not in criterion.weight_dict
    overrides = dict(official_mask_layout=True)  # the official training batches have the layout bug
    if case == "L2":
        overrides.update(dropout=0.0, input_dropout=0.0)
    model = load_rgnet(ref / "model_best.ckpt", device="cpu", **overrides)
    if case == "L2":
        draws = torch.from_numpy(loss["L2_gumbel_u_0"])
        model.train()
        model.transformer.gumble_gate.sample_uniform = lambda template: draws
    g = lambda k: torch.from_numpy(loss[f"{case}_{k}"])  # noqa: E731
    starts, lens = loss[f"{case}_pos_window_start"], loss[f"{case}_pos_window_len"]
    win = torch.zeros(len(starts), int(max(lens)), video.shape[1])
    mask = torch.zeros(len(starts), int(max(lens)))
    for i, (s, n) in enumerate(zip(starts, lens)):
        win[i, :n] = torch.from_numpy(video[s:s + n])
        mask[i, :n] = 1
    batch = RGNetBatch(query_feat=g("query_feat"), query_mask=g("query_mask"), query_cls=g("query_cls"),
                       window_feat=win, window_mask=mask, span_labels=g("span_labels_cxw"),
                       saliency_pos_labels=g("saliency_pos_labels"), saliency_neg_labels=g("saliency_neg_labels"),
                       span_proposal=g("span_proposal").view(-1, 2))
    with torch.set_grad_enabled(case == "L2"):
        losses, total = RECIPE.train_step(model, criterion, {"batch": batch}, {}, epoch=0)
    keys, values = list(loss[f"{case}_loss_keys"]), loss[f"{case}_loss_values"]
    assert list(losses) == keys
    for k, v in zip(keys, values):
        assert float(torch.as_tensor(losses[k]).detach()) == pytest.approx(float(v), abs=1e-4, rel=1e-4), k
    assert float(total.detach()) == pytest.approx(float(values[keys.index("loss_overall")]), abs=1e-4, rel=1e-4)


def test_the_official_launch_line_gives_the_fixtures_architecture():
    """train_mad.sh's options (every official name and default) -> the config of the fixture's checkpoint."""
    from univtg_core.models.rgnet import RGNetConfig, config_from_checkpoint
    from univtg_core.training.recipes.rgnet import config_from_options
    from univtg_core.weights import read_weights

    ref = shared_fixture("rgnet_reference")
    opt = _fixture_options(ref)
    assert opt.lr_drop == [25] and opt.neg_loss is False and opt.adapter_loss is False and opt.winret
    assert opt.results_dir == "unused" and opt.dim_feedforward == 128  # the last of two flags wins
    ckpt = read_weights(ref / "model_best.ckpt", SAFE, what="RGNet checkpoint")
    saved = vars(ckpt["opt"])
    for name, value in vars(opt).items():  # every official option parses under its name, to the same value
        if name in saved and name not in ("device", "results_dir", "lr_drop", "train_path"):
            assert value == saved[name], name
    ours, official = config_from_options(opt), config_from_checkpoint(ckpt, ref / "model_best.ckpt")
    for f in fields(RGNetConfig):
        if f.name not in ("official_mask_layout", "topk_window", "nms_thd", "max_before_nms", "max_after_nms"):
            assert getattr(ours, f.name) == getattr(official, f.name), f.name


def test_every_official_option_has_its_official_default():
    from univtg_core.training.rgnet_options import build_parser

    official = {  # rgnet/config.py BaseOptions at the fixture's commit
        "dset_name": None, "eval_split_name": "val", "debug": False, "train_data_ratio": 1.0, "data_ratio": 1.0,
        "results_root": "cone_results", "exp_id": None, "seed": 2018, "device": 0, "num_workers": 4,
        "no_pin_memory": False, "lr": 1e-4, "coef_lr": 0.1, "lr_drop": 120, "wd": 1e-4, "n_epoch": 150,
        "eval_epoch_interval": 3, "max_es_cnt": 10, "topk_window": 30, "bsz": 32, "eval_bsz": 32, "grad_clip": 0.1,
        "eval_untrained": False, "resume": None, "resume_all": False, "start_epoch": None,
        "start_epoch_for_adapter": -1, "max_q_l": 20, "max_v_l": 90, "clip_length": 1.0, "max_windows": 5,
        "train_path": None, "eval_path": None, "no_norm_vfeat": False, "no_norm_tfeat": False,
        "motion_feat_dir": None, "appearance_feat_dir": None, "t_feat_dir": None, "v_motion_feat_dim": None,
        "v_appear_feat_dim": None, "t_feat_dim": None, "ctx_mode": "video", "adapter_module": "none",
        "position_embedding": "sine", "enc_layers": 2, "dec_layers": 6, "dec_layers_2": 2, "dim_feedforward": 1024,
        "hidden_dim": 256, "input_dropout": 0.5, "dropout": 0.1, "txt_drop_ratio": 0, "use_txt_pos": False,
        "nheads": 8, "num_queries": 5, "pre_norm": False, "eval_modality": "both", "save_all": False,
        "n_input_proj": 2, "temperature": 0.07, "lw_saliency": 1.0, "saliency_margin": 0.2, "aux_loss": True,
        "neg_loss": True, "adapter_loss": True, "span_loss_type": "l1", "set_cost_span": 10, "set_cost_giou": 1,
        "set_cost_class": 4, "span_loss_coef": 10, "giou_loss_coef": 1, "label_loss_coef": 4,
        "adapter_loss_coef": 1, "retrieval_loss_coef": 4, "samp_loc_loss_coef": 10, "eos_coef": 0.1,
        "no_sort_results": False, "max_before_nms": 200, "max_after_nms": 5, "nms_thd": -1, "world_size": 1,
        "cuda_visible_devices": None, "decoder_gating": False, "qddetr": False, "retrieval": False,
        "ret_eval": False, "oracle_ret_eval": False, "comb_ret_eval": False, "winret": False,
        "online_loader": False, "winret_neg_loss": False, "input_fps_reduction": 1, "samp_loc_loss": False,
        "dabdetr": False, "gumbel": False, "gumbel_2": False, "gumbel_3": False, "gumbel_eps": 0.66667,
        "gumbel_single_proj": False, "multiscale": False, "single_gpu": False, "pos_temperature": 10000,
        "topk": 10, "topk_span": 5,
    }
    parser = build_parser()
    for name, default in official.items():
        assert parser.get_default(name) == default, name
    flags = {s for a in parser._actions for s in a.option_strings}
    for flag in ("--no_aux_loss", "--no_neg_contrast_loss", "--no_adapter_loss"):
        assert flag in flags


def test_bad_options_are_refused_with_one_usage_line(tmp_path, capsys):
    from univtg_core.training.options import parse_options

    base = ["--model_id", "rgnet", "--train_path", "a.jsonl", "--motion_feat_dir", "v.h5", "--t_feat_dir", "t.h5",
            "--exp_id", "x"]
    with pytest.raises(SystemExit) as exc:
        parse_options(base)  # no --dset_name
    assert exc.value.code == 2 and "--dset_name is required" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_options([*base, "--dset_name", "mad", "--appearance_feat_dir", "other.h5"])
    assert "--appearance_feat_dir must be" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ planted signal
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return write_long_video_set(tmp_path_factory.mktemp("rgnet-planted"), layout="mad")


def _mad_args(data, results: Path) -> list[str]:
    return ["--dset_name", "mad", "--train_path", str(data.train_path), "--eval_path", str(data.val_path),
            "--motion_feat_dir", str(data.video_feats), "--appearance_feat_dir", str(data.video_feats),
            "--t_feat_dir", str(data.text_feats), "--clip_length", "0.2", "--max_v_l", str(WINDOW), "--winret",
            "--no_adapter_loss", "--retrieval_loss_coef", "10", "--nms_thd", "0.5", "--max_after_nms", "100",
            "--device", "-1", "--num_workers", "0", "--results_dir", str(results), "--no_progress"]


@pytest.fixture(scope="module")
def trained(planted, tmp_path_factory):
    results = tmp_path_factory.mktemp("rgnet-run") / "mad-planted"
    proc = _train([*_mad_args(planted, results), *MODEL, "--bsz", "8", "--n_epoch", str(EPOCHS),
                   "--eval_epoch_interval", "8", "--lr_drop", "12", "--seed", "2020"])
    return {"dir": results, "log": proc.stderr}


def _random_window_rate(data) -> float:
    from univtg_core.models.rgnet_inference import window_grid
    from univtg_core.training.rgnet_data import positive_windows

    rates = [len(positive_windows(r["start"] * 5, r["end"] * 5, r["n_frames"], WINDOW)) /
             len(window_grid(r["n_frames"], WINDOW)) for r in data.val_records]
    return 100.0 * float(np.mean(rates))


@pytest.mark.slow
def test_planted_training_ranks_the_right_window_first_and_its_loss_falls(trained, planted):
    """Held-out videos: each query's concept is planted once in its video, the video's other planted concepts
    are distractor windows. The trained retrieval token puts a window holding the moment first for most
    queries, far above choosing a window at random."""
    from univtg_core import load_model
    from univtg_core.models.rgnet_inference import long_video_moments, window_grid
    from univtg_core.query import Query
    from univtg_core.training.rgnet_data import positive_windows

    random_rate = _random_window_rate(planted)  # about 2.6 positive windows of 21: ~12%
    report = json.loads((trained["dir"] / "val_metrics.json").read_text())["brief"]
    assert report["window-R1"] >= 50.0 and report["window-R1"] >= 4 * random_rate, (report, random_rate)
    # The same, recomputed here from model_best.ckpt through the product's long-video path.
    model = load_model(trained["dir"] / "model_best.ckpt", device="cpu")
    import h5py

    hits = []
    with h5py.File(planted.video_feats) as fv, h5py.File(planted.text_feats) as ft:
        for r in planted.val_records:
            query = Query(tokens=ft[r["qid"]]["token_features"][()], embedding=ft[r["qid"]]["cls_features"][()])
            video = fv[r["vid"]][()].astype(np.float32)
            found = long_video_moments(model, video, query, clip_len=0.2, coarse_top_k=1)
            assert len(found.grid) == len(window_grid(r["n_frames"], WINDOW))
            hits.append(found.window_order[0] in positive_windows(r["start"] * 5, r["end"] * 5, r["n_frames"], WINDOW))
    assert 100.0 * np.mean(hits) == pytest.approx(report["window-R1"], abs=0.01)
    assert report["R1@0.3"] > 25.0, report  # and the spans inside the windows are found
    rows = _read_csv(trained["dir"] / "train_log.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    first, last = float(rows[0]["loss_overall"]), float(rows[-1]["loss_overall"])
    assert last < 0.6 * first, (first, last)
    assert float(rows[-1]["loss_retrieval"]) < float(rows[0]["loss_retrieval"])
    for term in ("loss_span", "loss_giou", "loss_label", "loss_saliency", "loss_retrieval", "loss_span_0"):
        assert term in rows[0], term


@pytest.mark.slow
def test_model_best_is_in_the_official_format_and_loads(trained):
    from univtg_core import load_model
    from univtg_core.models.rgnet import RGNet
    from univtg_core.training.recipes.rgnet import config_from_options

    path = trained["dir"] / "model_best.ckpt"
    with torch.serialization.safe_globals(SAFE):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ckpt) == ["model", "optimizer", "lr_scheduler", "epoch", "opt"]
    assert isinstance(ckpt["opt"], argparse.Namespace) and not any(k.startswith("module.") for k in ckpt["model"])
    assert len(ckpt["optimizer"]["param_groups"]) == 2  # the adapter's group (empty here) and the rest
    assert ckpt["lr_scheduler"]["milestones"] == Counter({12: 1})
    best = json.loads((trained["dir"] / "best_metric.json").read_text())
    assert best["metric"] == "R1-mean" and ckpt["epoch"] == best["epoch"]  # chosen on the validation metric
    model = load_model(path, device="cpu")
    assert isinstance(model, RGNet) and not model.training
    model.load_state_dict(ckpt["model"], strict=True)
    opt = ckpt["opt"]  # round trip: the saved options rebuild the same architecture
    assert opt.model_id == "rgnet" and opt.lr_drop == [12] and opt.max_v_l == WINDOW and opt.winret is True
    evaluation = dict(topk_window=opt.topk_window, nms_thd=opt.nms_thd, max_before_nms=opt.max_before_nms,
                      max_after_nms=opt.max_after_nms)  # the loader takes these from the caller, as official
    assert config_from_options(opt) == replace(model.config, **evaluation)
    saved = json.loads((trained["dir"] / "opt.json").read_text())
    assert saved["clip_length"] == 0.2 and saved["dset_name"] == "mad"


@pytest.mark.slow
def test_an_official_checkpoint_resumes_with_its_optimiser_and_schedule(tmp_path):
    """The fixture's checkpoint (the official train() format, MAD configuration) continues training here with
    --resume --resume_all (as finetune_ego4d.sh resumes its pretraining) on the fixture's synthetic movie; the
    new model_best.ckpt loads back."""
    import h5py

    from univtg_core import load_model

    ref = shared_fixture("rgnet_reference")
    meta = json.loads((ref / "meta.json").read_text())
    queries = np.load(ref / "queries.npz")
    with h5py.File(tmp_path / "video.h5", "w") as f:
        f.create_dataset("mad_movie_0001", data=np.load(ref / "io_forward.npz")["video_feats"])
    with h5py.File(tmp_path / "text.h5", "w") as f:
        for qid in meta["queries"]:
            group = f.create_group(qid)
            group.create_dataset("token_features", data=queries[f"{qid}_tokens"])
            group.create_dataset("cls_features", data=queries[f"{qid}_cls"])
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in meta["jsonl_rows"][split]))
    results = tmp_path / "resumed"
    proc = _train([*meta["train_argv"], "--resume", str(ref / "model_best.ckpt"), "--train_path",
                   str(tmp_path / "train.jsonl"), "--eval_path", str(tmp_path / "test.jsonl"), "--motion_feat_dir",
                   str(tmp_path / "video.h5"), "--appearance_feat_dir", str(tmp_path / "video.h5"), "--t_feat_dir",
                   str(tmp_path / "text.h5"), "--n_epoch", "1", "--bsz", "3", "--device", "-1", "--num_workers", "0",
                   "--max_after_nms", "100", "--data_ratio", "0.5", "--results_dir", str(results), "--no_progress"])
    assert "with optimizer, scheduler and epoch" in proc.stderr and "for epochs 1..1" in proc.stderr
    with torch.serialization.safe_globals(SAFE):
        ckpt = torch.load(results / "model_best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == 0 and ckpt["lr_scheduler"]["milestones"] == Counter({25: 1})
    assert [len(g["params"]) for g in ckpt["optimizer"]["param_groups"]] == [0, 354]
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {1}  # 3 of the 6 queries: one batch
    model = load_model(results / "model_best.ckpt", device="cpu")
    assert model.config.dabdetr and model.config.max_v_l == 900 and model.config.pos_temperature == 100


# --------------------------------------------------------------------------------------------- Ego4D layout
def test_ego4d_layout_trains_with_the_adapter(tmp_path):
    """EgoVLP-like 256-d features in <clip>.npz, CONE-style jsonl, the linear adapter, no --winret: the
    fine-tuning losses (negative windows, retrieval hinge, adapter InfoNCE) are all trained and logged."""
    data = write_long_video_set(tmp_path / "data", layout="ego4d", n_train=8, n_val=2, dim=256, token_dim=16)
    results = tmp_path / "ego"
    _train(["--dset_name", "ego4d", "--train_path", str(data.train_path), "--eval_path", str(data.val_path),
            "--motion_feat_dir", str(data.video_feats), "--t_feat_dir", str(data.text_feats), "--clip_length",
            "0.2", "--max_v_l", str(WINDOW), "--adapter_module", "linear", "--retrieval_loss_coef", "1",
            "--bsz", "8", "--n_epoch", "2", "--eval_epoch_interval", "2", "--lr_drop", "120", "--nms_thd", "0.5",
            "--topk_window", "20", "--device", "-1", "--num_workers", "0", "--results_dir", str(results),
            "--no_progress", *MODEL])
    rows = _read_csv(results / "train_log.csv")
    for term in ("loss_adapter", "loss_retrieval", "loss_saliency", "loss_label"):
        assert float(rows[0][term]) > 0, term
    report = json.loads((results / "val_metrics.json").read_text())["brief"]
    assert {"R1@0.3", "R1@0.5", "R5@0.3", "R5@0.5", "mIoU", "R1-mean"} <= set(report)
    from univtg_core import load_model

    model = load_model(results / "model_best.ckpt", device="cpu")
    assert model.config.adapter_module == "linear" and model.config.dset_name == "ego4d"
    assert model.config.v_appear_feat_dim == 256 and model.config.t_feat_dim == 16


# ------------------------------------------------------------------------------------------------ torchrun
@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(planted, tmp_path):
    results = tmp_path / "ddp"
    proc = _train([*_mad_args(planted, results), *MODEL, "--bsz", "6", "--n_epoch", "1", "--eval_epoch_interval", "1",
                   "--data_ratio", "0.5"], torchrun=True)
    assert "training 36 queries (3 batches of 6 per process)" in proc.stderr, proc.stderr[-2000:]
    with torch.serialization.safe_globals(SAFE):
        ckpt = torch.load(results / "model_best.ckpt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {3}
