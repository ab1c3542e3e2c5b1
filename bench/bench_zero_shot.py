"""Zero-shot query latency against video length, measured in one run so the ratios are comparable.

    python -m bench.bench_zero_shot [--repeats 15] [--stat median|min] [--json OUT.json]

For 10 minutes, 1 hour and 2 hours of synthetic CLIP features (2 s clips and 0.2 s clips, i.e. 300 to 36,000
clips, generated directly: no decoding), with three planted moments, it times `ground()` in zero-shot mode
(cosine curve, smoothing, moment search, highlight, summary: everything a query costs once the features
exist), the same steps with `similarity.cosine_curve` (`pipeline`), and each stage alone; it reports the
median (or, on a machine others are using, the minimum) of the repeats, the 2 h / 10 min ratio per clip
length (linear growth is 12), and where the planted moments rank (IoU >= 0.5). The load average at the
start is printed with the table: timings on a shared machine are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from univtg_core import postprocess as pp
from univtg_core import similarity
from univtg_core.inference import cosine_curve, ground
from univtg_core.spans import temporal_iou

DIM = 512
MINUTES = (10, 60, 120)
CLIP_LENS = (2.0, 0.2)


def synthetic_video(n_clips: int, clip_len: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features, query embedding, planted windows in seconds): noise plus the query's direction inside
    three planted moments of 10, 20 and 40 s, at a quarter, a half and near the end of the video."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n_clips, DIM)).astype(np.float32)
    query = rng.normal(size=DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    planted = []
    for where, seconds in ((0.25, 10.0), (0.5, 20.0), (0.9, 40.0)):
        first, length = int(where * n_clips), max(1, round(seconds / clip_len))
        feats[first : first + length] += 2.0 * np.sqrt(DIM) * 0.25 * query
        planted.append((first * clip_len, (first + length) * clip_len))
    return feats, query, np.asarray(planted)


def timed_ms(fn: Callable[[], object], repeats: int, stat: str = "median") -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * (statistics.median(times) if stat == "median" else min(times))


def zero_shot_pipeline(feats: np.ndarray, query: np.ndarray, clip_len: float, duration: float) -> tuple:
    """What ground() does in zero-shot, with the einsum cosine curve."""
    cosine = similarity.cosine_curve(feats, query)
    saliency = pp.smooth_curve(cosine)
    moments = pp.zero_shot_moments(saliency, clip_len, duration, raw=cosine)
    return moments, pp.top_highlight(saliency, clip_len), pp.summary_points(saliency, clip_len)


def measure(minutes: int, clip_len: float, repeats: int, stat: str) -> dict:
    n_clips = round(minutes * 60 / clip_len)
    feats, query, planted = synthetic_video(n_clips, clip_len)
    duration = n_clips * clip_len
    cosine = cosine_curve(feats, query)
    smooth = pp.smooth_curve(cosine)
    row = {"minutes": minutes, "clip_len": clip_len, "clips": n_clips}
    row["ground_ms"] = timed_ms(lambda: ground(feats, query[None], clip_len, query_sentence=query), repeats, stat)
    row["pipeline_ms"] = timed_ms(lambda: zero_shot_pipeline(feats, query, clip_len, duration), repeats, stat)
    row["cosine_ms"] = timed_ms(lambda: cosine_curve(feats, query), repeats, stat)
    row["fast_cosine_ms"] = timed_ms(lambda: similarity.cosine_curve(feats, query), repeats, stat)
    row["moments_ms"] = timed_ms(
        lambda: pp.zero_shot_moments(smooth, clip_len, duration, raw=cosine), repeats, stat)
    row["summary_ms"] = timed_ms(lambda: pp.summary_points(smooth, clip_len), repeats, stat)
    pred = ground(feats, query[None], clip_len, query_sentence=query)
    moments = np.asarray([[m.start, m.end] for m in pred.moments])
    ious = temporal_iou(planted, moments) if len(moments) else np.zeros((len(planted), 0))
    row["planted_ranks"] = [int(np.argmax(hit >= 0.5)) + 1 if hit.max(initial=0) >= 0.5 else None for hit in ious]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_zero_shot", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--stat", choices=("median", "min"), default="median", help="of the repeats")
    parser.add_argument("--json", help="also write the rows and ratios here")
    args = parser.parse_args(argv)

    load = os.getloadavg()[0]
    rows = [measure(minutes, clip_len, args.repeats, args.stat) for clip_len in CLIP_LENS for minutes in MINUTES]
    print(f"{args.stat} of {args.repeats} runs; load average at the start {load:.1f} on {os.cpu_count()} CPUs")
    keys = ("ground_ms", "pipeline_ms", "cosine_ms", "fast_cosine_ms", "moments_ms", "summary_ms")
    print(f"{'video':>8} {'clip':>6} {'clips':>6} " + " ".join(f"{k[:-3]:>12}" for k in keys)
          + "  planted moments (rank at IoU 0.5)")
    for r in rows:
        print(f"{r['minutes']:>6} m {r['clip_len']:>4} s {r['clips']:>6} "
              + " ".join(f"{r[k]:>9.1f} ms" for k in keys) + f"  {r['planted_ranks']}")
    ratios = {}
    for clip_len in CLIP_LENS:
        by_minutes = {r["minutes"]: r for r in rows if r["clip_len"] == clip_len}
        ratios[f"{clip_len:g}s"] = {key: round(by_minutes[120][key] / by_minutes[10][key], 1) for key in keys}
    for clip_len, values in ratios.items():
        print(f"2 h / 10 min at {clip_len} clips (linear = 12): "
              + ", ".join(f"{k[:-3]} {v}" for k, v in values.items()))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"stat": args.stat, "repeats": args.repeats, "load_average": load, "rows": rows,
                       "ratios": ratios}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
