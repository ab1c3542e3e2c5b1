"""SlowFast extraction throughput against CLIP's, on the same video, in one run.

    python -m bench.bench_slowfast [--seconds 600] [--size 640x360] [--fps 30] [--clip-len 2] [--device cpu]
                                   [--json out.json]

On one generated H.264 video (ffmpeg's moving test pattern) it indexes, without the cache and with random
weights (the arithmetic of real ones):

1. CLIP alone (random ViT-B/32): what a CLIP-only checkpoint costs;
2. SlowFast alone (random R50 8x8, HERO's pipeline: the whole 30 fps decode, 32 frames per clip);
3. both, as a SlowFast + CLIP checkpoint indexes (`sources.index_sources`, SlowFast then CLIP);

and prints clips per second of each, video seconds per second, and the ratios (SlowFast / CLIP cost per
clip; both / CLIP alone). Timing belongs here, never in unit tests. On a GPU pass ``--device cuda`` (both
encoders in half precision, 16 SlowFast clips per batch).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from univtg_core.encoders import load_clip_encoder
from univtg_core.indexing import index_video
from univtg_core.media import make_test_pattern_video
from univtg_core.slowfast import load_slowfast_encoder
from univtg_core.sources import index_sources


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="video length (default: 10 minutes)")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--clip-len", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads on the CPU (default: torch's)")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        video = make_test_pattern_video(Path(tmp) / "pattern.mp4", args.seconds, fps=args.fps, size=(w, h))
        clip = load_clip_encoder(weights="random", device=args.device)
        slowfast = load_slowfast_encoder("random", device=args.device)
        opts = {"clip_len": args.clip_len, "use_cache": False}
        index_video(video, clip, **opts)  # warm-up: first-call costs out of the figures
        clip_s, clip_index = timed(lambda: index_video(video, clip, **opts))
        sf_s, sf_index = timed(lambda: index_video(video, slowfast, **opts))
        both_s, both_index = timed(lambda: index_sources(video, [("slowfast", slowfast), ("clip", clip)], **opts))
    figures = {
        "video": {"seconds": args.seconds, "size": args.size, "fps": args.fps, "clip_len": args.clip_len},
        "device": str(clip.device), "torch_threads": torch.get_num_threads(),
        "clip": {"clips": clip_index.n_clips, "seconds": round(clip_s, 2),
                 "clips_per_s": round(clip_index.n_clips / clip_s, 3),
                 "video_s_per_s": round(args.seconds / clip_s, 2)},
        "slowfast": {"clips": sf_index.n_clips, "seconds": round(sf_s, 2),
                     "clips_per_s": round(sf_index.n_clips / sf_s, 3),
                     "video_s_per_s": round(args.seconds / sf_s, 2)},
        "slowfast_plus_clip": {"clips": both_index.n_clips, "width": int(both_index.features.shape[1]),
                               "seconds": round(both_s, 2), "video_s_per_s": round(args.seconds / both_s, 2)},
        "slowfast_cost_per_clip_over_clip": round((sf_s / sf_index.n_clips) / (clip_s / clip_index.n_clips), 1),
        "both_over_clip_alone": round(both_s / clip_s, 1),
    }
    print(json.dumps(figures, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
