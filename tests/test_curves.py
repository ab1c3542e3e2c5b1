"""What a front end shows of a long video: the curve in screen-sized buckets (peaks kept), a zoomed range around
a moment, and the time an index has left."""

from __future__ import annotations

import numpy as np
import pytest

from univtg_core import TimeLeft, curve_view, zoom_range


def test_a_two_hour_curve_fits_a_screen_and_keeps_its_peak():
    curve = np.zeros(36000)
    curve[12345] = 5.0  # one clip of 0.2 s
    view = curve_view(curve, 0.2, max_points=800)
    assert len(view.times) <= 800 and (view.start, view.end) == (0.0, 7200.0)
    peak = int(np.argmax(view.highs))
    assert view.highs[peak] == 5.0 and abs(view.times[peak] - 12345 * 0.2) < 7200 / 800
    assert view.values.max() < 5.0 and view.lows.min() == 0.0  # the mean of its bucket, the bucket's minimum
    assert np.all(np.diff(view.times) > 0)


def test_a_zoomed_range_shows_every_clip_of_it():
    curve = np.arange(3600, dtype=float)
    view = curve_view(curve, 2.0, start=100.0, end=160.0)
    assert (view.start, view.end) == (100.0, 160.0) and len(view.times) == 30
    np.testing.assert_array_equal(view.values, np.arange(50, 80))
    np.testing.assert_allclose(view.times, np.arange(50, 80) * 2.0 + 1.0)


def test_zoom_range_gives_context_and_stays_inside_the_video():
    assert zoom_range(7200, 100, 110) == (90.0, 120.0)  # three times the moment, centred
    assert zoom_range(7200, 7190, 7200) == (7170.0, 7200.0)  # pushed inside the end
    assert zoom_range(7200, 0, 2) == (0.0, 30.0)  # at least 30 s
    assert zoom_range(20, 5, 6) == (0.0, 20.0)  # never more than the video
    assert zoom_range(7200, 1000, 1010, width=600) == (705.0, 1305.0)
    with pytest.raises(ValueError):
        zoom_range(100, 50, 40)


def test_time_left_is_measured_over_this_run_only():
    clock = iter([0.0, 1.0, 2.0, 3.0, 4.0])
    left = TimeLeft(clock=lambda: next(clock))
    assert left.update(300, 600) is None  # a resumed index starts at 300: nothing measured yet
    assert left.update(310, 600) == pytest.approx(29.0)  # 10 clips/s, 290 to go
    assert left.update(320, 600) == pytest.approx(28.0)
    assert left.describe() == "320 of 600 clips, about 0:28 left" and left.fraction == pytest.approx(320 / 600)
