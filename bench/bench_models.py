"""Query latency of MESM and UniVTG side by side on the same indexed 10-minute video.

    python -m bench.bench_models [--minutes 10] [--repeats 5] [--threads 1] [--device cpu|cuda] [--json OUT]

"Indexed" means the clip features are already computed (what a second query on a video costs): synthetic
CLIP-like features (512-d) of `--minutes` of 2 s clips and one 12-token text query, run through `ground()`
with each architecture behind the registry contract, random-init at the size of its released CLIP
checkpoints (UniVTG: the omni checkpoint's hidden 1024, 4 layers, 75-clip windows; MESM: its defaults,
hidden 256, 8 heads, 2 aligner / 2 encoder / 2 decoder / 2 enhancer layers, 10 queries, FW + SS blocks,
75-clip windows, CLIP video). Reported per model: the whole query (every half-overlapping window, NMS,
saliency stitching, highlight, summary) and one window's forward (`predict_windows` on one window, the
model's floor), the minimum of the repeats (the machine is shared: only ratios inside one run compare),
and the MESM / UniVTG ratio.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from univtg_core import Query, ground
from univtg_core.models.mesm import MESM, MESMConfig
from univtg_core.models.univtg import UniVTG, UniVTGConfig

DIM = 512
UNIVTG_OMNI = dict(video_dim=DIM, text_dim=DIM, hidden_dim=1024, enc_layers=4, nheads=8, dim_feedforward=1024,
                   max_v_l=75)
MESM_CLIP = dict(v_feat_dim=DIM + 2, t_feat_dim=DIM, max_words_l=32, max_video_l=75, clip_len=2.0,
                 dataset_name="qvhighlights", video_sources=(("clip", DIM),))


def build_models(device: torch.device) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"univtg": UniVTG(UniVTGConfig(**UNIVTG_OMNI)).to(device).eval(),
            "mesm": MESM(MESMConfig(**MESM_CLIP)).to(device).eval()}


def best_ms(run, repeats: int) -> float:
    run()  # warm-up (allocations, lazy initialisation)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - started) * 1000)
    return min(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    n_clips = int(args.minutes * 60 / 2.0)
    features = rng.normal(size=(n_clips, DIM)).astype(np.float32)
    tokens = rng.normal(size=(12, DIM)).astype(np.float32)
    query = Query(tokens=tokens, embedding=tokens.mean(0) / np.linalg.norm(tokens.mean(0)), text_rows=12,
                  text_tokens=12)
    report: dict = {"clips": n_clips, "clip_len": 2.0, "device": str(device), "threads": args.threads,
                    "repeats": args.repeats, "models": {}}
    for name, model in build_models(device).items():
        window = model.input_spec.window
        prepared = model.query_input(query)
        one = features[None, :window]
        whole = best_ms(lambda m=model: ground(features, query, clip_len=2.0, model=m, duration=n_clips * 2.0),
                        args.repeats)
        forward = best_ms(lambda m=model, w=one, q=prepared: m.predict_windows(w, q, 2.0), args.repeats)
        params = sum(p.numel() for p in model.parameters())
        report["models"][name] = {"query_ms": round(whole, 1), "one_window_ms": round(forward, 2),
                                  "window_clips": window, "parameters": params}
    u, m = report["models"]["univtg"], report["models"]["mesm"]
    report["mesm_over_univtg"] = {"query": round(m["query_ms"] / u["query_ms"], 2),
                                  "one_window": round(m["one_window_ms"] / u["one_window_ms"], 2)}
    print(json.dumps(report, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
