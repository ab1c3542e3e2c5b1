"""Our in-process pixel path against the bundled ffmpeg running the official extractors' filter chain.

UniVTG's CLIP extractor runs ``fps=1/2, scale=W:H, crop=224:224:x:y`` to rgb24, HERO's SlowFast extractor the
same at ``fps=30``; both go through ffmpeg's own scaler. On generated videos of the shapes, colour tags and
frame rates that broke the old ``frame.reformat`` path, our frames must equal ffmpeg's byte for byte, and the
CLIP features of both must agree.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction

import numpy as np
import pytest

from univtg_core.avfilter import (
    FpsSelector,
    iter_official_frames,
    official_ffmpeg_args,
    official_geometry,
    rescale_near,
    run_official_ffmpeg,
)
from univtg_core.media import ffmpeg_exe

# name -> (lavfi source, output options): landscape NTSC rate, portrait, BT.709-tagged HD with audio, an odd
# rate, 4:2:0 chroma sited top-left (tagged), full range; then (below) a stream with a 90-degree display
# matrix and one that starts after its audio.
VIDEOS = {
    "land2997": ("testsrc2=s=320x240:r=30000/1001:d=3.2", []),
    "portrait25": ("testsrc2=s=240x320:r=25:d=3", []),
    "bt709_hd": ("testsrc2=s=640x360:r=30:d=2.5",
                 ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]),
    "ntsc14985": ("testsrc2=s=352x288:r=15000/1001:d=4.1", []),
    "chroma_topleft": ("testsrc2=s=320x180:r=24:d=2.2", ["-chroma_sample_location", "topleft"]),
    "full_range": ("testsrc2=s=256x144:r=24000/1001:d=2.1", ["-color_range", "pc"]),
}


def _ffmpeg(*args: str) -> None:
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("avfilter")
    out = {}
    for name, (source, extra) in VIDEOS.items():
        path = root / f"{name}.mp4"
        args = ["-f", "lavfi", "-i", source]
        if name == "bt709_hd":
            args += ["-f", "lavfi", "-i", "sine=frequency=440:duration=2.5", "-c:a", "aac", "-shortest"]
        _ffmpeg(*args, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *extra, str(path))
        out[name] = path
    rotated = root / "rotated.mp4"
    _ffmpeg("-display_rotation", "90", "-i", str(out["ntsc14985"]), "-c", "copy", str(rotated))
    out["rotated"] = rotated
    late = root / "late_start.mp4"  # the video starts 1.3 s after the audio: ffmpeg's output starts at 0
    _ffmpeg("-itsoffset", "1.3", "-i", str(out["portrait25"]), "-f", "lavfi", "-i", "sine=duration=4.5",
            "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", str(late))
    out["late_start"] = late
    return out


def test_geometry_follows_the_official_loaders():
    # int(long * 224 / short) with Python's float division, short side 224, crop at int((side - 224) / 2)
    assert official_geometry(320, 240) == official_geometry(320, 240, 224)
    g = official_geometry(320, 240)
    assert (g.width, g.height, g.x, g.y) == (298, 224, 37, 0)
    g = official_geometry(240, 320)
    assert (g.width, g.height, g.x, g.y) == (224, 298, 0, 37)
    g = official_geometry(1920, 1080)
    assert (g.width, g.height, g.x, g.y) == (int(1920 * 224 / 1080), 224, int((398 - 224) / 2), 0)
    assert official_geometry(500, 500).filters == "scale=224:224,crop=224:224:0:0"
    with pytest.raises(ValueError):
        official_geometry(0, 10)


def test_rescale_rounds_halves_away_from_zero():
    assert rescale_near(3, Fraction(1, 2), Fraction(1, 1)) == 2  # 1.5 -> 2
    assert rescale_near(-3, Fraction(1, 2), Fraction(1, 1)) == -2
    assert rescale_near(1001, Fraction(1, 30000), Fraction(1, 30)) == 1  # 1.001
    assert rescale_near(149 * 1001, Fraction(1, 30000), Fraction(2, 1)) == 2  # 4.97 s at 1/2 fps: 2.485


def test_fps_selector_repeats_and_drops_like_the_filter():
    # 10 fps input to 30 fps: every frame three times; 60 fps to 30 fps: every other frame
    sel = FpsSelector(30, Fraction(1, 10))
    counts = [sel.push(p) for p in range(5)][1:] + [sel.finish(5)]
    assert counts == [3, 3, 3, 3, 3]
    sel = FpsSelector(30, Fraction(1, 60))
    counts = [sel.push(p) for p in range(6)][1:] + [sel.finish(6)]
    assert sum(counts) == 3 and all(c in (0, 1) for c in counts)
    # a video starting 0.1 s into the file at 30 fps: its first frame also fills ticks 0-2 (CFR output)
    sel = FpsSelector(30, Fraction(1, 30))
    counts = [sel.push(p) for p in range(3, 6)][1:] + [sel.finish(6)]
    assert counts == [4, 1, 1]


def test_command_line_is_the_one_ffmpeg_python_compiles(tmp_path):
    args = official_ffmpeg_args(tmp_path / "v.mp4", Fraction(1, 2), official_geometry(320, 240))
    assert args[2:] == ["-filter_complex", "[0]fps=fps=1/2[s0];[s0]scale=298:224[s1];[s1]crop=224:224:37:0[s2]",
                        "-map", "[s2]", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"]


@pytest.mark.parametrize("fps", ["1/2", "30"])
def test_pixels_equal_the_official_ffmpeg_command(videos, fps):
    # tolerance: none. Both sides are libavfilter's scale filter on the same decoded frames.
    for name, path in videos.items():
        ref = run_official_ffmpeg(path, fps)
        ours = np.stack(list(iter_official_frames(path, fps)))
        assert ours.shape == ref.shape, f"{name} at {fps} fps: {ours.shape} frames, ffmpeg {ref.shape}"
        diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
        assert diff.max() == 0, f"{name} at {fps} fps: {int((diff > 0).sum())} values differ by up to {diff.max()}"


def test_the_old_reformat_path_is_not_what_ffmpeg_makes(videos):
    # the regression this path fixes: PyAV's reformat mis-sites chroma (PyAV >= 17) or ignores BT.709 (< 17)
    import av

    ref = run_official_ffmpeg(videos["bt709_hd"], "1/2")
    g = official_geometry(640, 360)
    with av.open(str(videos["bt709_hd"])) as container:
        first = next(container.decode(video=0))
        old = first.reformat(width=g.width, height=g.height, format="rgb24", interpolation="BICUBIC").to_ndarray()
    old = old[g.y:g.y + g.size, g.x:g.x + g.size]
    assert np.abs(old.astype(np.int16) - ref[0].astype(np.int16)).max() > 8


def test_the_clip_reader_gives_the_official_pixels(videos):
    """What indexing reads (`video.iter_clip_frames`: seeks, skipped frames, the file's timeline, the display
    rotation) equals the official CLIP command line byte for byte, clip count included."""
    from univtg_core.video import iter_clip_frames

    for name, path in videos.items():
        ref = run_official_ffmpeg(path, "1/2")
        ours = np.concatenate(list(iter_clip_frames(path, clip_len=2.0, size=224)))
        assert ours.shape == ref.shape, f"{name}: {ours.shape} clips, ffmpeg {ref.shape}"
        diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
        assert diff.max() == 0, f"{name}: {int((diff > 0).sum())} values differ by up to {diff.max()}"


@pytest.mark.slow  # random-init ViT-B/32 on the CPU: ~10 s
def test_indexed_features_match_the_official_command_within_1e4(videos, tmp_path):
    """`index_video` (the product's path) against the same weights on the official command line's frames."""
    import torch

    from univtg_core.encoders import load_clip_encoder
    from univtg_core.indexing import index_video

    torch.manual_seed(0)
    enc = load_clip_encoder(weights="random", device="cpu")
    for name in ("land2997", "portrait25", "bt709_hd", "ntsc14985", "rotated", "late_start"):
        ref = enc.encode_frames(run_official_ffmpeg(videos[name], "1/2"))
        ours = index_video(videos[name], enc, clip_len=2.0, cache_dir=tmp_path, use_cache=False).features
        assert ours.shape == ref.shape, name
        a = ours / np.linalg.norm(ours, axis=1, keepdims=True)
        b = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        assert np.abs(a - b).max() <= 1e-4, name
