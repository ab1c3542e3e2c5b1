"""`python -m univtg_core predict-split`: prediction files for a whole split from precomputed features (an
official `<vid>.npz` folder for the videos, a feature store for the queries), scored by
`python -m univtg_core.eval --metrics mad`. Features are synthetic: 0.2 s clips (MAD's 5 fps), planted
moments, each query's sentence embedding its planted direction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from univtg_core.store import FeatureStore

REPO = Path(__file__).resolve().parents[1]
DIM, CLIP = 512, 0.2
MOMENTS = {"0": ("film", 400, 450), "1": ("film", 2000, 2100), "2": ("other", 100, 140)}


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    rng = np.random.default_rng(0)
    videos = {"film": rng.normal(size=(3000, DIM)).astype(np.float32),
              "other": rng.normal(size=(600, DIM)).astype(np.float32)}
    texts = FeatureStore(root / "txt_clip")
    records = []
    for qid, (vid, a, b) in MOMENTS.items():
        direction = rng.normal(size=DIM).astype(np.float32)
        direction /= np.linalg.norm(direction)
        videos[vid][a:b] += 0.5 * np.sqrt(DIM) * direction
        texts.put(qid, {"last_hidden_state": rng.normal(size=(7, DIM)).astype(np.float32),
                        "pooler_output": direction})
        records.append({"qid": qid, "query": f"query {qid}", "vid": vid, "duration": len(videos[vid]) * CLIP,
                        "relevant_windows": [[a * CLIP, b * CLIP]]})
    (root / "vid_clip").mkdir()
    for vid, feats in videos.items():
        np.savez(root / "vid_clip" / f"{vid}.npz", features=feats)
    (root / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, timeout=600)


def test_zero_shot_split_predictions_score_with_the_mad_protocol(split, tmp_path):
    out = tmp_path / "preds.jsonl"
    result = _cli("univtg_core", "predict-split", "--jsonl", str(split / "test.jsonl"), "--features",
                  str(split / "vid_clip"), "--text-features", str(split / "txt_clip"), "--out", str(out),
                  "--clip-len", "0.2", "--coarse-top-k", "4", "--top-k", "5", "--no-saliency")
    assert result.returncode == 0, result.stderr
    assert "wrote 3 predictions (zero-shot, clips of 0.2 s)" in result.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in lines] == list(MOMENTS) and all("pred_saliency_scores" not in r for r in lines)
    assert all(r["clip_len"] == 0.2 and len(r["pred_relevant_windows"]) <= 5 for r in lines)
    metrics = tmp_path / "metrics.json"
    scored = _cli("univtg_core.eval", "--submission", str(out), "--gt", str(split / "test.jsonl"), "--metrics", "mad",
                  "--out", str(metrics))
    assert scored.returncode == 0, scored.stderr
    report = json.loads(metrics.read_text())
    assert report["R1@0.5"] == pytest.approx(100.0), report  # MAD's R@1, IoU 0.5


def test_a_model_split_runs_coarse_to_fine_and_refuses_missing_inputs(split, tmp_path, univtg_reference):
    out = tmp_path / "preds.jsonl"
    result = _cli("univtg_core", "predict-split", "--jsonl", str(split / "test.jsonl"), "--features",
                  str(split / "vid_clip"), "--text-features", str(split / "txt_clip"), "--out", str(out),
                  "--resume", str(univtg_reference / "model_best.ckpt"), "--clip-len", "0.2", "--coarse-top-k", "2",
                  "--device", "cpu")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in lines] == list(MOMENTS)
    for record in lines:
        assert record["mode"] == "model" and record["tokens_read"] == 7
        assert len(record["pred_saliency_scores"]) == round(record["duration"] / CLIP)
        assert all(0 <= s < e <= record["duration"] + 1e-6 for s, e, _ in record["pred_relevant_windows"])
    missing = _cli("univtg_core", "predict-split", "--jsonl", str(split / "test.jsonl"), "--features",
                   str(tmp_path / "nowhere"), "--out", str(out))
    assert missing.returncode == 2 and missing.stderr.startswith("error: not found")
