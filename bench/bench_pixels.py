"""The pixel path before and after libavfilter: conversion cost, decode throughput and the index bar, one run.

    python -m bench.bench_pixels [--seconds 120] [--size 640x360] [--fps 30] [--clip-len 2] [--json out.json]

On one generated H.264 video it measures, in the same process:

1. per-frame conversion of the same decoded clip frames: ``frame.reformat`` (bicubic) + crop, as the CLIP
   reader does today, against ``avfilter.FrameConverter`` (ffmpeg's scale/crop filters);
2. CLIP indexing (random ViT-B/32, no cache) with today's reader, with the reader's conversion swapped for
   the libavfilter one (what the video-package integration will do), and the encode-only bound: the issue's
   bar is indexing <= 1.1 x encode-only;
3. the whole-video 30 fps decode SlowFast uses (``avfilter.iter_official_frames``) in video seconds per second.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from univtg_core import video as video_module
from univtg_core.avfilter import FrameConverter, iter_official_frames, official_geometry
from univtg_core.encoders import load_clip_encoder
from univtg_core.indexing import index_video
from univtg_core.media import make_test_pattern_video
from univtg_core.video import clip_times, iter_clip_frames, probe_video


def decoded_clip_frames(path: Path, clip_len: float) -> list:
    """The PyAV frames the CLIP reader converts (the last frame before each clip centre)."""
    import av

    info = probe_video(path)
    wanted = clip_times(info.duration, clip_len)
    frames, k, last = [], 0, None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            t = float(frame.pts * stream.time_base)
            while k < len(wanted) and t >= wanted[k] - 1e-6:
                frames.append(last if last is not None else frame)
                k += 1
            last = frame
    frames += [last] * (len(wanted) - k)
    return frames


def convert_reformat(frames: list, size: int) -> float:
    g = official_geometry(frames[0].width, frames[0].height, size)
    start = time.perf_counter()
    for frame in frames:
        rgb = frame.reformat(width=g.width, height=g.height, format="rgb24", interpolation="BICUBIC").to_ndarray()
        np.ascontiguousarray(rgb[g.y:g.y + size, g.x:g.x + size])
    return time.perf_counter() - start


def convert_avfilter(frames: list, size: int) -> float:
    converter = FrameConverter(official_geometry(frames[0].width, frames[0].height, size))
    start = time.perf_counter()
    for frame in frames:
        converter.convert(frame)
    return time.perf_counter() - start


class LibavfilterReader:
    """Swaps the PyAV reader's conversion for the libavfilter one for the duration of a ``with`` block."""

    def __init__(self, size: int):
        self.size = size
        self._converters: dict[tuple[int, int], FrameConverter] = {}

    def _to_rgb(self, frame, width: int, height: int) -> np.ndarray:
        conv = self._converters.get((width, height))
        if conv is None:
            g = official_geometry(frame.width, frame.height, self.size)
            conv = self._converters[(width, height)] = FrameConverter(g)
        g = conv.geometry
        out = np.empty((height, width, 3), np.uint8)  # the reader crops (x, y, size) out of this
        out[g.y:g.y + g.size, g.x:g.x + g.size] = conv.convert(frame)
        return out

    def __enter__(self):
        reader = getattr(video_module, "_PyAVReader", None)
        if reader is None or not hasattr(reader, "_to_rgb"):
            raise RuntimeError("univtg_core.video has no _PyAVReader._to_rgb any more: update this benchmark")
        self._saved = reader.__dict__["_to_rgb"]
        reader._to_rgb = staticmethod(self._to_rgb)
        return self

    def __exit__(self, *exc):
        video_module._PyAVReader._to_rgb = self._saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--clip-len", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each indexing; the fastest counts")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    figures: dict = {"video": f"{args.seconds:.0f} s {width}x{height} {args.fps} fps H.264", "clip_len": args.clip_len}
    with tempfile.TemporaryDirectory() as tmp:
        path = make_test_pattern_video(Path(tmp) / "bench.mp4", args.seconds, args.fps, (width, height))
        enc = load_clip_encoder(weights="random", device="cpu")
        size = enc.image_size

        frames = decoded_clip_frames(path, args.clip_len)
        n = len(frames)
        convert_reformat(frames[:4], size), convert_avfilter(frames[:4], size)  # warm-up
        t_ref, t_avf = convert_reformat(frames, size), convert_avfilter(frames, size)
        figures["clip_frames"] = n
        figures["convert_ms_per_frame"] = {"reformat": 1e3 * t_ref / n, "libavfilter": 1e3 * t_avf / n}
        del frames

        start = time.perf_counter()
        pixels = np.concatenate(list(iter_clip_frames(path, args.clip_len, size=size)))
        t_decode = time.perf_counter() - start
        with LibavfilterReader(size):
            start = time.perf_counter()
            pixels_after = np.concatenate(list(iter_clip_frames(path, args.clip_len, size=size)))
            t_decode_after = time.perf_counter() - start
        figures["clip_reader_decode_s"] = {"reformat": t_decode, "libavfilter": t_decode_after}
        figures["changed_pixel_fraction"] = float((pixels != pixels_after).mean())

        # a shared machine's load drifts: alternate encode-only, before and after, keep each one's fastest run;
        # process CPU time is reported too, being far less sensitive to other processes than wall time
        cache = Path(tmp) / "cache"
        runs: dict[str, list[tuple[float, float]]] = {"encode": [], "reformat": [], "libavfilter": []}

        def timed_run(fn) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            return time.perf_counter() - wall, time.process_time() - cpu

        def index_once(variant: str) -> None:
            with LibavfilterReader(size) if variant == "libavfilter" else contextlib.nullcontext():
                index_video(path, enc, args.clip_len, cache_dir=cache, use_cache=False)

        for r in range(max(1, args.repeat)):
            runs["encode"].append(timed_run(lambda: enc.encode_frames(pixels)))
            for variant in (("reformat", "libavfilter") if r % 2 == 0 else ("libavfilter", "reformat")):
                runs[variant].append(timed_run(lambda v=variant: index_once(v)))
        best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in runs.items()}
        figures["runs_wall_cpu_s"] = runs
        figures["best_wall_s"] = {k: v[0] for k, v in best.items()}
        figures["best_cpu_s"] = {k: v[1] for k, v in best.items()}
        paths = ("reformat", "libavfilter")
        figures["index_over_encode_only_wall"] = {k: best[k][0] / best["encode"][0] for k in paths}
        figures["index_over_encode_only_cpu"] = {k: best[k][1] / best["encode"][1] for k in paths}

        start = time.perf_counter()
        count = sum(1 for _ in iter_official_frames(path, 30, size))
        t30 = time.perf_counter() - start
        figures["slowfast_30fps_decode"] = {"frames": count, "seconds": t30, "video_s_per_s": args.seconds / t30}
    print(json.dumps(figures, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
