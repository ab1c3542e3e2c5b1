"""Language-free zero-shot training: proposals, the pseudo-query selector, and a run that grounds real queries
after training on the planted videos without any query text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic_data import write_planted_dataset


def test_events_split_where_consecutive_clips_change():
    from univtg_core.training.language_free import temporal_events, temporal_proposals

    rng = np.random.default_rng(0)
    scenes = rng.normal(size=(3, 24))
    feats = np.concatenate([np.repeat(scenes[i][None], n, 0) for i, n in enumerate((5, 7, 4))])
    feats += rng.normal(scale=0.05, size=feats.shape)
    assert temporal_events(feats) == [(0, 4), (5, 11), (12, 15)]
    proposals = temporal_proposals(feats, min_clips=2, max_ratio=0.8)
    assert {(0, 4), (5, 11), (12, 15), (0, 11), (5, 15)} == set(proposals)
    # A static video has no boundary: its middle half is proposed instead of nothing.
    assert temporal_proposals(np.ones((12, 8)), max_ratio=0.6) == [(3, 8)]


def test_proposals_recover_planted_moments(tmp_path):
    from univtg_core.spans import temporal_iou
    from univtg_core.training.language_free import temporal_proposals

    data = write_planted_dataset(tmp_path, n_train_videos=60, n_val_videos=1, window_range=(4, 12), signal=1.5)
    hits = 0
    records = [json.loads(line) for line in data.train_path.read_text().splitlines()]
    for record in records:
        feats = np.load(data.video_dir / f"{record['vid']}.npz")["features"]
        windows = np.array([[a * 2, (b + 1) * 2] for a, b in temporal_proposals(feats)], dtype=float)
        hits += temporal_iou(windows, record["relevant_windows"]).max() >= 0.7
    assert hits / len(records) >= 0.9


def test_selection_picks_one_candidate_and_passes_gradients():
    from univtg_core.training.language_free import PseudoQueryEncoder, SelectionTransformer, add_noise

    torch.manual_seed(0)
    candidates = torch.nn.functional.normalize(torch.randn(4, 9, 16), dim=-1)
    selector = SelectionTransformer(16, d_model=32)
    picked, choice = selector(candidates)
    assert torch.equal(choice.sum(1), torch.ones(4)) and ((choice == 0) | (choice == 1)).all()
    index = choice.argmax(1)
    torch.testing.assert_close(picked, candidates[torch.arange(4), index])
    picked.sum().backward()  # straight-through Gumbel-softmax: the scorer receives gradients
    assert selector.score.weight.grad is not None and selector.score.weight.grad.abs().sum() > 0

    noisy = add_noise(candidates, sigma=0.04)
    torch.testing.assert_close(noisy.norm(dim=-1), torch.ones(4, 9))
    assert 0.01 < (noisy - candidates).norm(dim=-1).mean() < 0.5

    encoder = PseudoQueryEncoder(16, d_model=32).eval()
    tokens, mask = encoder(candidates)
    assert tokens.shape == (4, 1, 16) and torch.equal(mask, torch.ones(4, 1))


def _random_window_r1(records: list[dict], seed: int = 0, draws: int = 200) -> float:
    from univtg_core.spans import temporal_iou

    rng = np.random.default_rng(seed)
    hits = []
    for record in records:
        ends = rng.uniform(0, record["duration"], size=(draws, 2))
        windows = np.sort(ends, axis=1)
        hits.append((temporal_iou(windows, record["relevant_windows"]).max(axis=1) >= 0.5).mean())
    return 100 * float(np.mean(hits))


def test_language_free_training_grounds_real_queries(tmp_path):
    from univtg_core.training.loop import train
    from univtg_core.training.options import parse_options

    data = write_planted_dataset(tmp_path / "data", n_train_videos=120, n_val_videos=80, window_range=(4, 12),
                                 signal=1.5, seed=1)
    # Training annotations without any query: only the videos (the queries' npz files stay for eval).
    videos_only = tmp_path / "videos.jsonl"
    train_records = [json.loads(line) for line in data.train_path.read_text().splitlines()]
    videos_only.write_text("".join(json.dumps({"qid": r["vid"], "vid": r["vid"], "duration": r["duration"]}) + "\n"
                                   for r in train_records))
    opt = parse_options([
        "--language_free", "--train_path", str(videos_only), "--eval_path", str(data.val_path),
        "--v_feat_dirs", str(data.video_dir), "--t_feat_dir", str(data.text_dir),
        "--results_dir", str(tmp_path / "run"), "--n_epoch", "8", "--eval_epoch", "5", "--hidden_dim", "64",
        "--enc_layers", "1", "--dim_feedforward", "128", "--lr", "1e-3", "--lr_warmup", "2", "--lr_drop", "80",
        "--dropout", "0",
        "--f_loss_coef", "10",
        "--s_loss_intra_coef", "0.05", "--s_loss_inter_coef", "0.01", "--nms_thd", "0.7",
        "--max_before_nms", "1000", "--round_multiple", "-1", "--eval_mode", "add", "--lf_moments_per_video", "1",
        "--main_metric", "MR-full-R1@0.5", "--no_progress",
    ])
    result = train(opt)
    val = [json.loads(line) for line in data.val_path.read_text().splitlines()]
    baseline = _random_window_r1(val)
    assert result.best_metric == "MR-full-R1@0.5-key"
    assert result.best_score >= baseline + 30, (result.best_score, baseline)
    assert Path(tmp_path / "run" / "model_best.ckpt").is_file()
    assert (tmp_path / "run" / "lf_selector.pt").is_file()


def test_language_free_needs_aligned_features(tmp_path):
    from univtg_core.training.data import DataError
    from univtg_core.training.loop import Trainer
    from univtg_core.training.options import parse_options

    data = write_planted_dataset(tmp_path / "data", n_train_videos=4, n_val_videos=2, dim=8)
    wide = tmp_path / "vid_wide"
    wide.mkdir()
    for path in data.video_dir.iterdir():
        np.savez(wide / path.name, features=np.ones((5, 12), np.float32))
    opt = parse_options(["--language_free", "--train_path", str(data.train_path), "--eval_path", str(data.val_path),
                         "--v_feat_dirs", str(wide), "--t_feat_dir", str(data.text_dir),
                         "--results_dir", str(tmp_path / "run")])
    with pytest.raises(DataError, match="as wide as the text features"):
        Trainer(opt)
