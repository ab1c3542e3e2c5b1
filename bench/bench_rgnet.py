"""RGNet query latency on a two-hour film, per number of grounded windows, next to UniVTG coarse-to-fine.

    python -m bench.bench_rgnet [--minutes 120] [--repeats 1] [--threads 2] [--device cpu] [--json OUT.json]

Features: 2 hours of synthetic 512-d frames at 5 fps (36,000 rows, MAD's layout). RGNet: random-init at the
official MAD settings (`train_mad.sh`: hidden 256, 2 encoder / 6 anchor-decoder layers, 5 queries, 900-frame
windows, dim_feedforward 2048, qddetr + gumbel gates; 81 windows over 2 h), or `--checkpoint` a real one.
For K in {5, 10, 30, all} it times one query through `ground(..., model=rgnet, coarse_top_k=K)` (every window
encoded once and scored by the retrieval token, then the top K decoded from their encodings, fused and
suppressed), and apart the first stage alone (`rgnet_inference.first_stage`, as ground() runs it: 16 windows
per forward, no encodings kept), so the share of the first stage is known. UniVTG of the omni checkpoint's
size (hidden 1024, 4 layers, 75-clip windows) with CONE's cosine first stage at K = 30 runs on the same
features for comparison. Each figure: the minimum wall time of the repeats after one warm-up query on a short
clip, the process CPU seconds of that run, and the 1-minute load average when it was taken (the machine is
shared, so only ratios inside one run compare).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from bench.bench_long_video import OMNI
from univtg_core import Query, ground
from univtg_core.inference import DEFAULT_CHUNK
from univtg_core.models import load_model
from univtg_core.models.rgnet import RGNet, RGNetConfig
from univtg_core.models.rgnet_inference import first_stage
from univtg_core.models.univtg import UniVTG, UniVTGConfig

MAD = RGNetConfig(hidden_dim=256, nheads=8, enc_layers=2, dec_layers=6, dim_feedforward=2048, num_queries=5,
                  max_q_l=25, max_v_l=900, qddetr=True, dabdetr=True, gumbel=True, gumbel_2=True, gumbel_3=True,
                  gumbel_single_proj=True, gumbel_eps=0.3, pos_temperature=100.0, clip_length=0.2)
KS = (5, 10, 30, None)


def timed(fn, repeats: int) -> dict:
    """{"ms": best wall time, "cpu_s": process CPU seconds of that run, "load": 1-minute load average}."""
    best = None
    for _ in range(repeats):
        cpu, start = time.process_time(), time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return {"ms": round(1000 * best[0], 1), "cpu_s": round(best[1], 2), "load": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", help="a real RGNet checkpoint instead of the random MAD-size model")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rgnet = (load_model(args.checkpoint, device=args.device) if args.checkpoint else
             RGNet(MAD).to(args.device).eval())
    clip_len = rgnet.input_spec.clip_len
    n = int(round(args.minutes * 60 / clip_len))
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(n, rgnet.input_spec.video_dim)).astype(np.float32)
    query = Query(rng.normal(size=(12, rgnet.config.t_feat_dim)).astype(np.float32),
                  embedding=rng.normal(size=rgnet.config.v_appear_feat_dim).astype(np.float32))
    grid = rgnet.window_grid(n)
    prepared = rgnet.query_input(query)
    ground(feats[: 2 * rgnet.config.max_v_l], query, clip_len, model=rgnet, coarse_top_k=None)  # warm-up
    row: dict = {"frames": n, "windows": len(grid), "device": args.device, "threads": args.threads}
    row["first_stage"] = timed(lambda: first_stage(rgnet, feats, prepared, grid, keep=0, chunk=DEFAULT_CHUNK),
                               args.repeats)
    for k in KS:
        name = f"rgnet_k{k or 'all'}"
        row[name] = timed(lambda k=k: ground(feats, query, clip_len, model=rgnet, coarse_top_k=k, top_k=100),
                          args.repeats)
        row[f"first_stage_share_k{k or 'all'}"] = {  # of the wall time, and of the CPU time (steadier when shared)
            "wall": round(row["first_stage"]["ms"] / row[name]["ms"], 3),
            "cpu": round(row["first_stage"]["cpu_s"] / max(row[name]["cpu_s"], 1e-9), 3)}
    univtg = UniVTG(UniVTGConfig(**OMNI, clip_length=clip_len)).to(args.device).eval()
    ground(feats[:300], query, clip_len, model=univtg, coarse_top_k=30)  # warm-up
    row["univtg_coarse_k30"] = timed(lambda: ground(feats, query, clip_len, model=univtg, coarse_top_k=30),
                                     args.repeats)
    row["rgnet_k30_over_univtg_k30"] = round(row["rgnet_k30"]["ms"] / row["univtg_coarse_k30"]["ms"], 2)
    for key, value in row.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
