"""Command-line options of `python -m univtg_core.training --model_id rgnet`: every option of RGNet's own
parser (Tanveer81/RGNet `rgnet/config.py`, BaseOptions) under its official name and default, so that the
official launch lines (`rgnet/scripts/train_mad.sh`, `train_ego4d.sh`, ...) port by changing the program
name, plus the trainer options the official parser lacks.

    python -m univtg_core.training --model_id rgnet --dset_name mad --train_path mad_train.jsonl \\
        --motion_feat_dir CLIP_B32_frames_features_5fps.h5 --t_feat_dir clip_text_features.h5 --exp_id mad ...

Where we differ from the official parser, deliberately:

- `--lr_drop` takes one or more epochs (the official default 120 is an int that its own code then iterates
  and crashes on); the schedule is MultiStepLR at those epochs, x0.1, as official.
- `--train_path` takes one or more files (one works as before). Annotations are jsonl in CONE's keys
  (`query_id`, `video_id` or `clip_id`, `timestamps`, `duration`) or ours (`qid`, `vid`,
  `relevant_windows`); `python -m univtg_core.training.convert mad|ego4d` writes ours.
- Features: `--motion_feat_dir` (and `--appearance_feat_dir`, which must then be the same features, as in
  every released setup) is a folder of `<video>.npz` (key `features`), an .h5 file keyed by video, one of
  our feature stores or an LMDB folder; `--t_feat_dir` the same keyed by query id, holding `token_features`
  (CONE) or `last_hidden_state` and the sentence feature `cls_features` / `eot_features` / `pooler_output`;
  `--sentence_feat_dir` (ours) when the sentence features live elsewhere. The official LMDB folders (each
  entry an .npz) are read as they are, with the `lmdb` package.
- The output folder is `--results_dir` when given, else `<results_root>/<dset_name>-<exp_id>` (official).
  With `--eval_path` the best epoch by `--main_metric` (ours; default `R1-mean`, the official stop score:
  MAD the mean of R@1 over IoU 0.1/0.3/0.5, Ego4D the mean of R@1 at 0.3 and 0.5) is saved as
  `model_best.ckpt`; without it the last epoch is (the official MAD training writes none).
- Evaluation runs after every `--eval_epoch_interval` epochs and after the last (the official code also
  evaluates after the first).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from .options import _str2none

logger = logging.getLogger(__name__)


def _official(parser: argparse.ArgumentParser) -> None:
    """RGNet's BaseOptions, name for name, default for default (help texts ours)."""
    run = parser.add_argument_group("run (RGNet names)")
    run.add_argument("--dset_name", type=str, choices=["ego4d", "mad"])
    run.add_argument("--eval_split_name", type=str, default="val")
    run.add_argument("--debug", action="store_true", help="one batch per epoch, one epoch")
    run.add_argument("--train_data_ratio", type=float, default=1.0)
    run.add_argument("--data_ratio", type=float, default=1.0, help="use this share of the annotations")
    run.add_argument("--results_root", type=str, default="cone_results")
    run.add_argument("--exp_id", type=str, default=None)
    run.add_argument("--seed", type=int, default=2018)
    run.add_argument("--device", type=int, default=0, help="0: cuda when available (else mps, cpu), -1: cpu")
    run.add_argument("--num_workers", type=int, default=4)
    run.add_argument("--no_pin_memory", action="store_true")

    train = parser.add_argument_group("training (RGNet names)")
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--coef_lr", type=float, default=0.1, help="lr factor of the adapter's parameters")
    train.add_argument("--lr_drop", nargs="+", type=int, default=120, help="epochs where lr drops x0.1")
    train.add_argument("--wd", type=float, default=1e-4)
    train.add_argument("--n_epoch", type=int, default=150)
    train.add_argument("--eval_epoch_interval", type=int, default=3)
    train.add_argument("--max_es_cnt", type=int, default=10, help="early-stop patience in evals; -1: off")
    train.add_argument("--topk_window", type=int, default=30, help="windows kept by the retrieval score")
    train.add_argument("--bsz", type=int, default=32, help="queries per batch per process")
    train.add_argument("--eval_bsz", type=int, default=32)
    train.add_argument("--grad_clip", type=float, default=0.1, help="-1: no clipping")
    train.add_argument("--eval_untrained", action="store_true")
    train.add_argument("--resume", type=str, default=None)
    train.add_argument("--resume_all", action="store_true")
    train.add_argument("--start_epoch", type=int, default=None)
    train.add_argument("--start_epoch_for_adapter", type=int, default=-1)

    data = parser.add_argument_group("data (RGNet names)")
    data.add_argument("--max_q_l", type=int, default=20)
    data.add_argument("--max_v_l", type=int, default=90, help="frames per window (stride: half of it)")
    data.add_argument("--clip_length", type=float, default=1.0, help="seconds per feature row")
    data.add_argument("--max_windows", type=int, default=5)
    data.add_argument("--train_path", type=str, nargs="+", default=None)
    data.add_argument("--eval_path", type=str, default=None)
    data.add_argument("--no_norm_vfeat", action="store_true")
    data.add_argument("--no_norm_tfeat", action="store_true")
    data.add_argument("--motion_feat_dir", type=str)
    data.add_argument("--appearance_feat_dir", type=str)
    data.add_argument("--t_feat_dir", type=str)
    data.add_argument("--v_motion_feat_dim", type=int)
    data.add_argument("--v_appear_feat_dim", type=int)
    data.add_argument("--t_feat_dim", type=int)
    data.add_argument("--ctx_mode", type=str, default="video")

    model = parser.add_argument_group("model (RGNet names)")
    model.add_argument("--adapter_module", default="none", type=str, choices=["linear", "none"])
    model.add_argument("--position_embedding", default="sine", type=str, choices=("sine", "learned"))
    model.add_argument("--enc_layers", default=2, type=int)
    model.add_argument("--dec_layers", default=6, type=int)
    model.add_argument("--dec_layers_2", default=2, type=int)
    model.add_argument("--dim_feedforward", default=1024, type=int)
    model.add_argument("--hidden_dim", default=256, type=int)
    model.add_argument("--input_dropout", default=0.5, type=float)
    model.add_argument("--dropout", default=0.1, type=float)
    model.add_argument("--txt_drop_ratio", default=0, type=float)
    model.add_argument("--use_txt_pos", action="store_true")
    model.add_argument("--nheads", default=8, type=int)
    model.add_argument("--num_queries", default=5, type=int)
    model.add_argument("--pre_norm", action="store_true")
    model.add_argument("--eval_modality", type=str, default="both", choices=["both", "proposal", "matching"])
    model.add_argument("--save_all", action="store_true")
    model.add_argument("--n_input_proj", type=int, default=2)
    model.add_argument("--temperature", type=float, default=0.07, help="of the retrieval and adapter InfoNCE")

    loss = parser.add_argument_group("losses (RGNet names)")
    loss.add_argument("--lw_saliency", type=float, default=1.0)
    loss.add_argument("--saliency_margin", type=float, default=0.2)
    loss.add_argument("--no_aux_loss", dest="aux_loss", action="store_false")
    loss.add_argument("--no_neg_contrast_loss", dest="neg_loss", action="store_false",
                      help="no negative-window forward (its hinge terms)")
    loss.add_argument("--no_adapter_loss", dest="adapter_loss", action="store_false")
    loss.add_argument("--span_loss_type", default="l1", type=str, choices=["l1"])
    loss.add_argument("--set_cost_span", default=10, type=float)
    loss.add_argument("--set_cost_giou", default=1, type=float)
    loss.add_argument("--set_cost_class", default=4, type=float)
    loss.add_argument("--span_loss_coef", default=10, type=float)
    loss.add_argument("--giou_loss_coef", default=1, type=float)
    loss.add_argument("--label_loss_coef", default=4, type=float)
    loss.add_argument("--adapter_loss_coef", default=1, type=float)
    loss.add_argument("--retrieval_loss_coef", default=4, type=float)
    loss.add_argument("--samp_loc_loss_coef", default=10, type=float)
    loss.add_argument("--eos_coef", default=0.1, type=float)

    ev = parser.add_argument_group("evaluation (RGNet names)")
    ev.add_argument("--no_sort_results", action="store_true")
    ev.add_argument("--max_before_nms", type=int, default=200)
    ev.add_argument("--max_after_nms", type=int, default=5, help="the inference scripts pass 100")
    ev.add_argument("--nms_thd", type=float, default=-1, help="the scripts pass 0.5; -1: no NMS")
    ev.add_argument("--world_size", default=1, type=int)
    ev.add_argument("--cuda_visible_devices", nargs="*", type=int, default=None)

    rg = parser.add_argument_group("RGNet's parts (RGNet names)")
    for flag in ("decoder_gating", "qddetr", "retrieval", "ret_eval", "oracle_ret_eval", "comb_ret_eval", "winret",
                 "online_loader", "winret_neg_loss"):
        rg.add_argument(f"--{flag}", action="store_true")
    rg.add_argument("--input_fps_reduction", type=int, default=1)
    for flag in ("samp_loc_loss", "dabdetr", "gumbel", "gumbel_2", "gumbel_3"):
        rg.add_argument(f"--{flag}", action="store_true")
    rg.add_argument("--gumbel_eps", default=0.66667, type=float)
    rg.add_argument("--gumbel_single_proj", action="store_true")
    rg.add_argument("--multiscale", action="store_true")
    rg.add_argument("--single_gpu", action="store_true")
    rg.add_argument("--pos_temperature", type=int, default=10000)
    rg.add_argument("--topk", type=int, default=10)
    rg.add_argument("--topk_span", type=int, default=5)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m univtg_core.training --model_id rgnet",
        description="Train RGNet with its own option names (an official launch line works as is).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _official(parser)
    ours = parser.add_argument_group("ours")
    ours.add_argument("--model_id", type=str, default="rgnet")
    ours.add_argument("--sentence_feat_dir", type=str, default=None,
                      help="the queries' sentence features, when not in --t_feat_dir (same layouts)")
    ours.add_argument("--results_dir", type=str, default=None,
                      help="output folder (default <results_root>/<dset_name>-<exp_id>)")
    ours.add_argument("--main_metric", type=str, default="R1-mean",
                      help="report metric that picks model_best.ckpt (e.g. R1@0.5, window-R1)")
    ours.add_argument("--gpu_id", type=int, default=0)
    ours.add_argument("--local_rank", type=int, default=-1)
    ours.add_argument("--grad_accum_steps", type=int, default=1)
    ours.add_argument("--amp", action="store_true", help="mixed precision on CUDA (ignored on CPU)")
    ours.add_argument("--amp_dtype", type=str, default="fp16", choices=["fp16", "bf16"])
    ours.add_argument("--use_cache", type=int, default=-1, help="> 0: preload all features into memory")
    ours.add_argument("--cache_mb", type=int, default=4096, help="in-memory feature cache budget per process")
    ours.add_argument("--log_csv", type=_str2none, default="train_log.csv", help="'none': no CSV log")
    ours.add_argument("--tensorboard", action="store_true")
    ours.add_argument("--no_progress", action="store_true")
    return parser


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """RGNet's options, checked, then the names the trainer reads (derived, one source each)."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    return trainer_view(parser.parse_args(argv), parser)


def trainer_view(opt: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    if not opt.train_path and opt.resume is None:
        parser.error("--train_path is required (jsonl; python -m univtg_core.training.convert mad|ego4d writes it)")
    if not opt.motion_feat_dir:
        parser.error("--motion_feat_dir is required (video features: a folder of <video>.npz, an .h5 file or a "
                     "feature store)")
    if opt.appearance_feat_dir and os.path.normpath(opt.appearance_feat_dir) != os.path.normpath(opt.motion_feat_dir):
        parser.error("--appearance_feat_dir must be the --motion_feat_dir features (as in every released RGNet "
                     "setup); this trainer matches spans on the model's own frames")
    if opt.t_feat_dir is None:
        parser.error("--t_feat_dir is required (per-query token features and the sentence feature)")
    if opt.dset_name is None:
        parser.error("--dset_name is required: mad or ego4d (it decides the metrics and the CLIP-matching rule)")
    if opt.position_embedding != "sine":
        parser.error("only --position_embedding sine is supported (the official builder has no other)")
    if "video" not in opt.ctx_mode:
        parser.error(f"--ctx_mode {opt.ctx_mode}: RGNet reads video features ('video')")
    for name in ("bsz", "eval_bsz", "grad_accum_steps", "max_v_l", "input_fps_reduction"):
        if getattr(opt, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if opt.max_v_l < 2:
        parser.error("--max_v_l must be at least 2 frames (the window stride is half of it)")
    if opt.hidden_dim % opt.nheads:
        parser.error(f"--hidden_dim {opt.hidden_dim} must be divisible by --nheads {opt.nheads}")
    if not opt.clip_length > 0:
        parser.error(f"--clip_length must be positive seconds, got {opt.clip_length}")
    if opt.results_dir is None:
        if opt.exp_id is None:
            parser.error("--exp_id (or --results_dir) is required")
        opt.results_dir = os.path.join(opt.results_root, f"{opt.dset_name}-{opt.exp_id}")
    if opt.local_rank == -1 and "LOCAL_RANK" in os.environ:
        opt.local_rank = int(os.environ["LOCAL_RANK"])
    if opt.debug:
        opt.num_workers = 0
    opt.model_id = "rgnet"
    opt.appearance_feat_dir = opt.appearance_feat_dir or opt.motion_feat_dir
    opt.lr_drop = [int(e) for e in (opt.lr_drop if isinstance(opt.lr_drop, list) else [opt.lr_drop])]
    # The generic trainer's names, derived.
    opt.pin_memory = not opt.no_pin_memory
    opt.eval_epoch = opt.eval_epoch_interval
    opt.eval_init = opt.eval_untrained
    opt.save_interval = 10 if opt.eval_path else 3  # the official train() hard-codes these
    opt.lr_gamma = 0.1
    opt.lr_warmup = -1
    opt.language_free = False
    opt.lf_feat_dir = None
    opt.v_feat_dirs = [opt.motion_feat_dir]
    return opt
