"""Unit tests of the app's pure builders: the content the page shows, checked value by value."""

from __future__ import annotations

import base64
import io
import json
from contextlib import redirect_stdout

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


# The example: NMS at IoU 0.7 keeps four moments of one event.
NESTED = (Moment(4.0, 10.0, 0.9), Moment(4.0, 6.0, 0.8), Moment(20.0, 24.0, 0.7), Moment(4.0, 8.0, 0.6),
          Moment(8.0, 10.0, 0.5))


def test_times_use_the_core_format_with_hours_for_long_videos():
    """The app shows times exactly as the CLI prints them (univtg_core.format_time, tested there)."""
    pred = _prediction()
    assert builders.moment_rows(pred.moments, 30.0)[0][1:3] == ["00:10", "00:20"]
    assert builders.gallery_points(20.5, (), duration=30.0) == [(20.5, "★ Highlight · 00:21")]  # halves up


def test_the_cli_prints_scores_as_the_page_does():
    from univtg_core.cli import _print_prediction

    pred = _prediction(moments=(Moment(10.0, 20.0, 0.73),))
    printed = io.StringIO()
    with redirect_stdout(printed):
        _print_prediction(pred, top_k=1)
    row = builders.moment_rows(pred.moments, pred.duration)[0]
    assert row[4] == "0.7300" and row[4] in printed.getvalue()


def test_fold_nested_shows_each_event_once():
    shown = builders.fold_nested(NESTED)
    assert [(s.moment.start, s.moment.end) for s in shown] == [(4.0, 10.0), (20.0, 24.0)]
    assert [(m.start, m.end) for m in shown[0].folded] == [(4.0, 6.0), (4.0, 8.0), (8.0, 10.0)]
    assert shown[1].folded == ()
    dropped = builders.fold_nested(NESTED, "drop")
    assert [(s.moment.start, s.moment.end, s.folded) for s in dropped] == [(4.0, 10.0, ()), (20.0, 24.0, ())]
    kept = builders.fold_nested(NESTED, "keep")
    assert [s.moment for s in kept] == list(NESTED)
    with pytest.raises(ValueError, match="fold, drop, keep"):
        builders.fold_nested(NESTED, "hide")


def test_fold_nested_folds_a_wider_worse_moment_under_the_better_one():
    wide_but_worse = (Moment(12.0, 14.0, 0.9), Moment(10.0, 20.0, 0.4), Moment(13.0, 22.0, 0.3))
    shown = builders.fold_nested(wide_but_worse)
    assert [(s.moment.start, s.moment.end) for s in shown] == [(12.0, 14.0), (13.0, 22.0)]  # overlap, not nested
    assert [(m.start, m.end) for m in shown[0].folded] == [(10.0, 20.0)]
    # An edge that sticks out by less than the tolerance still counts as inside.
    assert len(builders.fold_nested((Moment(4.0, 10.0, 0.9), Moment(3.8, 6.0, 0.5)), tolerance=0.5)) == 1
    assert len(builders.fold_nested((Moment(4.0, 10.0, 0.9), Moment(3.8, 6.0, 0.5)), tolerance=0.0)) == 2


def test_moment_rows_content():
    pred = _prediction()
    thumbs = ["![m1](data:x)", None, "![m3](data:y)"]
    rows = builders.moment_rows(pred.moments, pred.duration, thumbs, top_k=3)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[0] == [1, "00:10", "00:20", "10.0 s", "0.9100", "![m1](data:x)"]
    assert rows[1] == [2, "00:00", "00:04", "4.0 s", "0.4200", ""]  # no thumbnail -> empty cell
    assert rows[2][1:4] == ["00:24", "00:30", "6.0 s"]
    assert len(rows[0]) == len(builders.TABLE_HEADERS) == len(builders.TABLE_DATATYPES)


def test_rows_name_the_folded_moments():
    rows = builders.moment_rows(builders.fold_nested(NESTED), 30.0, ["![m1](data:x)"])
    assert len(rows) == 2
    assert rows[0][5] == "![m1](data:x)\n\nalso 00:04–00:06, 00:04–00:08 and 1 more"
    assert rows[1][5] == ""


def test_moment_rows_long_video_uses_hours():
    rows = builders.moment_rows([Moment(3605.0, 3720.0, 0.5), Moment(5.0, 9.0, 0.4)], duration=4000.0)
    assert rows[0][1:4] == ["1:00:05", "1:02:00", "1 min 55 s"]
    assert rows[1][1:3] == ["0:00:05", "0:00:09"]  # same format on every row


def test_moment_rows_empty_and_thumb_times():
    assert builders.moment_rows([], 30.0) == []
    pred = _prediction()
    assert builders.moment_thumb_times(pred.moments, top_k=2) == [15.0, 2.0]
    assert builders.moment_thumb_times(builders.fold_nested(NESTED)) == [7.0, 22.0]


def test_shown_result_agrees_with_the_table():
    pred = _prediction(moments=NESTED)
    shown = builders.fold_nested(NESTED)
    result = builders.shown_result(pred, shown, nested="fold", kind="text + image", summary_shown=(13.0,))
    assert result["pred_relevant_windows"] == [[4.0, 10.0, 0.9], [20.0, 24.0, 0.7]]
    assert result["folded_windows"] == [[4.0, 6.0, 0.8, 1], [4.0, 8.0, 0.6, 1], [8.0, 10.0, 0.5, 1]]
    assert result["nested_moments"] == "fold" and result["query_kind"] == "text + image"
    assert result["pred_saliency_scores"] == builders.prediction_dict(pred)["pred_saliency_scores"]
    assert result["pred_summary"] == [1.0, 13.0, 25.0] and result["summary_shown"] == [13.0]
    rows = builders.moment_rows(shown, pred.duration)
    readable = result["readable"]["moments"]
    assert [[r["rank"], r["start"], r["end"], r["length"], r["score"]] for r in readable] == [r[:5] for r in rows]
    assert readable[0]["folded"][0] == {"start": "00:04", "end": "00:06", "length": "2.0 s", "score": "0.8000"}
    assert result["readable"]["highlight"] == "00:15" and result["readable"]["summary_shown"] == ["00:13"]
    json.dumps(result)  # plain JSON all through


def test_prediction_dict_takes_either_name():
    class Renamed:
        def to_dict(self):
            return {"renamed": True}

    assert builders.prediction_dict(Renamed()) == {"renamed": True}
    assert builders.prediction_dict(_prediction())["pred_highlight"] == 15.0


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


def test_pick_summary_keeps_the_most_salient_in_time_order():
    saliency = np.array([0.1, 0.9, 0.2, 0.8, 0.3, 0.95])
    summary = (1.0, 3.0, 5.0, 7.0, 9.0, 11.0)  # clip centres
    assert builders.pick_summary(summary, saliency, 2.0, limit=3) == (3.0, 7.0, 11.0)
    assert builders.pick_summary(summary, saliency, 2.0, limit=10) == summary
    assert builders.summary_caption(3, 540, 6.0) == \
        "**Summary video:** the 3 most salient of 540 summary points · 6.0 s"
    assert builders.summary_caption(2, 2, 4.0) == "**Summary video:** 2 summary points · 4.0 s"
    assert builders.summary_caption(0, 0, None) == "No summary points."


def test_time_ticks_are_round():
    assert builders.time_ticks(30.0) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    ticks = builders.time_ticks(600.0)
    assert ticks[:3] == [0.0, 120.0, 240.0] and len(ticks) <= 8
    assert builders.time_ticks(0) == [0.0]
    assert builders.time_ticks(3660.0, start=3593.0) == [3600.0 + 10 * i for i in range(7)]  # round, inside


def test_zoom_window_stays_inside_the_video():
    assert builders.zoom_window((10.0, 20.0), 30.0, 2.0) == (5.0, 25.0)  # the moment and half again each side
    assert builders.zoom_window((0.0, 2.0), 7200.0, 2.0) == (0.0, 16.0)  # at least 8 clips, moved inside
    assert builders.zoom_window((7190.0, 7200.0), 7200.0, 2.0) == (7180.0, 7200.0)
    assert builders.zoom_window((0.0, 30.0), 20.0, 2.0) == (0.0, 20.0)


def test_curve_spec_content():
    spec = builders.curve_spec(_prediction(), shade_top=3)
    assert spec.spans == ((10.0, 20.0, 0.91), (0.0, 4.0, 0.42), (24.0, 30.0, 0.2))
    assert spec.highlight == (15.0, 1.0)  # clip 7 covers [14, 16)
    assert spec.summary == ((1.0, 0.1), (13.0, 0.9), (25.0, 0.3))  # value of the clip holding each point
    assert spec.edges[0] == 0.0 and spec.edges[-1] == 30.0 and len(spec.edges) == 16
    assert spec.tick_labels[:3] == ("00:00", "00:05", "00:10")
    assert spec.duration == 30.0
    assert spec.zoom == (5.0, 25.0) and spec.playing is None  # zoomed on the top moment by default


def test_curve_spec_shades_what_the_table_shows_and_zooms_on_what_plays():
    pred = _prediction(moments=NESTED)
    spec = builders.curve_spec(pred, shade_top=3, moments=builders.fold_nested(NESTED), playing=(21.0, 20.0))
    assert spec.spans == ((4.0, 10.0, 0.9), (20.0, 24.0, 0.7))  # no nested shading
    assert spec.playing == (20.0, 21.0)
    assert spec.zoom == (12.5, 28.5)  # 8 clips wide around the playing second


def _artists(ax, gid_prefix):
    found = [a for a in ax.get_children() if (a.get_gid() or "").startswith(gid_prefix)]
    return sorted(found, key=lambda a: a.get_gid())


def test_saliency_figure_shades_moments_and_marks_points(tmp_path):
    spec = builders.curve_spec(_prediction(), shade_top=2, playing=(10.0, 20.0))
    fig = builders.saliency_figure(spec)
    overview, zoomed = fig.axes

    shaded = [a for a in _artists(overview, "moment-") if not a.get_gid().endswith("-zoom")]
    assert [a.get_gid() for a in shaded] == ["moment-0", "moment-1"]
    assert _span_extent(shaded[0]) == pytest.approx((10.0, 20.0))
    assert _span_extent(shaded[1]) == pytest.approx((0.0, 4.0))
    assert shaded[0].get_alpha() > shaded[1].get_alpha()  # the top moment stands out
    ranks = [a.get_text().strip() for a in _artists(overview, "rank-")]
    assert ranks == ["#1", "#2"]

    (highlight,) = [a for a in _artists(overview, "highlight") if a.get_gid() == "highlight"]
    hx, hy = highlight.get_data()
    assert list(hx) == [15.0] and list(hy) == [1.0]
    (summary,) = _artists(overview, "summary")
    assert list(summary.get_xdata()) == [1.0, 13.0, 25.0]
    (playing,) = _artists(overview, "playing")
    assert _span_extent(playing) == pytest.approx((10.0, 20.0))
    (zoom_range,) = _artists(overview, "zoom-range")
    assert _span_extent(zoom_range) == pytest.approx((5.0, 25.0))

    assert overview.get_xlim() == (0.0, 30.0)
    assert zoomed.get_xlim() == (5.0, 25.0)  # the zoomed panel: the playing moment and its surroundings
    assert [a.get_gid() for a in _artists(zoomed, "playing")] == ["playing-zoom"]
    png = tmp_path / "curve.png"
    builders.figure_png(fig, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labels = [t.get_text() for t in overview.get_xticklabels()]  # drawn now, so labels are formatted
    assert labels[:3] == ["00:00", "00:05", "00:10"]
    assert [t.get_text() for t in zoomed.get_xticklabels()][:2] == ["00:05", "00:10"]
    legend = [t.get_text() for t in overview.get_legend().get_texts()]
    assert {"Top moment", "Other moments", "Saliency", "Summary", "Highlight", "Playing"} <= set(legend)


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
    assert pts["at"][:2] == ["00:01", "00:03"]
    assert builders.slug("  A man: opens the DOOR!! ") == "a-man-opens-the-door"
    assert builders.slug("") == "query"
    assert builders.slug("???", fallback="image-query") == "image-query"


def test_curve_points_of_a_film_are_sized_for_a_screen_and_keep_the_peaks():
    saliency = np.zeros(3600)
    saliency[2345] = 5.0  # one clip of a two-hour film
    pts = builders.curve_points(_prediction(saliency=saliency, duration=7200.0), max_points=800)
    assert len(pts["time"]) == 800 and max(pts["saliency"]) == 5.0
    peak = pts["time"][int(np.argmax(pts["saliency"]))]
    assert abs(peak - 2345 * 2) < 7200 / 800 * 2  # within one bin of where it is
    assert pts["time"] == sorted(pts["time"]) and pts["at"][-1].count(":") == 2  # hours on a film


def test_progress_text_says_how_long_is_left():
    assert builders.progress_text(0, 3600, None) == "Encoding clips 0/3600"
    assert builders.progress_text(360, 3600, None) == "Encoding clips 360/3600"  # no rate yet
    assert builders.progress_text(360, 3600, 540.0) == "Encoding clips 360/3600 · about 9 min 00 s left"
    assert builders.progress_text(3600, 3600, 0.0) == "Encoding clips 3600/3600 · about 0.0 s left"


def test_the_query_that_ran_is_said_in_words():
    assert builders.query_kind("a dog", "/tmp/x.png") == "text + image"
    assert builders.query_kind("a dog", None) == "text" and builders.query_kind("", "x.png") == "image"
    assert builders.query_label("the cyan part", "cyan.png") == "“the cyan part” + image cyan.png"
    assert builders.query_label("x" * 100, None) == "“" + "x" * 79 + "…”"
    line = builders.status_line("“a”", "text", 2, 3, {"n_clips": 15, "duration": 30.0, "from_cache": False,
                                                     "seconds": 8.5}, 0.0123, "zero-shot")
    assert line == ("**Query (text):** “a” · 2 moments (3 nested ones folded) · indexed 15 clips, 30.0 s of video "
                    "in 8.5 s · query 12 ms · mode: zero-shot")


def test_an_examples_stored_answer_does_not_claim_timings():
    """A cached example answers at once: its status names the query and what came back, never the indexing and
    query times of the run that stored it."""
    from app.handlers import example_status

    result = {"pred_relevant_windows": [[10.0, 20.0, 0.7]], "folded_windows": [[12.0, 14.0, 0.5, 1]],
              "query_kind": "text + image", "mode": "zero-shot"}
    line = example_status(result, "  a red screen ", "/cache/9f3/cyan.png")
    assert line == ("**Query (text + image):** “a red screen” + image cyan.png · 1 moment (1 nested one folded) · "
                    "the example's stored answer · mode: zero-shot")


def test_log_summary_is_bounded_and_escaped():
    assert builders.log_summary("a dog") == "'a dog'"
    long = builders.log_summary("x" * 100_000)
    assert len(long) < 120 and long.endswith("… (100000 characters)")
    hostile = builders.log_summary("red\x1b[31m\r\nfake log line\u202eevil")
    assert "\x1b" not in hostile and "\n" not in hostile and "\u202e" not in hostile
    assert "\\x1b" in hostile and "\\u202e" in hostile
    assert builders.log_summary("🐶 كلب") == "'🐶 كلب'"  # printable text stays readable


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


def test_session_files_are_written_once_and_atomically(tmp_path):
    from app.session import SessionStore

    session = SessionStore(tmp_path / "root").open("s")
    seen = []

    def writer(path):
        seen.append(path)
        assert not path.exists() and path.name.startswith(".")  # a hidden name while it is being written
        path.write_text("done")

    one, two = session.write("thumb", ".jpg", writer), session.write("thumb", ".jpg", writer)
    assert one != two and one.read_text() == two.read_text() == "done"
    assert seen[0] not in (one, two) and not any(p.exists() for p in seen)

    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        session.write("thumb", ".jpg", broken)
    assert sorted(p.name for p in session.folder.iterdir()) == sorted([one.name, two.name])  # nothing half-done


def test_a_playable_copy_stands_for_its_original(tmp_path):
    from app.session import SessionStore

    session = SessionStore(tmp_path / "root").open("s")
    original = tmp_path / "upload.mkv"
    original.write_bytes(b"video")
    copy = session.new_path("upload-playable", ".mp4")
    session.remember_original(copy, original)
    served = tmp_path / "gradio-cache" / "0123abcd" / copy.name  # Gradio serves a copy under the same name
    assert session.original_of(served) == str(original)
    assert session.original_of(tmp_path / "other.mp4") == str(tmp_path / "other.mp4")
    original.unlink()
    assert session.original_of(served) == str(served)  # nothing to stand for any more
