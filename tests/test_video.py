"""Video reading on small generated files (and the real Charades clip when the fixtures are present)."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from univtg_core import video
from univtg_core.errors import VideoReadError
from univtg_core.media import ffmpeg_exe, make_colour_video
from univtg_core.video import backends, prefetch, sampling
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


def _full_decode_reference(path: Path, clip_len: float, size: int) -> np.ndarray:
    """Decode every frame, order by timestamp, pick by time: the slow, obviously right answer."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sorted(((f.pts, f) for f in container.decode(stream)), key=lambda x: x[0])
        tb = stream.time_base
    times = np.array([float((p - frames[0][0]) * tb) for p, _ in frames])
    info = video.probe_video(path)
    picks = [int(np.nonzero(times < t - 1e-6)[0].max(initial=0)) for t in video.clip_times(info.duration, clip_len)]
    w, h = sampling.short_side_size(info.width, info.height, size)
    x0, y0 = (w - size) // 2, (h - size) // 2
    return np.stack([
        frames[i][1].reformat(width=w, height=h, format="rgb24", interpolation="BICUBIC").to_ndarray()
        [y0:y0 + size, x0:x0 + size] for i in picks
    ])


def test_seek_and_skip_strategy_is_bit_exact(tmp_path):
    """A moving pattern with B-frames and 1 s GOPs: clips every 3 s make the reader seek past GOPs and
    skip non-reference frames; the frames must equal a full decode."""
    path = tmp_path / "pattern.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=s=192x108:r=30:d=20", "-c:v", "libx264", "-preset", "veryfast",
            "-g", "30", "-bf", "3", "-pix_fmt", "yuv420p", str(path))
    got = np.concatenate(list(video.iter_clip_frames(path, clip_len=3.0, size=96, batch_size=3)))
    ref = _full_decode_reference(path, 3.0, 96)
    assert got.shape == ref.shape == (7, 96, 96, 3)
    np.testing.assert_array_equal(got, ref)


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
    original = PyAVReader._to_rgb

    def counting(frame, width, height):
        converted.append(1)
        return original(frame, width, height)

    class WatchedQueue(queue.Queue):
        """The decoder's queue, telling the test when the decoder found it full (it then waits)."""

        def put(self, item, block=True, timeout=None):
            try:
                super().put(item, block, timeout)
            except queue.Full:
                found_full.set()
                raise

    found_full = threading.Event()
    monkeypatch.setattr(PyAVReader, "_to_rgb", staticmethod(counting))
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
    def broken(self, indices, width, height, should_stop=None):
        yield np.zeros((height, width, 3), np.uint8)
        raise VideoReadError("simulated corrupt packet")

    monkeypatch.setattr(PyAVReader, "frames", broken)
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
        "directory": (tmp, "not a file"),
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

    # the same frames as UniVTG's extractor: ffmpeg fps=1/2, scale to short side 224, centre crop
    out = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(CHARADES), "-vf", "fps=fps=0.5,scale=398:224,crop=224:224:87:0",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"], capture_output=True, check=True,
    ).stdout
    official = np.frombuffer(out, np.uint8).reshape(-1, 224, 224, 3)
    assert official.shape == frames.shape
    per_clip = np.abs(official.astype(np.int16) - frames.astype(np.int16)).mean(axis=(1, 2, 3))
    assert per_clip.max() < 1.5, per_clip  # same frames; only rounding in colour conversion differs
