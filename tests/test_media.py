"""ffmpeg helpers: synthetic videos, cutting and joining clips, errors, and no shell anywhere."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from univtg_core import media, video
from univtg_core.errors import VideoReadError

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _colours(path: Path, clip_len: float) -> list[tuple[int, int, int]]:
    frames = np.concatenate(list(video.iter_clip_frames(path, clip_len=clip_len, size=32)))
    means = frames.reshape(len(frames), -1, 3).mean(axis=1)
    assert np.all((means < 20) | (means > 235)), means
    return [tuple(int(v > 127) * 255 for v in m) for m in means]


def _streams(path: Path) -> dict[str, str]:
    import av

    with av.open(str(path)) as container:
        return {s.type: s.codec_context.name for s in container.streams}


@pytest.fixture(scope="module")
def rgb_with_audio(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "rgb.mp4"
    return media.make_colour_video(path, [(RED, 4), (GREEN, 4), (BLUE, 4)], fps=10, audio=True)


def test_ffmpeg_is_the_bundled_binary():
    exe = Path(media.ffmpeg_exe())
    assert exe.is_file()
    assert "imageio_ffmpeg" in str(exe)


def test_make_colour_video(rgb_with_audio):
    info = video.probe_video(rgb_with_audio)
    assert info.duration == pytest.approx(12.0, abs=0.05)
    assert (info.width, info.height, info.n_frames) == (160, 120, 120)
    assert _streams(rgb_with_audio) == {"video": "h264", "audio": "aac"}
    assert _colours(rgb_with_audio, 2.0) == [RED, RED, GREEN, GREEN, BLUE, BLUE]


def test_make_colour_video_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        media.make_colour_video(tmp_path / "a.mp4", [])
    with pytest.raises(ValueError, match="even"):
        media.make_colour_video(tmp_path / "a.mp4", [(RED, 1)], size=(161, 120))
    with pytest.raises(ValueError, match="segment"):
        media.make_colour_video(tmp_path / "a.mp4", [((300, 0, 0), 1)])
    with pytest.raises(ValueError, match="segment"):
        media.make_colour_video(tmp_path / "a.mp4", [(RED, 0)])


def test_ffmpeg_failure_becomes_video_read_error_with_its_last_line(tmp_path):
    with pytest.raises(VideoReadError, match="ffmpeg could not write a colour video.*[Ee]ncoder"):
        media.make_colour_video(tmp_path / "a.mp4", [(RED, 1)], codec="no-such-encoder")


def test_make_test_pattern_video(tmp_path):
    path = media.make_test_pattern_video(tmp_path / "pattern.mp4", duration=2, fps=30, size=(192, 108))
    info = video.probe_video(path)
    assert (info.width, info.height, info.n_frames) == (192, 108, 60)
    assert info.fps == pytest.approx(30.0)
    frames = np.concatenate(list(video.iter_clip_frames(path, clip_len=1.0, size=64)))
    assert frames.std() > 20  # a pattern, not a flat colour


def test_cut_clip_is_browser_friendly_and_cuts_the_right_span(rgb_with_audio, tmp_path):
    dst = tmp_path / "-odd name:1.mp4"  # a leading dash and a colon must not be read as option/protocol
    out = media.cut_clip(rgb_with_audio, dst, 3.0, 9.0)
    assert out == dst and dst.is_file()
    info = video.probe_video(dst)
    assert info.duration == pytest.approx(6.0, abs=0.15)
    assert _streams(dst) == {"video": "h264", "audio": "aac"}
    data = dst.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat"), "moov atom must come first (+faststart)"
    import av

    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    # 3-9 s of red 0-4 | green 4-8 | blue 8-12 -> clip centres at 1, 3, 5 s of the cut = 4, 6, 8 s
    assert _colours(dst, 2.0) == [RED, GREEN, GREEN]


def test_cut_clip_end_past_the_video_is_clipped(rgb_with_audio, tmp_path):
    out = media.cut_clip(rgb_with_audio, tmp_path / "tail.mp4", 10.0, 50.0)
    assert video.probe_video(out).duration == pytest.approx(2.0, abs=0.15)


def test_concat_clips_joins_spans_in_the_given_order(rgb_with_audio, tmp_path):
    out = media.concat_clips(rgb_with_audio, [(0, 2), (10, 12), (5, 7)], tmp_path / "summary.mp4")
    info = video.probe_video(out)
    assert info.duration == pytest.approx(6.0, abs=0.15)
    assert _streams(out) == {"video": "h264", "audio": "aac"}
    assert _colours(out, 1.0) == [RED, RED, BLUE, BLUE, GREEN, GREEN]


def test_summary_spans_merge_and_clamp():
    assert media.summary_spans((1.0, 13.0, 25.0), 2.0, 30.0) == [(0.0, 2.0), (12.0, 14.0), (24.0, 26.0)]
    # neighbouring clips merge into one span; the last one is clamped to the duration
    assert media.summary_spans((3.0, 5.0, 29.5), 2.0, 30.0) == [(2.0, 6.0), (28.5, 30.0)]
    assert media.summary_spans((), 2.0, 30.0) == []


def test_summary_video_joins_the_clips_around_the_summary_points(rgb_with_audio, tmp_path):
    prediction = SimpleNamespace(summary=(1.0, 9.0), clip_len=2.0, duration=12.0)  # red 0-2 s, blue 8-10 s
    out = media.write_summary_video(rgb_with_audio, prediction, tmp_path / "summary.mp4")
    assert out == tmp_path / "summary.mp4"
    assert video.probe_video(out).duration == pytest.approx(4.0, abs=0.15)
    assert _colours(out, 1.0) == [RED, RED, BLUE, BLUE]
    empty = SimpleNamespace(summary=(), clip_len=2.0, duration=12.0)
    assert media.write_summary_video(rgb_with_audio, empty, tmp_path / "none.mp4") is None
    assert not (tmp_path / "none.mp4").exists()


def test_concat_clips_without_audio(tmp_path):
    src = media.make_colour_video(tmp_path / "silent.mp4", [(RED, 2), (BLUE, 2)], fps=10)
    out = media.concat_clips(src, [(0, 1), (3, 4)], tmp_path / "joined.mp4")
    assert _streams(out) == {"video": "h264"}
    assert _colours(out, 1.0) == [RED, BLUE]


def test_span_errors(rgb_with_audio, tmp_path):
    with pytest.raises(VideoReadError, match="not found"):
        media.cut_clip(tmp_path / "missing.mp4", tmp_path / "x.mp4", 0, 1)
    with pytest.raises(ValueError, match="start < end"):
        media.cut_clip(rgb_with_audio, tmp_path / "x.mp4", 5, 5)
    with pytest.raises(VideoReadError, match="after the end of the video"):
        media.cut_clip(rgb_with_audio, tmp_path / "x.mp4", 20, 25)
    with pytest.raises(ValueError, match="at least one"):
        media.concat_clips(rgb_with_audio, [], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="start < end"):
        media.concat_clips(rgb_with_audio, [(0, 1), (3, 2)], tmp_path / "x.mp4")
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(b"\x00\x01" * 5000)
    with pytest.raises(VideoReadError, match="noise.mp4"):
        media.cut_clip(noise, tmp_path / "x.mp4", 0, 1)


def test_ffmpeg_runs_with_argument_lists_never_a_shell(rgb_with_audio, tmp_path, monkeypatch):
    calls = []
    real_run = subprocess.run

    def spy(cmd, *args, **kwargs):
        calls.append((cmd, kwargs))
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(media.subprocess, "run", spy)
    media.concat_clips(rgb_with_audio, [(0, 1)], tmp_path / "$(touch pwned).mp4")
    assert calls
    for cmd, kwargs in calls:
        assert isinstance(cmd, list) and not kwargs.get("shell", False)
        assert cmd[0] == media.ffmpeg_exe()
    assert not (Path.cwd() / "pwned").exists()
    assert (tmp_path / "$(touch pwned).mp4").is_file()
