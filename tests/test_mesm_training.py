"""MESM with the one trainer: MESM's options (its JSON config, explicit flags winning), its data rule (all
queries of a video form one item), its losses and checkpoint format, MESM's report; on the planted-signal
dataset it localises held-out queries, and its checkpoint reloads through load_model with the same
predictions, which ground() (what the CLI and the app call) reproduces.

The expensive run (`trained`, the real command in a subprocess) is shared by the tests that inspect it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import write_planted_dataset

REPO = Path(__file__).resolve().parents[1]
DIM = 32
EPOCHS = 16
# A MESM config file as the official ones are written (MESM's names); the command line below overrides a
# few of its values (explicit flags win) and gives the data.
CONFIG = {
    "exp_id": "planted", "dataset_name": "charades", "ann_path": "./data/planted/annotations",
    "feat_files": ["./data/planted/clip_image.hdf5"], "use_tef": True, "clip_len": 2, "max_words_l": 8,
    "max_video_l": 40, "tokenizer_type": "CLIP", "load_vocab_pkl": False, "normalize_video": True,
    "normalize_txt": True, "contra_samples": 2, "batch_size": 12, "eval_batch_size": 30, "num_workers": 8,
    "vocab_size": 20, "device": "cuda", "share_MLP": True, "hidden_dim": 64, "dropout": 0.0, "nheads": 4,
    "dim_feedforward": 128, "num_recfw_layers": 1, "t2v_layers": 1, "enc_layers": 1, "dec_layers": 2,
    "pre_norm": False, "position_embedding": "sine", "input_dropout": 0.1, "num_queries": 5, "use_txt_pos": False,
    "n_input_proj": 2, "rec_fw": True, "rec_ss": True, "num_recss_layers": 1, "aux_loss": True, "rank_coef": 12,
    "use_triplet": False, "loss_saliency_coef": 1, "loss_recfw_coef": 0.1, "loss_recss_coef": 0.1, "seed": 2019,
    "lr": 0.0002, "lr_drop": 400, "gamma": 0.1, "n_epoch": 200, "grad_clip": 0.1, "eval_epoch_interval": 1,
    "nms_thd": -1, "max_ts_val": 150, "stop_score": "mAP", "span_los_type": "l1", "is_inference": False,
}
# Flags that win over the file: the data, CPU, a short schedule at a higher learning rate, and the product's
# post-processing (NMS 0.7, no rounding) so that ground() must give the saved windows.
OVERRIDES = ["--batch_size", "4", "--n_epoch", str(EPOCHS), "--lr", "1e-3", "--eval_epoch", str(EPOCHS),
             "--lr_drop", "12", "--device", "cpu", "--num_workers", "0", "--nms_thd", "0.7", "--round_multiple", "-1",
             "--no_progress"]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """The UniVTG trainer's planted-signal set with CLIP-like queries (start and end rows, named words)."""
    return write_planted_dataset(tmp_path_factory.mktemp("mesm-planted"), n_train_videos=120, n_val_videos=60,
                                 dim=DIM, window_range=(4, 12), signal=1.5, clip_like=True)


@pytest.fixture(scope="module")
def word_counts(planted, tmp_path_factory):
    """The word-count files, written by our command from the training annotations."""
    from univtg_core.training import mesm_vocab

    out = tmp_path_factory.mktemp("mesm-ann")
    assert mesm_vocab.main([str(planted.train_path), "--out", str(out), "--max_words_l", "8"]) == 0
    return out


def _data_args(data, results: Path, ann: Path) -> list[str]:
    return ["--train_path", str(data.train_path), "--eval_path", str(data.val_path), "--feat_files",
            str(data.video_dir), "--t_feat_dir", str(data.text_dir), "--results_dir", str(results),
            "--ann_path", str(ann)]


@pytest.fixture(scope="module")
def trained(planted, word_counts, tmp_path_factory):
    root = tmp_path_factory.mktemp("mesm-run")
    config = root / "planted.json"
    config.write_text(json.dumps(CONFIG))
    results = root / "planted"
    cmd = [sys.executable, "-m", "univtg_core.training", "--model_id", "mesm", "--config_file", str(config),
           *_data_args(planted, results, word_counts), *OVERRIDES]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"dir": results, "log": proc.stderr}


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_planted_training_localises_held_out_queries_and_its_loss_falls(trained):
    metrics = json.loads((trained["dir"] / "val_metrics.json").read_text())["brief"]
    assert metrics["MR-full-R1@0.5"] >= 70.0, metrics  # MESM's report: R1@{0.3,0.5,0.7}, mIoU, mAP
    rows = _read_csv(trained["dir"] / "train_log.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))  # --n_epoch won over the file's 200
    first, last = float(rows[0]["loss_overall"]), float(rows[-1]["loss_overall"])
    assert last < 0.5 * first, (first, last)
    for term in ("loss_span", "loss_giou", "loss_label", "loss_saliency", "loss_rec_fw", "loss_rec_ss",
                 "loss_span_0"):
        assert term in rows[0], term  # MESM's terms, the masked-word and segment-sentence losses among them


@pytest.mark.slow
def test_checkpoint_is_in_mesm_format_and_reloads_with_the_same_predictions(trained, planted):
    from univtg_core import load_model
    from univtg_core.models.mesm import MESM
    from univtg_core.training import mesm_data
    from univtg_core.training.data import FeatureStore, load_jsonl
    from univtg_core.training.predict import DecodeSettings, predict
    from univtg_core.training.recipes.mesm import RECIPE

    path = trained["dir"] / "model_best.ckpt"
    with torch.serialization.safe_globals([argparse.Namespace, torch.device]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ckpt) == ["model", "optimizer", "lr_scheduler", "epoch", "opt"]
    opt = ckpt["opt"]
    assert opt.device == torch.device("cpu") and opt.v_feat_dim == DIM + 2 and opt.model_id == "mesm"
    assert opt.tokenizer_type == "CLIP" and opt.hidden_dim == 64 and opt.batch_size == 4 and opt.n_epoch == EPOCHS
    assert not any("text_encoder" in k for k in ckpt["model"])
    saved_options = json.loads((trained["dir"] / "opt.json").read_text())
    assert saved_options["v_feat_dim"] == DIM and saved_options["is_inference"] is False  # as the official file

    model = load_model(path, device="cpu")
    assert isinstance(model, MESM) and model.config.rec_fw and model.config.rec_ss
    store = FeatureStore([str(planted.video_dir)], str(planted.text_dir), normalize_video=False,
                         normalize_text=False)
    dataset = mesm_data.MESMVideoDataset(load_jsonl(planted.val_path), store, model.config, train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=7, collate_fn=RECIPE.collate)
    settings = DecodeSettings(2.0, nms_thd=0.7, max_before_nms=10, max_after_nms=10, round_multiple=-1)
    predictions, _ = predict(model, loader, RECIPE, settings, argparse.Namespace(), torch.device("cpu"))
    saved = [json.loads(line) for line in (trained["dir"] / "val_preds.jsonl").read_text().splitlines()]
    assert [p.qid for p in predictions] == [s["qid"] for s in saved]
    for mine, theirs in zip(predictions, saved):
        np.testing.assert_allclose(mine.to_dict()["pred_relevant_windows"], theirs["pred_relevant_windows"],
                                   atol=2e-4)


@pytest.mark.slow
def test_ground_gives_the_windows_of_the_trainers_evaluation(trained, planted):
    """One decoder: ground() on the raw features and query rows gives the windows the trainer saved (spans
    are fractions of the annotation's duration, here L * clip_len; each video has one query, so MESM's
    segment-sentence branch sees the same group in both)."""
    from univtg_core import ground, load_model

    model = load_model(trained["dir"] / "model_best.ckpt", device="cpu")
    saved = {s["qid"]: s for s in map(json.loads, (trained["dir"] / "val_preds.jsonl").read_text().splitlines())}
    records = [json.loads(line) for line in planted.val_path.read_text().splitlines()]
    for record in records[:20]:
        feats = np.load(planted.video_dir / f"{record['vid']}.npz")["features"]
        rows = np.load(planted.text_dir / f"{record['qid']}.npz")["last_hidden_state"]
        pred = ground(feats, rows, clip_len=2.0, model=model, duration=record["duration"], nms_threshold=0.7,
                      top_k=10)
        np.testing.assert_allclose(np.array([m.to_list() for m in pred.moments]),
                                   np.array(saved[record["qid"]]["pred_relevant_windows"]), atol=2e-4)
        np.testing.assert_allclose(pred.saliency, saved[record["qid"]]["pred_saliency_scores"], atol=1e-4)


def test_a_mesm_config_file_ports_and_explicit_flags_win(tmp_path):
    from univtg_core.training.options import parse_options

    config = tmp_path / "C+SF_C.json"
    config.write_text(json.dumps(CONFIG))
    opt = parse_options(["--model_id", "mesm", "--config_file", str(config), "--train_path", "t.jsonl",
                         "--t_feat_dir", "t", "--lr", "3e-4", "--feat_files", "a.hdf5", "b.hdf5", "--bsz", "6"])
    assert opt.lr == 3e-4 and opt.feat_files == ["a.hdf5", "b.hdf5"] and opt.batch_size == 6  # the flags won
    assert opt.hidden_dim == 64 and opt.rec_fw and opt.n_epoch == 200 and opt.gamma == 0.1  # the file won
    assert opt.is_inference is False and opt.span_los_type == "l1"  # keys that are no option are kept
    # the trainer's names, derived from MESM's
    assert (opt.bsz, opt.eval_bsz, opt.wd, opt.lr_gamma, opt.main_metric) == (6, 30, 1e-4, 0.1, "MR-full-mAP")
    assert opt.results_dir == os.path.join("./results", "planted") and opt.v_feat_dirs == ["a.hdf5", "b.hdf5"]
    assert opt.round_multiple == 1 and opt.clip_length == 2.0 and opt.no_norm_vfeat  # MESM normalises itself
    defaults = parse_options(["--model_id", "mesm", "--train_path", "t.jsonl", "--t_feat_dir", "t", "--feat_files",
                              "v", "--exp_id", "x"])
    assert (defaults.enc_layers, defaults.seed, defaults.batch_size, defaults.clip_len) == (2, 2019, 12, 1)  # MESM's


def test_mesm_options_are_refused_with_one_usage_line(tmp_path, capsys):
    from univtg_core.training.options import parse_options

    base = ["--model_id", "mesm", "--train_path", "t.jsonl", "--feat_files", "v", "--exp_id", "x"]
    for extra, said in ((["--t_feat_dir", "t", "--tokenizer_type", "GloVeNLTK"], "CLIP text features only"),
                        ([], "--t_feat_dir is required"),
                        (["--t_feat_dir", "t", "--pre_norm"], "pre_norm")):
        with pytest.raises(SystemExit) as info:
            parse_options(base + extra)
        assert info.value.code == 2 and said in capsys.readouterr().err


def test_all_queries_of_a_video_form_one_item(tmp_path):
    from univtg_core.models.mesm import MESMConfig
    from univtg_core.training import mesm_data, mesm_vocab
    from univtg_core.training.data import FeatureStore, load_jsonl

    data = write_planted_dataset(tmp_path / "d", n_train_videos=5, n_val_videos=1, dim=16, queries_per_video=3,
                                 clip_range=(30, 36), window_range=(3, 6), clip_like=True, seed=4)
    mesm_vocab.main([str(data.train_path), "--out", str(tmp_path / "ann"), "--max_words_l", "8"])
    records = load_jsonl(data.train_path)
    config = MESMConfig(v_feat_dim=18, t_feat_dim=16, hidden_dim=16, nheads=2, dim_feedforward=16, max_words_l=8,
                        max_video_l=40, vocab_size=12, clip_len=2.0, video_sources=(("clip", 16),))
    store = FeatureStore([str(data.video_dir)], str(data.text_dir), normalize_video=False, normalize_text=False)
    dataset = mesm_data.MESMVideoDataset(records, store, config, train=True,
                                         count_file=tmp_path / "ann" / mesm_vocab.CLIP_COUNT_FILE)
    assert len(dataset) == 5
    metas, batch = mesm_data.collate([dataset[0], dataset[1]])
    assert batch["num_clips"].tolist() == [3, 3] and len(metas) == 6
    starts = [m["relevant_windows"][0][0] for m in metas[:3]]
    assert starts == sorted(starts) and len({m["vid"] for m in metas[:3]}) == 1  # one video, by start
    video, mask = batch["video_feat"]
    assert torch.equal(video[0], video[1]) and video.shape[2] == 18  # each query row holds its video (+ tef)
    assert batch["words_label"].shape == (6, 8) and batch["words_weight"][:, 0].eq(0).all()  # <start> weighs 0
    inputs, targets = mesm_data.prepare_batch(batch, torch.device("cpu"))
    assert inputs["is_training"] and targets["norm_moment"].shape == (6, 2)
    assert targets["clip_mask"][0].nonzero().min() == int(metas[0]["relevant_windows"][0][0] / 2)
    assert [len(item) for item in mesm_data.group_by_video(records, max_gather_size=2)] == [2, 1] * 5


def test_word_weights_follow_the_content_words():
    from univtg_core.training.mesm_data import word_weight

    assert [word_weight(w) for w in ("a", "person", "opens", "the", "door", ",", "quickly", "2")] == [
        1, 2, 2, 1, 2, 1, 2, 1]


@pytest.mark.slow
def test_torchrun_two_processes_on_cpu(planted, word_counts, tmp_path):
    results = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "univtg_core.training",
           "--model_id", "mesm", *_data_args(planted, results, word_counts), "--n_epoch", "1", "--hidden_dim", "32",
           "--nheads", "4", "--dim_feedforward", "32", "--enc_layers", "1", "--dec_layers", "1", "--t2v_layers", "1",
           "--num_recfw_layers", "1", "--rec_fw", "--rec_ss", "--num_recss_layers", "1", "--max_words_l", "8",
           "--max_video_l", "40", "--vocab_size", "20", "--use_tef", "--clip_len", "2", "--batch_size", "8",
           "--device", "cpu", "--num_workers", "0", "--data_ratio", "0.5", "--no_progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "60 videos (4 batches of 8 per process)" in proc.stderr, proc.stderr[-2000:]
    with torch.serialization.safe_globals([argparse.Namespace, torch.device]):
        ckpt = torch.load(results / "model_best.ckpt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {4}
