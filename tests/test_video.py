"""Video reading on small generated files (and the real Charades clip when the fixtures are present).

The reference for clip frames is the official one: `avfilter.iter_official_frames` decodes every frame and
picks them as ffmpeg's ``fps`` filter does (it equals the bundled ffmpeg's output, tests/test_avfilter.py);
the reader must give the same bytes while seeking and skipping.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from univtg_core import prefetch, video
from univtg_core.avfilter import FpsSelector, iter_official_frames, run_official_ffmpeg, tick_duration
from univtg_core.errors import StillImageError, VideoReadError, VideoTooShortError
from univtg_core.media import ffmpeg_exe, make_colour_video
from univtg_core.postprocess import summary_points, top_highlight
from univtg_core.video import backends, sampling
from univtg_core.video.pyav_reader import PyAVReader

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
CHARADES = FIXTURES / "media" / "charades.mp4"


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def _colour_of(frame: np.ndarray) -> tuple[int, int, int]:
    """The solid colour a frame shows, snapped to 0/255 per channel (compression moves values a little)."""
    mean = frame.reshape(-1, 3).mean(axis=0)
    assert np.all((mean < 20) | (mean > 235)), f"frame is not a solid primary colour: {mean}"
    return tuple(int(v > 127) * 255 for v in mean)


def _decode_threads(name: str = "") -> list[threading.Thread]:
    """Decoding threads of this module (named after the file they read)."""
    return [t for t in threading.enumerate() if t.name.startswith(f"univtg-decode-{name}")]


def _wait_no_decode_threads(name: str = "", timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while _decode_threads(name) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _decode_threads(name), "the decoding thread is still running"


@pytest.fixture(scope="module")
def rgb_video(tmp_path_factory) -> Path:
    """12 s at 10 fps: red 0-4 s, green 4-8 s, blue 8-12 s (6 clips of 2 s)."""
    path = tmp_path_factory.mktemp("video") / "rgb.mp4"
    return make_colour_video(path, [(RED, 4), (GREEN, 4), (BLUE, 4)], fps=10, size=(160, 120))


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory) -> Path:
    """Variable frame rate, 16 s: red 0-4 s at 30 fps, green 4-12 s at 1 fps, blue 12-16 s at 30 fps.

    248 frames, so the average rate is 15.5 fps and ``index = t * fps`` lands in the wrong segment
    (e.g. t=5 s gives frame 77, which is red; t=9 s gives frame 139, which is blue).
    """
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    _ffmpeg(
        "-f", "lavfi", "-i", "color=c=red:s=160x120:r=30:d=4",
        "-f", "lavfi", "-i", "color=c=0x00ff00:s=160x120:r=1:d=8",
        "-f", "lavfi", "-i", "color=c=blue:s=160x120:r=30:d=4",
        "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]", "-map", "[v]",
        "-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
    )
    return path


def test_clip_count_rounds_like_ffmpeg_fps_filter():
    assert video.clip_count(30.7, 2.0) == 15  # UniVTG's extractor: 15 rows for the 30.7 s Charades clip
    assert video.clip_count(30.9, 2.0) == 15
    assert video.clip_count(31.0, 2.0) == 16  # halves round up, as ffmpeg's fps filter does
    assert video.clip_count(3.0, 2.0) == 2
    assert video.clip_count(0.3, 2.0) == 1  # a video shorter than a clip still gets one
    assert video.clip_count(0.0, 2.0) == 1
    with pytest.raises(ValueError, match="clip_len"):
        video.clip_count(10.0, 0.0)
    with pytest.raises(ValueError, match="duration"):
        video.clip_count(float("nan"), 2.0)


def test_clip_times_are_centres_clamped_inside():
    np.testing.assert_allclose(video.clip_times(30.7, 2.0), np.arange(15) * 2.0 + 1.0)
    times = video.clip_times(3.0, 2.0)  # two clips; the second centre (3.0) is the very end
    assert times[0] == 1.0 and 2.99 < times[1] < 3.0


def test_probe_colour_video(rgb_video):
    info = video.probe_video(rgb_video)
    assert info.backend == "pyav"
    assert info.duration == pytest.approx(12.0, abs=0.05)
    assert info.fps == pytest.approx(10.0)
    assert info.n_frames == 120
    assert (info.width, info.height) == (160, 120)
    assert Path(info.path) == rgb_video.resolve()


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_clip_frames_have_the_segment_colour(rgb_video, backend):
    batches = list(video.iter_clip_frames(rgb_video, clip_len=2.0, size=224, batch_size=4, backend=backend))
    assert [b.shape for b in batches] == [(4, 224, 224, 3), (2, 224, 224, 3)]
    assert all(b.dtype == np.uint8 for b in batches)
    colours = [_colour_of(f) for f in np.concatenate(batches)]
    assert colours == [RED, RED, GREEN, GREEN, BLUE, BLUE]


def test_clip_frames_other_clip_len_and_size(rgb_video):
    frames = np.concatenate(list(video.iter_clip_frames(rgb_video, clip_len=3.0, size=64, batch_size=32)))
    assert frames.shape == (4, 64, 64, 3)  # centres 1.5, 4.5, 7.5, 10.5 s
    assert [_colour_of(f) for f in frames] == [RED, GREEN, GREEN, BLUE]


def _official(path: Path, clip_len: float, size: int) -> np.ndarray:
    """Every frame decoded, chosen as ffmpeg's fps filter chooses and converted by ffmpeg's filters."""
    return np.stack(list(iter_official_frames(path, 1 / tick_duration(clip_len), size)))


# name -> encoder options: B-frames and 1 s GOPs where the codec has them, so the reader seeks past GOPs and
# (for the decoders in SKIP_SAFE_DECODERS) skips non-reference frames; VP9 and AV1 (SVT: hidden frames,
# shown later by tiny packets) are decoded without skipping.
CODECS = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "3"],
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-g", "30", "-bf", "3", "-x265-params", "log-level=error"],
    "mpeg4": ["-c:v", "mpeg4", "-g", "30", "-bf", "2", "-q:v", "5"],
    "mpeg2video": ["-c:v", "mpeg2video", "-g", "30", "-bf", "2", "-q:v", "5"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "30", "-b:v", "300k"],
    "av1": ["-c:v", "libsvtav1", "-preset", "12", "-g", "30"],
}


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A moving pattern, 14 s at 30 fps, per codec (made on first use)."""
    root = tmp_path_factory.mktemp("codecs")
    made: dict[str, Path] = {}

    def get(codec: str, container: str = "mkv") -> Path:
        key = f"{codec}.{container}"
        if key not in made:
            path = root / key
            _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x96:r=30:d=14", *CODECS[codec], "-pix_fmt", "yuv420p",
                    str(path))
            made[key] = path
        return made[key]

    return get


@pytest.mark.parametrize("codec", list(CODECS))
def test_seek_and_skip_give_the_official_frames(coded, codec):
    """Clips every 3 s make the reader seek past GOPs and skip; the frames must equal a full decode's."""
    path = coded(codec)
    got = np.concatenate(list(video.iter_clip_frames(path, clip_len=3.0, size=96, batch_size=3)))
    ref = _official(path, 3.0, 96)
    assert got.shape == ref.shape == (5, 96, 96, 3)
    np.testing.assert_array_equal(got, ref)


def test_a_decoder_that_skips_wanted_frames_is_retried_without_skipping(coded, monkeypatch, caplog):
    """A decoder that applies ``skip_frame`` when a frame comes out rather than when its packet goes in
    (as libdav1d does) would drop wanted frames that B-frame reordering delays; the reader notices the gap
    and decodes that group again without skipping."""
    path = coded("h264")
    original = PyAVReader._decode_packet

    def skips_late(self, packet, quiet=False):
        frames = original(self, packet, quiet)
        skipping = str(self._stream.codec_context.skip_frame).upper().endswith("NONREF")
        return [f for f in frames if not (skipping and f.pts != packet.pts)]

    monkeypatch.setattr(PyAVReader, "_decode_packet", skips_late)
    with caplog.at_level("DEBUG", logger="univtg_core.video.pyav_reader"):
        got = np.concatenate(list(video.iter_clip_frames(path, clip_len=3.0, size=96)))
    assert any("decoding without skipping" in r.getMessage() for r in caplog.records), "the skip was not retried"
    assert not [r for r in caplog.records if "could not be decoded" in r.getMessage()]
    np.testing.assert_array_equal(got, _official(path, 3.0, 96))


class _SeeksToTheStart:
    """A container whose seeks all land on the first packet, as some AVI indexes make them."""

    def __init__(self, container):
        self._container = container
        self.seeks = 0

    def seek(self, offset, *args, **kwargs):
        self.seeks += 1
        return self._container.seek(0)

    def __getattr__(self, name):
        return getattr(self._container, name)


def test_seeks_that_land_early_do_not_loop(coded):
    """Progress is guaranteed: after a seek the reader reads on rather than seeking to the same place again."""
    path = coded("h264")
    with PyAVReader(str(path)) as reader:
        proxy = _SeeksToTheStart(reader._container)
        reader._container = proxy
        idx = reader.clip_indices(5, 3.0)
        got = np.stack(list(reader.clip_frames(idx, 96)))
    assert proxy.seeks <= len(idx) + 1
    np.testing.assert_array_equal(got, _official(path, 3.0, 96))


def test_b_frames_in_avi_are_read_in_display_order(tmp_path):
    """AVI stores decoding times: the reader counts frames out of the decoder (every one read, none lost)."""
    path = tmp_path / "bframes.avi"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x96:r=10:d=12", *CODECS["h264"], "-pix_fmt", "yuv420p", str(path))
    import av

    with av.open(str(path)) as container:  # the display-order truth: frames in decoder output order
        shown = [f for f in container.decode(video=0)]
    with PyAVReader(str(path)) as reader:
        idx = reader.clip_indices(6, 2.0)
        assert reader._counted
        got = np.stack(list(reader.frames(idx, 160, 96)))
    want = np.stack([f.reformat(width=160, height=96, format="rgb24", interpolation="BICUBIC").to_ndarray()
                     for f in (shown[i] for i in idx)])
    assert idx.tolist() == [9, 29, 49, 69, 89, 109]  # the last frame before each clip's centre
    np.testing.assert_array_equal(got, want)


def test_clip_choice_equals_the_fps_filter_on_random_timestamps():
    """`clip_frame_indices(frame_ticks(...))` against `FpsSelector` (itself equal to ffmpeg) on made-up streams:
    any time base, clip length, gaps, and a late start (the constant-rate output's repeated first frame)."""
    rng = np.random.default_rng(0)
    for _ in range(400):
        tb = Fraction(1, int(rng.choice([10, 25, 1000, 12800, 90000, 30000])))
        clip_len = float(rng.choice([2.0, 1.0, 0.5, 3.0]))
        n = int(rng.integers(1, 40))
        start = int(rng.integers(0, int(4 / tb))) if rng.random() < 0.5 else 0
        gaps = rng.integers(1, int(max(2, 1.2 / tb)), n)
        pts = start + np.concatenate([[0], np.cumsum(gaps[:-1])])
        selector = FpsSelector(1 / clip_len, tb)
        counts = [selector.push(int(p)) for p in pts][1:] + [selector.finish(int(pts[-1] + gaps[-1]))]
        expected = [j for j, c in enumerate(counts) for _ in range(c)]
        ticks = sampling.frame_ticks(pts, 0, tb, clip_len)
        assert sampling.clip_frame_indices(ticks, len(expected)).tolist() == expected, (tb, clip_len, pts[:4])


@pytest.mark.parametrize("backend", ["pyav", "decord"])
def test_variable_frame_rate_frames_are_picked_by_time(vfr_video, backend):
    info = video.probe_video(vfr_video, backend=backend)
    assert info.n_frames == 248
    assert info.duration == pytest.approx(16.0, abs=0.05)
    assert info.fps == pytest.approx(15.5, abs=0.01)
    frames = np.concatenate(list(video.iter_clip_frames(vfr_video, clip_len=2.0, size=32, backend=backend)))
    # clip centres 1, 3 | 5, 7, 9, 11 | 13, 15 s
    assert [_colour_of(f) for f in frames] == [RED, RED, GREEN, GREEN, GREEN, GREEN, BLUE, BLUE]


def test_av1_needs_the_pyav_fallback(tmp_path):
    encoders = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    codec = next((c for c in ("libsvtav1", "libaom-av1") if c in encoders), None)
    if codec is None:
        pytest.skip("the bundled ffmpeg has no AV1 encoder (libsvtav1 or libaom-av1)")
    path = make_colour_video(tmp_path / "av1.mp4", [(RED, 2), (BLUE, 2)], fps=10, codec=codec)
    with pytest.raises(VideoReadError, match="decord cannot open"):
        video.probe_video(path, backend="decord")
    info = video.probe_video(path)  # auto
    assert info.backend == "pyav" and info.n_frames == 40
    frames = np.concatenate(list(video.iter_clip_frames(path, size=32)))
    assert [_colour_of(f) for f in frames] == [RED, BLUE]


def test_auto_uses_decord_when_pyav_is_missing(rgb_video, monkeypatch):
    def missing():
        raise ImportError("No module named 'av'")

    monkeypatch.setitem(backends.READERS, "pyav", missing)
    assert video.probe_video(rgb_video).backend == "decord"
    frames = np.concatenate(list(video.iter_clip_frames(rgb_video, size=32)))
    assert [_colour_of(f) for f in frames] == [RED, RED, GREEN, GREEN, BLUE, BLUE]


def test_read_frames_at_keeps_aspect_and_order(rgb_video):
    frames = video.read_frames_at(rgb_video, [11.5, 0.5, 6.0, 100.0, -3.0], max_side=80)
    assert [f.shape for f in frames] == [(60, 80, 3)] * 5
    assert [_colour_of(f) for f in frames] == [BLUE, RED, GREEN, BLUE, RED]
    full = video.read_frames_at(rgb_video, [5.0], max_side=None)
    assert full[0].shape == (120, 160, 3) and full[0].dtype == np.uint8
    assert video.read_frames_at(rgb_video, [], max_side=80) == []


def test_iterator_closed_early_stops_its_thread(tmp_path):
    path = make_colour_video(tmp_path / "early-stop.mp4", [(RED, 30), (GREEN, 30)], fps=5, size=(64, 48))
    it = video.iter_clip_frames(path, clip_len=1.0, size=32, batch_size=2, prefetch=1)
    assert not _decode_threads(path.name), "the thread starts on the first next(), not before"
    first = next(it)
    assert first.shape == (2, 32, 32, 3)
    assert len(_decode_threads(path.name)) == 1
    it.close()
    _wait_no_decode_threads(path.name)

    for _ in video.iter_clip_frames(path, clip_len=1.0, size=32, batch_size=2, prefetch=1):
        break
    _wait_no_decode_threads(path.name)


def test_decoder_stays_at_most_prefetch_batches_ahead(tmp_path, monkeypatch):
    path = make_colour_video(tmp_path / "long.mp4", [(RED, 60)], fps=5, size=(64, 48))
    converted = []
    original = PyAVReader._clip_converter

    def counting_converter(self, size):
        convert = original(self, size)

        def counted(frame):
            converted.append(1)
            return convert(frame)

        return counted

    class WatchedQueue(queue.Queue):
        """The decoder's queue, telling the test when the decoder found it full (it then waits)."""

        def put(self, item, block=True, timeout=None):
            try:
                super().put(item, block, timeout)
            except queue.Full:
                found_full.set()
                raise

    found_full = threading.Event()
    monkeypatch.setattr(PyAVReader, "_clip_converter", counting_converter)
    monkeypatch.setattr(prefetch, "queue", types.SimpleNamespace(Queue=WatchedQueue, Empty=queue.Empty,
                                                                 Full=queue.Full))
    it = video.iter_clip_frames(path, clip_len=1.0, size=32, batch_size=2, prefetch=2)
    next(it)
    # Wait until the decoder has run as far ahead as it may (it finds the queue full), not a fixed time;
    # a full queue met before the first batch was taken does not count.
    found_full.clear()
    assert found_full.wait(timeout=60), "the decoder never filled its queue"
    # one batch taken, two waiting in the queue, one being filled
    assert len(converted) <= 2 * (1 + 2 + 1)
    it.close()
    _wait_no_decode_threads()


def test_error_in_the_consumer_stops_the_thread(rgb_video):
    with pytest.raises(RuntimeError, match="consumer failed"):
        for _ in video.iter_clip_frames(rgb_video, size=32, batch_size=1, prefetch=1):
            raise RuntimeError("consumer failed")
    _wait_no_decode_threads()


def test_decoding_errors_are_raised_in_the_consumer_thread(rgb_video, monkeypatch):
    def broken(self, indices, size, should_stop=None):
        yield np.zeros((size, size, 3), np.uint8)
        raise VideoReadError("simulated corrupt packet")

    monkeypatch.setattr(PyAVReader, "clip_frames", broken)
    with pytest.raises(VideoReadError, match="simulated corrupt packet"):
        list(video.iter_clip_frames(rgb_video, size=32, batch_size=1))
    _wait_no_decode_threads()


def _bad_inputs(tmp: Path, rgb_video: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    noise = tmp / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    truncated = tmp / "truncated.mp4"  # moov atom at the end: cut off
    data = rgb_video.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    audio = tmp / "audio.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(audio))
    empty_container = tmp / "no-streams.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x48:r=10:d=1", "-frames:v", "0", "-c:v", "libx264",
            str(empty_container))
    zero = tmp / "zero.avi"  # avi keeps a video stream header with no frames
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x48:r=10:d=1", "-frames:v", "0", "-c:v", "mpeg4", str(zero))
    return {
        "missing": (tmp / "nope.mp4", "not found"),
        "directory": (tmp, "is a folder"),
        "empty": (empty, "empty"),
        "random bytes": (noise, "Invalid data"),
        "truncated": (truncated, "Invalid data"),
        "audio only": (audio, "no video stream .found: audio"),
        "no streams": (empty_container, "no video stream .the container is empty"),
        "zero frames": (zero, "video stream with zero frames"),
    }


def test_bad_inputs_raise_video_read_error(tmp_path, rgb_video):
    for label, (path, reason) in _bad_inputs(tmp_path, rgb_video).items():
        for call in (video.probe_video, video.iter_clip_frames, lambda p: video.read_frames_at(p, [0.0])):
            with pytest.raises(VideoReadError, match=reason) as info:
                call(path)
            message = str(info.value)
            assert Path(path).name in message, f"{label}: the message should name the file: {message}"


def test_truncated_faststart_file_raises_when_frames_are_missing(tmp_path):
    """moov at the front, data cut at 60%: metadata looks fine, the late clips cannot be decoded."""
    path = tmp_path / "faststart.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x120:r=10:d=20", "-c:v", "libx264", "-g", "10",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    info = video.probe_video(path)
    assert info.duration == pytest.approx(20.0, abs=0.1)
    with pytest.raises(VideoReadError, match="truncated or corrupt"):
        list(video.iter_clip_frames(path, size=32))
    _wait_no_decode_threads()


def test_unknown_backend_is_rejected(rgb_video):
    with pytest.raises(ValueError, match="backend must be one of"):
        video.probe_video(rgb_video, backend="opencv")


def test_charades_probe_and_clips():
    if not CHARADES.is_file():
        pytest.skip(f"real-video fixture not present at {CHARADES}")
    info = video.probe_video(CHARADES)
    assert info.duration == pytest.approx(30.697, abs=0.01)
    assert info.fps == pytest.approx(14.985, abs=0.001)
    assert info.n_frames == 460
    assert (info.width, info.height) == (480, 270)
    assert video.clip_count(info.duration, 2.0) == 15
    frames = np.concatenate(list(video.iter_clip_frames(CHARADES, clip_len=2.0, size=224)))
    assert frames.shape == (15, 224, 224, 3)

    # the same bytes as UniVTG's extractor: ffmpeg fps=1/2, scale to short side 224, centre crop
    official = run_official_ffmpeg(CHARADES, "1/2")
    assert official.shape == frames.shape
    np.testing.assert_array_equal(frames, official)


# -- what is not a video, and what is turned -------------------------------------------------------------


def test_a_still_image_is_refused_and_offered_as_the_image_query(tmp_path):
    image = tmp_path / "holiday.mp4"  # a PNG renamed
    _ffmpeg("-f", "lavfi", "-i", "color=c=cyan:s=64x48:d=1", "-frames:v", "1", "-update", "1", "-c:v", "png",
            str(tmp_path / "still.png"))
    (tmp_path / "still.png").rename(image)
    one = tmp_path / "one-frame.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=cyan:s=64x48:r=10:d=1", "-frames:v", "1", "-c:v", "libx264", str(one))
    for path in (image, one):
        for call in (video.probe_video, video.iter_clip_frames, lambda p: video.read_frames_at(p, [0.0])):
            with pytest.raises(StillImageError, match="example-image query") as info:
                call(path)
            assert path.name in str(info.value)


def test_a_video_shorter_than_one_clip_is_refused(tmp_path):
    path = make_colour_video(tmp_path / "short.mp4", [(RED, 1.5)], fps=10, size=(64, 48))
    info = video.probe_video(path)
    assert info.duration == pytest.approx(1.5)
    with pytest.raises(VideoTooShortError, match="shorter than one clip"):
        video.count_clips(info, 2.0)
    with pytest.raises(VideoTooShortError, match="1.50 s"):
        video.iter_clip_frames(path, clip_len=2.0)
    assert video.count_clips(info, 1.0) == 2  # long enough for 1 s clips
    assert video.read_frames_at(path, [1.0], max_side=None)[0].shape == (48, 64, 3)  # thumbnails still work


@pytest.mark.parametrize("n_clips", [1, 2, 3, 4, 5, 15, 16, 151])
def test_summary_points_and_highlight_lie_inside_every_video(n_clips):
    """Every duration that gives n clips (round(d / 2), d >= one clip): the points are inside [0, d)."""
    shortest = max(2.0, (n_clips - 0.5) * 2.0)  # n = round(d / clip_len), halves up
    rng = np.random.default_rng(n_clips)
    for duration in (shortest, shortest + 0.3, (n_clips + 0.5) * 2.0 - 1e-6):
        assert video.clip_count(duration, 2.0) == n_clips
        for _ in range(20):
            saliency = rng.random(n_clips)
            points = summary_points(saliency, 2.0, budget=0.5, duration=duration)
            assert all(0 <= t < duration for t in points), (duration, points)
            assert 0 <= top_highlight(saliency, 2.0) < duration


def test_a_video_starting_after_its_audio_is_on_the_file_timeline(tmp_path):
    """The player's timeline (and the official extractor's) starts with the file, not the video track."""
    plain = make_colour_video(tmp_path / "plain.mp4", [(RED, 2), (GREEN, 2), (BLUE, 2)], fps=10, size=(64, 48))
    late = tmp_path / "late.mp4"
    _ffmpeg("-itsoffset", "2.5", "-i", str(plain), "-f", "lavfi", "-i", "sine=duration=9", "-map", "0:v",
            "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(late))
    info = video.probe_video(late)
    assert info.start == pytest.approx(2.5) and info.duration == pytest.approx(8.5)
    frames = np.concatenate(list(video.iter_clip_frames(late, clip_len=2.0, size=32)))
    # clips 0-1 take the frame of the first frame's tick (round(2.5 / 2) = 1: the last before 3 s), as the
    # command line's constant-rate output repeats it; then the colours move 2.5 s later than in the plain file
    assert [_colour_of(f) for f in frames] == [RED, RED, GREEN, BLUE]
    np.testing.assert_array_equal(frames, _official(late, 2.0, 32))
    thumbs = video.read_frames_at(late, [0.5, 3.0, 5.0, 7.0], max_side=None)
    assert [_colour_of(f) for f in thumbs] == [RED, RED, GREEN, BLUE]  # before the video: its first frame


@pytest.fixture(scope="module")
def turned(tmp_path_factory) -> dict[int, Path]:
    """Top-left quadrant cyan, the rest red, with display rotations (ffmpeg's degrees, counter-clockwise)."""
    root = tmp_path_factory.mktemp("turned")
    plain = root / "plain.mp4"
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x48:r=10:d=4", "-vf",
            "drawbox=x=0:y=0:w=32:h=24:color=0x00ffff:t=fill", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(plain))
    out = {0: plain}
    for degrees in (90, 180, 270):
        out[degrees] = root / f"turned-{degrees}.mp4"
        _ffmpeg("-display_rotation", str(degrees), "-i", str(plain), "-c", "copy", str(out[degrees]))
    return out


def _cyan_corner(frame: np.ndarray) -> str:
    h, w = frame.shape[:2]
    quads = {"top-left": frame[: h // 2, : w // 2], "top-right": frame[: h // 2, w // 2:],
             "bottom-left": frame[h // 2:, : w // 2], "bottom-right": frame[h // 2:, w // 2:]}
    return max(quads, key=lambda q: quads[q][..., 1].mean())


# where the cyan corner is seen once the player turns the picture (counter-clockwise degrees)
SEEN = {0: "top-left", 90: "bottom-left", 180: "bottom-right", 270: "top-right"}


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_turned_videos_are_read_upright(turned, degrees):
    path = turned[degrees]
    info = video.probe_video(path)
    assert (info.width, info.height) == ((48, 64) if degrees % 180 else (64, 48))
    assert info.rotation == (360 - degrees) % 360  # clockwise, as the old `rotate` tag
    thumb = video.read_frames_at(path, [1.0], max_side=None)[0]
    assert thumb.shape == (info.height, info.width, 3) and _cyan_corner(thumb) == SEEN[degrees]
    clip = next(iter(video.iter_clip_frames(path, clip_len=2.0, size=32)))[0]
    # the official extractor's geometry comes from the coded size, so a quarter-turned picture is scaled
    # to a landscape frame before the centre crop: the corner stays where the player shows it
    assert _cyan_corner(clip) == SEEN[degrees]
    np.testing.assert_array_equal(np.concatenate(list(video.iter_clip_frames(path, clip_len=2.0, size=32))),
                                  _official(path, 2.0, 32))


def test_decord_turns_half_turns_and_refuses_quarter_turns(turned):
    thumb = video.read_frames_at(turned[180], [1.0], max_side=None)[0]
    with backends.open_reader(turned[180], "decord") as reader:
        assert reader.info.rotation == 180
        frame = next(reader.frames(np.array([10]), 64, 48))
    assert _cyan_corner(frame) == _cyan_corner(thumb) == "bottom-right"
    with pytest.raises(VideoReadError, match="turned by a quarter.*Install PyAV"):
        video.probe_video(turned[90], backend="decord")


def test_auto_refuses_what_pyav_cannot_open_without_trying_decord(tmp_path, monkeypatch):
    def no_decord():
        raise AssertionError("decord was tried")

    monkeypatch.setitem(backends.READERS, "decord", no_decord)
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(1).bytes(30000))
    with pytest.raises(VideoReadError, match="cannot open"):
        video.probe_video(noise)


def test_hevc_in_avi_is_refused_not_looped_on(tmp_path):
    """ffmpeg's AVI demuxer does not know the HEVC tag: every packet fails as 'rawvideo'."""
    path = tmp_path / "hevc.avi"
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x48:r=10:d=4", *CODECS["hevc"], "-pix_fmt", "yuv420p", str(path))
    started = time.monotonic()
    with pytest.raises(VideoReadError, match="none of its video frames could be decoded.*remux"):
        list(video.iter_clip_frames(path, size=32))
    assert time.monotonic() - started < 20
    _wait_no_decode_threads()
