"""SlowFast R50 features against the HERO extractor fixture, and the safe reading of PySlowFast's weights.

The fixture (``../shared/fixtures/slowfast_hero``) was made by running HERO's own ``extract.py`` with seeded
weights; its README gives the pipeline, the weight rule and the tolerances used here.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import struct
import subprocess

import numpy as np
import pytest
import torch

from tests.conftest import shared_fixture
from tests.payloads import TouchesMarker
from univtg_core.avfilter import iter_official_frames
from univtg_core.errors import EncoderWeightsError
from univtg_core.media import ffmpeg_exe
from univtg_core.slowfast import load_slowfast_encoder, read_slowfast_weights, seeded_slowfast_state_dict
from univtg_core.slowfast.pipeline import clip_grid, iter_clips, probe_slowfast, slow_indices
from univtg_core.slowfast.weights import (
    caffe2_blobs_to_state_dict,
    caffe2_name,
    complete_state_dict,
    pyslowfast_name,
    state_dict_sha256,
)

VIDEOS = ("land2997_5s", "port25_4s", "wide10_6s")


@pytest.fixture(scope="module")
def fixture_dir():
    return shared_fixture("slowfast_hero")


@pytest.fixture(scope="module")
def fixture(fixture_dir):
    return json.loads((fixture_dir / "fixture.json").read_text())


@pytest.fixture(scope="module")
def manifest(fixture_dir):
    return json.loads((fixture_dir / "weights_manifest.json").read_text())


@pytest.fixture(scope="module")
def reference(fixture_dir):
    with np.load(fixture_dir / "features.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def seeded():
    return seeded_slowfast_state_dict(0)


@pytest.fixture(scope="module")
def encoder(seeded):
    return load_slowfast_encoder(seeded, device="cpu", float16_storage=False)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- weights


def test_state_dict_has_pyslowfast_names_shapes_and_order(seeded, manifest):
    assert [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in seeded.items()] == \
        [(e["name"], e["shape"], e["dtype"]) for e in manifest["keys"]]


def test_seeded_weights_match_the_manifest_bit_for_bit(seeded, manifest):
    assert state_dict_sha256(seeded) == manifest["whole_state_sha256"]["value"]
    for name, check in manifest["checksums"].items():
        values = seeded[name].numpy()
        assert hashlib.sha256(values.astype("<f4").tobytes()).hexdigest() == check["sha256_f32le"], name
        assert float(values.astype(np.float64).sum()) == check["sum_float64"], name
        assert values.ravel()[:5].tolist() == check["first5"], name


def test_caffe2_names_map_to_pyslowfast_names_and_back(manifest):
    entries = [e for e in manifest["keys"] if "caffe2_name" in e]
    assert len(entries) == 552
    for e in entries:
        assert pyslowfast_name(e["caffe2_name"]) == e["name"]
        assert caffe2_name(e["name"]) == e["caffe2_name"]
    for blob in ("res2_0_branch2a_w_momentum", "lr", "model_iter", "t_res5_2_branch2c_bn_s_momentum"):
        assert pyslowfast_name(blob) is None


class _Python2Pickler(pickle._Pickler):
    """Writes pickles as Python 2 did for numpy arrays: byte strings as ``str`` opcodes, numpy 1 module names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        self.write((pickle.SHORT_BINSTRING + bytes([n])) if n < 256 else (pickle.BINSTRING + struct.pack("<i", n)))
        self.write(obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None) or "numpy"
        module = module.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode("ascii"))
        self.memoize(obj)


def _caffe2_blobs(state) -> dict[bytes, np.ndarray]:
    blobs = {caffe2_name(k).encode(): v.numpy() for k, v in state.items() if v.dtype.is_floating_point}
    # optimizer state as in a training snapshot: skipped by PySlowFast, so skipped here
    blobs[b"res2_0_branch2a_w_momentum"] = np.zeros((64, 80, 1, 1, 1), np.float32)
    blobs[b"lr"] = np.array([0.1], np.float32)
    blobs[b"model_iter"] = np.array([196000], np.int64)
    return blobs


def _write_python2_pickle(path, obj) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def test_released_style_caffe2_pickle_fills_every_parameter(tmp_path, seeded):
    path = tmp_path / "SLOWFAST_8x8_R50.pkl"
    _write_python2_pickle(path, {b"blobs": _caffe2_blobs(seeded)})
    assert b"numpy.core.multiarray\n_reconstruct" in path.read_bytes()[:200]
    loaded = read_slowfast_weights(path)
    assert list(loaded) == list(seeded)
    for key, value in seeded.items():
        assert torch.equal(loaded[key], value), key
    enc = load_slowfast_encoder(path, device="cpu")
    assert enc.fingerprint.startswith("slowfast-r50-8x8:sha256-") and not enc.is_random
    assert not enc.model.training


def test_a_pickle_payload_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": TouchesMarker(marker)}}, protocol=2))
    with pytest.raises(EncoderWeightsError, match="posix.system|os.system|not allowed"):
        read_slowfast_weights(path)
    assert not marker.exists()


def test_a_missing_blob_is_refused_by_name(seeded):
    blobs = {k.decode(): v for k, v in _caffe2_blobs(seeded).items()}
    del blobs["res3_1_branch2b_bn_riv"]
    tensors = caffe2_blobs_to_state_dict(blobs, "x.pkl")
    with pytest.raises(EncoderWeightsError) as err:
        complete_state_dict(tensors, "x.pkl", caffe2=True)
    msg = str(err.value)
    assert "1 missing" in msg and "s3.pathway0_res1.branch2.b_bn.running_var" in msg
    assert "res3_1_branch2b_bn_riv" in msg and "\n" not in msg


def test_unknown_and_mismatched_blobs_are_refused(seeded):
    blobs = {k.decode(): v for k, v in _caffe2_blobs(seeded).items()}
    with pytest.raises(EncoderWeightsError, match="nonlocal_conv3_1_theta_w"):
        caffe2_blobs_to_state_dict({**blobs, "nonlocal_conv3_1_theta_w": np.zeros(3, np.float32)})
    blobs["pred_w"] = np.zeros((174, 2304), np.float32)  # a Something-Something head: not this checkpoint
    with pytest.raises(EncoderWeightsError, match=r"wrong shape.*head\.projection\.weight"):
        complete_state_dict(caffe2_blobs_to_state_dict(blobs), "ssv2.pkl", caffe2=True)


def test_safetensors_and_pyslowfast_checkpoints_load(tmp_path, seeded):
    from safetensors.torch import save_file

    st = tmp_path / "slowfast.safetensors"
    save_file({k: v for k, v in seeded.items() if v.dtype.is_floating_point}, str(st))
    pyth = tmp_path / "SLOWFAST_8x8_R50.pyth"
    torch.save({"model_state": seeded, "epoch": 196}, pyth)
    for path in (st, pyth):
        loaded = read_slowfast_weights(path)
        assert all(torch.equal(loaded[k], v) for k, v in seeded.items()), path.name


def test_missing_weights_say_where_the_official_ones_come_from(tmp_path):
    with pytest.raises(EncoderWeightsError) as err:
        load_slowfast_encoder(tmp_path / "SLOWFAST_8x8_R50.pkl", device="cpu")
    msg = str(err.value)
    assert "\n" not in msg and "not found" in msg
    assert "dl.fbaipublicfiles.com/pyslowfast/model_zoo/kinetics400/SLOWFAST_8x8_R50.pkl" in msg


# ---------------------------------------------------------------------------------------------- pipeline


@pytest.mark.parametrize("video", VIDEOS)
def test_probe_and_decoded_frames_are_the_fixtures(fixture_dir, fixture, video):
    meta = fixture["videos"][video]
    probe = probe_slowfast(fixture_dir / meta["file"])
    for field in ("width", "height", "fps", "frames_length", "duration"):
        assert getattr(probe, field) == meta["probe"][field], field
    frames = list(iter_official_frames(fixture_dir / meta["file"], 30))
    assert len(frames) == meta["decoded_frames"]
    # sha256 of the bundled ffmpeg n9.0.2's rgb24 output, as HERO read it
    assert [_sha(f) for f in frames] == meta["decoded_frame_sha256"]


@pytest.mark.parametrize("video", VIDEOS)
@pytest.mark.parametrize("clip_len", [2, 1])
def test_clip_grid_and_sampled_clips_are_the_fixtures(fixture_dir, fixture, reference, video, clip_len):
    meta = fixture["videos"][video]
    want = meta[f"L{clip_len}"]
    probe = probe_slowfast(fixture_dir / meta["file"])
    grid = clip_grid(meta["decoded_frames"], probe.fps, probe.duration, clip_len)
    assert (grid.n_after_pad30, grid.n_after_padL, grid.clip_frames, grid.n_clips) == \
        (want["n_frames_after_pad30"], want["n_frames_after_padL"], want["clip_frames"], want["n_clips"])
    assert grid.frame_idx_in_clip.tolist() == want["frame_idx_in_clip"]
    assert grid.src_frame_idx.tolist() == want["src_frame_idx"]
    np.testing.assert_array_equal(grid.src_frame_idx, reference[f"{video}__L{clip_len}__src_frame_idx"])
    assert slow_indices().tolist() == want["slow_idx_in_sample"] == [0, 4, 8, 13, 17, 22, 26, 31]
    clips = list(iter_clips(fixture_dir / meta["file"], clip_len, probe))
    assert [_sha(c) for c in clips] == want["clip_sha256"]


def test_a_stream_without_frame_count_keeps_every_clip(tmp_path):
    path = tmp_path / "no_count.mkv"  # Matroska stores no frame count: HERO sets duration = -1
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=s=160x120:r=25:d=2.2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                    "yuv420p", str(path)], check=True, capture_output=True)
    probe = probe_slowfast(path)
    assert probe.frames_length == -1 and probe.duration == -1
    # 66 frames at 30 fps -> 3 seconds after padding -> 2 clips of 2 s (the second repeats its last second)
    assert len(list(iter_clips(path, 2, probe))) == 2
    assert clip_grid(150, 25, -1, 2).n_clips == 3 and clip_grid(150, 25, 3.9, 2).n_clips == 2


# ---------------------------------------------------------------------------------------------- features


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(np.abs(a - b) <= 1e-4 + 1e-4 * np.abs(b)))  # the fixture README's CPU float32 rule


@pytest.mark.slow  # 3 clips through SlowFast R50 on the CPU: ~3 s on an idle machine
def test_features_equal_the_fixture_on_its_quirkiest_clips(fixture_dir, fixture, reference, encoder):
    # the clip repeated by stage-2 padding (29.97 fps), a 1 s clip whose tail is clamped (25 fps), 10 fps
    picks = [("land2997_5s", 2, 2), ("port25_4s", 1, 3), ("wide10_6s", 2, 1)]
    clips, want = [], []
    for video, clip_len, index in picks:
        meta = fixture["videos"][video]
        clips.append(list(iter_clips(fixture_dir / meta["file"], clip_len))[index])
        want.append(reference[f"{video}__L{clip_len}__feat_f32"][index])
    got = encoder.encode_clips(np.stack(clips))
    assert got.shape == (3, 2304) and got.dtype == np.float32
    for g, w, pick in zip(got, want, picks):
        assert _close(g, w), f"{pick}: max |diff| {np.abs(g - w).max():.3g}"


@pytest.mark.slow  # 2 clips: ~2 s on an idle machine
def test_encode_video_streams_the_fixture_features(fixture_dir, fixture, reference, seeded):
    enc = load_slowfast_encoder(seeded, device="cpu", batch_size=1)  # float16 storage, as HERO saves
    seen = []
    got = enc.encode_video(fixture_dir / fixture["videos"]["port25_4s"]["file"], 2.0,
                           progress=lambda done, total: seen.append((done, total)))
    f16 = reference["port25_4s__L2__feat_f16"].astype(np.float32)
    f32 = reference["port25_4s__L2__feat_f32"]
    assert got.shape == f16.shape == (2, 2304)
    assert np.all(np.abs(got - f16) <= 2.0**-10 * np.abs(f16) + 1e-4 + 1e-4 * np.abs(f32))  # <= 1 float16 ulp
    assert np.array_equal(got, got.astype(np.float16).astype(np.float32))
    assert seen == [(0, 2), (1, 2), (2, 2)]


def _padded_literally(n_decoded: int, fps: int, duration: float, clip_len) -> np.ndarray:
    """The README's steps 3-6 done on an array of frame numbers, the way HERO does them on pixels."""
    from fractions import Fraction
    from math import ceil

    frames = np.arange(n_decoded)
    if len(frames) % 30:
        frames = np.concatenate([frames, np.repeat(frames[-1:], 30 - len(frames) % 30)])
    seconds = frames.reshape(-1, 30)
    unit = Fraction(clip_len).numerator
    if len(seconds) % unit:
        seconds = np.concatenate([seconds, np.repeat(seconds[-1:], unit - len(seconds) % unit, axis=0)])
    clips = seconds.reshape(-1, int(Fraction(clip_len) * 30))
    if duration > 0:
        clips = clips[:ceil(duration / float(clip_len))]
    index = torch.clamp(torch.linspace(0.0, 32 * 2 * fps / 30 - 1, 32), 0, clips.shape[1] - 1).long().numpy()
    return clips[:, index]


@pytest.mark.parametrize("n_decoded, fps, duration, clip_len", [
    (15, 30, 0.5, 2), (45, 23, 1.5, 2), (61, 29, 2.03, 2), (179, 59, 5.97, 1), (100, 24, -1, 2),
    (46, 25, 1.53, 1.5), (200, 30, 6.6, 1.5), (150, 14, 5.005, 2), (90, 60, 3.0, 2),
])
def test_clip_grid_is_the_literal_padding(n_decoded, fps, duration, clip_len):
    want = _padded_literally(n_decoded, fps, duration, clip_len)
    np.testing.assert_array_equal(clip_grid(n_decoded, fps, duration, clip_len).src_frame_idx, want)


@pytest.mark.parametrize("source, clip_len", [("testsrc2=s=160x120:r=24:d=0.5", 2), ("mandelbrot=s=128x96:r=50", 1.5)])
def test_streamed_clips_are_the_grid_of_the_decoded_frames(tmp_path, source, clip_len):
    # a video shorter than one clip, and a fractional clip length whose padding reaches back into the
    # previous clip: the streamed clips must be the grid applied to the whole decoded video
    path = tmp_path / "v.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", source,
                    "-t", "1.55", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True, capture_output=True)
    probe = probe_slowfast(path)
    frames = np.stack(list(iter_official_frames(path, 30)))
    grid = clip_grid(len(frames), probe.fps, probe.duration, clip_len)
    clips = list(iter_clips(path, clip_len, probe))
    assert len(clips) == grid.n_clips >= 1
    for clip, sources in zip(clips, grid.src_frame_idx):
        np.testing.assert_array_equal(clip, frames[sources])
