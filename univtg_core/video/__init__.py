"""Video reading: probe a file, take one frame per clip for CLIP, take frames for thumbnails.

The public surface is the names below; everything else in this package is how they are done:

- `sampling`: which second stands for each clip (`clip_count`, `clip_times`) and which frame is shown then;
- `reading`: the three entry points (`probe_video`, `iter_clip_frames`, `read_frames_at`);
- `prefetch`: the background thread that decodes clip frames while the caller encodes the previous batch;
- `backends`: the name -> backend table (`BACKENDS`), each backend imported only when it is opened;
- `pyav_reader` (the default) and `decord_reader`: the backends, behind the `Reader` interface of `reader`;
- `seek_plan`: the pure planner that decides from the packet index where the PyAV reader seeks.

``backend="auto"`` uses PyAV and falls back to decord when PyAV is not installed or cannot open the file.
Frames are chosen by presentation timestamp, never ``index = t * fps``, so variable frame rate video is read
correctly. Frames are scaled with libswscale's bicubic filter, the same scaler UniVTG's extractor used
through ffmpeg's ``scale`` filter.
"""

from .backends import BACKENDS
from .reader import VIDEO_SUFFIXES, VideoInfo
from .reading import iter_clip_frames, probe_video, read_frames_at
from .sampling import clip_count, clip_times

__all__ = [
    "BACKENDS",
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "clip_count",
    "clip_times",
    "iter_clip_frames",
    "probe_video",
    "read_frames_at",
]
