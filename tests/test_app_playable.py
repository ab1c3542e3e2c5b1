"""Videos a browser cannot play get a browser-playable copy for the player; the original keeps the features.

The decision (`univtg_core.browser_playable`) is a pure function of a probe, tested on hand-made probes;
probing and transcoding run on small files the tests write with the bundled ffmpeg.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from univtg_core import UniVTGError, browser_playable, make_playable_copy, probe_playback
from univtg_core.media import PlaybackProbe, _run, _url, make_colour_video

CYAN = (0, 200, 220)


@pytest.mark.parametrize(
    ("probe", "playable"),
    [
        (PlaybackProbe(".mp4", "h264", "yuv420p", 640, 360, ("aac",)), True),
        (PlaybackProbe(".mp4", "h264", "yuvj420p", 640, 360), True),
        (PlaybackProbe(".webm", "vp9", "yuv420p", 640, 360, ("opus",)), True),
        (PlaybackProbe(".mp4", "av1", "yuv420p", 640, 360), True),
        (PlaybackProbe(".mkv", "h264", "yuv420p", 640, 360), False),  # the container
        (PlaybackProbe(".mp4", "hevc", "yuv420p", 640, 360), False),  # the codec
        (PlaybackProbe(".mp4", "h264", "yuv420p10le", 640, 360), False),  # 10-bit
        (PlaybackProbe(".mp4", "h264", "yuv444p", 640, 360), False),  # 4:4:4
        (PlaybackProbe(".mov", "prores", "yuv422p10le", 640, 360), False),
        (PlaybackProbe(".avi", "mpeg4", "yuv420p", 640, 360), False),
        (PlaybackProbe(".mp4", "h264", "yuv420p", 640, 360, ("pcm_s16le",)), False),  # the audio
        (PlaybackProbe("", "h264", "yuv420p", 640, 360), False),
    ],
)
def test_browser_playable_decides_from_the_probe(probe, playable):
    decided, why = browser_playable(probe)
    assert decided is playable
    if not playable:
        assert why and why != "plays as it is"


def test_the_reason_names_what_browsers_cannot_play():
    assert browser_playable(PlaybackProbe(".mkv", "hevc", "yuv420p10le", 64, 48))[1] == \
        "HEVC video (yuv420p10le pixels) in .mkv"
    assert browser_playable(PlaybackProbe(".mp4", "h264", "yuv420p", 64, 48, ("pcm_s16le",)))[1] == \
        "PCM_S16LE audio in .mp4"


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("playable")
    hevc = folder / "-phone clip; $(rm x).mkv"  # a name that must never reach a shell or read as an option
    _run(["-f", "lavfi", "-i", "testsrc2=s=320x240:r=10:d=4", "-f", "lavfi", "-i", "sine=d=4",
          "-c:v", "libx265", "-x265-params", "log-level=error", "-pix_fmt", "yuv420p10le", "-c:a", "libopus",
          "-shortest", _url(hevc)], "write a 10-bit HEVC test file")
    prores = folder / "master.mov"
    _run(["-f", "lavfi", "-i", "testsrc2=s=320x240:r=10:d=2", "-c:v", "prores_ks", "-pix_fmt", "yuv422p10le",
          _url(prores)], "write a ProRes test file")
    h264 = make_colour_video(folder / "plain.mp4", [(CYAN, 4)], fps=10, size=(64, 48))
    broken = folder / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(5000))
    return {"hevc": hevc, "prores": prores, "h264": h264, "broken": broken}


def test_probe_playback_reads_codecs_pixels_and_audio(videos):
    hevc = probe_playback(videos["hevc"])
    assert (hevc.suffix, hevc.video_codec, hevc.pixel_format, hevc.width, hevc.height) == \
        (".mkv", "hevc", "yuv420p10le", 320, 240)
    assert hevc.audio_codecs == ("opus",) and hevc.duration == pytest.approx(4.0, abs=0.1)
    assert browser_playable(probe_playback(videos["prores"]))[0] is False
    assert browser_playable(probe_playback(videos["h264"]))[0] is True
    with pytest.raises(UniVTGError):
        probe_playback(videos["broken"])


def test_a_playable_copy_is_h264_aac_sized_for_the_screen_with_progress(videos, tmp_path):
    seen = []
    out = make_playable_copy(videos["hevc"], tmp_path / "copy.mp4", max_side=160,
                             progress=lambda done, total: seen.append((done, total)))
    probe = probe_playback(out)
    assert browser_playable(probe) == (True, "plays as it is")
    assert (probe.video_codec, probe.width, probe.height, probe.audio_codecs) == ("h264", 160, 120, ("aac",))
    assert probe.duration == pytest.approx(4.0, abs=0.15)
    assert seen and seen[-1][0] == seen[-1][1] == pytest.approx(4.0, abs=0.1)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not (tmp_path / "x").exists()  # the name's `$(rm x)` ran nothing (and created nothing)
    small = make_playable_copy(videos["prores"], tmp_path / "prores.mp4")  # smaller than max_side: kept
    assert (probe_playback(small).width, probe_playback(small).height) == (320, 240)


def test_a_progress_callback_that_raises_stops_the_copy(videos, tmp_path):
    def cancel(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_playable_copy(videos["hevc"], tmp_path / "cancelled.mp4", progress=cancel)
    assert not (tmp_path / "cancelled.mp4").exists()


class _Progress:
    def __init__(self):
        self.calls = []

    def __call__(self, value, desc=None, **_kwargs):
        self.calls.append((value, desc))


def test_the_player_gets_a_copy_and_the_query_keeps_the_original(videos, tmp_path):
    from app.handlers import QueryHandler
    from app.session import SessionStore

    handler = QueryHandler(SimpleNamespace(mode="zero-shot"), SessionStore(tmp_path / "sessions"))
    session = handler.sessions.open("tab")
    progress = _Progress()
    copy = Path(handler.playable(str(videos["hevc"]), session, progress))
    assert copy.parent == session.folder and copy.name.startswith("playable-") and copy.suffix == ".mp4"
    assert browser_playable(probe_playback(copy))[0]
    assert progress.calls and "HEVC video (yuv420p10le pixels) in .mkv" in progress.calls[-1][1]
    # Gradio hands the copy back from its own cache, under the same name: the query reads the original.
    served = tmp_path / "gradio" / "0f0f" / copy.name
    assert session.original_of(served) == str(videos["hevc"])
    assert handler.playable(str(videos["h264"]), session) == str(videos["h264"])  # plays as it is
    assert handler.playable(str(videos["broken"]), session) == str(videos["broken"])  # the query will say why
