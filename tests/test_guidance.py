"""Guidance score files: the seed's pickle format read safely, checked record by record, and mapped onto our
windows; plus the similarity helpers a coarse-to-fine first stage ranks windows with."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import univtg_core
from tests.payloads import TouchesMarker
from univtg_core.errors import UniVTGError, UnsafeFileError
from univtg_core.guidance import GuidanceError, GuidanceRecord, guidance_window_scores, read_guidance
from univtg_core.similarity import cosine_curve, window_max


def seed_records(n_windows=40, planted=23, qid="0", vid="3001_21_JUMP_STREET"):
    """A record as the published MAD files hold it: 128-frame windows at 5 fps, half overlap."""
    starts = np.arange(n_windows, dtype=np.int64) * 64
    scores = np.full(n_windows, 1.5e-5, dtype=np.float32)
    scores[planted] = 0.986
    return {"qid": qid, "vid": vid, "windows": np.stack([starts, starts + 128], axis=1), "score": scores}


def write(tmp_path, data, name="guidance.pkl", protocol=4):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_the_seed_format_in_seconds(tmp_path, protocol):
    path = write(tmp_path, [seed_records(), seed_records(qid="1", planted=3)], protocol=protocol)
    records = univtg_core.read_guidance(path)  # exported at the top level, fps 5 by default
    assert list(records) == ["0", "1"]
    record = records["0"]
    assert isinstance(record, GuidanceRecord) and record.vid == "3001_21_JUMP_STREET" and len(record) == 40
    # Frames at 5 fps: window 1 is frames [64, 192) = [12.8 s, 38.4 s).
    assert record.windows.shape == (40, 2) and record.windows[1].tolist() == [12.8, 38.4]
    assert record.scores.shape == (40,) and record.scores[23] == pytest.approx(0.986)
    # Clip indices of 2 s clips: pass fps = 1 / clip_len.
    assert read_guidance(path, fps=0.5)["0"].windows[1].tolist() == [128.0, 384.0]


def test_planted_guidance_window_wins_on_our_grid(tmp_path):
    record = read_guidance(write(tmp_path, [seed_records(n_windows=40, planted=23)]))["0"]
    # Guidance window 23 is frames [1472, 1600) = [294.4 s, 320.0 s). Our grid: 150 s windows every 75 s.
    # [225, 375) (index 3) holds all of it; [150, 300) (index 2) overlaps it by 5.6 s and [300, 450)
    # (index 4) by 20 s; the others miss it.
    starts = np.arange(0, 525, 75.0)
    by_max = guidance_window_scores(record, starts, 150.0, rule="max")
    planted, background = float(np.float32(0.986)), float(np.float32(1.5e-5))  # the file stores float32
    assert by_max.tolist() == [background, background, planted, planted, planted, background, background]
    by_mean = guidance_window_scores(record, starts, 150.0, rule="mean")
    assert int(np.argmax(by_mean)) == 3
    # Every instant of [150, 300) lies in exactly two half-overlapping guidance windows, so the overlaps sum
    # to 2 * 150 s = 300 s, of which 5.6 s belong to the planted window:
    assert by_mean[2] == pytest.approx((5.6 * planted + (300 - 5.6) * background) / 300, rel=1e-9)
    # [225, 375): 25.6 s planted out of 300 s; [300, 450): 20 s out of 300 s.
    assert by_mean[3] == pytest.approx((25.6 * planted + (300 - 25.6) * background) / 300, rel=1e-9)
    assert by_mean[4] == pytest.approx((20 * planted + (300 - 20) * background) / 300, rel=1e-9)


def test_window_without_guidance_gets_the_fill():
    windows, scores = np.array([[0.0, 10.0], [10.0, 20.0]]), np.array([0.2, 0.9])
    mapped = guidance_window_scores((windows, scores), [5.0, 30.0, 19.99], 5.0)
    # [5, 10) touches only [0, 10); [30, 35) touches nothing -> the lowest score; [19.99, 24.99) touches [10, 20).
    assert mapped.tolist() == [0.2, 0.2, 0.9]
    assert guidance_window_scores((windows, scores), [30.0], 5.0, fill=-1.0).tolist() == [-1.0]
    # Windows that only share an end point do not overlap.
    assert guidance_window_scores((windows, scores), [20.0], 5.0, fill=0.0).tolist() == [0.0]


def test_mapping_matches_brute_force_on_a_long_grid():
    rng = np.random.default_rng(5)
    starts = np.sort(rng.uniform(0, 7200, 900))
    g_windows = np.stack([starts, starts + rng.uniform(5, 60, 900)], axis=1)
    g_scores = rng.uniform(size=900)
    ours = rng.uniform(-50, 7200, 3000)  # unsorted, some before the video
    for rule in ("max", "mean"):
        fast = guidance_window_scores((g_windows, g_scores), ours, 30.0, rule=rule, block=128)
        overlap = (np.minimum(ours[:, None] + 30, g_windows[None, :, 1])
                   - np.maximum(ours[:, None], g_windows[None, :, 0]))
        w = np.where(overlap > 0, overlap, 0.0)
        if rule == "max":
            slow = np.where(overlap > 0, g_scores[None], -np.inf).max(axis=1)
        else:
            slow = (w @ g_scores) / np.where(w.sum(1) > 0, w.sum(1), 1)
        slow = np.where((overlap > 0).any(axis=1), slow, g_scores.min())
        np.testing.assert_allclose(fast, slow, rtol=1e-12)


def test_a_reduce_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker"
    record = seed_records()
    record["score"] = TouchesMarker(marker)
    path = write(tmp_path, [record], name="evil.pkl")
    with pytest.raises(UnsafeFileError, match=r"refused to load guidance file .*evil\.pkl.*system"):
        read_guidance(path)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [b"", np.random.default_rng(0).bytes(64), pickle.dumps([seed_records()])[:-20]],
                         ids=["empty", "random", "truncated"])
def test_truncated_or_random_bytes_give_one_clear_error(tmp_path, payload):
    path = tmp_path / "broken.pkl"
    path.write_bytes(payload)
    with pytest.raises(UniVTGError) as info:
        read_guidance(path)
    message = str(info.value)
    assert "broken.pkl" in message and "\n" not in message
    assert "not a valid pickle" in message or "refused" in message  # random bytes may spell an opcode


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(UnsafeFileError, match="cannot open guidance file"):
        read_guidance(tmp_path / "absent.pkl")


def bad(**changes):
    record = seed_records(n_windows=4, planted=1)
    for key, value in changes.items():
        if value is KeyError:
            del record[key]
        else:
            record[key] = value
    return [seed_records(n_windows=4, planted=2, qid="7"), record]


@pytest.mark.parametrize(("data", "expected"), [
    ({"qid": "0"}, "expected a list of records"),
    ([], "holds no records"),
    (["not a dict"], r"record 0: expected a dict"),
    (bad(score=KeyError), r"record 1: missing 'score'"),
    (bad(qid=1.5), r"record 1: 'qid' must be a string"),
    (bad(windows=np.zeros((4, 3), np.int64)), r"record 1 \(qid '0'\): 'windows' must be an \(N, 2\)"),
    (bad(windows=np.array([[0, 1.5], [1, 2], [2, 3], [3, 4]])), "integer frame or clip indices"),
    (bad(windows=np.array([[0, 128], [64, 64], [128, 256], [192, 320]])), r"window 1 is \[64, 64\]"),
    (bad(windows=np.array([["a", "b"]] * 4)), "real numbers"),
    (bad(score=np.ones(3, np.float32)), r"one score per window \(4\)"),
    (bad(score=np.array([0.1, np.nan, 0.3, np.inf], np.float32)), "2 non-finite values"),
    (bad(score="high"), "'score' must be a numpy array"),
    (bad(qid="7"), r"record 1 repeats qid '7'"),
])
def test_bad_records_are_named(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(GuidanceError, match=expected):
        read_guidance(path)


def test_fps_must_be_positive(tmp_path):
    with pytest.raises(GuidanceError, match="fps must be a positive number"):
        read_guidance(write(tmp_path, [seed_records()]), fps=0)


def test_cosine_curve_matches_float64():
    rng = np.random.default_rng(0)
    feats = (rng.normal(size=(500, 64)) * rng.uniform(0.1, 10, (500, 1))).astype(np.float32)
    feats[7] = 0.0
    query = rng.normal(size=64).astype(np.float32)
    f64 = feats.astype(np.float64)
    expected = f64 @ query / (np.linalg.norm(f64, axis=1) + 1e-8) / np.linalg.norm(query)
    curve = cosine_curve(feats, query)
    assert curve.dtype == np.float64 and curve[7] == 0.0
    np.testing.assert_allclose(curve, expected, atol=1e-6)
    with pytest.raises(ValueError, match="do not match"):
        cosine_curve(feats, query[:10])


def test_window_max_matches_brute_force():
    rng = np.random.default_rng(1)
    curve = rng.normal(size=1000)
    starts = rng.integers(-20, 1010, 400)
    lengths = rng.integers(1, 300, 400)
    expected = [curve[max(s, 0) : min(s + n, 1000)].max() if min(s + n, 1000) > max(s, 0) else -np.inf
                for s, n in zip(starts, lengths)]
    np.testing.assert_array_equal(window_max(curve, starts, lengths), expected)
    np.testing.assert_array_equal(window_max(curve, np.arange(0, 1000, 75), 150),
                                  [curve[s : s + 150].max() for s in range(0, 1000, 75)])
    assert window_max(np.array([3.0]), [0, 1], 1).tolist() == [3.0, -np.inf]
