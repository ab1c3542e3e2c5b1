"""Unit tests of the app's pure builders: the content the page shows, checked value by value."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from app import builders
from univtg_core.results import Moment, Prediction


def _prediction(**overrides) -> Prediction:
    values = dict(
        moments=(Moment(10.0, 20.0, 0.91), Moment(0.0, 4.0, 0.42), Moment(24.0, 30.0, 0.2), Moment(4, 6, 0.1)),
        saliency=np.array([0.1, 0.1, 0.2, 0.2, 0.1, 0.8, 0.9, 1.0, 0.9, 0.7, 0.2, 0.1, 0.3, 0.2, 0.1]),
        clip_len=2.0,
        duration=30.0,
        highlight=15.0,
        summary=(1.0, 13.0, 25.0),
        query="cyan",
        mode="zero-shot",
    )
    values.update(overrides)
    return Prediction(**values)


def test_times_use_the_core_format_with_hours_for_long_videos():
    """The app shows times exactly as the CLI prints them (univtg_core.format_time, tested there)."""
    pred = _prediction()
    assert builders.moment_rows(pred.moments, 30.0)[0][1:3] == ["00:10", "00:20"]
    assert builders.gallery_points(20.5, (), duration=30.0) == [(20.5, "★ Highlight · 00:21")]  # halves up


def test_format_duration():
    assert builders.format_duration(0.42) == "0.4 s"
    assert builders.format_duration(12.4) == "12 s"
    assert builders.format_duration(125) == "2 min 05 s"
    assert builders.format_duration(600) == "10 min"
    assert builders.format_duration(3720) == "1 h 02 min"


def test_moment_rows_content():
    pred = _prediction()
    thumbs = ["![m1](data:x)", None, "![m3](data:y)"]
    rows = builders.moment_rows(pred.moments, pred.duration, thumbs, top_k=3)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0] == [1, "00:10", "00:20", "10 s", 0.91, "![m1](data:x)"]
    assert rows[1] == [2, "00:00", "00:04", "4.0 s", 0.42, ""]  # no thumbnail -> empty cell
    assert rows[2][1:4] == ["00:24", "00:30", "6.0 s"]
    assert len(rows[0]) == len(builders.TABLE_HEADERS) == len(builders.TABLE_DATATYPES)


def test_moment_rows_long_video_uses_hours():
    rows = builders.moment_rows([Moment(3605.0, 3720.0, 0.5), Moment(5.0, 9.0, 0.4)], duration=4000.0)
    assert rows[0][1:3] == ["1:00:05", "1:02:00"]
    assert rows[1][1:3] == ["0:00:05", "0:00:09"]  # same format on every row


def test_moment_rows_empty_and_thumb_times():
    assert builders.moment_rows([], 30.0) == []
    pred = _prediction()
    assert builders.moment_thumb_times(pred.moments, top_k=2) == [15.0, 2.0]


def test_thumbnail_markdown_is_a_small_jpeg():
    frame = np.zeros((240, 320, 3), dtype=np.uint8)
    frame[..., 2] = 255
    md = builders.thumbnail_markdown(frame, alt="moment 1", max_side=64)
    assert md.startswith("![moment 1](data:image/jpeg;base64,")
    from PIL import Image

    payload = md.split("base64,", 1)[1].rstrip(")")
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert image.format == "JPEG"
    assert max(image.size) == 64
    r, g, b = image.convert("RGB").getpixel((10, 10))
    assert b > 200 and r < 40 and g < 40


def test_gallery_points_captions():
    points = builders.gallery_points(15.0, (25.0, 1.0, 13.0), duration=30.0)
    assert points == [
        (15.0, "★ Highlight · 00:15"),
        (1.0, "Summary · 00:01"),
        (13.0, "Summary · 00:13"),
        (25.0, "Summary · 00:25"),
    ]
    long = builders.gallery_points(3700.0, (), duration=7200.0)
    assert long == [(3700.0, "★ Highlight · 1:01:40")]


def test_time_ticks_are_round():
    assert builders.time_ticks(30.0) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    ticks = builders.time_ticks(600.0)
    assert ticks[:3] == [0.0, 120.0, 240.0] and len(ticks) <= 8
    assert builders.time_ticks(0) == [0.0]


def test_curve_spec_content():
    spec = builders.curve_spec(_prediction(), shade_top=3)
    assert spec.spans == ((10.0, 20.0, 0.91), (0.0, 4.0, 0.42), (24.0, 30.0, 0.2))
    assert spec.highlight == (15.0, 1.0)  # clip 7 covers [14, 16)
    assert spec.summary == ((1.0, 0.1), (13.0, 0.9), (25.0, 0.3))  # value of the clip holding each point
    assert spec.edges[0] == 0.0 and spec.edges[-1] == 30.0 and len(spec.edges) == 16
    assert spec.tick_labels[:3] == ("00:00", "00:05", "00:10")
    assert spec.duration == 30.0


def _artists(fig, gid_prefix):
    ax = fig.axes[0]
    found = [a for a in ax.get_children() if (a.get_gid() or "").startswith(gid_prefix)]
    return sorted(found, key=lambda a: a.get_gid())


def test_saliency_figure_shades_moments_and_marks_points(tmp_path):
    spec = builders.curve_spec(_prediction(), shade_top=2)
    fig = builders.saliency_figure(spec)
    ax = fig.axes[0]

    shaded = _artists(fig, "moment-")
    assert [a.get_gid() for a in shaded] == ["moment-0", "moment-1"]
    x0, x1 = _span_extent(shaded[0])
    assert (x0, x1) == pytest.approx((10.0, 20.0))
    assert _span_extent(shaded[1]) == pytest.approx((0.0, 4.0))
    assert shaded[0].get_alpha() > shaded[1].get_alpha()  # the top moment stands out
    ranks = [a.get_text().strip() for a in _artists(fig, "rank-")]
    assert ranks == ["#1", "#2"]

    (highlight,) = [a for a in _artists(fig, "highlight") if a.get_gid() == "highlight"]
    hx, hy = highlight.get_data()
    assert list(hx) == [15.0] and list(hy) == [1.0]
    (summary,) = _artists(fig, "summary")
    assert list(summary.get_xdata()) == [1.0, 13.0, 25.0]

    assert ax.get_xlim() == (0.0, 30.0)
    png = tmp_path / "curve.png"
    builders.figure_png(fig, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [t.get_text() for t in ax.get_xticklabels()]  # drawn now, so labels are formatted
    assert labels[:3] == ["00:00", "00:05", "00:10"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"Top moment", "Other moments", "Saliency", "Summary", "Highlight"} <= set(legend)


def _span_extent(patch):
    """x extent of an axvspan: a Rectangle in recent matplotlib, a Polygon in older ones."""
    if hasattr(patch, "get_width"):
        return patch.get_x(), patch.get_x() + patch.get_width()
    xs = np.asarray(patch.get_xy())[:, 0]
    return float(xs.min()), float(xs.max())


def test_curve_points_and_slug():
    pts = builders.curve_points(_prediction(duration=29.0))
    assert pts["time"][:3] == [1.0, 3.0, 5.0]
    assert pts["time"][-1] == 29.0  # the last clip's centre is clamped to the video
    assert pts["saliency"][7] == 1.0
    assert builders.slug("  A man: opens the DOOR!! ") == "a-man-opens-the-door"
    assert builders.slug("") == "query"
    assert builders.slug("???", fallback="image-query") == "image-query"


def test_session_folders_are_private_unique_and_cleaned(tmp_path):
    import os

    from app.session import Session, SessionStore

    store = SessionStore(tmp_path / "root", ttl=60)
    a, b = store.open("hash-a"), store.open("hash-b")
    assert isinstance(a, Session) and a.folder != b.folder and a.folder.parent == store.root
    first, second = a.new_path("video-query-saliency", ".png"), a.new_path("video-query-saliency", ".png")
    assert first != second and first.parent == a.folder and first.suffix == ".png"  # never a fixed name
    first.write_bytes(b"x")

    store.close(a)  # gr.State's delete_callback
    assert not a.folder.exists() and b.folder.exists()
    store.close_hash("../../etc")  # a hostile hash cannot leave the root
    assert (tmp_path / "root").exists()
    store.close_hash("hash-b")  # demo.unload
    assert not b.folder.exists()

    stale, fresh = store.open("stale"), store.open("fresh")
    old = stale.folder.stat().st_mtime - 3600
    os.utime(stale.folder, (old, old))
    assert store.sweep(every=0) == 1
    assert not stale.folder.exists() and fresh.folder.exists()
    store.destroy()
    assert not store.root.exists()
