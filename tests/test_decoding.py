"""One decoder everywhere: the trainer's evaluation and ground() (what the CLI and the app call) give the same
windows for the same checkpoint and features, on videos whose duration is not L * clip_len."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_data import write_planted_dataset

from univtg_core import ground, load_model
from univtg_core.postprocess import clip_anchors


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One epoch of the real trainer on a tiny planted set whose durations end 0.7 s into a last, partial clip."""
    from univtg_core.training.loop import train
    from univtg_core.training.options import parse_options

    root = tmp_path_factory.mktemp("decoding")
    data = write_planted_dataset(root / "data", n_train_videos=16, n_val_videos=6, dim=16, window_range=(3, 8),
                                 clip_range=(12, 20), seed=7)
    records = [json.loads(line) for line in data.val_path.read_text().splitlines()]
    for record in records:
        record["duration"] = record["duration"] + 0.7  # L clips of 2 s, and 0.7 s more
    data.val_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    results = root / "run"
    opt = parse_options(["--train_path", str(data.train_path), "--eval_path", str(data.val_path), "--v_feat_dirs",
                         str(data.video_dir), "--t_feat_dir", str(data.text_dir), "--results_dir", str(results),
                         "--n_epoch", "1", "--hidden_dim", "32", "--enc_layers", "1", "--nheads", "4",
                         "--dim_feedforward", "32", "--bsz", "8", "--eval_bsz", "1", "--nms_thd", "0.7",
                         "--max_before_nms", "1000", "--max_after_nms", "10", "--round_multiple", "-1",
                         "--clip_length", "2", "--no_progress"])
    train(opt)
    predictions = [json.loads(line) for line in (results / "latest_val_preds.jsonl").read_text().splitlines()]
    return data, records, results, predictions


def test_trainer_evaluation_and_ground_give_the_same_windows(run):
    data, records, results, predictions = run
    model = load_model(results / "model_latest.ckpt", device="cpu")
    assert len(predictions) == len(records)
    for record, saved in zip(records, predictions):
        feats = np.load(data.video_dir / f"{record['vid']}.npz")["features"]
        tokens = np.load(data.text_dir / f"{record['qid']}.npz")["last_hidden_state"]
        assert record["duration"] != len(feats) * 2.0
        pred = ground(feats, tokens, clip_len=2.0, model=model, duration=record["duration"], nms_threshold=0.7,
                      top_k=10)
        assert saved["qid"] == record["qid"] and saved["vid"] == record["vid"]
        np.testing.assert_allclose(np.array(saved["pred_relevant_windows"]),
                                   np.array([m.to_list() for m in pred.moments]), atol=2e-4)
        # The saved curve is the official half-precision saliency.
        np.testing.assert_allclose(saved["pred_saliency_scores"], pred.saliency, atol=2e-3)


def test_the_windows_are_anchored_to_the_clips_not_to_the_duration(run):
    """The decoder scales by L * clip_len (what the anchors and the training targets are fractions of); the
    official evaluation's (anchor + offset) * duration would move every window by up to 0.7 s here."""
    import torch

    data, records, results, predictions = run
    model = load_model(results / "model_latest.ckpt", device="cpu")
    record = records[0]
    feats = np.load(data.video_dir / f"{record['vid']}.npz")["features"]
    tokens = np.load(data.text_dir / f"{record['qid']}.npz")["last_hidden_state"]
    n = len(feats)
    with torch.no_grad():
        out = model(src_txt=torch.from_numpy(model.query_input(tokens).tokens)[None],
                    src_txt_mask=torch.ones(1, len(tokens)), src_vid=torch.from_numpy(model.prepare_video(feats[None])),
                    src_vid_mask=torch.ones(1, n))
    spans = out["pred_spans"][0].numpy() + clip_anchors(n, 2.0)[:, None]
    decoded = model.decode_outputs(out, torch.ones(1, n), 2.0, [record["duration"]]).windows[0]
    np.testing.assert_allclose(decoded, spans * n * 2.0, atol=1e-4)
    assert np.abs(spans * record["duration"] - decoded).max() > 0.1
    saved = np.array(predictions[0]["pred_relevant_windows"])[:, :2]
    assert np.isclose(saved[:, None, :], np.clip(decoded, 0, record["duration"])[None], atol=2e-4).all(-1).any(1).all()
