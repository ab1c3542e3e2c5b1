"""The pixel path before and after libavfilter: conversion cost, decode throughput and the index bar, one run.

    python -m bench.bench_pixels [--seconds 120] [--size 640x360] [--fps 30] [--clip-len 2] [--json out.json]

On one generated H.264 video it measures, in the same process:

1. per-frame conversion of the same decoded clip frames: ``frame.reformat`` (bicubic) + crop, as the CLIP
   reader did before, against ``avfilter.FrameConverter`` (ffmpeg's scale/crop filters), which it uses now;
2. CLIP indexing (random ViT-B/32, no cache) with the reader as it is (libavfilter), with its conversion
   swapped back for the old ``reformat`` one (everything else equal: the same seeks, skips and frames), and
   the encode-only bound: the issue's bar is indexing <= 1.1 x encode-only;
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

from univtg_core.avfilter import FrameConverter, iter_official_frames, official_geometry
from univtg_core.encoders import load_clip_encoder
from univtg_core.indexing import index_video
from univtg_core.media import make_test_pattern_video
from univtg_core.video import clip_times, iter_clip_frames, probe_video
from univtg_core.video.pyav_reader import PyAVReader


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


class ReformatReader:
    """Swaps the PyAV reader's libavfilter conversion back for the old ``reformat`` + crop, inside a ``with``."""

    def __enter__(self):
        self._saved = PyAVReader.__dict__["_clip_converter"]

        def reformat_converter(reader, size: int):
            cc = reader._stream.codec_context
            g = official_geometry(cc.width, cc.height, size)

            def convert(frame) -> np.ndarray:
                rgb = frame.reformat(width=g.width, height=g.height, format="rgb24",
                                     interpolation="BICUBIC").to_ndarray()
                return rgb[g.y:g.y + size, g.x:g.x + size]

            return convert

        PyAVReader._clip_converter = reformat_converter
        return self

    def __exit__(self, *exc):
        PyAVReader._clip_converter = self._saved


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

        with ReformatReader():
            start = time.perf_counter()
            pixels_before = np.concatenate(list(iter_clip_frames(path, args.clip_len, size=size)))
            t_decode_before = time.perf_counter() - start
        start = time.perf_counter()
        pixels = np.concatenate(list(iter_clip_frames(path, args.clip_len, size=size)))
        t_decode = time.perf_counter() - start
        figures["clip_reader_decode_s"] = {"reformat": t_decode_before, "libavfilter": t_decode}
        figures["changed_pixel_fraction"] = float((pixels != pixels_before).mean())
        figures["max_pixel_change"] = int(np.abs(pixels.astype(np.int16) - pixels_before).max())

        # a shared machine's load drifts: alternate encode-only, before and after, keep each one's fastest run;
        # process CPU time is reported too, being far less sensitive to other processes than wall time
        cache = Path(tmp) / "cache"
        runs: dict[str, list[tuple[float, float]]] = {"encode": [], "reformat": [], "libavfilter": []}

        def timed_run(fn) -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            return time.perf_counter() - wall, time.process_time() - cpu

        def index_once(variant: str) -> None:
            with ReformatReader() if variant == "reformat" else contextlib.nullcontext():
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
