"""Frames with the pixels of the official extractors' ffmpeg command lines, made in-process by libavfilter.

UniVTG's CLIP extractor and HERO's SlowFast extractor both decode with an ffmpeg command line of the form

    ffmpeg -i VIDEO -filter_complex "[0]fps=fps=F[s0];[s0]scale=W:H[s1];[s1]crop=S:S:X:Y[s2]"
           -map "[s2]" -f rawvideo -pix_fmt rgb24 pipe:

(``F`` = ``1 / clip_len`` for CLIP, 30 for SlowFast; ``W:H`` puts the short side at ``S`` = 224). This module
gives the same frames without running ffmpeg:

- **pixels**: each frame goes through a libavfilter graph ``buffer -> scale=W:H -> crop -> format=rgb24 ->
  buffersink`` built with PyAV, i.e. ffmpeg's own ``scale`` filter with its default flags (bicubic), its
  colour-matrix, range and chroma-siting handling taken from the frame, exactly as the command line gets
  them. ``frame.reformat`` is not used: from PyAV 17 on it assumes left-sited 4:2:0 chroma, and before that
  it ignored the frame's colour matrix (issue 11).
- **frame choice**: the ``fps`` filter's choice of source frame for each output tick is reproduced here
  (:class:`FpsSelector`, ``round=near``, ``eof_action=round``, the end of stream at the last frame's pts plus
  its duration, timestamps taken relative to the file's start as the command line does). Doing the choice
  outside the graph makes the end-of-stream behaviour independent of the PyAV/FFmpeg version (PyAV cannot
  give the buffer source an end timestamp) and lets a dropped frame skip the scaler and a repeated one be
  scaled once.
- **rotation**: like the command line, a display matrix of a right angle is applied (``transpose``,
  ``hflip``, ``vflip``) before scaling; the output size still comes from the coded size, as the official
  extractors compute it from ffprobe's ``width``/``height``.

Everything that imports PyAV does so lazily.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import VideoReadError

logger = logging.getLogger(__name__)

# PyAV releases whose pixels were checked equal to the bundled ffmpeg's (README, "Fidelity"): first, last.
TESTED_PYAV = ("12.0.0", "18.1.0")
_warned_version: list[str] = []

# Display-matrix filters as (name, arguments): what the command line inserts to autorotate.
Transform = tuple[tuple[str, "str | None"], ...]

_ACCEPTED = "Pass a complete video file (mp4, mkv, webm, mov, avi, ...) that plays in a media player."


# --------------------------------------------------------------------------------------------------------
# Geometry


@dataclass(frozen=True)
class OutputGeometry:
    """Where the official extractors put a frame: scaled to ``width x height``, then ``size``² cropped at x, y."""

    width: int
    height: int
    x: int
    y: int
    size: int

    @property
    def filters(self) -> str:
        """The ``scale`` and ``crop`` part of the official filter chain, comma-separated."""
        return f"scale={self.width}:{self.height},crop={self.size}:{self.size}:{self.x}:{self.y}"


def official_geometry(width: int, height: int, size: int = 224) -> OutputGeometry:
    """The extractors' output size: short side ``size``, long side ``int(long * size / short)``, centre crop.

    Both UniVTG's and HERO's loaders compute it from the probed (coded) size with Python float arithmetic and
    ``int()`` truncation; square and portrait frames take the ``h >= w`` branch.
    """
    width, height, size = int(width), int(height), int(size)
    if width <= 0 or height <= 0 or size <= 0:
        raise ValueError(f"width, height and size must be positive; got {width}x{height}, size {size}")
    if height >= width:
        out_w, out_h = size, int(height * size / width)
    else:
        out_w, out_h = int(width * size / height), size
    return OutputGeometry(out_w, out_h, int((out_w - size) / 2.0), int((out_h - size) / 2.0), size)


def official_ffmpeg_args(path: str | os.PathLike, fps: Fraction | float | str, geometry: OutputGeometry
                         ) -> list[str]:
    """The arguments after ``ffmpeg`` that ffmpeg-python compiles for the official loaders (input first)."""
    chain = f"[0]fps=fps={_fps_text(fps)}[s0];[s0]scale={geometry.width}:{geometry.height}[s1];" \
            f"[s1]crop={geometry.size}:{geometry.size}:{geometry.x}:{geometry.y}[s2]"
    return ["-i", _file_url(path), "-filter_complex", chain, "-map", "[s2]", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "pipe:"]


def run_official_ffmpeg(path: str | os.PathLike, fps: Fraction | float | str, size: int = 224,
                        ffmpeg: str | None = None) -> np.ndarray:
    """The official command line run by the bundled ffmpeg: uint8 ``(N, size, size, 3)``, for checks and tests.

    The output size comes from the stream's coded size, as ffprobe reports it to the official loaders.
    """
    if ffmpeg is None:
        from .media import ffmpeg_exe

        ffmpeg = ffmpeg_exe()
    width, height = _coded_size(path)
    geometry = official_geometry(width, height, size)
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", *official_ffmpeg_args(path, fps, geometry)]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise VideoReadError(f"ffmpeg could not decode {str(path)!r}: {lines[-1] if lines else proc.returncode}")
    return np.frombuffer(bytearray(proc.stdout), np.uint8).reshape(-1, size, size, 3)


def _fps_text(fps: Fraction | float | str) -> str:
    return str(fps) if isinstance(fps, str) else str(_as_fraction(fps))


def _as_fraction(value: Fraction | float | int | str) -> Fraction:
    """A frame rate as an exact fraction: ``0.5`` -> 1/2, ``"30000/1001"`` -> 30000/1001."""
    if isinstance(value, Fraction):
        out = value
    elif isinstance(value, str):
        out = Fraction(value)
    elif isinstance(value, int):
        out = Fraction(value)
    else:
        out = Fraction(value).limit_denominator(1_000_001)  # what av_d2q does for "0.5", "29.97", ...
    if out <= 0:
        raise ValueError(f"a frame rate must be > 0; got {value!r}")
    return out


def tick_duration(clip_len: float) -> Fraction:
    """Seconds between two outputs of the official CLIP command line, ``fps=1/clip_len``, as ffmpeg reads it.

    UniVTG passes the rate as the float ``1 / clip_len``; ffmpeg turns its decimal text into a fraction.
    """
    if not clip_len > 0:
        raise ValueError(f"clip_len must be a positive number of seconds; got {clip_len!r}")
    return 1 / _as_fraction(1 / float(clip_len))


def _file_url(path: str | os.PathLike) -> str:
    return "file:" + str(Path(path).expanduser().resolve())


# --------------------------------------------------------------------------------------------------------
# The fps filter's frame choice


def rescale_near(value: int, src: Fraction, dst: Fraction) -> int:
    """``av_rescale_q_rnd(value, src, dst, AV_ROUND_NEAR_INF)``: exact, halves away from zero."""
    num = value * src.numerator * dst.denominator
    den = src.denominator * dst.numerator
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


class FpsSelector:
    """How many frames the official command line outputs for each input frame (0: dropped).

    Two stages, both reproduced exactly:

    - ffmpeg's ``fps=fps=F`` filter (defaults: ``round=near``, ``eof_action=round``, libavfilter's
      ``vf_fps.c``): output ticks ``1 / F`` apart start at the first frame's rounded pts; a frame gives way
      to the next one as soon as the next one's rounded pts reaches the current tick; ticks stop before the
      rounded end of stream.
    - the command line's constant-frame-rate output sync (``-f rawvideo`` has no timestamps, and a filter
      graph's output is not tied to an input stream, so ffmpeg picks ``-fps_mode cfr``): the output starts at
      tick 0, so when the video starts after the file does (audio first), its first frame fills the ticks
      before it.

    Feed the input frames' pts (in ``time_base``, relative to the file's start) in decoding order with
    :meth:`push`; it returns the count for the *previous* frame. :meth:`finish` takes the end-of-stream pts
    and returns the count for the last frame.
    """

    def __init__(self, fps: Fraction | float | str, time_base: Fraction):
        self.out_tb = 1 / _as_fraction(fps)
        self.in_tb = Fraction(time_base)
        self.next_tick: int | None = None
        self._held: int | None = None  # rounded pts of the frame waiting for its count
        self._out_next = 0  # the CFR sync's next output timestamp
        self.emitted = 0

    def _round(self, pts: int) -> int:
        return rescale_near(int(pts), self.in_tb, self.out_tb)

    def push(self, pts: int) -> int:
        """Count for the previous frame, now that the frame with ``pts`` follows it (0 for the first push)."""
        rounded = self._round(pts)
        if self._held is None:
            self._held = rounded
            if self.next_tick is None:
                self.next_tick = rounded
            return 0
        self._held = rounded
        return self._ticks_before(rounded)

    def finish(self, end_pts: int) -> int:
        """Count for the last frame, the stream ending at ``end_pts`` (in ``time_base``)."""
        if self._held is None:
            return 0
        self._held = None
        return self._ticks_before(self._round(end_pts))

    def _ticks_before(self, limit: int) -> int:
        """The held frame leaves the fps filter on every tick before ``limit``; copies after the CFR sync."""
        ticks = max(0, limit - self.next_tick)
        copies = sum(self._cfr_copies(self.next_tick + i) for i in range(ticks))
        self.next_tick += ticks
        self.emitted += copies
        return copies

    def _cfr_copies(self, tick: int) -> int:
        """``video_sync_process`` of ffmpeg's command line, ``VSYNC_CFR``, for a frame of duration 1 at ``tick``."""
        delta0 = float(tick - self._out_next)
        duration = 1.0
        if delta0 < 0 < delta0 + duration:  # a little early: clipped to the next slot
            duration += delta0
            delta0 = 0.0
        delta = delta0 + duration
        copies = 1
        if delta < -1.1:
            copies = 0
        elif delta > 1.1:
            copies = round(delta)  # llrintf: to nearest, ties to even, as Python's round
        self._out_next += copies
        return copies


# --------------------------------------------------------------------------------------------------------
# The libavfilter pixel path


class FrameConverter:
    """Decoded PyAV frames -> uint8 RGB ``(size, size, 3)`` through ffmpeg's ``scale``/``crop`` filters.

    One graph serves every frame of the same format, size and colour tags; it is rebuilt when they change (a
    stream may switch resolution midway). ``transform`` holds the display-matrix filters to apply first
    (:func:`display_transform`), as the command line does.
    """

    def __init__(self, geometry: OutputGeometry, transform: Transform = (), threads: int = 1):
        self.geometry = geometry
        self.transform = tuple(transform)
        self.threads = int(threads)
        self._graph = None
        self._key: tuple | None = None

    def __call__(self, frame) -> np.ndarray:
        return self.convert(frame)

    def convert(self, frame) -> np.ndarray:
        """One frame's official pixels (a new array each call)."""
        key = _frame_key(frame)
        if key != self._key:
            self._graph = self._build(frame)
            self._key = key
        self._graph.push(frame)
        out = self._graph.pull()
        rgb = out.to_ndarray()
        s = self.geometry.size
        if rgb.shape != (s, s, 3):
            raise VideoReadError(f"libavfilter produced a {rgb.shape} frame, expected ({s}, {s}, 3)")
        return rgb

    def _build(self, frame):
        import av

        global _BUFFER_TAKES_COLOUR
        _check_pyav_version(av.__version__)
        graph = av.filter.Graph()
        if hasattr(graph, "threads"):  # PyAV >= 17; before, libavfilter picks (the pixels do not depend on it)
            graph.threads = self.threads
        args = _buffer_args(frame, _BUFFER_TAKES_COLOUR)
        try:
            src = graph.add("buffer", **args)
        except ValueError:  # "unused config": this libavfilter has no colour options on its buffer source
            if not _BUFFER_TAKES_COLOUR:
                raise
            _BUFFER_TAKES_COLOUR = False
            return self._build(frame)  # a fresh graph: the refused filter stays allocated in this one
        nodes = [src]
        for name, value in self.transform:
            nodes.append(graph.add(name, value) if value else graph.add(name))
        g = self.geometry
        nodes.append(graph.add("scale", f"{g.width}:{g.height}"))
        nodes.append(graph.add("crop", f"{g.size}:{g.size}:{g.x}:{g.y}"))
        nodes.append(graph.add("format", "rgb24"))  # what the command line appends for `-pix_fmt rgb24`
        nodes.append(graph.add("buffersink"))
        for a, b in zip(nodes, nodes[1:]):
            a.link_to(b)
        graph.configure()
        return graph


# Whether the buffer source takes `colorspace` and `range` (FFmpeg >= 7.1); found out on first use.
_BUFFER_TAKES_COLOUR = True


def _check_pyav_version(version: str) -> None:
    """Say once when PyAV is outside the range whose pixels were checked (it may still be exact)."""
    def major(v: str) -> int:
        return int(v.split(".")[0])

    if _warned_version or major(TESTED_PYAV[0]) <= major(version) <= major(TESTED_PYAV[1]):
        return
    _warned_version.append(version)
    logger.warning("PyAV %s: the official-pixel path was checked on PyAV %s to %s only; run "
                   "scripts/check_pyav_versions.sh %s to check this one", version, *TESTED_PYAV, version)


def _frame_key(frame) -> tuple:
    return (frame.width, frame.height, frame.format.name, getattr(frame, "colorspace", None),
            getattr(frame, "color_range", None))


def _buffer_args(frame, colour: bool) -> dict[str, str]:
    """The buffer source described as the command line describes it: size, format, time base, aspect, colour.

    Where ``colour`` is off (FFmpeg before 7.1), libavfilter takes the colour properties from each frame.
    """
    sar = getattr(frame, "sample_aspect_ratio", None)
    tb = frame.time_base or Fraction(1, 1000)
    args = {
        "video_size": f"{frame.width}x{frame.height}",
        "pix_fmt": frame.format.name,
        "time_base": f"{tb.numerator}/{tb.denominator}",
        "pixel_aspect": f"{sar.numerator}/{sar.denominator}" if sar else "1/1",
    }
    if colour:
        if getattr(frame, "colorspace", None) is not None:
            args["colorspace"] = str(int(frame.colorspace))
        if getattr(frame, "color_range", None) is not None:
            args["range"] = str(int(frame.color_range))
    return args


def display_transform(frame) -> Transform:
    """The filters ffmpeg's command line inserts for a frame's display matrix (autorotation), as (name, args).

    Right angles and flips only, as the command line handles them with ``transpose``/``hflip``/``vflip``; any
    other angle is logged and ignored (the command line would rotate by it with the ``rotate`` filter).
    """
    matrix = _display_matrix(frame)
    if matrix is None:
        return ()
    theta = _rotation_of(matrix)
    if abs(theta - 90) < 1.0:
        return (("transpose", "cclock_flip" if matrix[3] > 0 else "clock"),)
    if abs(theta - 180) < 1.0:
        out = []
        if matrix[0] < 0:
            out.append(("hflip", None))
        if matrix[4] < 0:
            out.append(("vflip", None))
        return tuple(out)
    if abs(theta - 270) < 1.0:
        return (("transpose", "clock_flip" if matrix[3] < 0 else "cclock"),)
    if abs(theta) < 1.0:
        return (("vflip", None),) if matrix[4] < 0 else ()
    logger.warning("the video asks to be rotated by %.0f degrees; only right angles are applied", theta)
    return ()


def swaps_axes(transform: Transform) -> bool:
    """Whether the display transform turns the picture by a quarter (width and height trade places)."""
    return any(name == "transpose" for name, _ in transform)


def rotation_degrees(transform: Transform) -> int:
    """Clockwise degrees by which a display transform turns the picture (flips alone: 0)."""
    turn = dict(transform).get("transpose")
    if turn in ("clock", "clock_flip"):
        return 90
    if turn in ("cclock", "cclock_flip"):
        return 270
    names = {name for name, _ in transform}
    return 180 if {"hflip", "vflip"} <= names else 0


def apply_display_transform(rgb: np.ndarray, transform: Transform) -> np.ndarray:
    """The numpy equivalent of the display-transform filters, on an RGB ``(H, W, 3)`` array (thumbnails, decord).

    ``transpose`` takes ffmpeg's directions: ``clock`` (a quarter turn clockwise), ``cclock``, and the
    ``*_flip`` variants that also flip vertically.
    """
    for name, value in transform:
        if name == "hflip":
            rgb = rgb[:, ::-1]
        elif name == "vflip":
            rgb = rgb[::-1]
        elif name == "transpose":
            if value == "clock":
                rgb = np.rot90(rgb, -1)
            elif value == "cclock":
                rgb = np.rot90(rgb, 1)
            elif value == "cclock_flip":
                rgb = rgb.transpose(1, 0, 2)
            elif value == "clock_flip":
                rgb = np.rot90(rgb, -1)[::-1]
            else:
                raise ValueError(f"unknown transpose direction {value!r}")
        else:
            raise ValueError(f"unknown display-transform filter {name!r}")
    return np.ascontiguousarray(rgb)


def _display_matrix(frame) -> np.ndarray | None:
    side = getattr(frame, "side_data", None)
    if side is None:
        return None
    for item in side:
        kind = getattr(item, "type", None)
        if getattr(kind, "name", str(kind)).upper().endswith("DISPLAYMATRIX"):
            raw = bytes(item)
            if len(raw) >= 36:
                return np.frombuffer(raw[:36], dtype="<i4").astype(np.int64)
    return None


def _rotation_of(matrix: np.ndarray) -> float:
    """``get_rotation`` of ffmpeg's command line: the display matrix's angle in [0, 360), rounded to degrees."""
    m = matrix.astype(np.float64) / 65536.0
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if s0 == 0.0 or s1 == 0.0:
        return 0.0
    rotation = -math.atan2(m[1] / s1, m[0] / s0) * 180 / math.pi  # av_display_rotation_get
    theta = -float(round(rotation)) if math.isfinite(rotation) else 0.0
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    return theta


# --------------------------------------------------------------------------------------------------------
# Whole-video decoding at a fixed rate


@dataclass(frozen=True)
class StreamFacts:
    """What a decode at a fixed rate needs to know about the first video stream."""

    width: int  # coded size, as ffprobe reports it
    height: int
    time_base: Fraction
    start_offset: int  # the container's start time in ``time_base``: the command line subtracts it


def open_video(path: str | os.PathLike):
    """A PyAV container with at least one video stream; VideoReadError, in words, otherwise."""
    import av

    p = Path(path).expanduser()
    if not p.is_file():
        raise VideoReadError(f"video file not found: {str(p)!r}. Check the path.")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoReadError(f"cannot open {str(p)!r} as a video ({_first_line(exc)}). {_ACCEPTED}") from exc
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{str(p)!r} has no video stream. {_ACCEPTED}")
    return container


def iter_official_frames(
    path: str | os.PathLike,
    fps: Fraction | float | str,
    size: int = 224,
    should_stop: Callable[[], bool] | None = None,
    threads: int = 1,
) -> Iterator[np.ndarray]:
    """The frames of the official command line at ``fps`` (uint8 ``(size, size, 3)``), decoded in-process.

    A frame the ``fps`` filter repeats is yielded several times as the same array object (copy it before
    writing into it). Memory stays at a couple of frames however long the video is.
    """
    import av

    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        facts = _stream_facts(container, stream)
        geometry = official_geometry(facts.width, facts.height, size)
        selector = FpsSelector(fps, facts.time_base)
        converter: FrameConverter | None = None
        held = None  # the frame waiting for its count
        held_pts = 0
        last_end: int | None = None
        try:
            for frame in container.decode(stream):
                if should_stop is not None and should_stop():
                    return
                pts = _frame_pts(frame)
                if pts is None:
                    continue
                pts -= facts.start_offset
                if converter is None:
                    converter = FrameConverter(geometry, display_transform(frame), threads)
                count = selector.push(pts)
                if held is not None and count:
                    rgb = converter.convert(held)
                    for _ in range(count):
                        yield rgb
                last_end = pts + _frame_duration(frame, pts, None if held is None else held_pts)
                held, held_pts = frame, pts
        except av.error.FFmpegError as exc:
            raise VideoReadError(f"decoding {str(path)!r} failed ({_first_line(exc)}). {_ACCEPTED}") from exc
        if held is not None and last_end is not None:
            count = selector.finish(last_end)
            if count:
                rgb = converter.convert(held)
                for _ in range(count):
                    yield rgb


def _stream_facts(container, stream) -> StreamFacts:
    cc = stream.codec_context
    tb = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
    start = container.start_time  # microseconds (AV_TIME_BASE), None when unknown
    offset = rescale_near(int(start), Fraction(1, 1_000_000), tb) if start not in (None, 0) else 0
    return StreamFacts(int(cc.width), int(cc.height), tb, offset)


def _frame_pts(frame) -> int | None:
    pts = frame.pts
    if pts is None:
        pts = getattr(frame, "best_effort_timestamp", None)  # what the command line uses
    return None if pts is None else int(pts)


def _frame_duration(frame, pts: int, previous_pts: int | None) -> int:
    """The command line's estimate of a frame's duration (``video_duration_estimate`` in ffmpeg_dec.c).

    The frame's own duration unless it is a made-up 1 while frames are further apart; else the gap to the
    previous frame; else 1. Only the last frame's estimate matters: it places the end of the stream.
    """
    duration = int(getattr(frame, "duration", 0) or 0)
    gap = pts - previous_pts if previous_pts is not None else -1
    if duration > 0 and not (duration == 1 and gap > 2):
        return duration
    if gap > 0:
        return gap
    return duration if duration > 0 else 1


def _coded_size(path: str | os.PathLike) -> tuple[int, int]:
    with open_video(path) as container:
        cc = container.streams.video[0].codec_context
        return int(cc.width), int(cc.height)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


__all__ = [
    "FpsSelector",
    "apply_display_transform",
    "FrameConverter",
    "OutputGeometry",
    "display_transform",
    "iter_official_frames",
    "official_ffmpeg_args",
    "official_geometry",
    "open_video",
    "rescale_near",
    "rotation_degrees",
    "run_official_ffmpeg",
    "swaps_axes",
    "tick_duration",
]
