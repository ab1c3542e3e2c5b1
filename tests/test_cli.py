"""End to end on generated videos: the CLI and the Python API find a planted colour segment with random CLIP.

With random CLIP weights text means nothing, but the same colour maps to the same place, so an image of the
planted colour must find the planted segment.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from univtg_core import Grounder, QueryError, VideoReadError
from univtg_core import indexing as indexing_module
from univtg_core.media import ffmpeg_exe, make_colour_video
from univtg_core.models.univtg import UniVTG, UniVTGConfig
from univtg_core.spans import temporal_iou

RED, CYAN, PURPLE = (230, 20, 20), (0, 230, 230), (140, 20, 200)
PLANTED = (20.0, 30.0)


def run_cli(*args: str, cache_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "univtg_core", *args, "--cache-dir", str(cache_dir)],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    video = make_colour_video(root / "colours.mp4", [(RED, 10), (PURPLE, 10), (CYAN, 10)])
    image = root / "cyan.png"
    Image.new("RGB", (64, 64), CYAN).save(image)
    return {"root": root, "video": video, "image": image}


@pytest.fixture(scope="module")
def grounder(tmp_path_factory):
    return Grounder.from_options(clip_weights="random", device="cpu",
                                 cache_dir=tmp_path_factory.mktemp("cache"))


def _iou(moment_row, span) -> float:
    return float(temporal_iou([moment_row[:2]], [span])[0, 0])


def test_cli_predict_with_image_query_finds_the_planted_segment(media, tmp_path):
    out = tmp_path / "preds.jsonl"
    result = run_cli("predict", str(media["video"]), "--query-image", str(media["image"]), "--query", "a cyan wall",
                     "--clip-weights", "random", "--json", str(out), cache_dir=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2  # one line per query
    image_record = records[1]
    for key in ("query", "pred_relevant_windows", "pred_saliency_scores", "duration", "clip_len",
                "pred_highlight", "pred_summary"):
        assert key in image_record
    assert _iou(image_record["pred_relevant_windows"][0], PLANTED) >= 0.8
    assert len(image_record["pred_saliency_scores"]) == 15 and image_record["clip_len"] == 2.0
    assert PLANTED[0] <= image_record["pred_highlight"] < PLANTED[1]
    assert image_record["pred_summary"] == sorted(image_record["pred_summary"])
    assert "00:20–00:30" in result.stdout  # the printed table: mm:ss under an hour, as the app shows it
    assert "meaningless" in result.stderr  # random weights are announced


def test_python_api_finds_the_planted_segment_and_caches(media, grounder, monkeypatch):
    first = grounder.index(media["video"])
    assert not first.from_cache and first.n_clips == 15 and abs(first.duration - 30) < 0.2
    pred = grounder.query(first, image=Image.open(media["image"]))
    assert _iou([pred.moments[0].start, pred.moments[0].end], PLANTED) >= 0.8
    curve = pred.saliency
    assert curve[10:].min() > curve[:10].max(), "the planted clips must be the most salient"

    def no_decoding(*args, **kwargs):
        raise AssertionError("the video was decoded again")

    monkeypatch.setattr(grounder.encoder, "iter_video_features", no_decoding)
    monkeypatch.setattr(indexing_module, "probe_video", no_decoding)
    second = grounder.index(media["video"])
    assert second.from_cache
    np.testing.assert_array_equal(second.features, first.features)
    again = grounder.query(second, image=media["image"])
    assert (again.moments[0].start, again.moments[0].end) == (pred.moments[0].start, pred.moments[0].end)


def test_cache_survives_a_new_process_and_a_renamed_file(media, tmp_path):
    cache = tmp_path / "cache"
    first = run_cli("index", str(media["video"]), "--clip-weights", "random", cache_dir=cache)
    assert first.returncode == 0, first.stderr
    assert "indexed in" in first.stdout
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(Path(media["video"]).read_bytes())
    second = run_cli("index", str(copy), "--clip-weights", "random", cache_dir=cache)
    assert second.returncode == 0, second.stderr
    assert "from cache" in second.stdout


def test_text_and_image_together(media, grounder):
    index = grounder.index(media["video"])
    pred = grounder.query(index, text="cyan", image=media["image"])
    assert pred.query == "cyan" and len(pred.saliency) == 15


def test_empty_query_is_refused(media, grounder):
    index = grounder.index(media["video"])
    with pytest.raises(QueryError, match="empty"):
        grounder.query(index, text="   ")


def _bad_files(root: Path, good_video: Path) -> dict[str, Path]:
    files = {}
    files["random bytes"] = root / "noise.mp4"
    files["random bytes"].write_bytes(np.random.default_rng(0).bytes(50_000))
    files["empty"] = root / "empty.mp4"
    files["empty"].write_bytes(b"")
    data = good_video.read_bytes()
    files["truncated"] = root / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["audio only"] = root / "tone.m4a"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                    "-c:a", "aac", str(files["audio only"])], check=True)
    return files


def test_bad_videos_fail_with_one_clear_line(media, tmp_path):
    for label, path in _bad_files(tmp_path, Path(media["video"])).items():
        result = run_cli("predict", str(path), "--query-image", str(media["image"]), "--clip-weights", "random",
                         cache_dir=tmp_path / "cache")
        assert result.returncode != 0, label
        assert "Traceback" not in result.stderr, (label, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, (label, result.stderr)


def test_bad_videos_raise_typed_errors(media, grounder, tmp_path):
    for label, path in _bad_files(tmp_path, Path(media["video"])).items():
        with pytest.raises(VideoReadError) as raised:
            grounder.index(path)
        assert path.name in str(raised.value), (label, str(raised.value))  # the message names the file


def test_empty_query_on_cli(media, tmp_path):
    result = run_cli("predict", str(media["video"]), "--query", "  ", "--clip-weights", "random",
                     cache_dir=tmp_path / "cache")
    assert result.returncode == 2 and result.stderr.strip().startswith("error:") and "empty" in result.stderr


def test_mismatched_checkpoint_is_refused_naming_both_widths(media, tmp_path):
    import argparse

    config = UniVTGConfig(video_dim=768, text_dim=768, hidden_dim=64, enc_layers=1, nheads=4, dim_feedforward=64)
    ckpt = tmp_path / "other.ckpt"
    torch.save({"model": UniVTG(config).state_dict(), "opt": argparse.Namespace(nheads=4, ctx_mode="video_tef")}, ckpt)
    result = run_cli("predict", str(media["video"]), "--query", "x", "--clip-weights", "random", "--resume",
                     str(ckpt), cache_dir=tmp_path / "cache")
    assert result.returncode == 2
    assert "768" in result.stderr and "512" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("target, span", [((0, 0, 255), (20.0, 30.0)), ((0, 255, 0), (10.0, 20.0)),
                                          ((255, 0, 0), (0.0, 10.0))])
def test_red_green_blue_segments_are_told_apart(grounder, tmp_path_factory, target, span):
    root = tmp_path_factory.getbasetemp() / "rgb"
    video = root / "rgb.mp4"
    if not video.exists():
        root.mkdir(exist_ok=True)
        make_colour_video(video, [((255, 0, 0), 10), ((0, 255, 0), 10), ((0, 0, 255), 10)])
    pred = grounder.query(grounder.index(video), image=Image.new("RGB", (96, 96), target))
    assert _iou([pred.moments[0].start, pred.moments[0].end], span) >= 0.8
