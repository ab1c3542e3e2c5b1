"""Training: the real command on a planted-signal dataset, checkpoints, resume, labels, losses, teacher, extraction.

The expensive run (`trained`, the real `python -m univtg_core.train` in a subprocess, about 20 CPU seconds)
is shared by the tests that inspect its outputs. How fast training runs is measured by
`python -m bench.bench_training`, not asserted here.
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
EPOCHS = 15
# scripts/qvhl_pretrain.sh's options, with a small model (hidden 64, 1 layer) trained for 15 epochs at
# lr 1e-3 (2 warmup epochs) instead of 200 at 1e-4.
QVHL_OPTIONS = [
    "--dset_type", "mr", "--dset_name", "qvhighlights", "--bsz", "32", "--eval_bsz", "100", "--lr", "1e-3",
    "--lr_drop", "80", "--lr_warmup", "2", "--wd", "1e-4", "--input_dropout", "0.5", "--dropout", "0",
    "--droppath", "0.1", "--eval_epoch", "5", "--enc_layers", "1", "--eval_mode", "add", "--round_multiple", "-1",
    "--hidden_dim", "64", "--b_loss_coef", "10", "--g_loss_coef", "1", "--eos_coef", "0.1", "--f_loss_coef", "10",
    "--s_loss_intra_coef", "0.05", "--s_loss_inter_coef", "0.01", "--main_metric", "MR-full-mAP-key",
    "--nms_thd", "0.7", "--max_before_nms", "1000", "--ctx_mode", "video_tef", "--easy_negative_only", "1",
]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # tiny models: threads only contend
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _data_args(data, results_dir: Path) -> list[str]:
    return ["--train_path", str(data.train_path), "--eval_path", str(data.val_path), "--v_feat_dirs",
            str(data.video_dir), "--t_feat_dir", str(data.text_dir), "--results_dir", str(results_dir)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """16 concepts, 160 training queries, 80 held-out queries on unseen videos (2 s clips, 32-d features)."""
    return write_planted_dataset(tmp_path_factory.mktemp("planted"), n_train_videos=160, n_val_videos=80,
                                 dim=DIM, window_range=(4, 12), signal=1.5)


@pytest.fixture(scope="module")
def trained(planted, tmp_path_factory):
    """The README command (no --clip_length: it is read from the data) run as a subprocess."""
    results = tmp_path_factory.mktemp("run") / "qvhl"
    cmd = [sys.executable, "-m", "univtg_core.train", *_data_args(planted, results), "--n_epoch", str(EPOCHS),
           "--no_progress", *QVHL_OPTIONS]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"dir": results, "log": proc.stderr}


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------------------------------------
# The trained run
# ---------------------------------------------------------------------------------------------------------
def test_cli_training_localises_held_out_queries(trained):
    metrics = json.loads((trained["dir"] / "val_metrics.json").read_text())["brief"]
    assert metrics["MR-full-R1@0.5-key"] >= 80.0, metrics
    rows = _read_csv(trained["dir"] / "train_log.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, EPOCHS + 1))
    first, last = float(rows[0]["loss_overall"]), float(rows[-1]["loss_overall"])
    assert last < 0.6 * first, (first, last)
    assert "clip length 2 s" in trained["log"]


def test_predictions_file_is_qvhighlights_format(trained, planted):
    preds = [json.loads(line) for line in (trained["dir"] / "val_preds.jsonl").read_text().splitlines()]
    gt = [json.loads(line) for line in planted.val_path.read_text().splitlines()]
    assert [p["qid"] for p in preds] == [g["qid"] for g in gt]
    for p, g in zip(preds, gt):
        assert {"qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores"} <= set(p)
        scores = [w[2] for w in p["pred_relevant_windows"]]
        assert scores == sorted(scores, reverse=True) and 1 <= len(scores) <= 10  # NMS keeps max_after_nms
        assert all(0 <= w[0] < w[1] <= g["duration"] for w in p["pred_relevant_windows"])
        assert len(p["pred_saliency_scores"]) == round(g["duration"] / 2)


def test_best_checkpoint_has_the_official_format(trained):
    path = trained["dir"] / "model_best.ckpt"
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ckpt) == ["model", "optimizer", "lr_scheduler", "epoch", "opt"]
    assert isinstance(ckpt["epoch"], int) and isinstance(ckpt["opt"], argparse.Namespace)
    assert ckpt["opt"].v_feat_dim == DIM + 2 and ckpt["opt"].t_feat_dim == DIM  # tef included, as official
    assert ckpt["opt"].clip_length == 2.0 and ckpt["opt"].model_id == "univtg"
    assert ckpt["lr_scheduler"]["warmup_steps"] == 2 and ckpt["optimizer"]["state"]
    saved = json.loads((trained["dir"] / "opt.json").read_text())
    assert saved["v_feat_dim"] == DIM and saved["hidden_dim"] == 64  # opt.json: without tef, as official
    best = json.loads((trained["dir"] / "best_metric.json").read_text())
    assert best["epoch"] == ckpt["epoch"]


def test_loaded_checkpoint_reproduces_the_in_training_predictions(trained, planted):
    from univtg_core import load_model
    from univtg_core.training.data import FeatureStore, GroundingDataset, collate, load_jsonl
    from univtg_core.training.predict import DecodeSettings, predict
    from univtg_core.training.recipes.univtg import RECIPE

    model = load_model(trained["dir"] / "model_best.ckpt", device="cpu")
    assert model.config.hidden_dim == 64 and model.config.enc_layers == 1 and model.config.clip_length == 2.0
    store = FeatureStore([str(planted.video_dir)], str(planted.text_dir))
    dataset = GroundingDataset(load_jsonl(planted.val_path), store, 2.0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=100, collate_fn=collate)
    settings = DecodeSettings(2.0, nms_thd=0.7, max_before_nms=1000, max_after_nms=10, round_multiple=-1)
    predictions, _ = predict(model, loader, RECIPE, settings, argparse.Namespace(eval_mode="add"), torch.device("cpu"))
    mine = [p.to_dict() for p in predictions]
    saved = [json.loads(line) for line in (trained["dir"] / "val_preds.jsonl").read_text().splitlines()]
    assert len(mine) == len(saved)
    for a, b in zip(mine, saved):
        assert a["qid"] == b["qid"]
        np.testing.assert_allclose(a["pred_relevant_windows"], b["pred_relevant_windows"], atol=2e-4)
        np.testing.assert_allclose(a["pred_saliency_scores"], b["pred_saliency_scores"], atol=2e-3)


# ---------------------------------------------------------------------------------------------------------
# Small in-process runs
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_planted_dataset(tmp_path_factory.mktemp("tiny"), n_train_videos=48, n_val_videos=16, dim=16,
                                 window_range=(4, 10), signal=1.5, seed=3)


def _tiny_options(data, results: Path, *extra: str):
    from univtg_core.training.options import parse_options

    return parse_options([*_data_args(data, results), "--hidden_dim", "32", "--enc_layers", "1", "--nheads", "4",
                          "--dim_feedforward", "64", "--bsz", "16", "--eval_epoch", "1", "--no_progress",
                          "--dropout", "0", *extra])


def test_resume_all_continues_after_the_saved_epoch(tiny, tmp_path):
    from univtg_core.training.loop import train

    first = train(_tiny_options(tiny, tmp_path / "run", "--n_epoch", "2", "--lr_warmup", "2"))
    assert [row["epoch"] for row in first.history] == [1, 2]
    latest = tmp_path / "run" / "model_latest.ckpt"
    with torch.serialization.safe_globals([argparse.Namespace]):
        saved = torch.load(latest, weights_only=True)
    assert saved["epoch"] == 1
    second = train(_tiny_options(tiny, tmp_path / "run", "--n_epoch", "4", "--lr_warmup", "2", "--resume",
                                 str(latest), "--resume_all"))
    assert [row["epoch"] for row in second.history] == [3, 4]
    with torch.serialization.safe_globals([argparse.Namespace]):
        resumed = torch.load(latest, weights_only=True)
    steps = {int(s["step"]) for s in resumed["optimizer"]["state"].values()}
    assert steps == {4 * 3}  # 3 batches per epoch x 4 epochs: the optimizer state carried over
    assert resumed["lr_scheduler"]["last_epoch"] == 4
    rows = _read_csv(tmp_path / "run" / "train_log.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]


def test_gradient_accumulation_and_seeds(tiny, tmp_path):
    from univtg_core.training.loop import train

    a = train(_tiny_options(tiny, tmp_path / "a", "--n_epoch", "1", "--seed", "5", "--grad_accum_steps", "3"))
    b = train(_tiny_options(tiny, tmp_path / "b", "--n_epoch", "1", "--seed", "5", "--grad_accum_steps", "3"))
    assert a.history[0]["loss_overall"] == pytest.approx(b.history[0]["loss_overall"], rel=1e-6)
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(tmp_path / "a" / "model_best.ckpt", weights_only=True)
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {1}  # 3 batches, one step


def test_torchrun_two_processes_on_cpu(tiny, tmp_path):
    results = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "univtg_core.train",
           *_data_args(tiny, results), "--n_epoch", "2", "--eval_epoch", "1", "--hidden_dim", "32", "--enc_layers",
           "1", "--nheads", "4", "--bsz", "8", "--grad_accum_steps", "2", "--no_progress"]
    env = _env()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 batches of 8 per process" in proc.stderr  # 48 queries over 2 ranks
    assert [int(r["epoch"]) for r in _read_csv(results / "train_log.csv")] == [1, 2]
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(results / "model_latest.ckpt", weights_only=True)
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert {int(s["step"]) for s in ckpt["optimizer"]["state"].values()} == {4}  # ceil(3 / 2) steps x 2 epochs


def test_eval_set_without_ground_truth_still_gives_a_checkpoint(tiny, tmp_path):
    from univtg_core.training.loop import train

    no_gt = tmp_path / "test.jsonl"
    no_gt.write_text("".join(json.dumps({k: r[k] for k in ("qid", "query", "vid", "duration")}) + "\n"
                             for r in map(json.loads, tiny.val_path.read_text().splitlines())))
    opt = _tiny_options(tiny, tmp_path / "run", "--n_epoch", "2", "--eval_split_name", "test")
    opt.eval_path = str(no_gt)
    result = train(opt)
    assert result.best_checkpoint == tmp_path / "run" / "model_best.ckpt" and result.best_epoch == 1
    preds = (tmp_path / "run" / "latest_test_preds.jsonl").read_text().splitlines()
    assert len(preds) == 16 and "pred_relevant_windows" in json.loads(preds[0])


def test_missing_feature_file_is_an_error_naming_it(tiny, tmp_path, caplog):
    import shutil

    from univtg_core.train import main

    text_dir = tmp_path / "txt"
    shutil.copytree(tiny.text_dir, text_dir)
    first_qid = json.loads(tiny.train_path.read_text().splitlines()[0])["qid"]
    (text_dir / f"{first_qid}.npz").unlink()
    args = [*_data_args(tiny, tmp_path / "run"), "--n_epoch", "1", "--no_progress"]
    args[args.index("--t_feat_dir") + 1] = str(text_dir)
    assert main(args) == 1
    assert str(text_dir / f"{first_qid}.npz") in caplog.text
    assert not (tmp_path / "run" / "model_best.ckpt").exists()


def test_unreadable_feature_file_names_it(tiny, tmp_path):
    import shutil

    from univtg_core.training.data import DataError, FeatureStore

    video_dir = tmp_path / "vid"
    shutil.copytree(tiny.video_dir, video_dir)
    (video_dir / "train_0000.npz").write_bytes(b"not a zip file")
    store = FeatureStore([str(video_dir)], str(tiny.text_dir))
    with pytest.raises(DataError, match="train_0000.npz"):
        store.video("train_0000")
    with pytest.raises(DataError, match="features"):
        np.savez(video_dir / "train_0001.npz", feats=np.zeros((3, 4)))
        store.video("train_0001")


def test_dimension_mismatch_is_reported(tiny, tmp_path):
    from univtg_core.training.data import DataError
    from univtg_core.training.loop import Trainer

    with pytest.raises(DataError, match="v_feat_dim 99"):
        Trainer(_tiny_options(tiny, tmp_path / "run", "--v_feat_dim", "99"))


def test_feature_layouts_concat_prefixed_queries_and_h5(tiny, tmp_path):
    import h5py

    from univtg_core.postprocess import l2_normalize
    from univtg_core.training.data import FeatureStore

    raw = np.load(tiny.video_dir / "train_0002.npz")["features"]
    other = tmp_path / "vid_other"
    other.mkdir()
    extra = np.random.default_rng(0).normal(size=(len(raw) + 2, 5)).astype(np.float32)  # longer: cut to shortest
    np.savez(other / "train_0002.npz", features=extra)
    prefixed = tmp_path / "txt_prefixed"
    prefixed.mkdir()
    tokens = np.load(tiny.text_dir / "0.npz")["last_hidden_state"]
    np.savez(prefixed / "qid0.npz", last_hidden_state=tokens)
    store = FeatureStore([str(tiny.video_dir), str(other)], str(prefixed))
    video = store.video("train_0002")
    np.testing.assert_allclose(video, np.concatenate([l2_normalize(raw), l2_normalize(extra[: len(raw)])], 1))
    np.testing.assert_allclose(store.query(0), l2_normalize(tokens))

    with h5py.File(tmp_path / "vid.h5", "w") as f:
        f["train_0002"] = raw
    with h5py.File(tmp_path / "txt.h5", "w") as f:
        f.create_group("0")["last_hidden_state"] = tokens
    h5_store = FeatureStore([str(tmp_path / "vid.h5")], str(tmp_path / "txt.h5"))
    np.testing.assert_allclose(h5_store.video("train_0002"), l2_normalize(raw))
    np.testing.assert_allclose(h5_store.query(0), l2_normalize(tokens))
    assert h5_store.missing_files([{"vid": "nope", "qid": 0}]) == [f"{tmp_path / 'vid.h5'}['nope']"]


def test_clip_length_is_read_from_durations(tiny):
    from univtg_core.training.data import FeatureStore, infer_clip_length, load_jsonl

    store = FeatureStore([str(tiny.video_dir)], str(tiny.text_dir))
    records = load_jsonl(tiny.train_path)
    assert infer_clip_length(records, store) == 2.0
    records = [{**r, "duration": r["duration"] / 2 + 0.3} for r in records]  # 1 s clips, a partial last clip
    assert infer_clip_length(records, store) == 1.0
    assert infer_clip_length([{k: v for k, v in r.items() if k != "duration"} for r in records], store) is None


def test_importing_the_core_does_not_import_training():
    code = ("import sys, univtg_core, univtg_core.models; "
            "bad = [m for m in sys.modules if m.startswith('univtg_core.train')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), check=True, timeout=60)


# ---------------------------------------------------------------------------------------------------------
# Labels, losses, schedule (pure functions against hand-computed official values)
# ---------------------------------------------------------------------------------------------------------
def test_interval_labels_follow_the_official_anchor_convention():
    from univtg_core.training.labels import make_clip_labels

    # QVHighlights' docstring example: [26, 36] s in a 150 s video of 75 two-second clips. Anchors sit at
    # (i + 1) / 75 (clip ends for 2 s clips), so clips 12..17 have their anchor inside the window.
    labels = make_clip_labels({"qid": 1, "relevant_windows": [[26, 36]], "duration": 150}, 75, 2.0)
    assert np.nonzero(labels.timestamp_window)[0].tolist() == list(range(12, 18))
    np.testing.assert_allclose(labels.timestamp[:2, 0], [1 / 75, 2 / 75], rtol=1e-6)
    np.testing.assert_allclose(labels.span_labels_nn[12], [26 / 150, 36 / 150], rtol=1e-6)
    assert not labels.span_labels_nn[11].any() and not labels.span_labels_nn[18].any()
    assert labels.saliency_pos_labels[0] in range(12, 18)
    assert labels.saliency_neg_labels[0] not in range(13, 18)  # the window's own clips 13..17


def test_curve_labels_and_short_windows():
    from univtg_core.training.labels import make_clip_labels

    record = {"qid": 2, "duration": 20, "relevant_windows": [[4, 8]], "relevant_clip_ids": [2, 3],
              "saliency_scores": [[1, 2, 3], [4, 4, 4]]}
    labels = make_clip_labels(record, 10, 2.0)
    np.testing.assert_allclose(labels.saliency_scores[:5], [0, 0, 2, 4, 0])
    assert labels.saliency_pos_labels[0] in (2, 3) and labels.saliency_neg_labels[0] not in (2, 3)
    # A window shorter than a clip: no anchor inside, so the clip holding its start becomes foreground;
    # Ego4D's windows are first widened to a whole clip around their centre.
    short = {"qid": 3, "duration": 20, "relevant_windows": [[5.2, 5.6]]}
    assert np.nonzero(make_clip_labels(short, 10, 2.0).timestamp_window)[0].tolist() == [2]
    widened = make_clip_labels(short, 10, 2.0, dset_name="ego4d")
    np.testing.assert_allclose(widened.span_labels_nn[2], [4.4 / 20, 6.4 / 20], rtol=1e-5)


def test_criterion_is_zero_on_perfect_spans_and_weights_background():
    from univtg_core.training.labels import make_clip_labels
    from univtg_core.training.losses import UniVTGCriterion

    labels = make_clip_labels({"qid": 1, "relevant_windows": [[6, 14]], "duration": 20}, 10, 2.0)
    timestamp = torch.from_numpy(labels.timestamp)[None]
    gt = torch.from_numpy(labels.span_labels_nn)[None]
    fg = torch.from_numpy(labels.timestamp_window)[None]
    spans = (gt - timestamp) * fg[..., None]
    prob = torch.where(fg.bool(), 0.9, 0.2)[..., None].float()
    outputs = {"pred_spans": spans, "pred_logits": prob, "vid_mem_proj": torch.randn(1, 10, 8),
               "txt_mem_proj": torch.randn(1, 1, 8)}
    targets = {"timestamp": timestamp, "span_labels_nn": gt, "timestamp_window": fg.float(),
               "timestamp_mask": torch.ones(1, 10), "saliency_scores": fg.float(),
               "saliency_pos_labels": torch.tensor([[4]]), "saliency_neg_labels": torch.tensor([[0]])}
    losses = UniVTGCriterion(eos_coef=0.1)(outputs, targets)
    assert float(losses["loss_b"]) == pytest.approx(0, abs=1e-7)
    assert float(losses["loss_g"]) == pytest.approx(0, abs=1e-6)
    n_fg = int(fg.sum())
    expected_f = (n_fg * -np.log(0.9) + (10 - n_fg) * 0.1 * -np.log(0.8)) / 10
    assert float(losses["loss_f"]) == pytest.approx(expected_f, rel=1e-5)
    # inter-video InfoNCE over a batch of one is exactly 0; intra is finite
    assert float(losses["loss_s_inter"]) == pytest.approx(0, abs=1e-6)
    assert np.isfinite(float(losses["loss_s_intra"]))


def test_warmup_step_schedule_matches_the_official_one():
    from univtg_core.training.schedule import WarmupStepLR

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = WarmupStepLR(optimizer, warmup_steps=10, step_size=80, gamma=0.1)
    lrs = []
    for _ in range(170):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    np.testing.assert_allclose(lrs[:3], [1e-5, 2e-5, 3e-5])
    np.testing.assert_allclose([lrs[9], lrs[10], lrs[79], lrs[80], lrs[159], lrs[160]],
                               [1e-4, 1e-4, 1e-4, 1e-5, 1e-5, 1e-6])


# ---------------------------------------------------------------------------------------------------------
# CLIP teacher and feature extraction
# ---------------------------------------------------------------------------------------------------------
def test_teacher_labels_planted_concepts_and_the_trainer_reads_them(tmp_path):
    from univtg_core.training.loop import train
    from univtg_core.training.options import parse_options
    from univtg_core.training.teacher import main as teacher_main

    rng = np.random.default_rng(0)
    concepts = rng.normal(size=(6, 16)).astype(np.float32)
    concepts /= np.linalg.norm(concepts, axis=1, keepdims=True)
    video_dir, concept_dir = tmp_path / "vid_clip", tmp_path / "concept_feats"
    video_dir.mkdir()
    concept_dir.mkdir()
    for i, vec in enumerate(concepts):
        np.savez(concept_dir / f"{i}.npz", pooler_output=vec, last_hidden_state=vec[None] * 2)
    planted = {}
    for v in range(12):
        feats = rng.normal(scale=0.3, size=(20, 16))
        c, first = v % 6, int(rng.integers(0, 14))
        feats[first : first + 5] += 2 * concepts[c]
        np.savez(video_dir / f"v{v}.npz", features=feats.astype(np.float32))
        planted[f"v{v}"] = (c, first)
    (tmp_path / "concepts.txt").write_text("\n".join(f"concept {i}" for i in range(6)))
    out = tmp_path / "teacher"
    assert teacher_main(["--v_feat_dir", str(video_dir), "--concepts", str(tmp_path / "concepts.txt"),
                         "--concept_feat_dir", str(concept_dir), "--out", str(out), "--top_k", "2",
                         "--threshold", "0.25"]) == 0
    records = [json.loads(line) for line in (out / "teacher.jsonl").read_text().splitlines()]
    assert {r["type"] for r in records} == {"interval", "curve", "point"}
    for vid, (c, first) in planted.items():
        mine = [r for r in records if r["vid"] == vid and r["qid"] == c]
        assert mine, f"planted concept {c} not among {vid}'s top concepts"
        interval = next(r for r in mine if r["type"] == "interval")
        start, end = interval["relevant_windows"][0]
        assert first * 2 <= start and end <= (first + 5) * 2, (interval, first)
        point = next(r for r in mine if r["type"] == "point")["relevant_windows"][0]
        assert first * 2 <= point[0] < (first + 5) * 2
        curve = next(r for r in mine if r["type"] == "curve")
        assert len(curve["saliency_scores"]) == 20 and curve["relevant_clip_ids"] == list(range(20))
    np.testing.assert_allclose(np.load(out / "concepts" / "3.npz")["last_hidden_state"], concepts[3][None] * 2)

    opt = parse_options(["--train_path", str(out / "teacher.jsonl"), "--v_feat_dirs", str(video_dir),
                         "--t_feat_dir", str(out / "concepts"), "--results_dir", str(tmp_path / "run"),
                         "--n_epoch", "1", "--hidden_dim", "16", "--enc_layers", "1", "--nheads", "2",
                         "--no_progress"])
    result = train(opt)
    assert np.isfinite(result.history[0]["loss_overall"]) and (tmp_path / "run" / "model_best.ckpt").is_file()


class _FakeEncoder:
    """The video-stream protocol of the indexer (`expected_clips`, `iter_video_features`) and text encoding."""

    fingerprint = "fake-clip"
    embed_dim = 4

    def __init__(self, lengths):
        self.lengths = lengths
        self.clips_encoded = 0

    def expected_clips(self, path, clip_len=2.0):
        return self.lengths[Path(path).stem]

    def iter_video_features(self, path, clip_len=2.0, progress=None, *, start_clip=0):
        n = self.lengths[Path(path).stem]
        rows = np.arange(n * 4, dtype=np.float32).reshape(n, 4) + ord(Path(path).stem)
        for first in range(start_clip, n, 2):
            self.clips_encoded += len(rows[first:first + 2])
            yield rows[first:first + 2]

    def encode_text(self, text):
        return argparse.Namespace(tokens=np.ones((len(text.split()), 4), np.float32), sentence=np.ones(4, np.float32))


def test_extraction_layout_resume_and_shards(tmp_path, monkeypatch):
    from univtg_core.store import FeatureStore
    from univtg_core.training import extract as ex
    from univtg_core.training.data import FeatureStore as TrainingFeatures

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mkv", "c.webm", "notes.txt"):
        (videos / name).write_bytes(b"x")
    lengths = {"a": 3, "b": 5, "c": 2}
    encoder = _FakeEncoder(lengths)
    monkeypatch.setattr(ex, "_load_encoder", lambda *a, **k: encoder)
    monkeypatch.setattr(ex, "_probe_duration", lambda path: lengths[path.stem] * 2.0 - 0.5)
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"qid": i, "query": f"q {i} words", "vid": v,
                                           "relevant_windows": [[0, 2]]}) + "\n"
                               for i, v in enumerate("abcab")))
    out = tmp_path / "out"
    shard0 = ex.extract(videos, out, queries, rank=0, world_size=2, progress=False)
    shard1 = ex.extract(videos, out, queries, rank=1, world_size=2, progress=False)
    assert shard0["videos"] + shard1["videos"] == 3 and shard0["queries"] + shard1["queries"] == 5
    vids, texts = FeatureStore(out / "vid_clip"), FeatureStore(out / "txt_clip")
    assert sorted(e.name for e in vids.list()) == ["a", "b", "c"]
    np.testing.assert_array_equal(vids.get("b").features, np.arange(20, dtype=np.float32).reshape(5, 4) + ord("b"))
    text = texts.get("0")
    assert text["last_hidden_state"].shape == (3, 4) and text["pooler_output"].shape == (4,)
    annotations = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
    assert annotations[1]["duration"] == 9.5
    # the trainer reads the stores as it reads the official folders
    store = TrainingFeatures([str(out / "vid_clip")], str(out / "txt_clip"), normalize_video=False)
    assert store.video("b").shape == (5, 4) and store.query(0).shape == (3, 4)
    assert store.missing_files([{"qid": 0, "vid": "a"}, {"qid": 9, "vid": "z"}]) == [
        f"{out / 'vid_clip'}['z']", f"{out / 'txt_clip'}[9]"]

    # a crash inside video b: its first chunk is in, the entry partial; the run resumes inside it
    (vids.root / "entries" / "b" / "meta.json").unlink()
    with vids.writer("b", dim=4, total=5, meta={"encoder": "fake-clip", "clip_len": 2.0, "source": "b.mkv"}) as w:
        w.append(np.arange(8, dtype=np.float32).reshape(2, 4) + ord("b"))
    assert vids.get("b") is None
    encoder.clips_encoded = 0
    again = ex.extract(videos, out, queries, progress=False)
    assert again == {"videos": 1, "skipped": 2, "failed": [], "queries": 0} and encoder.clips_encoded == 3
    np.testing.assert_array_equal(vids.get("b").features, np.arange(20, dtype=np.float32).reshape(5, 4) + ord("b"))

    other = _FakeEncoder(lengths)
    other.fingerprint = "another-clip"
    monkeypatch.setattr(ex, "_load_encoder", lambda *a, **k: other)
    vids.remove("a")
    with pytest.raises(ex.DataError, match="another-clip"):
        ex.extract(videos, out, queries, progress=False)
