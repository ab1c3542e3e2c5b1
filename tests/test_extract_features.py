"""`python -m univtg_core.training.extract --features clip slowfast`: both folders in UniVTG's layout
(`vid_clip`, `vid_slowfast`, `txt_clip`), each on the asked clip grid, that the trainer reads as the
official `--v_feat_dirs`; SlowFast weights refused in one line when missing. Stand-in encoders (the real
ones are tested through the same stream in tests/test_slowfast.py and tests/test_slowfast_grounding.py)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest

from univtg_core.errors import EncoderWeightsError
from univtg_core.store import FeatureStore
from univtg_core.training import extract as ex
from univtg_core.training.data import FeatureStore as TrainingFeatures

DURATIONS = {"a": 5.0, "b": 3.2}  # seconds


class _Rows:
    """A video stream of `count(duration, clip_len)` rows of `dim` (the indexer's protocol)."""

    def __init__(self, name: str, dim: int, count):
        self.fingerprint, self.embed_dim, self.count, self.grids = f"fake-{name}", dim, count, []

    def expected_clips(self, path, clip_len=2.0):
        return self.count(DURATIONS[Path(path).stem], clip_len)

    def iter_video_features(self, path, clip_len=2.0, progress=None, *, start_clip=0):
        self.grids.append(clip_len)
        n = self.expected_clips(path, clip_len)
        yield np.full((n - start_clip, self.embed_dim), ord(Path(path).stem), np.float32)

    def encode_text(self, text):
        return argparse.Namespace(tokens=np.ones((3, 8), np.float32), sentence=np.ones(8, np.float32))


@pytest.fixture()
def videos(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    for stem in DURATIONS:
        (folder / f"{stem}.mp4").write_bytes(b"x")
    return folder


@pytest.mark.parametrize("clip_len", [2.0, 1.0])  # QVHighlights' grid, Charades-STA's
def test_clip_and_slowfast_folders_on_the_asked_grid(videos, tmp_path, monkeypatch, clip_len):
    clip = _Rows("clip", 8, lambda d, L: round(d / L))  # CLIP's count, as video.clip_count
    slowfast = _Rows("slowfast", 6, lambda d, L: math.ceil(d / L))  # HERO's
    monkeypatch.setattr(ex, "_load_encoder", lambda *a, **k: clip)
    monkeypatch.setattr(ex, "_load_slowfast", lambda weights, device: slowfast if weights == "sf.pkl" else None)
    monkeypatch.setattr(ex, "_probe_duration", lambda path: DURATIONS[path.stem])
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"qid": 7, "query": "a dog", "vid": "a"}) + "\n")
    out = tmp_path / "out"
    assert ex.main(["--videos", str(videos), "--queries", str(queries), "--out", str(out), "--features", "clip",
                    "slowfast", "--slowfast-weights", "sf.pkl", "--clip_length", str(clip_len)]) == 0
    assert set(clip.grids) == {clip_len} and set(slowfast.grids) == {clip_len}
    for stem, duration in DURATIONS.items():
        assert FeatureStore(out / "vid_clip").get(stem).features.shape == (round(duration / clip_len), 8)
        assert FeatureStore(out / "vid_slowfast").get(stem).features.shape == (math.ceil(duration / clip_len), 6)
    info = json.loads((out / "extract_info.json").read_text())
    assert info["fingerprint"] == "fake-clip" and info["slowfast_fingerprint"] == "fake-slowfast"
    # the trainer reads them as UniVTG's --v_feat_dirs vid_slowfast vid_clip: cut to the shorter, SlowFast first
    reader = TrainingFeatures([str(out / "vid_slowfast"), str(out / "vid_clip")], str(out / "txt_clip"),
                              normalize_video=False)
    feats = reader.video("b")
    assert feats.shape == (min(round(3.2 / clip_len), math.ceil(3.2 / clip_len)), 14)
    assert reader.query(7).shape == (3, 8)


def test_slowfast_needs_its_weights_and_another_encoder_is_refused(videos, tmp_path, monkeypatch):
    monkeypatch.setattr(ex, "_load_encoder", lambda *a, **k: _Rows("clip", 8, lambda d, L: round(d / L)))
    monkeypatch.delenv("UNIVTG_SLOWFAST_WEIGHTS", raising=False)
    with pytest.raises(EncoderWeightsError, match=r"--slowfast-weights .*SLOWFAST_8x8_R50\.pkl"):
        ex.extract(videos, tmp_path / "out", features=("clip", "slowfast"), progress=False)
    with pytest.raises(ex.DataError, match="--features takes clip and/or slowfast"):
        ex.extract(videos, tmp_path / "out", features=("i3d",), progress=False)

    out = tmp_path / "out2"
    monkeypatch.setattr(ex, "_load_slowfast", lambda w, d: _Rows("slowfast", 6, lambda d, L: math.ceil(d / L)))
    ex.extract(videos, out, features=("clip", "slowfast"), slowfast_weights="x", progress=False)
    other = _Rows("slowfast", 6, lambda d, L: math.ceil(d / L))
    other.fingerprint = "other-slowfast"
    monkeypatch.setattr(ex, "_load_slowfast", lambda w, d: other)
    FeatureStore(out / "vid_slowfast").remove("a")
    with pytest.raises(ex.DataError, match="other-slowfast"):
        ex.extract(videos, out, features=("clip", "slowfast"), slowfast_weights="x", progress=False)


@pytest.mark.slow  # two random ViT-B/32 loads: ~10-18 s on the shared machine
def test_clip_features_from_decord_pixels_are_their_own_store_entries(monkeypatch):
    """decord's pixels are close to, not equal to, the official ones: its features never share a key with
    PyAV's (the fingerprint names the pixels when "auto" cannot take PyAV)."""
    from univtg_core.encoders import load_clip_encoder
    from univtg_core.video import backends

    official = load_clip_encoder(weights="random", device="cpu").fingerprint

    def no_pyav():
        raise ImportError("PyAV is not installed")

    monkeypatch.setitem(backends.READERS, "pyav", no_pyav)
    monkeypatch.setitem(backends.READERS, "decord", lambda: object)
    assert backends.auto_backend() == "decord"
    other = load_clip_encoder(weights="random", device="cpu").fingerprint
    assert other != official and other.endswith(":decord-pixels") and ":" in official
