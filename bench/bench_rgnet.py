"""RGNet query latency on a two-hour film, per number of grounded windows, next to UniVTG coarse-to-fine.

    python -m bench.bench_rgnet [--minutes 120] [--repeats 1] [--threads 2] [--device cpu] [--json OUT.json]

Features: 2 hours of synthetic 512-d frames at 5 fps (36,000 rows, MAD's layout). RGNet: random-init at the
official MAD settings (`train_mad.sh`: hidden 256, 2 encoder / 6 anchor-decoder layers, 5 queries, 900-frame
windows, dim_feedforward 2048, qddetr + gumbel gates; 81 windows over 2 h), or `--checkpoint` a real one.
For K in {5, 10, 30, all} it times one query through `ground(..., model=rgnet, coarse_top_k=K)` (the learned
first stage over every window, then the top K grounded, fused and suppressed), and apart the first stage alone
(`learned_window_scores`: the retrieval token on every window), so the share of the first stage is known.
UniVTG of the omni checkpoint's size (hidden 1024, 4 layers, 75-clip windows) with CONE's cosine first stage
at K = 30 runs on the same features for comparison. Minimum of the repeats; the machine is shared, so only
ratios inside one run compare.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from bench.bench_long_video import OMNI
from univtg_core import Query, ground
from univtg_core import long_video as lv
from univtg_core.inference import learned_window_scores
from univtg_core.models import load_model
from univtg_core.models.rgnet import RGNet, RGNetConfig
from univtg_core.models.univtg import UniVTG, UniVTGConfig

MAD = RGNetConfig(hidden_dim=256, nheads=8, enc_layers=2, dec_layers=6, dim_feedforward=2048, num_queries=5,
                  max_q_l=25, max_v_l=900, qddetr=True, dabdetr=True, gumbel=True, gumbel_2=True, gumbel_3=True,
                  gumbel_single_proj=True, gumbel_eps=0.3, pos_temperature=100.0, clip_length=0.2)
KS = (5, 10, 30, None)


def best_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


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
    grid = lv.WindowGrid.from_array(rgnet.window_grid(n), n)
    prepared = rgnet.query_input(query)
    row: dict = {"frames": n, "windows": len(grid), "device": args.device, "threads": args.threads}
    row["first_stage_ms"] = best_ms(lambda: learned_window_scores(rgnet, feats, prepared, grid, clip_len),
                                    args.repeats)
    for k in KS:
        name = f"rgnet_k{k or 'all'}_ms"
        row[name] = best_ms(lambda k=k: ground(feats, query, clip_len, model=rgnet, coarse_top_k=k, top_k=100),
                            args.repeats)
        row[f"first_stage_share_k{k or 'all'}"] = round(row["first_stage_ms"] / row[name], 3)
    univtg = UniVTG(UniVTGConfig(**OMNI, clip_length=clip_len)).to(args.device).eval()
    row["univtg_coarse_k30_ms"] = best_ms(lambda: ground(feats, query, clip_len, model=univtg, coarse_top_k=30),
                                          args.repeats)
    for key, value in row.items():
        print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(row, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
