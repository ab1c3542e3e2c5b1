"""The broken-media corpus: every kind of file a public demo gets, written by the tests with the bundled ffmpeg.

Nothing here is committed: ``build_corpus(folder)`` writes the files (tiny: 64x48, a few seconds). ``CASES``
holds one ``MediaCase`` per file with what must happen to it:

- ``"ok"``: a correct result with a known answer (``Answer``): the duration, the clip count, and which
  seconds are cyan (the rest is red), which an image query of cyan finds even with a random CLIP;
- ``"refuse"``: one clear ``VideoReadError`` (a ``UniVTGError``), never a result;
- ``"either"``: a damaged but partly readable file: a refusal, or a result that is consistent with itself
  (clip count from the duration, moments, highlight and summary inside the video).

A codec/container pair the bundled ffmpeg cannot write is skipped with ffmpeg's reason (``build_corpus``
returns it), so the summary says what was not tried and why. ``xfail`` names the issue 9 item whose fix is
pending for a case; the tests turn it into a strict xfail (none is pending today).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from univtg_core.media import ffmpeg_exe

SIZE = (64, 48)
FPS = 10
RED, CYAN = "0xff0000", "0x00ffff"
# The standard content: 4 s red, then 4 s cyan. With 2 s clips: 4 clips, the last two cyan.
RED_SECONDS = CYAN_SECONDS = 4.0


@dataclass(frozen=True)
class Answer:
    """What a correct reading of the file gives."""

    duration: float
    n_clips: int  # at clip_len 2
    cyan: tuple[float, float] | None  # seconds where the picture is cyan (the rest is red)
    tolerance: float = 0.15  # seconds of duration a container may add or lose (frame durations, padding)


@dataclass(frozen=True)
class MediaCase:
    name: str
    file: str  # file name inside the corpus folder
    group: str  # "codec", "depth", "broken", "unusual"
    description: str
    expect: str  # "ok", "refuse", "either"
    answer: Answer | None = None
    xfail: str | None = None  # "issue 9 item N: ..." while the fix is pending
    rotation: int | None = None  # display rotation in degrees (counter-clockwise, as ffmpeg's option)
    timeout: float | None = None  # seconds the sandbox waits (a known hang need not cost the default)

    def path(self, folder: Path) -> Path:
        return folder / self.file


Writer = Callable[[Path], None]

STANDARD = Answer(duration=RED_SECONDS + CYAN_SECONDS, n_clips=4, cyan=(RED_SECONDS, RED_SECONDS + CYAN_SECONDS))

# Video encoders under their common names, with settings that make them fast on tiny files.
CODECS: dict[str, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"],
    "hevc": ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-x265-params", "log-level=error"],
    "vp9": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k", "-pix_fmt", "yuv420p"],
    "av1": ["-c:v", "libaom-av1", "-cpu-used", "8", "-row-mt", "1", "-b:v", "200k", "-pix_fmt", "yuv420p"],
    "mpeg4": ["-c:v", "mpeg4", "-q:v", "4", "-pix_fmt", "yuv420p"],
    "prores": ["-c:v", "prores_ks", "-profile:v", "0", "-pix_fmt", "yuv422p10le"],
}
CONTAINERS = ("mp4", "mkv", "webm", "mov", "avi")
# Bit depth and chroma variants, each in a container that takes it.
DEPTH_VARIANTS: dict[str, tuple[str, list[str]]] = {
    "h264-10bit": ("mkv", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p10le"]),
    "hevc-10bit": ("mkv", ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le",
                           "-x265-params", "log-level=error"]),
    "vp9-10bit": ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k",
                           "-profile:v", "2", "-pix_fmt", "yuv420p10le"]),
    "av1-10bit": ("mkv", ["-c:v", "libaom-av1", "-cpu-used", "8", "-row-mt", "1", "-b:v", "200k",
                          "-pix_fmt", "yuv420p10le"]),
    "h264-444": ("mkv", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv444p"]),
    "hevc-444": ("mkv", ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv444p",
                         "-x265-params", "log-level=error"]),
    "vp9-444": ("webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "200k",
                         "-profile:v", "1", "-pix_fmt", "yuv444p"]),
    "prores-4444": ("mov", ["-c:v", "prores_ks", "-profile:v", "4", "-pix_fmt", "yuva444p10le"]),
}


class FFmpegFailed(Exception):
    """ffmpeg could not write a file; the message is its first error line (why a pair is skipped)."""


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg with an argument list (never a shell)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=120)
    if proc.returncode != 0:
        lines = [re.sub(r"^(\[[^]]*\]\s*)+", "", ln.strip())
                 for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise FFmpegFailed(lines[0] if lines else f"exit status {proc.returncode}")


def _colour_input(colour: str, seconds: float, fps: float = FPS, size: tuple[int, int] = SIZE) -> list[str]:
    return ["-f", "lavfi", "-i", f"color=c={colour}:s={size[0]}x{size[1]}:r={fps}:d={seconds}"]


def write_standard(out: Path, codec_args: list[str], *, extra_out: tuple[str, ...] = ()) -> None:
    """4 s red then 4 s cyan, 64x48 at 10 fps, with the given encoder settings."""
    ffmpeg(*_colour_input(RED, RED_SECONDS), *_colour_input(CYAN, CYAN_SECONDS),
           "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", *codec_args, *extra_out, str(out))


def write_halves(out: Path, seconds: float = 4.0) -> None:
    """Top half cyan, bottom half red: which way up the picture is shows in every frame."""
    w, h = SIZE
    ffmpeg(*_colour_input(RED, seconds), "-vf", f"drawbox=x=0:y=0:w={w}:h={h // 2}:color={CYAN}:t=fill",
           *CODECS["h264"], str(out))


def _patch_mp4_size(path: Path, width: int, height: int) -> None:
    """Make an mp4's headers claim another picture size (tkhd and the avc1 sample entry); the stream is unchanged."""
    data = bytearray(path.read_bytes())
    tkhd = data.find(b"tkhd")
    avc1 = data.find(b"avc1")
    if tkhd < 0 or avc1 < 0:
        raise FFmpegFailed("no tkhd/avc1 box to patch")
    box_end = tkhd - 4 + int.from_bytes(data[tkhd - 4: tkhd], "big")
    data[box_end - 8: box_end - 4] = (width << 16).to_bytes(4, "big")
    data[box_end - 4: box_end] = (height << 16).to_bytes(4, "big")
    entry = avc1 + 4 + 24  # after the 4cc: 6 reserved, data ref index, 16 bytes of pre-defined/reserved
    data[entry: entry + 2] = width.to_bytes(2, "big")
    data[entry + 2: entry + 4] = height.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def _raw(name: str, payload: bytes) -> Writer:
    def write(folder: Path) -> None:
        (folder / name).write_bytes(payload)

    return write


def _random_bytes(folder: Path) -> None:
    (folder / "random-bytes.mp4").write_bytes(random.Random(9).randbytes(65536))


def _image(folder: Path) -> None:
    ffmpeg(*_colour_input(CYAN, 1.0), "-frames:v", "1", "-update", "1", "-c:v", "png", str(folder / "still.png"))
    (folder / "still.png").replace(folder / "still-image.mp4")


def _audio_only(folder: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=4", "-c:a", "aac", str(folder / "audio-only.mp4"))


def _zero_frames(folder: Path) -> None:
    """An mkv that declares a video track and ends before its first cluster: a track with no frames."""
    whole = folder / "whole-zero.mkv"
    write_standard(whole, CODECS["h264"])
    data = whole.read_bytes()
    whole.unlink()
    cluster = data.find(bytes.fromhex("1f43b675"))
    if cluster < 0:
        raise FFmpegFailed("no cluster in the mkv to cut at")
    (folder / "zero-frames.mkv").write_bytes(data[:cluster])


def _one_frame(folder: Path) -> None:
    ffmpeg(*_colour_input(CYAN, 1.0), "-frames:v", "1", *CODECS["h264"], str(folder / "one-frame.mp4"))


def _short(folder: Path) -> None:
    ffmpeg(*_colour_input(CYAN, 0.8), *CODECS["h264"], str(folder / "shorter-than-a-clip.mp4"))


def _truncated(name: str, start: float, stop: float, extra_out: tuple[str, ...] = ()) -> Writer:
    """The standard video with only the bytes from ``start`` to ``stop`` (fractions of its size) kept."""

    def write(folder: Path) -> None:
        whole = folder / f"whole-{name}"
        write_standard(whole, CODECS["h264"], extra_out=extra_out)
        data = whole.read_bytes()
        whole.unlink()
        (folder / name).write_bytes(data[int(len(data) * start): int(len(data) * stop)])

    return write


def _huge_header(folder: Path) -> None:
    out = folder / "header-16k.mp4"
    write_standard(out, CODECS["h264"])
    _patch_mp4_size(out, 16384, 16384)


def _rotated(degrees: int) -> Writer:
    def write(folder: Path) -> None:
        plain = folder / f"plain-rotate-{degrees}.mp4"
        write_halves(plain)
        try:
            out = folder / f"rotate-{degrees}.mp4"
            ffmpeg("-display_rotation", str(degrees), "-i", str(plain), "-c", "copy", str(out))
        finally:
            plain.unlink(missing_ok=True)

    return write


def _variable_frame_rate(folder: Path) -> None:
    # 4 s red at 5 fps then 4 s cyan at 25 fps, kept variable (no frame duplication).
    ffmpeg(*_colour_input(RED, RED_SECONDS, fps=5), *_colour_input(CYAN, CYAN_SECONDS, fps=25),
           "-filter_complex", "[0:v]settb=1/1000[a];[1:v]settb=1/1000[b];[a][b]concat=n=2:v=1:a=0[v]",
           "-map", "[v]", "-fps_mode", "vfr", *CODECS["h264"], str(folder / "variable-frame-rate.mkv"))


def _encoded(name: str, args: list[str]) -> Writer:
    return lambda folder: write_standard(folder / name, args)


def _cases() -> list[tuple[MediaCase, Writer]]:
    cases: list[tuple[MediaCase, Writer]] = []
    for codec, args in CODECS.items():
        for container in CONTAINERS:
            file = f"{codec}-{container}.{container}"
            name = f"{codec}-{container}"
            unreadable = UNREADABLE.get(name)
            cases.append((MediaCase(name, file, "codec", f"{codec} in {container}" + (f" ({unreadable})"
                                    if unreadable else ""), "refuse" if unreadable else "ok",
                                    None if unreadable else STANDARD, timeout=8.0 if unreadable else None),
                          _encoded(file, args)))
    for name, (container, args) in DEPTH_VARIANTS.items():
        file = f"{name}.{container}"
        cases.append((MediaCase(name, file, "depth", f"{name} in {container}", "ok", STANDARD),
                      _encoded(file, args)))
    cases += [
        (MediaCase("random-bytes", "random-bytes.mp4", "broken", "64 KiB of random bytes named .mp4", "refuse"),
         _random_bytes),
        (MediaCase("empty", "empty.mp4", "broken", "an empty file named .mp4", "refuse"), _raw("empty.mp4", b"")),
        (MediaCase("text", "notes.mp4", "broken", "a text file named .mp4", "refuse"),
         _raw("notes.mp4", b"this is not a video\n" * 200)),
        (MediaCase("image-renamed", "still-image.mp4", "broken", "a PNG image renamed .mp4", "refuse"),
         _image),
        (MediaCase("audio-only", "audio-only.mp4", "broken", "an mp4 holding only an AAC track", "refuse"),
         _audio_only),
        (MediaCase("zero-frames", "zero-frames.mkv", "broken", "an mkv whose video track has no frames", "refuse"),
         _zero_frames),
        (MediaCase("one-frame", "one-frame.mp4", "broken", "a video of one frame (0.1 s)", "refuse"),
         _one_frame),
        (MediaCase("shorter-than-a-clip", "shorter-than-a-clip.mp4", "broken", "0.8 s of video, less than a clip",
                   "refuse"), _short),
        (MediaCase("truncated-start", "truncated-start.mp4", "broken", "an mp4 without its first 40 %", "refuse"),
         _truncated("truncated-start.mp4", 0.4, 1.0, ("-movflags", "+faststart"))),
        (MediaCase("truncated-end-index-last", "truncated-end-index-last.mp4", "broken",
                   "an mp4 (index at the end) without its last 40 %", "refuse"),
         _truncated("truncated-end-index-last.mp4", 0.0, 0.6)),
        (MediaCase("truncated-end-index-first", "truncated-end-index-first.mp4", "broken",
                   "an mp4 (index at the front) without its last 40 %", "either"),
         _truncated("truncated-end-index-first.mp4", 0.0, 0.6, ("-movflags", "+faststart"))),
        (MediaCase("truncated-end-mkv", "truncated-end.mkv", "broken", "an mkv without its last 40 %", "either"),
         _truncated("truncated-end.mkv", 0.0, 0.6)),
        (MediaCase("header-16k", "header-16k.mp4", "unusual", "a 64x48 H.264 mp4 whose headers claim 16384x16384",
                   "ok", STANDARD), _huge_header),
    ]
    for degrees in (90, 180, 270):
        cases.append((MediaCase(f"rotate-{degrees}", f"rotate-{degrees}.mp4", "unusual",
                                f"display rotation {degrees} degrees (top half cyan, bottom half red)", "ok",
                                Answer(duration=4.0, n_clips=2, cyan=None), rotation=degrees), _rotated(degrees)))
    cases.append((MediaCase("variable-frame-rate", "variable-frame-rate.mkv", "unusual",
                            "4 s red at 5 fps then 4 s cyan at 25 fps in one stream", "ok", STANDARD),
                  _variable_frame_rate))
    return cases


# Pairs that no decoder reads, with why: one clear refusal, quickly (the sandbox waits 8 s, not the default:
# HEVC in AVI once made the reader seek back and demux again forever).
UNREADABLE = {
    "hevc-avi": "ffmpeg's AVI demuxer has no tag for HEVC and reads it as raw video; ffmpeg itself decodes nothing",
}

_ALL = _cases()
CASES: tuple[MediaCase, ...] = tuple(case for case, _ in _ALL)
WRITERS: dict[str, Writer] = {case.name: write for case, write in _ALL}


def build_corpus(folder: Path) -> dict[str, str | None]:
    """Write every case's file into ``folder`` once; returns case name -> why it could not be written (or None).

    A manifest records what was written, so a second call (another test module) reuses the files.
    """
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())
    skipped: dict[str, str | None] = {}
    for case in CASES:
        try:
            WRITERS[case.name](folder)
            if not case.path(folder).is_file():
                raise FFmpegFailed("ffmpeg wrote no file")
            skipped[case.name] = None
        except FFmpegFailed as exc:
            case.path(folder).unlink(missing_ok=True)
            skipped[case.name] = f"the bundled ffmpeg cannot write it: {exc}"
    manifest.write_text(json.dumps(skipped, indent=1))
    return skipped
