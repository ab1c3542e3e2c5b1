"""Training throughput on the planted-signal dataset the tests use, measured in one run.

    python -m bench.bench_training [--videos 560] [--epochs 30] [--hidden 128] [--layers 2] [--lr 1e-4]
        [--warmup 10] [--threads 2]

The defaults are the configuration tests/test_training.py trained until it was shrunk; its configuration
now is `--videos 160 --epochs 15 --hidden 64 --layers 1 --lr 1e-3 --warmup 2`.

Runs the real trainer (official QVHighlights options, a small model) and reports: CPU seconds and wall
seconds for the whole run, training throughput (queries per CPU second and per wall second), evaluation
throughput, the share of the run's CPU time spent evaluating, and what it learned (R1@0.5 on held-out
queries). CPU time is what a busy machine does not inflate; the wall figures say how busy it was
(wall / CPU > 1 / threads means other processes took the cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_training", description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=560, help="training videos (one query each)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=float, default=10, help="warmup epochs (--lr_warmup)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(REPO / "tests"))
    from synthetic_data import write_planted_dataset

    from univtg_core.training.loop import Trainer
    from univtg_core.training.options import parse_options

    with tempfile.TemporaryDirectory() as tmp:
        data = write_planted_dataset(Path(tmp) / "data", n_train_videos=args.videos, n_val_videos=80, dim=32,
                                     window_range=(4, 12), signal=1.5)
        opt = parse_options([
            "--train_path", str(data.train_path), "--eval_path", str(data.val_path), "--v_feat_dirs",
            str(data.video_dir), "--t_feat_dir", str(data.text_dir), "--results_dir", str(Path(tmp) / "run"),
            "--n_epoch", str(args.epochs), "--eval_epoch", str(args.epochs), "--no_progress", "--dset_name",
            "qvhighlights", "--lr", str(args.lr), "--lr_warmup", str(args.warmup), "--lr_drop", "80",
            "--dropout", "0", "--enc_layers", str(args.layers), "--hidden_dim", str(args.hidden), "--eval_mode", "add",
            "--round_multiple", "-1",
            "--f_loss_coef", "10", "--s_loss_intra_coef", "0.05", "--s_loss_inter_coef", "0.01",
            "--main_metric", "MR-full-mAP-key", "--nms_thd", "0.7", "--max_before_nms", "1000"])
        cpu0, wall0 = time.process_time(), time.time()
        trainer = Trainer(opt)
        setup_cpu = time.process_time() - cpu0
        cpu1 = time.process_time()
        result = trainer.fit()
        run_cpu, wall = time.process_time() - cpu1, time.time() - wall0
        cpu2, wall2 = time.process_time(), time.time()
        trainer.evaluate()
        eval_cpu, eval_wall = time.process_time() - cpu2, time.time() - wall2
        metrics = json.loads((Path(tmp) / "run" / "val_metrics.json").read_text())["brief"]
    queries = args.videos * args.epochs
    figures = {
        "setup CPU s (imports, data, model)": round(setup_cpu, 1),
        "training run CPU s": round(run_cpu, 1),
        "whole run wall s": round(wall, 1),
        "training queries / CPU s": round(queries / max(run_cpu - eval_cpu, 1e-9), 1),
        "training queries / wall s": round(queries / wall, 1),
        "evaluation queries / CPU s": round(80 / max(eval_cpu, 1e-9), 1),
        "evaluation queries / wall s": round(80 / max(eval_wall, 1e-9), 1),
        "share of run CPU evaluating": round(eval_cpu / max(run_cpu, 1e-9), 3),
        "held-out R1@0.5": metrics["MR-full-R1@0.5-key"],
        "loss first -> last epoch": [round(result.history[0]["loss_overall"], 3),
                                     round(result.history[-1]["loss_overall"], 3)],
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
