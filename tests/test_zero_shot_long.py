"""Zero-shot post-processing at length: the O(N log N) moment search and summary give exactly what the
straightforward (quadratic) versions gave, which are kept here as the reference."""

from __future__ import annotations

import numpy as np
import pytest

from univtg_core import postprocess

# ------------------------------------------------------------------ reference: the code before the rewrite


def ref_runs_above(curve, threshold):
    above = np.asarray(curve) >= threshold
    runs, start = [], None
    for i, flag in enumerate(above):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(above) - 1))
    return runs


# The score of one run is the core's straightforward `postprocess.run_score` (one run at a time, O(N) each):
# what the references below rank with, and what the vectorised `_run_scores` must equal.
ref_run_score = postprocess.run_score


def ref_zero_shot_moments(curve, clip_len, duration, nms_threshold=0.7, top_k=10, raw=None,
                          spreads=(0.25, 0.5, 0.75)):
    curve = np.asarray(curve, dtype=np.float64)
    if curve.size == 0:
        return np.zeros((0, 3))
    scored = np.asarray(raw, dtype=np.float64) if raw is not None else curve
    candidates = set()
    for source in {id(curve): curve, id(scored): scored}.values():
        for spread in spreads:
            candidates.update(ref_runs_above(source, postprocess.adaptive_threshold(source, spread)))
    value_range = float(scored.max() - scored.min())
    scale = value_range if value_range > 1e-12 else 1.0
    runs = sorted(candidates)
    windows = np.array([(first * clip_len, (last + 1) * clip_len) for first, last in runs], dtype=np.float64)
    scores = np.array([ref_run_score(scored, first, last) / scale for first, last in runs], dtype=np.float64)
    return postprocess.rank_moments(windows, scores, duration, nms_threshold, top_k)


def ref_summary_points(saliency, clip_len, budget=0.15, min_gap_clips=None):
    saliency = np.asarray(saliency, dtype=np.float64)
    n_clips = saliency.size
    if n_clips == 0:
        return np.zeros(0)
    count = max(1, int(np.floor(budget * n_clips + 1e-9)))
    if min_gap_clips is None:
        min_gap_clips = max(1, n_clips // (2 * count))
    order = np.argsort(-saliency, kind="stable")
    chosen = []
    gap = min_gap_clips
    while len(chosen) < count and gap >= 0:
        for idx in order:
            if len(chosen) >= count:
                break
            if idx in chosen or any(abs(int(idx) - c) <= gap for c in chosen if gap > 0):
                continue
            chosen.append(int(idx))
        gap -= 1
    return (np.sort(np.array(chosen)) + 0.5) * clip_len


# ------------------------------------------------------------------ curves


def planted_curve(rng, n):
    """Noise plus one to three raised plateaus of random level and width (what a query's cosine looks like)."""
    curve = rng.normal(0.2, 0.03, n)
    for _ in range(rng.integers(1, 4)):
        width = int(rng.integers(1, max(2, n // 4)))
        start = int(rng.integers(0, max(1, n - width)))
        curve[start : start + width] += rng.uniform(0.05, 0.3)
    return curve


def curves(seed_count=60):
    rng = np.random.default_rng(1234)
    for seed in range(seed_count):
        n = int(rng.integers(1, 160))
        if seed % 3 == 0:
            yield f"random-{seed}", rng.normal(size=n)
        elif seed % 3 == 1:
            yield f"planted-{seed}", planted_curve(rng, n)
        else:  # quantised: many exact ties between clips
            yield f"steps-{seed}", np.round(planted_curve(rng, n), 2)


CURVES = list(curves())


def assert_same_moments(new, ref, label):
    assert new.shape == ref.shape, label
    np.testing.assert_array_equal(new[:, :2], ref[:, :2], err_msg=label)
    np.testing.assert_allclose(new[:, 2], ref[:, 2], rtol=0, atol=1e-10, err_msg=label)  # rounded to 1e-10


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("label,curve", CURVES[:20], ids=[c[0] for c in CURVES[:20]])
def test_runs_above_matches_reference(label, curve):
    for spread in (0.0, 0.25, 0.5, 0.75, 1.0):
        threshold = postprocess.adaptive_threshold(curve, spread)
        assert postprocess.runs_above(curve, threshold) == ref_runs_above(curve, threshold)
    assert postprocess.runs_above(np.ones(5), 2.0) == [] and postprocess.runs_above(np.ones(3), 1.0) == [(0, 2)]


def test_zero_shot_moments_match_reference():
    for label, raw in CURVES:
        smooth = postprocess.smooth_curve(raw)
        for kwargs in ({}, {"top_k": None}, {"nms_threshold": 0.5, "top_k": 3}, {"spreads": (0.1, 0.9)}):
            duration = raw.size * 2.0 - 0.7  # the last clip is cut short: windows get clamped
            assert_same_moments(postprocess.zero_shot_moments(smooth, 2.0, duration, raw=raw, **kwargs),
                                ref_zero_shot_moments(smooth, 2.0, duration, raw=raw, **kwargs), f"{label} {kwargs}")
        assert_same_moments(postprocess.zero_shot_moments(raw, 0.2, raw.size * 0.2),
                            ref_zero_shot_moments(raw, 0.2, raw.size * 0.2), f"{label} without raw")


def test_zero_shot_moments_edge_cases():
    assert postprocess.zero_shot_moments(np.zeros(0), 2.0, 0.0).shape == (0, 3)
    flat = postprocess.zero_shot_moments(np.full(10, 0.3), 2.0, 20.0)  # one run covering everything scores 0
    assert_same_moments(flat, ref_zero_shot_moments(np.full(10, 0.3), 2.0, 20.0), "flat")
    assert flat[:, 2].tolist() == [0.0]
    with pytest.raises(ValueError, match="one value per clip"):
        postprocess.zero_shot_moments(np.zeros(10), 2.0, 20.0, raw=np.zeros(9))


def test_run_score_is_the_mean_shift_statistic_worked_by_hand():
    # (mean inside - mean outside) * 2 * sqrt(n_in * n_out) / N
    assert postprocess.run_score(np.array([0.0, 0.0, 1.0, 1.0]), 2, 3) == 1.0  # 1 * 2 * sqrt(2 * 2) / 4
    assert postprocess.run_score(np.array([0.0, 1.0, 0.0, 0.0]), 1, 1) == pytest.approx(3 ** 0.5 / 2)  # 2√3 / 4
    assert postprocess.run_score(np.array([3.0, 1.0, 1.0]), 1, 2) == pytest.approx(-2 * 2 * 2 ** 0.5 / 3)
    assert postprocess.run_score(np.array([5.0, 5.0]), 0, 1) == 0.0  # nothing outside: no contrast


def test_run_scores_equal_run_score_on_a_long_curve():
    # 36,000 clips (2 h at 0.2 s): prefix sums over the centred curve keep the scores to ~1e-12.
    rng = np.random.default_rng(7)
    curve = planted_curve(rng, 36_000)
    firsts = rng.integers(0, 36_000, 200)
    lasts = np.minimum(firsts + rng.integers(0, 5_000, 200), 35_999)
    fast = postprocess._run_scores(curve, firsts, lasts)
    slow = np.array([ref_run_score(curve, int(f), int(l)) for f, l in zip(firsts, lasts)])
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)
    assert postprocess._run_scores(curve, np.array([0]), np.array([35_999])).tolist() == [0.0]


def test_summary_points_match_reference():
    for label, curve in CURVES:
        for budget, gap in ((0.15, None), (0.05, None), (0.3, 2), (0.5, 0), (1.0, None), (2.0, 1), (0.2, 10**9),
                            (0.2, 2.5), (0.2, -1), (0.01, None)):
            if gap == 10**9 and curve.size > 60:
                continue  # the reference runs one pass per gap value: slow; the test below covers 200 clips
            new = postprocess.summary_points(curve, 2.0, budget, gap)
            # Past the video's length every gap blocks the same clips.
            ref = ref_summary_points(curve, 2.0, budget, gap if gap != 10**9 else curve.size + 1)
            np.testing.assert_array_equal(new, ref, err_msg=f"{label} budget={budget} gap={gap}")


def test_summary_points_huge_gap_is_the_video_length():
    # A gap longer than the video blocks exactly what a gap of the video's length blocks, without looping once
    # per gap value (the reference would run 10**9 passes) and without a mark array of that size.
    curve = planted_curve(np.random.default_rng(3), 200)
    np.testing.assert_array_equal(postprocess.summary_points(curve, 2.0, 0.1, 10**9),
                                  ref_summary_points(curve, 2.0, 0.1, 201))
