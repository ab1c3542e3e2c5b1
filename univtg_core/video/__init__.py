"""Video reading: probe a file, take one frame per clip for CLIP, take frames for thumbnails.

The public surface is the names below; everything else in this package is how they are done:

- `sampling`: the clip grid (`clip_count`, `clip_times`) and which frame stands for each clip;
- `reading`: the entry points (`probe_video`, `count_clips`, `iter_clip_frames`, `read_frames_at`); the
  clip frames are decoded in a background thread (`univtg_core.prefetch`) while the caller encodes;
- `backends`: the name -> backend table (`BACKENDS`), each backend imported only when it is opened, and
  `silence_decoder_logs` for command lines;
- `pyav_reader` (the default) and `decord_reader`: the backends, behind the `Reader` interface of `reader`;
- `seek_plan`: the pure planner that decides from the packet index where the PyAV reader seeks.

``backend="auto"`` uses PyAV, and decord only when PyAV is not installed. Times are on the file's timeline
(the player's), frames are chosen by presentation timestamp, never ``index = t * fps`` (variable frame rate
video is read correctly), and turned upright by the display matrix. Clip frames are the pixels of UniVTG's
extractor's ffmpeg command line, made in-process by libavfilter (`univtg_core.avfilter`); thumbnails are
scaled with libswscale's bicubic filter.
"""

from .backends import BACKENDS, silence_decoder_logs
from .reader import VIDEO_SUFFIXES, VideoInfo
from .reading import count_clips, iter_clip_frames, probe_video, read_frames_at
from .sampling import clip_count, clip_times

__all__ = [
    "BACKENDS",
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "clip_count",
    "clip_times",
    "count_clips",
    "iter_clip_frames",
    "probe_video",
    "read_frames_at",
    "silence_decoder_logs",
]
