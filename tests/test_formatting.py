"""One time format for every front end: mm:ss under an hour, h:mm:ss at or over, halves rounded up."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pytest

from app import builders
from univtg_core import Moment, Prediction, format_time
from univtg_core.cli import _print_prediction


@pytest.mark.parametrize(
    ("seconds", "duration", "expected"),
    [
        (0, None, "00:00"),
        (5.4, None, "00:05"),
        (19.96, None, "00:20"),  # rounds to the nearest second, as a player shows it
        (20.5, None, "00:21"),  # halves up (round() would give 00:20)
        (2.5, None, "00:03"),
        (59.5, None, "01:00"),
        (83, None, "01:23"),
        (3599.4, None, "59:59"),
        (3599.5, None, "1:00:00"),
        (3600, None, "1:00:00"),  # a time of an hour or more shows hours
        (3725, None, "1:02:05"),
        (36000, None, "10:00:00"),
        (83, 3600.0, "0:01:23"),  # a video of an hour or more shows hours on every time, so rows line up
        (83, 3599.4, "01:23"),
        (83, 3599.5, "0:01:23"),  # the video's length is rounded as its times are
        (-3, None, "00:00"),
        (float("nan"), None, "--:--"),
        (float("inf"), 7200.0, "-:--:--"),
        (83, float("nan"), "01:23"),  # an unknown length says nothing about hours
    ],
)
def test_format_time(seconds, duration, expected):
    assert format_time(seconds, duration=duration) == expected


def _prediction(duration: float, start: float, end: float, highlight: float) -> Prediction:
    return Prediction(moments=(Moment(start, end, 0.9),), saliency=np.zeros(3), clip_len=2.0, duration=duration,
                      highlight=highlight, summary=(highlight,), query="q", mode="zero-shot")


@pytest.mark.parametrize(
    ("duration", "start", "end", "highlight", "span", "point"),
    [
        (30.0, 10.5, 20.5, 20.5, "00:11–00:21", "00:21"),  # halves up in both front ends
        (7200.0, 83.0, 3725.0, 4000.0, "0:01:23–1:02:05", "1:06:40"),  # hours on every time of a long video
    ],
)
def test_the_cli_and_the_app_print_the_same_times(duration, start, end, highlight, span, point):
    pred = _prediction(duration, start, end, highlight)
    printed = io.StringIO()
    with redirect_stdout(printed):
        _print_prediction(pred, top_k=1)
    row = builders.moment_rows(pred.moments, duration)[0]
    caption = builders.gallery_points(pred.highlight, pred.summary, duration)[0][1]
    assert f"{row[1]}–{row[2]}" == span and caption.endswith(point)
    assert span in printed.getvalue()
    assert f"top highlight: {point}" in printed.getvalue() and f"summary: {point}" in printed.getvalue()
