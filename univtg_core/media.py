"""ffmpeg helpers: make synthetic videos (tests, benchmarks, examples) and cut or join clips for playback.

The front ends hand users `cut_clip` (a moment as an mp4) and `write_summary_video` (the summary points as
one short mp4); both are exported from `univtg_core`. For a player, `browser_playable` decides from a
`probe_playback` whether a file plays in a browser as it is, and `make_playable_copy` makes an H.264/AAC
copy of one that does not.

The ffmpeg binary is the one bundled with ``imageio-ffmpeg``. It is always run with an argument list, never
through a shell, and every file name is passed as an absolute ``file:`` URL so that a name starting with
``-`` or containing ``:`` cannot be read as an option or a protocol.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import VideoReadError
from .video import probe_video

logger = logging.getLogger(__name__)

# Encoder settings for H.264 output that browsers play: 8-bit 4:2:0, moov atom at the front.
_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p"]
_FASTSTART = ["-movflags", "+faststart"]
# Extra options that make slow encoders usable for tiny test files.
_SPEED = {
    "libx264": ["-preset", "veryfast"],
    "libaom-av1": ["-cpu-used", "8", "-row-mt", "1"],
    "libsvtav1": ["-preset", "10"],
    "libvpx-vp9": ["-deadline", "realtime", "-cpu-used", "8"],
}


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise VideoReadError("imageio-ffmpeg is not installed; install it with `pip install imageio-ffmpeg`") \
            from exc
    return imageio_ffmpeg.get_ffmpeg_exe()


def _url(path: str | os.PathLike) -> str:
    return "file:" + str(Path(path).expanduser().resolve())


def _run(args: list[str], what: str) -> None:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    logger.debug("running ffmpeg: %s", cmd)
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise VideoReadError(f"ffmpeg could not {what}: {last}")


def _check_source(src: str | os.PathLike) -> Path:
    p = Path(src).expanduser()
    if not p.is_file():
        raise VideoReadError(f"source video not found: {str(p)!r}. Check the path.")
    return p


def _even_size(size: tuple[int, int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if w < 2 or h < 2 or w % 2 or h % 2:
        raise ValueError(f"size must be (width, height) with even numbers >= 2 (4:2:0 video); got {size!r}")
    return w, h


def _codec_args(codec: str) -> list[str]:
    return ["-c:v", codec, *_SPEED.get(codec, []), "-pix_fmt", "yuv420p"]


def make_colour_video(
    path: str | os.PathLike,
    segments: Sequence[tuple[tuple[int, int, int], float]],
    fps: float = 10,
    size: tuple[int, int] = (160, 120),
    codec: str = "libx264",
    audio: bool = False,
) -> Path:
    """Write a video of solid-colour segments, e.g. ``[((255, 0, 0), 10), ((0, 255, 0), 10)]``.

    ``codec`` is any ffmpeg video encoder (``libx264``, ``libaom-av1``, ``libsvtav1``, ``mpeg4``, ...);
    ``audio`` adds a sine tone track of the same length.
    """
    if not segments:
        raise ValueError("segments must hold at least one ((r, g, b), seconds) pair")
    w, h = _even_size(size)
    if not fps > 0:
        raise ValueError(f"fps must be > 0; got {fps!r}")
    args: list[str] = []
    total = 0.0
    for colour, seconds in segments:
        r, g, b = (int(c) for c in colour)
        if not all(0 <= c <= 255 for c in (r, g, b)) or not seconds > 0:
            raise ValueError(f"each segment is ((r, g, b) in 0..255, seconds > 0); got {(colour, seconds)!r}")
        args += ["-f", "lavfi", "-i", f"color=c=0x{r:02x}{g:02x}{b:02x}:s={w}x{h}:r={fps}:d={float(seconds)}"]
        total += float(seconds)
    n = len(segments)
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={total}"]
    graph = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    args += ["-filter_complex", graph, "-map", "[v]"]  # output options: after every input
    if audio:
        args += ["-map", f"{n}:a", "-c:a", "aac", "-b:a", "64k"]
    out = Path(path)
    _run([*args, *_codec_args(codec), "-t", f"{total}", _url(out)], f"write a colour video to {str(out)!r}")
    return out


def make_test_pattern_video(
    path: str | os.PathLike, duration: float, fps: float = 30, size: tuple[int, int] = (640, 360)
) -> Path:
    """Write an H.264 video of ffmpeg's moving ``testsrc2`` pattern (for decoding benchmarks)."""
    w, h = _even_size(size)
    if not duration > 0 or not fps > 0:
        raise ValueError(f"duration and fps must be > 0; got duration={duration!r}, fps={fps!r}")
    out = Path(path)
    _run(["-f", "lavfi", "-i", f"testsrc2=s={w}x{h}:r={fps}:d={float(duration)}", *_H264, _url(out)],
         f"write a test pattern video to {str(out)!r}")
    return out


def _has_audio(src: Path) -> bool:
    """Whether ffmpeg sees an audio stream in ``src`` (read from the stream list it prints)."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", _url(src)], stdin=subprocess.DEVNULL,
                          capture_output=True, check=False)
    return re.search(r"Stream #\S+.*: Audio:", proc.stderr.decode("utf-8", "replace")) is not None


def _check_span(start: float, end: float, duration: float) -> tuple[float, float]:
    """``(start, end)`` with ``end`` clipped to the video; a span that starts past the end is an error."""
    start, end = float(start), float(end)
    if not (0 <= start < end):
        raise ValueError(f"a span needs 0 <= start < end (seconds); got start={start!r}, end={end!r}")
    if start >= duration:
        raise VideoReadError(
            f"span {start:.2f}-{end:.2f} s starts after the end of the video ({duration:.2f} s); "
            "pass spans inside the video"
        )
    return start, min(end, duration)


def cut_clip(
    src: str | os.PathLike, dst: str | os.PathLike, start: float, end: float
) -> Path:
    """Cut ``[start, end)`` seconds of ``src`` into ``dst``: re-encoded H.264/AAC mp4 that browsers play."""
    source = _check_source(src)
    start, end = _check_span(start, end, probe_video(source).duration)
    out = Path(dst)
    args = ["-ss", f"{start:.6f}", "-t", f"{end - start:.6f}", "-i", _url(source),
            "-map", "0:v:0", "-map", "0:a:0?",
            "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", *_H264, "-c:a", "aac", "-b:a", "128k",
            *_FASTSTART, _url(out)]
    _run(args, f"cut {start:.2f}-{end:.2f} s of {str(source)!r}")
    return out


def concat_clips(
    src: str | os.PathLike, spans: Sequence[tuple[float, float]], dst: str | os.PathLike
) -> Path:
    """Join the given ``(start, end)`` spans of ``src`` into one short H.264/AAC mp4 (e.g. a summary).

    Each span is read with its own input seek, so spans late in a long video do not make ffmpeg decode
    everything before them.
    """
    source = _check_source(src)
    duration = probe_video(source).duration
    checked = [_check_span(a, b, duration) for a, b in spans]
    if not checked:
        raise ValueError("spans must hold at least one (start, end) pair")
    audio = _has_audio(source)
    args: list[str] = []
    for start, end in checked:
        args += ["-ss", f"{start:.6f}", "-t", f"{end - start:.6f}", "-i", _url(source)]
    n = len(checked)
    parts = []
    for i in range(n):
        parts.append(f"[{i}:v:0]scale=trunc(iw/2)*2:trunc(ih/2)*2,setsar=1,setpts=PTS-STARTPTS[v{i}]")
        if audio:
            parts.append(f"[{i}:a:0]aresample=async=1,asetpts=PTS-STARTPTS[a{i}]")
    inputs = "".join(f"[v{i}][a{i}]" if audio else f"[v{i}]" for i in range(n))
    parts.append(f"{inputs}concat=n={n}:v=1:a={int(audio)}[v]" + ("[a]" if audio else ""))
    args += ["-filter_complex", ";".join(parts), "-map", "[v]"]
    if audio:
        args += ["-map", "[a]", "-c:a", "aac", "-b:a", "128k"]
    out = Path(dst)
    _run([*args, *_H264, *_FASTSTART, _url(out)], f"join {n} spans of {str(source)!r}")
    return out


def summary_spans(summary: Sequence[float], clip_len: float, duration: float) -> list[tuple[float, float]]:
    """The clip around each summary point (points are clip centres), clamped, overlaps merged, in order."""
    spans: list[tuple[float, float]] = []
    for t in sorted(float(s) for s in summary):
        start, end = max(0.0, t - clip_len / 2), min(float(duration), t + clip_len / 2)
        if end - start <= 1e-3:
            continue
        if spans and start <= spans[-1][1] + 1e-6:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def write_summary_video(src: str | os.PathLike, prediction: Any, dst: str | os.PathLike) -> Path | None:
    """The prediction's summary as one short H.264/AAC mp4: the clip around each summary point, in order.

    ``prediction`` is a `univtg_core.Prediction` (its ``summary``, ``clip_len`` and ``duration`` are used).
    Returns ``dst``, or None when the summary has no point to show (nothing is written then).
    """
    spans = summary_spans(prediction.summary, float(prediction.clip_len), float(prediction.duration))
    if not spans:
        return None
    return concat_clips(src, spans, dst)


# --------------------------------------------------------------------------------------------------------
# Browser-playable copies (for a front end's player; the features are always read from the original)

# What every current browser plays: (container suffix, video codec) pairs, 8-bit 4:2:0 pixels, these audio codecs.
_PLAYABLE_VIDEO = {
    ".mp4": {"h264", "av1", "vp9"},
    ".m4v": {"h264"},
    ".webm": {"vp8", "vp9", "av1"},
    ".ogg": {"theora"},
    ".ogv": {"theora"},
}
_PLAYABLE_PIXELS = {"yuv420p", "yuvj420p"}
_PLAYABLE_AUDIO = {".mp4": {"aac", "mp3", "opus", "flac"}, ".m4v": {"aac", "mp3"}, ".webm": {"opus", "vorbis"},
                   ".ogg": {"vorbis", "opus"}, ".ogv": {"vorbis", "opus"}}
PLAYER_MAX_SIDE = 1280  # a browser-playable copy is at most this many pixels on its longer side


@dataclass(frozen=True)
class PlaybackProbe:
    """What a browser's player cares about in a file: container (by suffix), codecs, pixels, size."""

    suffix: str
    video_codec: str | None
    pixel_format: str | None
    width: int
    height: int
    audio_codecs: tuple[str, ...] = ()
    duration: float = 0.0


def probe_playback(path: str | os.PathLike) -> PlaybackProbe:
    """Read a file's streams (PyAV) for `browser_playable`; a VideoReadError when it holds no video stream."""
    import av

    source = _check_source(path)
    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{source.name!r} holds no video stream. Pass a video file.")
            stream = container.streams.video[0]
            context = stream.codec_context
            pixels = context.format.name if context.format is not None else None
            duration = float(container.duration / av.time_base) if container.duration else 0.0
            return PlaybackProbe(
                suffix=source.suffix.lower(),
                video_codec=context.name,
                pixel_format=pixels,
                width=int(context.width or 0),
                height=int(context.height or 0),
                audio_codecs=tuple(a.codec_context.name for a in container.streams.audio),
                duration=duration,
            )
    except av.FFmpegError as exc:
        raise VideoReadError(f"{source.name!r} could not be opened as a video ({type(exc).__name__}).") from exc


def browser_playable(probe: PlaybackProbe) -> tuple[bool, str]:
    """Whether browsers play the file as it is, and if not, why (for a progress message): a pure decision.

    Playable: H.264 / AV1 / VP9 in mp4, VP8 / VP9 / AV1 in webm, Theora in ogg, with 8-bit 4:2:0 pixels and
    audio browsers decode. HEVC, ProRes, MPEG-4 Part 2, 10-bit or 4:2:2 / 4:4:4 pixels, mkv, mov and avi
    containers are not (some browsers play some of them; none plays all).
    """
    what = f"{(probe.video_codec or 'unknown').upper()} video ({probe.pixel_format or 'unknown'} pixels) in " \
           f"{probe.suffix or 'a file without a suffix'}"
    if probe.video_codec not in _PLAYABLE_VIDEO.get(probe.suffix, set()):
        return False, what
    if probe.pixel_format not in _PLAYABLE_PIXELS:
        return False, what
    odd_audio = [a for a in probe.audio_codecs if a not in _PLAYABLE_AUDIO.get(probe.suffix, set())]
    if odd_audio:
        return False, f"{odd_audio[0].upper()} audio in {probe.suffix}"
    return True, "plays as it is"


def make_playable_copy(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    max_side: int = PLAYER_MAX_SIDE,
    progress: Any = None,
    duration: float | None = None,
) -> Path:
    """Transcode ``src`` to an H.264/AAC mp4 that browsers play, at most ``max_side`` pixels on its longer side.

    ``progress(done_seconds, total_seconds)`` is called as ffmpeg advances (``duration`` defaults to the
    probed one); an exception it raises stops ffmpeg and is re-raised. Rotation tags are applied (ffmpeg
    turns the picture upright). ffmpeg runs with an argument list, never a shell.
    """
    import tempfile

    source = _check_source(src)
    total = float(duration) if duration else probe_playback(source).duration
    side = int(max_side)
    scale = (f"scale=w='min({side},iw)':h='min({side},ih)':force_original_aspect_ratio=decrease,"
             "scale=trunc(iw/2)*2:trunc(ih/2)*2")
    out = Path(dst)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-progress", "pipe:1", "-nostats",
           "-i", _url(source),
           "-map", "0:v:0", "-map", "0:a:0?", "-vf", scale, *_H264, "-c:a", "aac", "-b:a", "128k", "-ac", "2",
           *_FASTSTART, _url(out)]
    logger.debug("running ffmpeg: %s", cmd)
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                key, _, value = raw.decode("ascii", "replace").strip().partition("=")
                if key == "out_time_us" and value.isdigit() and progress is not None:
                    progress(min(int(value) / 1e6, total) if total else int(value) / 1e6, total)
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            out.unlink(missing_ok=True)
            raise
        if proc.returncode != 0:
            errors.seek(0)
            lines = [ln.strip() for ln in errors.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            out.unlink(missing_ok=True)
            raise VideoReadError(f"ffmpeg could not make a browser-playable copy of {source.name!r}: "
                                 f"{lines[-1] if lines else f'exit status {proc.returncode}'}")
    if progress is not None:
        progress(total, total)
    return out
