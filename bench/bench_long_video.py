"""Long-video query latency and recall against length, and indexing memory against length, in one run.

    python -m bench.bench_long_video [--repeats 3] [--full-repeats 1] [--threads 1] [--json OUT.json]

Query side: synthetic CLIP-like features (512-d) of 1, 10, 30, 60 and 120 minutes of 2 s clips, and 10 and
60 minutes of 0.2 s clips (MAD's 5 fps), generated directly, with three planted moments of 10 s (each found
by its own query direction). For each length it times one query through `ground()`:

- zero-shot (cosine curve, moment search, highlight, summary over the whole video);
- the full sliding-window model path (every half-overlapping 75-clip window through the model);
- coarse-to-fine with K in {4, 8, 16, 32} (CONE's best cosine per window picks the K windows the model reads),
- `coarse_top_k="auto"`, what the app and the CLI run by default (every window up to 16, the 8 best beyond),

with a random-init UniVTG of the omni checkpoint's size (hidden 1024, 4 layers, built here), and reports the
minimum of the repeats (the machine is shared: only ratios inside one run compare), the 2 h / 10 min ratio per
path (linear growth is 12), zero-shot's rank-1 hits at IoU 0.5, and the first stage's recall for each K: the
share of planted moments that lie inside the K windows it chose (a random model cannot localise; what K
costs in recall is the first stage's). The model's own forward on K windows is timed alone too (the floor
of coarse-to-fine), and what ground() costs beyond it: the difference, and ground() with the forward
replayed from a cache (what is not the model, measured apart from the forward's noise).

Recall sweep (`--recall-amplitudes`, no model, cheap): the first stage's recall for K in {1, 2, 4, 8, 16, 32}
as the planted moments fade (amplitude a: the moment's clips get a * sqrt(512) along the query, a cosine of
about a / sqrt(1 + a^2); the noise's best clip on two hours reaches about 0.16), over several seeds: what
the `auto` rule's K = 8 is chosen from.

Indexing side: generated 64x36 videos at 1 fps of several lengths, each indexed in a fresh process into a
fresh store; peak traced (numpy/Python) memory and peak RSS per length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.bench_zero_shot import timed_ms
from univtg_core import Query, ground
from univtg_core import long_video as lv
from univtg_core.models.univtg import UniVTG, UniVTGConfig
from univtg_core.similarity import cosine_curve
from univtg_core.spans import temporal_iou

DIM = 512
MINUTES = (1, 10, 30, 60, 120)
SHORT_CLIP_MINUTES = (10, 60)
KS = (4, 8, 16, 32)
PLANTED_AT = (0.2, 0.5, 0.8)  # where the three 10 s moments start, as a share of the video
OMNI = dict(video_dim=512, text_dim=512, hidden_dim=1024, enc_layers=4, nheads=8, dim_feedforward=1024,
            max_v_l=75)


def synthetic_film(n_clips: int, clip_len: float, seed: int = 0, amplitude: float = 0.5):
    """(features, one unit query direction per planted moment, planted windows in seconds)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n_clips, DIM)).astype(np.float32)
    queries = rng.normal(size=(len(PLANTED_AT), DIM))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    planted = []
    length = max(1, round(10.0 / clip_len))
    for where, q in zip(PLANTED_AT, queries):
        first = min(int(where * n_clips), n_clips - length)
        feats[first:first + length] += (amplitude * np.sqrt(DIM) * q).astype(np.float32)
        planted.append((first * clip_len, (first + length) * clip_len))
    return feats, queries.astype(np.float32), np.asarray(planted)


def first_stage_recall(feats: np.ndarray, queries: np.ndarray, planted: np.ndarray, clip_len: float,
                       k: int) -> float:
    """Share of planted moments lying inside the K windows CONE's first stage picks for their query."""
    grid = lv.sliding_windows(len(feats), OMNI["max_v_l"])
    hits = 0
    for q, (start, end) in zip(queries, planted):
        kept = lv.select_windows(lv.cosine_window_scores(cosine_curve(feats, q), grid), k)
        starts, ends = grid.starts[kept] * clip_len, grid.ends[kept] * clip_len
        hits += bool(((starts <= start + 1e-9) & (ends >= end - 1e-9)).any())
    return hits / len(planted)


def recall_sweep(cases, amplitudes, ks, seeds: int) -> list[dict]:
    """First-stage recall for each (length, clip length) x amplitude x K, over `seeds` films of 3 moments."""
    rows = []
    for minutes, clip_len in cases:
        n_clips = round(minutes * 60 / clip_len)
        for amplitude in amplitudes:
            hits = dict.fromkeys(ks, 0)
            for seed in range(seeds):
                feats, queries, planted = synthetic_film(n_clips, clip_len, seed=seed, amplitude=amplitude)
                for k in ks:
                    hits[k] += first_stage_recall(feats, queries, planted, clip_len, k) * len(planted)
            rows.append({"minutes": minutes, "clip_len": clip_len, "amplitude": amplitude,
                         "windows": len(lv.sliding_windows(n_clips, OMNI["max_v_l"])),
                         **{f"recall_k{k}": hits[k] / (seeds * len(PLANTED_AT)) for k in ks}})
    return rows


def rank1_hits(feats, queries, planted, clip_len) -> int:
    hits = 0
    for q, span in zip(queries, planted):
        top = ground(feats, Query(embedding=q), clip_len).moments[0]
        hits += temporal_iou([[top.start, top.end]], [span])[0, 0] >= 0.5
    return int(hits)


def overhead_ms(model, feats, query, clip_len: float, k, repeats: int) -> float:
    """ground() with the model's forward replayed from a cache (one real forward per batch shape): what a
    query costs besides the model (batches, first stage, stitching, fusion, NMS, summary), which the shared
    machine's noise on a forward of seconds would hide."""
    real, cache = model.forward, {}

    def replay(**inputs):
        key = tuple(inputs["src_vid"].shape)
        if key not in cache:
            cache[key] = real(**inputs)
        return cache[key]

    model.forward = replay
    try:
        ground(feats, query, clip_len, model=model, coarse_top_k=k)
        return timed_ms(lambda: ground(feats, query, clip_len, model=model, coarse_top_k=k), 3 * repeats, "min")
    finally:
        del model.forward


def measure(model, minutes: float, clip_len: float, repeats: int, full_repeats: int, ks, full: bool) -> dict:
    n_clips = round(minutes * 60 / clip_len)
    feats, queries, planted = synthetic_film(n_clips, clip_len)
    tokens = np.random.default_rng(1).normal(size=(12, DIM)).astype(np.float32)
    query = Query(tokens, embedding=queries[0])
    grid = lv.sliding_windows(n_clips, OMNI["max_v_l"])
    row = {"minutes": minutes, "clip_len": clip_len, "clips": n_clips, "windows": len(grid)}
    row["zero_shot_ms"] = timed_ms(lambda: ground(feats, query, clip_len), repeats, "min")
    row["zero_shot_rank1_hits"] = f"{rank1_hits(feats, queries, planted, clip_len)}/{len(planted)}"
    for k in ks:
        row[f"coarse_k{k}_ms"] = timed_ms(lambda k=k: ground(feats, query, clip_len, model=model, coarse_top_k=k),
                                          repeats, "min")
        row[f"recall_k{k}"] = first_stage_recall(feats, queries, planted, clip_len, k)
    row["auto_ms"] = timed_ms(lambda: ground(feats, query, clip_len, model=model, coarse_top_k="auto"), repeats, "min")
    row["auto_searched"] = ground(feats, query, clip_len, model=model, coarse_top_k="auto").window_search.searched
    if full:
        row["full_ms"] = timed_ms(lambda: ground(feats, query, clip_len, model=model), full_repeats, "min")
    for k in (*ks, None):
        row[f"overhead_{'k' + str(k) if k else 'full'}_ms"] = overhead_ms(model, feats, query, clip_len, k, repeats)
    return row


def index_memory_child(path: str, encoder_name: str, cache: str) -> None:
    """One indexing in this (fresh) process: prints peak traced memory, peak RSS, clips and seconds."""
    import tracemalloc

    from univtg_core.indexing import index_video

    if encoder_name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny_clip import tiny_clip_encoder

        encoder = tiny_clip_encoder()
    else:
        from univtg_core.encoders import load_clip_encoder

        encoder = load_clip_encoder("ViT-B-32", weights="random", device="cpu")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    index = index_video(path, encoder, 2.0, cache_dir=cache)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"clips": index.n_clips, "seconds": seconds, "peak_traced_mib": peak / 2**20,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "rss_before_index_mib": rss_before / 1024}))


def index_memory(minutes_list, encoder_name: str) -> list[dict]:
    from univtg_core.media import make_test_pattern_video

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in minutes_list:
            video = make_test_pattern_video(Path(tmp) / f"film{minutes}.mp4", minutes * 60, fps=1, size=(64, 36))
            out = subprocess.run([sys.executable, "-m", "bench.bench_long_video", "--index-one", str(video),
                                  "--index-encoder", encoder_name, "--index-cache", str(Path(tmp) / f"c{minutes}")],
                                 capture_output=True, text=True, check=True)
            rows.append({"minutes": minutes, **json.loads(out.stdout.strip().splitlines()[-1])})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_long_video", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="zero-shot and coarse-to-fine: min of this many")
    parser.add_argument("--full-repeats", type=int, default=1, help="the full model path: min of this many")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadier on a shared CPU)")
    parser.add_argument("--minutes", type=float, nargs="+", default=MINUTES)
    parser.add_argument("--short-clip-minutes", type=float, nargs="*", default=SHORT_CLIP_MINUTES)
    parser.add_argument("--ks", type=int, nargs="+", default=KS)
    parser.add_argument("--no-full", action="store_true", help="skip the full sliding-window model path")
    parser.add_argument("--recall-amplitudes", type=float, nargs="*", default=(0.5, 0.2, 0.15, 0.12, 0.1),
                        help="planted strengths of the first-stage recall sweep (none: skip it)")
    parser.add_argument("--recall-ks", type=int, nargs="+", default=(1, 2, 4, 8, 16, 32))
    parser.add_argument("--recall-seeds", type=int, default=5, help="films per amplitude in the sweep")
    parser.add_argument("--recall-short-clip-minutes", type=float, nargs="*", default=(120,),
                        help="0.2 s clip lengths the sweep adds to the timed ones (no model runs on them)")
    parser.add_argument("--index-minutes", type=int, nargs="*", default=(2, 10, 30))
    parser.add_argument("--index-encoder", choices=("vit-b-32", "tiny"), default="vit-b-32")
    parser.add_argument("--index-one", help=argparse.SUPPRESS)
    parser.add_argument("--index-cache", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.index_one:
        index_memory_child(args.index_one, args.index_encoder, args.index_cache)
        return 0

    load = os.getloadavg()[0]
    torch.manual_seed(0)
    model = UniVTG(UniVTGConfig(**OMNI)).eval()
    # the floor of coarse-to-fine: the model's forward on K windows alone (K batched, as ground() runs them)
    prepared = model.query_input(np.random.default_rng(1).normal(size=(12, DIM)).astype(np.float32))
    floors = {}
    for k in (1, *args.ks):
        windows = np.random.default_rng(2).normal(size=(k, OMNI["max_v_l"], DIM)).astype(np.float32)
        floors[k] = timed_ms(lambda w=windows: model.predict_windows(w, prepared, 2.0), args.repeats, "min")
    one_window_ms = floors[1]
    cases = [(m, 2.0) for m in args.minutes] + [(m, 0.2) for m in args.short_clip_minutes]
    rows = [measure(model, m, c, args.repeats, args.full_repeats, args.ks, not args.no_full) for m, c in cases]
    index_rows = index_memory(args.index_minutes, args.index_encoder) if args.index_minutes else []
    swept = cases + [(m, 0.2) for m in args.recall_short_clip_minutes if (m, 0.2) not in cases]
    sweep = recall_sweep(swept, args.recall_amplitudes, args.recall_ks, args.recall_seeds) \
        if args.recall_amplitudes else []

    print(f"min of {args.repeats} runs ({args.full_repeats} for the full path), {args.threads} torch thread(s); "
          f"load average {load:.1f} at the start on {os.cpu_count()} CPUs; one 75-clip window through the "
          f"omni-size model: {one_window_ms:.0f} ms")
    paths = ["zero_shot_ms"] + [f"coarse_k{k}_ms" for k in args.ks] + ["auto_ms"] + \
        ([] if args.no_full else ["full_ms"])
    print("| video | clips | windows | " + " | ".join(p[:-3].replace("_", " ") + " ms" for p in paths)
          + " | zero-shot rank-1 | first-stage recall K=" + "/".join(map(str, args.ks)) + " |")
    print("|" + "---|" * (4 + len(paths) + 1))
    for r in rows:
        recall = " / ".join(f"{r[f'recall_k{k}']:.2f}" for k in args.ks)
        print(f"| {r['minutes']:g} min, {r['clip_len']:g} s clips | {r['clips']} | {r['windows']} | "
              + " | ".join(f"{r[p]:.1f}" for p in paths) + f" | {r['zero_shot_rank1_hits']} | {recall} |")
    print("auto searched " + ", ".join(f"{r['auto_searched']} of {r['windows']} windows ({r['minutes']:g} min, "
                                       f"{r['clip_len']:g} s clips)" for r in rows))
    print("model forward alone on K windows (the floor of coarse-to-fine): "
          + ", ".join(f"K={k} {floors[k]:.0f} ms" for k in args.ks))
    for r in rows:
        print(f"ground() besides the model (forward replayed), {r['minutes']:g} min at {r['clip_len']:g} s clips: "
              + ", ".join(f"K={k} {r[f'overhead_k{k}_ms']:.1f} ms" for k in args.ks)
              + f", every window {r['overhead_full_ms']:.1f} ms")
        if r["windows"] > max(args.ks):
            print(f"ground() beyond the forward, {r['minutes']:g} min at {r['clip_len']:g} s clips: "
                  + ", ".join(f"K={k} {r[f'coarse_k{k}_ms'] - floors[k]:+.0f} ms "
                              f"({r[f'coarse_k{k}_ms'] / floors[k]:.2f}x the forward)" for k in args.ks))
    ratios = {}
    by = {(r["minutes"], r["clip_len"]): r for r in rows}
    if (120, 2.0) in by and (10, 2.0) in by:
        ratios = {p: round(by[(120, 2.0)][p] / by[(10, 2.0)][p], 2) for p in paths}
        print("2 h / 10 min at 2 s clips (linear = 12): " + ", ".join(f"{p[:-3]} {v}" for p, v in ratios.items()))
    if sweep:
        print("first-stage recall as the planted moments fade (" + str(args.recall_seeds) + " films of 3 moments "
              "each):")
        print("| video | windows | amplitude | " + " | ".join(f"K={k}" for k in args.recall_ks) + " |")
        print("|" + "---|" * (3 + len(args.recall_ks)))
        for r in sweep:
            print(f"| {r['minutes']:g} min, {r['clip_len']:g} s clips | {r['windows']} | {r['amplitude']:g} | "
                  + " | ".join(f"{r[f'recall_k{k}']:.2f}" for k in args.recall_ks) + " |")
    for r in index_rows:
        print(f"index {r['minutes']} min ({r['clips']} clips, {args.index_encoder}): {r['seconds']:.1f} s, peak "
              f"traced {r['peak_traced_mib']:.1f} MiB, peak RSS {r['peak_rss_mib']:.0f} MiB "
              f"({r['rss_before_index_mib']:.0f} MiB before indexing)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"load_average": load, "threads": args.threads, "model_floor_ms": floors, "rows": rows,
                       "ratios": ratios, "index": index_rows, "recall_sweep": sweep}, handle, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
