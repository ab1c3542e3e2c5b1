"""Command-line options: UniVTG's own names and defaults (main/config.py), plus a few of ours.

An official launch script (scripts/qvhl_pretrain.sh) ports by changing only the program name. Where we
differ, it is deliberate and listed here:

- `--model_id` picks the architecture from the model registry (default `univtg`; the official default
  `moment_detr` is not one) and `--dset_type` defaults to `mr` (the official None cannot train); both are
  written to opt.json so the official code loads our checkpoints.
- Official options an architecture does not use are accepted (official launch scripts pass them) and listed
  by its training recipe (`ignored_options`); setting one to a non-default value logs a warning.
- `--clip_length` defaults to None: the clip length is read from the data (duration / number of feature
  rows, the median over the training set). Pass it to force a value (the official default is 1.0).
- `--v_feat_dim` / `--t_feat_dim` default to the widths of the feature files (the official code requires
  them and silently mis-trains when they are wrong); when given they are checked against every file.
- The output folder is `--results_dir` when given, else `<results_root>/<exp_id>`; it is never wiped.
- `--use_cache > 0` preloads every feature into memory; otherwise features are cached up to `--cache_mb`.

`parse_options` returns the namespace with the official post-processing applied (`use_tef`, `use_video`,
`pin_memory`); `v_feat_dim` gains its two tef columns only once the data has been inspected
(`finalize_dims`), exactly as the official parser leaves it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def _str2none(value: str) -> str | None:
    return None if value in ("", "None", "none") else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m univtg_core.training",
        description="Train UniVTG on QVHighlights-style jsonl annotations with pre-extracted features.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    run = parser.add_argument_group("run (UniVTG names)")
    run.add_argument("--dset_type", type=str, default="mr", choices=["mr", "hl", "vs", "vlp"])
    run.add_argument("--dset_name", type=str, default=None,
                     help="dataset name; hacs/ego4d/videocc/activitynet widen windows shorter than a clip")
    run.add_argument("--domain_name", type=str, default=None)
    run.add_argument("--model_id", type=str, default="univtg", help="architecture to train (the model registry)")
    run.add_argument("--exp_id", type=str, default="debug")
    run.add_argument("--device", type=int, default=0, help="0: cuda when available, -1: cpu")
    run.add_argument("--gpu_id", type=int, default=0)
    run.add_argument("--debug", action="store_true", help="one batch per epoch, one epoch")
    run.add_argument("--seed", type=int, default=2018)
    run.add_argument("--local_rank", type=int, default=-1, help="set by torch.distributed.launch; torchrun "
                     "uses the LOCAL_RANK environment variable instead")
    run.add_argument("--eval_split_name", type=str, default="val")
    run.add_argument("--data_ratio", type=float, default=1.0)
    run.add_argument("--results_root", type=str, default="results")
    run.add_argument("--num_workers", type=int, default=0)
    run.add_argument("--no_pin_memory", action="store_true")

    train = parser.add_argument_group("training (UniVTG names)")
    train.add_argument("--bsz", type=int, default=32, help="batch size per process")
    train.add_argument("--n_epoch", type=int, default=200)
    train.add_argument("--max_es_cnt", type=int, default=200, help="early-stop patience in evals; -1: off")
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--lr_drop", type=int, default=400, help="multiply lr by lr_gamma every lr_drop epochs")
    train.add_argument("--lr_gamma", type=float, default=0.1)
    train.add_argument("--lr_warmup", type=float, default=-1,
                       help="warmup epochs (a value <= 1 is a fraction of n_epoch); -1: none")
    train.add_argument("--wd", type=float, default=1e-4)
    train.add_argument("--grad_clip", type=float, default=0.1, help="-1: no clipping")
    train.add_argument("--span_loss_type", default="l1", type=str, choices=["l1", "ce"])
    train.add_argument("--b_loss_coef", default=10, type=float, help="boundary smooth-L1")
    train.add_argument("--g_loss_coef", default=1, type=float, help="boundary GIoU")
    train.add_argument("--eos_coef", default=0.1, type=float, help="BCE weight of background clips")
    train.add_argument("--f_loss_coef", default=4, type=float, help="foreground BCE")
    train.add_argument("--s_loss_intra_coef", type=float, default=1.0, help="intra-video saliency")
    train.add_argument("--s_loss_inter_coef", type=float, default=0.0, help="inter-video saliency")

    ev = parser.add_argument_group("evaluation (UniVTG names)")
    ev.add_argument("--main_metric", type=str, default="MR-full-mAP",
                    help="brief metric that picks model_best.ckpt; a missing '-key' suffix is added")
    ev.add_argument("--eval_mode", default=None, type=str, help="'add': saliency + foreground probability")
    ev.add_argument("--eval_bsz", type=int, default=100)
    ev.add_argument("--eval_epoch", type=int, default=5, help="evaluate every N epochs (and after the last)")
    ev.add_argument("--eval_init", action="store_true", help="evaluate before training")
    ev.add_argument("--save_interval", type=int, default=50)
    ev.add_argument("--resume", type=str, default=None, help="checkpoint whose weights start training")
    ev.add_argument("--resume_dir", type=str, default=None)
    ev.add_argument("--resume_all", action="store_true", help="with --resume: optimizer, scheduler, epoch too")
    ev.add_argument("--start_epoch", type=int, default=None)
    ev.add_argument("--no_sort_results", action="store_true")
    ev.add_argument("--max_before_nms", type=int, default=10)
    ev.add_argument("--max_after_nms", type=int, default=10)
    ev.add_argument("--conf_thd", type=float, default=0.0)
    ev.add_argument("--nms_thd", type=float, default=-1, help="-1: no NMS")

    data = parser.add_argument_group("data (UniVTG names)")
    data.add_argument("--use_cache", type=int, default=-1, help="> 0: preload all features into memory")
    data.add_argument("--max_q_l", type=int, default=75)
    data.add_argument("--max_v_l", type=int, default=75)
    data.add_argument("--clip_length", type=float, default=None,
                      help="seconds per feature row; default: read from durations and feature lengths")
    data.add_argument("--clip_len_list", type=int, nargs="+")
    data.add_argument("--max_windows", type=int, default=5)
    data.add_argument("--add_easy_negative", type=int, default=1)
    data.add_argument("--easy_negative_only", type=int, default=1)
    data.add_argument("--round_multiple", type=int, default=1,
                      help="> 0: round predicted windows to multiples of clip_length")
    data.add_argument("--train_path", type=str, default=None, nargs="+", help="training jsonl file(s)")
    data.add_argument("--eval_path", type=str, default=None, help="jsonl evaluated during training")
    data.add_argument("--train_path_list", type=str, nargs="+")
    data.add_argument("--eval_path_list", type=str, nargs="+")
    data.add_argument("--feat_root_list", type=str, nargs="+")
    data.add_argument("--no_norm_vfeat", action="store_true")
    data.add_argument("--no_norm_tfeat", action="store_true")
    data.add_argument("--v_feat_dirs", type=str, nargs="+",
                      help="video feature dirs (<vid>.npz, key 'features') or .h5 files, concatenated")
    data.add_argument("--t_feat_dir", type=str, help="query feature dir (<qid>.npz or qid<qid>.npz) or .h5")
    data.add_argument("--v_feat_dim", type=int, help="video feature width without tef; default: from files")
    data.add_argument("--t_feat_dim", type=int, help="query token width; default: from files")
    data.add_argument("--ctx_mode", type=str, default="video_tef")
    data.add_argument("--v_feat_types", type=str)
    data.add_argument("--t_feat_type", type=str)

    model = parser.add_argument_group("model (UniVTG names)")
    model.add_argument("--position_embedding", default="sine", type=str, choices=("sine", "learned"))
    model.add_argument("--n_input_proj", type=int, default=2)
    model.add_argument("--temperature", type=float, default=0.07)
    model.add_argument("--enc_layers", default=4, type=int)
    model.add_argument("--sub_enc_layers", default=2, type=int)
    model.add_argument("--dec_layers", default=2, type=int)
    model.add_argument("--dim_feedforward", default=1024, type=int)
    model.add_argument("--hidden_dim", default=256, type=int)
    model.add_argument("--input_dropout", default=0.5, type=float)
    model.add_argument("--dropout", default=0.1, type=float)
    model.add_argument("--droppath", default=0.1, type=float)
    model.add_argument("--txt_drop_ratio", default=0, type=float)
    model.add_argument("--use_txt_pos", action="store_true")
    model.add_argument("--nheads", default=8, type=int)
    model.add_argument("--num_queries", default=10, type=int)
    model.add_argument("--pre_norm", action="store_true")
    model.add_argument("--set_cost_span", default=10, type=float)
    model.add_argument("--set_cost_giou", default=1, type=float)
    model.add_argument("--set_cost_class", default=4, type=float)
    model.add_argument("--saliency_margin", type=float, default=0.2)
    model.add_argument("--no_aux_loss", dest="aux_loss", action="store_true")
    model.add_argument("--max_segment_num", type=int, default=20)
    model.add_argument("--max_frame_num", type=int, default=200)
    model.add_argument("--top_percent", type=float, default=0.02)
    model.add_argument("--qfvs_vid_feature", type=str, default="fps1")
    model.add_argument("--qfvs_txt_feature", type=str, default="query")
    model.add_argument("--qfvs_split", type=int, default=-1)
    model.add_argument("--qfvs_dense_shot", type=int, default=-1)
    model.add_argument("--qfvs_score_ensemble", type=int, default=-1)
    model.add_argument("--qfvs_score_gather", type=int, default=-1)
    model.add_argument("--qfvs_loss_gather", type=int, default=-1)

    ours = parser.add_argument_group("ours")
    ours.add_argument("--results_dir", type=str, default=None,
                      help="output folder (default <results_root>/<exp_id>)")
    ours.add_argument("--grad_accum_steps", type=int, default=1, help="optimizer step every N batches")
    ours.add_argument("--amp", action="store_true", help="mixed precision on CUDA (ignored on CPU)")
    ours.add_argument("--amp_dtype", type=str, default="fp16", choices=["fp16", "bf16"])
    ours.add_argument("--log_csv", type=_str2none, default="train_log.csv",
                      help="CSV log name inside results_dir (eval rows go to eval_<name>); 'none': off")
    ours.add_argument("--tensorboard", action="store_true", help="also log to <results_dir>/tensorboard_log")
    ours.add_argument("--cache_mb", type=int, default=2048, help="in-memory feature cache budget per process")
    ours.add_argument("--no_progress", action="store_true", help="no tqdm bars")
    ours.add_argument("--language_free", action="store_true",
                      help="train without query text: pseudo-queries from CLIP image features (WACV'23)")
    ours.add_argument("--lf_feat_dir", type=str, default=None,
                      help="CLIP image features for pseudo-queries (default: the v_feat_dir named *clip*, "
                           "else the first one as wide as the text features)")
    ours.add_argument("--lf_num_frames", type=int, default=9, help="candidate frames per pseudo-moment")
    ours.add_argument("--lf_noise", type=float, default=0.04, help="Gaussian noise sigma on candidates")
    ours.add_argument("--lf_moments_per_video", type=int, default=4, help="pseudo-moments per video per epoch")
    ours.add_argument("--lf_min_clips", type=int, default=2, help="shortest pseudo-moment, in clips")
    ours.add_argument("--lf_max_ratio", type=float, default=0.6, help="longest pseudo-moment, fraction of video")
    ours.add_argument("--lf_selector_dim", type=int, default=128, help="width of the selection transformer")
    return parser


def _own_parser(argv: Sequence[str] | None):
    """The `parse_options` of the architecture `--model_id` names, when its recipe brings its own (MESM's
    options); None for UniVTG's (this module's) options."""
    import sys

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model_id", type=str, default="univtg")
    known, _ = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    from ..models import get_architecture, trainable_models

    if known.model_id not in trainable_models():
        return None  # refused below, with the list of trainable ones
    return get_architecture(known.model_id).training_recipe().parse_options


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse argv with the official post-processing; errors go through argparse (exit code 2). An
    architecture whose recipe has its own options (`--model_id mesm`) parses them itself."""
    own = _own_parser(argv)
    if own is not None:
        return own(argv)
    parser = build_parser()
    opt = parser.parse_args(argv)
    if not opt.train_path and opt.resume is None:
        parser.error("--train_path is required")
    if opt.v_feat_dirs is None and "video" in opt.ctx_mode:
        parser.error("--v_feat_dirs is required")
    if opt.t_feat_dir is None:
        parser.error("--t_feat_dir is required (in --language_free mode it holds the eval queries' features)")
    from ..models import trainable_models

    if opt.model_id not in trainable_models():
        parser.error(f"--model_id {opt.model_id!r} is not a trainable architecture; choose one of "
                     f"{', '.join(trainable_models())}")
    if opt.span_loss_type != "l1":
        parser.error("only --span_loss_type l1 is supported (UniVTG's dense regression)")
    if opt.dset_type not in ("mr", "vlp"):
        parser.error(f"--dset_type {opt.dset_type} is not supported by this trainer (use mr or vlp)")
    if opt.grad_accum_steps < 1:
        parser.error("--grad_accum_steps must be >= 1")
    if opt.hidden_dim % opt.nheads:
        parser.error(f"--hidden_dim {opt.hidden_dim} must be divisible by --nheads {opt.nheads}")
    if opt.debug:
        opt.num_workers = 0
    if opt.local_rank == -1 and "LOCAL_RANK" in os.environ:
        opt.local_rank = int(os.environ["LOCAL_RANK"])
    if opt.results_dir is None:
        opt.results_dir = os.path.join(opt.results_root, opt.exp_id)
    opt.pin_memory = not opt.no_pin_memory
    opt.use_tef = "tef" in opt.ctx_mode
    opt.use_video = "video" in opt.ctx_mode
    return opt


def warn_unused_options(opt: argparse.Namespace, ignored: frozenset[str], architecture: str,
                        parser: argparse.ArgumentParser | None = None) -> list[str]:
    """One warning line naming the ignored options set to a non-default value (defaults: `parser`'s, else
    UniVTG's); returns their names."""
    parser = parser or build_parser()
    changed = sorted(name for name in ignored if getattr(opt, name, None) != parser.get_default(name))
    if changed:
        logger.warning("options that the %s trainer does not use were set and change nothing: %s", architecture,
                       ", ".join(f"--{name} {getattr(opt, name)!r}" for name in changed))
    return changed


def finalize_dims(opt: argparse.Namespace, video_dim: int, text_dim: int, clip_length: float) -> dict:
    """Fill the data-derived settings; returns opt.json's content (v_feat_dim without tef, as official).

    After this call `opt.v_feat_dim` includes the two tef columns, as the official parser leaves it.
    """
    opt.v_feat_dim = int(video_dim) if opt.use_video else 0
    opt.t_feat_dim = int(text_dim)
    opt.clip_length = float(clip_length)
    saved = dict(vars(opt))
    if opt.use_tef:
        opt.v_feat_dim += 2
    return saved
