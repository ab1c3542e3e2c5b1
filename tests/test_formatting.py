"""One format per kind of number for every front end: times mm:ss under an hour, h:mm:ss at or over, halves
rounded up; scores with four decimals; lengths as 6.0 s, 2 min 05 s, 1 h 02 min."""

from __future__ import annotations

import io
from contextlib import redirect_stdout

import numpy as np
import pytest

from app import builders
from univtg_core import Moment, Prediction, format_length, format_score, format_span, format_time
from univtg_core.cli import _describe_index, _print_prediction


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


def test_one_format_for_scores_and_lengths():
    assert [format_score(s) for s in (0.7, 0.514, 0.73, 1, -0.04, float("nan"))] == \
        ["0.7000", "0.5140", "0.7300", "1.0000", "-0.0400", "–"]
    assert format_length(0.42) == "0.4 s"
    assert format_length(10) == "10.0 s"  # not "10 s" next to "6.0 s"
    assert format_length(6) == "6.0 s"
    assert format_length(59.96) == "1 min 00 s"  # never "60.0 s"
    assert format_length(125) == "2 min 05 s"
    assert format_length(600) == "10 min 00 s"
    assert format_length(3720) == "1 h 02 min"
    assert format_length(-3) == "0.0 s" and format_length(float("nan")) == "0.0 s"
    assert format_span(83, 3725, 7200.0) == "0:01:23–1:02:05" and format_span(4, 6, 30.0) == "00:04–00:06"


def test_the_cli_and_the_app_print_the_same_lengths_and_scores():
    """A two-hour film: the CLI's index line and the app's status line give its length and the indexing time
    in one format, and the CLI's score column is the table's score cell."""
    from types import SimpleNamespace

    index = SimpleNamespace(path="film.mp4", from_cache=False, seconds=125.4, duration=7200.0, n_clips=3600,
                            clip_len=2.0, info=SimpleNamespace(fps=25.0))
    line = _describe_index(index)
    status = builders.status_line("“q”", "text", 1, 0, {"n_clips": 3600, "duration": 7200.0, "from_cache": False,
                                                       "seconds": 125.4}, 0.1, "zero-shot")
    assert line == "film.mp4: 2 h 00 min, 25.00 fps, 3600 clips of 2 s (indexed in 2 min 05 s)"
    assert "2 h 00 min of video in 2 min 05 s" in status
    pred = Prediction(moments=(Moment(83.0, 3725.0, 0.514),), saliency=np.zeros(3), clip_len=2.0, duration=7200.0,
                      highlight=90.0, summary=(90.0,), query="q", mode="zero-shot")
    printed = io.StringIO()
    with redirect_stdout(printed):
        _print_prediction(pred, top_k=1)
    row = builders.moment_rows(pred.moments, pred.duration)[0]
    assert row[4] == "0.5140" and f"{row[1]}–{row[2]}  " in printed.getvalue()
    assert printed.getvalue().splitlines()[3].rstrip().endswith(" 0.5140")
