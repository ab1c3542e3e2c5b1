"""HERO's SlowFast input pipeline: probe, 30 fps frames, clip grid, frame sampling, normalisation.

Each step reproduces ``slowfast/extract_feature`` of linjieli222/HERO_Video_Feature_Extractor (the extractor
of the SlowFast features released with Moment-DETR, QD-DETR, UniVTG and MESM), quirks included:

1. **Probe** (ffprobe there): coded ``width``/``height``; ``fps = floor(avg_frame_rate)`` (29.97 gives 29);
   ``duration`` = the video *stream's* duration as ffprobe prints it (6 decimals); when the stream has no
   frame count or no duration, ``duration = -1`` and every clip is kept.
2. **Frames**: ``fps=fps=30``, scale the short side to 224, centre crop 224, rgb24 (:mod:`univtg_core.avfilter`).
3. **Pad to whole seconds** with copies of the last frame.
4. **Pad to whole clips** with copies of the whole *last second* (not the last frame).
5. **Keep** the first ``ceil(duration / clip_len)`` clips (when ``duration > 0``).
6. **Sample 32 frames per clip** at ``linspace(0, 64 * fps / 30 - 1, 32)`` (float32), clamped to the clip and
   truncated: the window follows the *source* frame rate, so below 30 fps it covers less than a 2 s clip and
   a 1 s clip's tail repeats its last frame.
7. **Normalise** ``(x / 255 - 0.45) / (0.225 + 1e-8)`` in float32, RGB order.
8. **Slow pathway** = frames ``linspace(0, 31, 8).long()`` = 0 4 8 13 17 22 26 31 of the 32.

The clip grid is computed from the decoded frame count alone (:func:`clip_grid`), and the streaming reader
(:func:`iter_clips`) emits each clip as soon as its frames are decoded, so memory holds about two clips.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from ..avfilter import iter_official_frames, open_video
from ..errors import VIDEO_ACCEPTED as _ACCEPTED
from ..errors import VideoReadError
from .network import ALPHA, NUM_FRAMES

TARGET_FPS = 30
SAMPLING_RATE = 2
CROP_SIZE = 224
MEAN = 0.45
STD = 0.225



@dataclass(frozen=True)
class SlowFastProbe:
    """The five fields HERO reads from ffprobe, plus the exact average frame rate."""

    width: int
    height: int
    fps: int  # floor(avg_frame_rate)
    frames_length: int  # nb_frames, -1 when unknown
    duration: float  # the video stream's duration (6 decimals), -1 when it or nb_frames is unknown
    avg_frame_rate: Fraction | None


def probe_slowfast(path: str | os.PathLike) -> SlowFastProbe:
    """What ffprobe tells HERO's loader about the first video stream (PyAV reads the same fields)."""
    with open_video(path) as container:
        s = container.streams.video[0]
        cc = s.codec_context
        rate = s.average_rate
        if rate:
            fps = math.floor(float(rate.numerator) / float(rate.denominator))
        else:  # ffprobe prints 0/0 and HERO's probe fails; use the stream's guess rather than give up
            guess = s.guessed_rate or s.base_rate
            if not guess:
                raise VideoReadError(f"{str(path)!r}: the video stream has no frame rate. {_ACCEPTED}")
            fps = math.floor(float(guess))
        nb_frames = int(s.frames or 0)
        duration = -1.0
        if nb_frames > 0 and s.duration is not None and s.time_base:
            seconds = s.duration * (s.time_base.numerator / s.time_base.denominator)  # ffprobe: ts * av_q2d(tb)
            duration = float(f"{seconds:f}")  # printed with "%f"
        return SlowFastProbe(int(cc.width), int(cc.height), int(fps), nb_frames if nb_frames > 0 else -1,
                             duration, Fraction(rate) if rate else None)


# --------------------------------------------------------------------------------------------------------
# The clip grid


def clip_frames(clip_len: float) -> int:
    """Frames per clip at 30 fps; HERO's clip lengths are whole or fractional seconds with 30 * L whole."""
    value = Fraction(clip_len).limit_denominator(1000) * TARGET_FPS
    if value.denominator != 1 or value <= 0:
        raise ValueError(f"clip_len must be > 0 with 30 * clip_len a whole number of frames; got {clip_len!r}")
    return int(value)


def _pad_seconds(clip_len: float) -> int:
    """Seconds that stage-2 padding rounds up to: ``L`` for a whole ``L``, the numerator of ``n/d`` otherwise."""
    return Fraction(clip_len).limit_denominator(1000).numerator


def sample_indices(fps: int, clip_len: float) -> np.ndarray:
    """The 32 frame indices taken inside every clip (HERO's ``temporal_sampling``, float32 linspace)."""
    frames = clip_frames(clip_len)
    clip_size = NUM_FRAMES * SAMPLING_RATE * fps / TARGET_FPS
    start = 0.0  # get_start_end_idx(..., clip_idx=0, num_clips=1) starts every clip at its first frame
    index = torch.linspace(start, start + clip_size - 1, NUM_FRAMES)
    return torch.clamp(index, 0, frames - 1).long().numpy()


def slow_indices() -> np.ndarray:
    """Which of the 32 sampled frames the Slow pathway sees: ``linspace(0, 31, 8).long()``."""
    return torch.linspace(0, NUM_FRAMES - 1, NUM_FRAMES // ALPHA).long().numpy()


@dataclass(frozen=True)
class ClipGrid:
    """HERO's clips for a video of ``n_decoded`` frames at 30 fps."""

    n_decoded: int
    n_after_pad30: int
    n_after_padL: int
    clip_frames: int
    n_clips: int
    frame_idx_in_clip: np.ndarray  # (32,)

    def source_index(self, j: int | np.ndarray) -> np.ndarray:
        """Decoded frame behind frame ``j`` of the padded sequence (both padding stages undone)."""
        j = np.asarray(j, dtype=np.int64)
        last_second = self.n_after_pad30 - TARGET_FPS
        j = np.where(j >= self.n_after_pad30, last_second + (j - self.n_after_pad30) % TARGET_FPS, j)
        return np.minimum(j, self.n_decoded - 1)

    @property
    def src_frame_idx(self) -> np.ndarray:
        """``(n_clips, 32)`` decoded frame index of every sampled frame."""
        starts = np.arange(self.n_clips, dtype=np.int64)[:, None] * self.clip_frames
        return self.source_index(starts + self.frame_idx_in_clip[None, :])


def clips_kept(duration: float, clip_len: float) -> int | None:
    """``ceil(duration / clip_len)`` when the duration is known (> 0), else None (keep every clip)."""
    return int(math.ceil(duration / clip_len)) if duration > 0 else None


def clip_grid(n_decoded: int, fps: int, duration: float, clip_len: float) -> ClipGrid:
    """The clip grid of HERO's ``Preprocessing`` for ``n_decoded`` frames (probe ``fps`` and ``duration``)."""
    if n_decoded <= 0:
        raise ValueError("a clip grid needs at least one decoded frame")
    per_clip = clip_frames(clip_len)
    n30 = -(-n_decoded // TARGET_FPS) * TARGET_FPS
    seconds = n30 // TARGET_FPS
    unit = _pad_seconds(clip_len)
    n_l = -(-seconds // unit) * unit * TARGET_FPS
    n_clips = n_l // per_clip
    keep = clips_kept(duration, clip_len)
    if keep is not None:
        n_clips = min(n_clips, keep)
    return ClipGrid(n_decoded, n30, n_l, per_clip, n_clips, sample_indices(fps, clip_len))


# --------------------------------------------------------------------------------------------------------
# Streaming clips


def iter_clips(
    path: str | os.PathLike,
    clip_len: float = 2.0,
    probe: SlowFastProbe | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[np.ndarray]:
    """uint8 ``(32, 224, 224, 3)`` sampled frames of each clip in order, as HERO feeds them to the network.

    A clip is emitted as soon as its sampled frames are decoded (the padding only ever touches the last
    clips, which wait for the end of the stream); decoding stops after the last clip that is kept.
    """
    probe = probe or probe_slowfast(path)
    per_clip = clip_frames(clip_len)
    idx = sample_indices(probe.fps, clip_len)
    need = int(idx.max())  # the last in-clip frame the sampling reads
    keep = clips_kept(probe.duration, clip_len)
    history = per_clip + TARGET_FPS  # frames kept: enough for the last clips and the repeated last second
    recent: dict[int, np.ndarray] = {}
    received = 0
    emitted = 0
    for frame in iter_official_frames(path, TARGET_FPS, CROP_SIZE, should_stop=should_stop):
        recent[received] = frame
        recent.pop(received - history, None)
        received += 1
        while (keep is None or emitted < keep) and emitted * per_clip + need < received:
            base = emitted * per_clip
            yield np.stack([recent[base + int(i)] for i in idx])
            emitted += 1
        if keep is not None and emitted >= keep:
            return
    if should_stop is not None and should_stop():
        return
    if received == 0:
        raise VideoReadError(f"{str(path)!r}: no frames could be decoded. {_ACCEPTED}")
    grid = clip_grid(received, probe.fps, probe.duration, clip_len)
    for c in range(emitted, grid.n_clips):
        sources = grid.source_index(c * per_clip + idx)
        yield np.stack([recent[int(s)] for s in sources])


def normalise(clips: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 32, H, W, 3)`` -> float32 ``(B, 3, 32, H, W)``, HERO's arithmetic step for step."""
    x = clips.float().permute(0, 4, 1, 2, 3)
    x = x / 255.0
    mean = torch.tensor([MEAN] * 3, dtype=torch.float32, device=x.device).view(1, 3, 1, 1, 1)
    std = torch.tensor([STD] * 3, dtype=torch.float32, device=x.device).view(1, 3, 1, 1, 1)
    return (x - mean) / (std + 1e-8)


def pathways(x: torch.Tensor) -> list[torch.Tensor]:
    """``[slow, fast]``: the Slow pathway takes 8 of the 32 frames (``index_select`` on the time axis)."""
    index = torch.from_numpy(slow_indices()).to(x.device)
    return [torch.index_select(x, 2, index), x]


__all__ = [
    "ClipGrid",
    "SlowFastProbe",
    "clip_frames",
    "clip_grid",
    "clips_kept",
    "iter_clips",
    "normalise",
    "pathways",
    "probe_slowfast",
    "sample_indices",
    "slow_indices",
]
