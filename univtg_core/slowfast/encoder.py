"""The SlowFast video encoder: a video file in, HERO's (N, 2304) clip features out, in bounded memory.

Unlike CLIP, which sees one frame per clip, SlowFast needs every clip's 30 fps frames, so the encoder reads
the video itself (:meth:`SlowFastEncoder.encode_video`): a background thread decodes and samples clips
(:func:`.pipeline.iter_clips`) while the network runs on the previous batch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ..device import default_dtype, pick_device
from ..errors import EncoderWeightsError, VideoReadError
from ..prefetch import iter_in_thread
from .network import FEATURE_DIM, NUM_FRAMES, SlowFastR50
from .pipeline import CROP_SIZE, clips_kept, iter_clips, normalise, pathways, probe_slowfast
from .weights import (
    WEIGHTS_HELP,
    complete_state_dict,
    read_slowfast_weights,
    seeded_slowfast_state_dict,
    weights_fingerprint,
)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]
PIPELINE_VERSION = "hero1"  # bump when the features change for the same weights and video


class SlowFastEncoder:
    """SlowFast R50 8x8 in eval mode with HERO's input pipeline (see ``load_slowfast_encoder``)."""

    embed_dim = FEATURE_DIM
    image_size = CROP_SIZE

    def __init__(
        self,
        model: SlowFastR50,
        *,
        weights: str,
        device: torch.device,
        dtype: torch.dtype,
        fingerprint: str,
        is_random: bool,
        batch_size: int,
        float16_storage: bool = True,
    ):
        self.model = model
        self.weights = weights
        self.device = device
        self.dtype = dtype
        self.fingerprint = fingerprint
        self.is_random = is_random
        self.batch_size = int(batch_size)
        self.float16_storage = bool(float16_storage)
        # channels-last 3D convolutions are ~20 % faster on the CPU (oneDNN) and differ from the contiguous
        # layout by ~3e-8; elsewhere the layout HERO ran with
        self.memory_format = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)

    def __repr__(self) -> str:
        return (f"SlowFastEncoder(weights={self.weights!r}, device={self.device}, dtype={self.dtype}, "
                f"batch_size={self.batch_size}, fingerprint={self.fingerprint!r})")

    # -- clips ------------------------------------------------------------------------------------------
    def encode_clips(self, clips: np.ndarray) -> np.ndarray:
        """uint8 ``(B, 32, 224, 224, 3)`` sampled clips -> ``(B, 2304)`` float32.

        With ``float16_storage`` (the default) the values are rounded through float16, as HERO saves them:
        the released features, hence the downstream checkpoints, only ever saw float16 values.
        """
        clips = np.asarray(clips)
        shape = (NUM_FRAMES, CROP_SIZE, CROP_SIZE, 3)
        if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[1:] != shape:
            raise ValueError(f"encode_clips takes uint8 clips of shape (B, {', '.join(map(str, shape))}); got "
                             f"{clips.dtype} {clips.shape}")
        out = np.empty((len(clips), FEATURE_DIM), np.float32)
        with torch.inference_mode(), self._precision():
            for start in range(0, len(clips), self.batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(clips[start:start + self.batch_size]))
                x = normalise(chunk.to(self.device))
                inputs = [p.to(self.dtype).contiguous(memory_format=self.memory_format) for p in pathways(x)]
                feats = self.model(inputs)
                out[start:start + len(chunk)] = feats.float().cpu().numpy()
        if self.float16_storage:
            out = out.astype(np.float16).astype(np.float32)
        return out

    def _precision(self):
        """float32 on CUDA means float32: no TF32 convolutions (they move features by ~1e-2 relative)."""
        if self.device.type == "cuda" and self.dtype == torch.float32:
            return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False)
        return nullcontext()

    # -- videos -----------------------------------------------------------------------------------------
    def expected_clips(self, path: str | os.PathLike, clip_len: float = 2.0) -> int | None:
        """How many features :meth:`encode_video` will return, when the stream says how long it is."""
        return clips_kept(probe_slowfast(path).duration, clip_len)

    def iter_video_features(
        self,
        path: str | os.PathLike,
        clip_len: float = 2.0,
        progress: ProgressCallback | None = None,
        prefetch: int = 2,
        *,
        start_clip: int = 0,
    ) -> Iterator[np.ndarray]:
        """``(b, 2304)`` float32 feature batches of the video's clips from ``start_clip`` on, in order (HERO's
        clip grid; the indexer's stream protocol, shared with the CLIP encoder).

        Decoding and clip sampling run in a background thread at most ``prefetch`` batches ahead, so the
        network and the decoder overlap and memory stays at a few batches of clips however long the video
        is. A resumed stream (``start_clip`` > 0) still decodes the video from its start (the 30 fps frames
        are read in order) but runs the network only from ``start_clip`` on. ``progress(done, total)`` is
        called after each batch (``total`` is 0 while unknown; ``done`` starts at ``start_clip``).
        """
        probe = probe_slowfast(path)
        total = clips_kept(probe.duration, clip_len) or 0
        logger.info("%s: SlowFast clips of %.2f s at %d fps (source floor), %s clips", Path(path).name, clip_len,
                    probe.fps, total or "unknown number of")
        start_clip = max(0, int(start_clip))
        done = start_clip
        if progress is not None:
            progress(done, total)

        def make(stop: threading.Event) -> Iterator[np.ndarray]:
            return _batches(path, clip_len, probe, self.batch_size, stop, skip=start_clip)

        for batch in iter_in_thread(make, prefetch, name="univtg-slowfast-decode"):
            feats = self.encode_clips(batch)
            done += len(feats)
            if progress is not None:
                progress(done, max(total, done))
            yield feats
        if done == 0:
            raise VideoReadError(f"{str(path)!r}: no SlowFast clip could be made from the video")

    def encode_video(
        self, path: str | os.PathLike, clip_len: float = 2.0, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """``(N, 2304)`` float32 features: clip ``i`` covers seconds ``[i * clip_len, (i + 1) * clip_len)``."""
        parts = list(self.iter_video_features(path, clip_len, progress))
        return np.concatenate(parts, axis=0)


def _batches(path, clip_len: float, probe, batch_size: int, stop: threading.Event,
             skip: int = 0) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for index, clip in enumerate(iter_clips(path, clip_len, probe, should_stop=stop.is_set)):
        if index < skip:
            continue
        batch.append(clip)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


# ------------------------------------------------------------------------------------------------------
# Loading


def load_slowfast_encoder(
    weights: str | os.PathLike | Mapping[str, torch.Tensor],
    device: str | torch.device | None = None,
    precision: str = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    float16_storage: bool = True,
) -> SlowFastEncoder:
    """SlowFast R50 8x8 from PySlowFast's ``SLOWFAST_8x8_R50.pkl``, a converted file, or ``"random"``.

    ``weights``: a Caffe2 ``.pkl`` as released, a ``.safetensors`` or PySlowFast ``.pyth`` state dict, a
    state dict, or ``"random"`` (the fixture's seeded rule with ``seed``; meaningless features, for tests and
    smoke runs). The device comes from ``pick_device``; ``precision="auto"`` is float32 on the CPU and half
    on CUDA. ``batch_size`` clips go through the network at once (default 4 on the CPU, 16 on a GPU).
    Raises EncoderWeightsError, in one line, when the weights are missing, unreadable or incomplete.
    """
    dev = pick_device(device)
    dtype = default_dtype(dev, precision)
    if isinstance(weights, Mapping):
        state = complete_state_dict(weights, "the given state dict")
        source, origin, is_random = "<state dict>", "state-dict", False
    elif str(weights) == "random":
        state = seeded_slowfast_state_dict(seed)
        source, origin, is_random = "random", f"seeded-{int(seed)}", True
        logger.warning("SlowFast has seeded random weights (seed %d): features are meaningless. Use them for "
                       "tests and smoke runs only.", seed)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EncoderWeightsError(f"SlowFast weights not found: {str(path)!r}. {WEIGHTS_HELP}")
        state = read_slowfast_weights(path)
        source, origin, is_random = str(path), weights_fingerprint(path), False
    with torch.device("meta"):  # no random initialisation: every tensor comes from `state`
        model = SlowFastR50()
    model.load_state_dict(state, strict=True, assign=True)
    model.to(dev, dtype)
    model.eval()
    bs = int(batch_size) if batch_size else (16 if dev.type == "cuda" else 4)
    if bs < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size!r}")
    store = "f16" if float16_storage else "f32"
    fingerprint = f"slowfast-r50-8x8:{origin}:{PIPELINE_VERSION}:{store}"
    logger.info("loaded SlowFast R50 8x8 (%s) on %s as %s", fingerprint, dev, dtype)
    return SlowFastEncoder(model, weights=source, device=dev, dtype=dtype, fingerprint=fingerprint,
                           is_random=is_random, batch_size=bs, float16_storage=float16_storage)


__all__ = ["SlowFastEncoder", "load_slowfast_encoder"]
