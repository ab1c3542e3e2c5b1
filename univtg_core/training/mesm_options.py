"""Command-line options of `python -m univtg_core.training --model_id mesm`: MESM's own names and defaults
(lntzm/MESM utils/config.py), so its JSON configs port unchanged, plus the trainer options it lacks.

    python -m univtg_core.training --model_id mesm --config_file config/charades/C+SF_C.json \\
        --train_path train.jsonl --eval_path test.jsonl --t_feat_dir text_features [--n_epoch 50 ...]

Where we differ from the official parser, deliberately:

- `--config_file`: the official code lets the JSON overwrite every option, the command line included; here
  an option given explicitly on the command line wins over the JSON (the JSON still overwrites defaults).
  JSON keys that are no option (`is_inference`, the configs' `span_los_type` typo) are kept on the options
  as the official code keeps them.
- Data: annotations are our jsonl (`--train_path`, `--eval_path`; convert Charades-STA / TACoS with
  `python -m univtg_core.training.convert`); video features are `--feat_files` as in MESM (HDF5 files keyed
  by video id, or folders of <vid>.npz); the text is per-token CLIP features (`--t_feat_dir`, made by
  `python -m univtg_core.training.extract`), since we hold no text tower. `--ann_path` is the folder of the
  word-count files the masked-word loss reads (`python -m univtg_core.training.mesm_vocab`).
- `--clip_len` takes fractions of a second too (the official type is int); -1 still means positions
  normalised by the video (TACoS).
- Our usual names are accepted as aliases: `--bsz` (batch_size), `--eval_bsz` (eval_batch_size), `--wd`
  (weight_decay), `--lr_gamma` (gamma), `--eval_epoch` (eval_epoch_interval), `--eval_init`
  (eval_untrained), `--v_feat_dirs` (feat_files), `--results_root` (result_root).
- The output folder is `--results_dir`, else `<result_root>/<exp_id>` (the official name adds the dataset
  and a time stamp); the best checkpoint is `model_best.ckpt` (official: `model_<split>_best.ckpt`), in
  MESM's format.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from .options import _str2none

logger = logging.getLogger(__name__)

DATASETS = ("charades", "charades-cg", "charades-cd", "qvhighlights", "tacos")
TOKENIZERS = ("CLIP", "GloVeSimple", "GloVeNLTK")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m univtg_core.training --model_id mesm",
        description="Train MESM with its own option names (a MESM JSON config via --config_file works as is).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--config_file", type=str, default=None,
                        help="MESM JSON config; options given on this command line win over it")

    data = parser.add_argument_group("dataset (MESM names)")
    data.add_argument("--dataset_name", type=str, default=None, choices=DATASETS,
                      help="decides the metric set and the grouping rules; default: charades")
    data.add_argument("--ann_path", type=str, default=None,
                      help="folder of CLIP_tokenized_count.txt (the masked-word classes)")
    data.add_argument("--feat_files", "--v_feat_dirs", type=str, nargs="+", dest="feat_files",
                      help="video features, concatenated in this order: .hdf5 files keyed by video id, or "
                           "folders of <vid>.npz (key 'features')")
    data.add_argument("--use_tef", action="store_true")
    data.add_argument("--clip_len", type=float, default=1, help="seconds per feature row; -1: normalised positions")
    data.add_argument("--max_words_l", type=int, default=32)
    data.add_argument("--max_video_l", type=int, default=75, help="longer videos are mean-pooled to this")
    data.add_argument("--tokenizer_type", type=str, default="CLIP", choices=TOKENIZERS)
    data.add_argument("--load_vocab_pkl", action="store_true")
    data.add_argument("--bpe_path", type=str, default="data/bpe_simple_vocab_16e6.txt.gz")
    data.add_argument("--normalize_video", action="store_true")
    data.add_argument("--normalize_txt", action="store_true")
    data.add_argument("--contra_samples", type=int, default=2, help="frames inside / outside per query (triplet)")
    data.add_argument("--batch_size", "--bsz", type=int, default=12, dest="batch_size",
                      help="videos per batch per process (each with all its queries)")
    data.add_argument("--eval_batch_size", "--eval_bsz", type=int, default=-1, dest="eval_batch_size",
                      help="-1: batch_size")
    data.add_argument("--num_workers", type=int, default=8)
    data.add_argument("--pin_memory", action="store_true")
    data.add_argument("--vocab_size", type=int, default=1111)
    data.add_argument("--max_windows", type=int, default=5, help="GT windows kept per query (QVHighlights)")
    data.add_argument("--max_gather_size", type=int, default=-1, help="> 0: at most this many queries per item")

    model = parser.add_argument_group("model (MESM names)")
    model.add_argument("--device", type=str, default="cuda", choices=["cuda", "cpu"])
    model.add_argument("--text_model_path", type=str, default="data/clip_text_encoder.pth")
    model.add_argument("--share_MLP", action="store_true")
    model.add_argument("--hidden_dim", type=int, default=256)
    model.add_argument("--dropout", type=float, default=0.1)
    model.add_argument("--nheads", type=int, default=8)
    model.add_argument("--dim_feedforward", type=int, default=1024)
    model.add_argument("--num_recfw_layers", type=int, default=2)
    model.add_argument("--t2v_layers", type=int, default=2)
    model.add_argument("--enc_layers", type=int, default=2)
    model.add_argument("--dec_layers", type=int, default=2)
    model.add_argument("--pre_norm", action="store_true")
    model.add_argument("--position_embedding", type=str, default="sine", choices=("sine", "learned"))
    model.add_argument("--input_dropout", type=float, default=0.5)
    model.add_argument("--v_feat_dim", type=int, help="video feature width without tef; default: from files")
    model.add_argument("--t_feat_dim", type=int, help="query token width; default: from files")
    model.add_argument("--num_queries", type=int, default=10)
    model.add_argument("--use_txt_pos", action="store_true")
    model.add_argument("--n_input_proj", type=int, default=2)
    model.add_argument("--rec_fw", action="store_true", help="frame-word enhancement (FW-MESM)")
    model.add_argument("--rec_ss", action="store_true", help="segment-sentence enhancement (SS-MESM)")
    model.add_argument("--num_recss_layers", type=int, default=4)

    loss = parser.add_argument_group("matcher and criterion (MESM names)")
    loss.add_argument("--set_cost_span", type=float, default=10)
    loss.add_argument("--set_cost_giou", type=float, default=1)
    loss.add_argument("--set_cost_class", type=float, default=4)
    loss.add_argument("--span_loss_type", type=str, default="l1", choices=["l1", "ce"])
    loss.add_argument("--aux_loss", action="store_true")
    loss.add_argument("--rank_coef", type=float, default=12.0)
    loss.add_argument("--use_triplet", action="store_true")
    loss.add_argument("--saliency_margin", type=float, default=0.2)
    loss.add_argument("--loss_span_coef", type=float, default=10)
    loss.add_argument("--loss_giou_coef", type=float, default=1)
    loss.add_argument("--loss_label_coef", type=float, default=4)
    loss.add_argument("--loss_saliency_coef", type=float, default=1)
    loss.add_argument("--eos_coef", type=float, default=0.1)
    loss.add_argument("--loss_recfw_coef", type=float, default=0)
    loss.add_argument("--loss_recss_coef", type=float, default=0)
    loss.add_argument("--iou_gamma", type=float, default=0.9)
    loss.add_argument("--recss_tau", type=float, default=0.5)

    train = parser.add_argument_group("training (MESM names)")
    train.add_argument("--exp_id", type=str, default=None)
    train.add_argument("--seed", type=int, default=2019)
    train.add_argument("--lr", type=float, default=1e-4)
    train.add_argument("--lr_drop", type=int, default=400)
    train.add_argument("--gamma", "--lr_gamma", type=float, default=0.1, dest="gamma")
    train.add_argument("--weight_decay", "--wd", type=float, default=1e-4, dest="weight_decay")
    train.add_argument("--n_epoch", type=int, default=200)
    train.add_argument("--grad_clip", type=float, default=0.1, help="-1: no clipping")
    train.add_argument("--resume", type=str, default=None)
    train.add_argument("--resume_all", action="store_true")
    train.add_argument("--start_epoch", type=int, default=None)
    train.add_argument("--eval_untrained", "--eval_init", action="store_true", dest="eval_untrained")
    train.add_argument("--max_es_cnt", type=int, default=200, help="early-stop patience in evals; -1: off")
    train.add_argument("--save_interval", type=int, default=50)
    train.add_argument("--result_root", "--results_root", type=str, default="./results", dest="result_root")
    train.add_argument("--ctx_mode", type=str, default=None)
    train.add_argument("--stop_score", type=str, default="mAP", help="picks model_best.ckpt: MR-full-<stop_score>")

    ev = parser.add_argument_group("evaluation (MESM names)")
    ev.add_argument("--eval_epoch_interval", "--eval_epoch", type=int, default=1, dest="eval_epoch_interval")
    ev.add_argument("--sort_results", action="store_true")
    ev.add_argument("--nms_thd", type=float, default=-1, help="-1: no NMS")
    ev.add_argument("--max_ts_val", type=float, default=150)
    ev.add_argument("--max_before_nms", type=int, default=10)
    ev.add_argument("--max_after_nms", type=int, default=10)

    ours = parser.add_argument_group("ours")
    ours.add_argument("--model_id", type=str, default="mesm")
    ours.add_argument("--train_path", type=str, nargs="+", default=None, help="training jsonl file(s)")
    ours.add_argument("--eval_path", type=str, default=None, help="jsonl evaluated during training")
    ours.add_argument("--t_feat_dir", type=str, default=None,
                      help="per-token CLIP text features: <qid>.npz (key last_hidden_state) or an .h5 file")
    ours.add_argument("--results_dir", type=str, default=None, help="output folder (default <result_root>/<exp_id>)")
    ours.add_argument("--eval_split_name", type=str, default="val", help="names the prediction files")
    ours.add_argument("--round_multiple", type=int, default=None,
                      help="> 0: round predicted windows to multiples of clip_len, -1: do not; default: as MESM "
                           "(round unless clip_len is -1)")
    ours.add_argument("--data_ratio", type=float, default=1.0)
    ours.add_argument("--lr_warmup", type=float, default=-1,
                      help="warmup epochs (a value <= 1 is a fraction of n_epoch); -1: none")
    ours.add_argument("--grad_accum_steps", type=int, default=1)
    ours.add_argument("--amp", action="store_true", help="mixed precision on CUDA (ignored on CPU)")
    ours.add_argument("--amp_dtype", type=str, default="fp16", choices=["fp16", "bf16"])
    ours.add_argument("--gpu_id", type=int, default=0)
    ours.add_argument("--local_rank", type=int, default=-1)
    ours.add_argument("--debug", action="store_true", help="one batch per epoch, one epoch")
    ours.add_argument("--use_cache", type=int, default=-1, help="> 0: preload all features into memory")
    ours.add_argument("--cache_mb", type=int, default=2048)
    ours.add_argument("--log_csv", type=_str2none, default="train_log.csv", help="'none': no CSV log")
    ours.add_argument("--tensorboard", action="store_true")
    ours.add_argument("--no_progress", action="store_true")
    return parser


def explicit_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations the command line sets itself (not by default)."""
    quiet = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            kwargs = {"dest": action.dest, "default": argparse.SUPPRESS}
            if action.nargs == 0:
                kwargs["action"] = "store_const"
                kwargs["const"] = action.const
            else:
                kwargs["nargs"] = action.nargs
            quiet.add_argument(*action.option_strings, **kwargs)
    given, _ = quiet.parse_known_args(list(argv))
    return set(vars(given))


def _read_config(path: str) -> dict:
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SystemExit(f"error: --config_file {path} not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"error: --config_file {path} is not a JSON object ({exc})") from None
    if not isinstance(values, dict):
        raise SystemExit(f"error: --config_file {path} holds {type(values).__name__}, not a JSON object of options")
    return values


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """MESM's options (a --config_file merged under the explicit flags), then the names the trainer reads."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    opt = parser.parse_args(argv)
    if opt.config_file:
        given = explicit_options(parser, argv)
        known = {a.dest for a in parser._actions}
        extra = []
        for key, value in _read_config(opt.config_file).items():
            if key in given:
                continue
            if key not in known:
                extra.append(key)
            setattr(opt, key, value)
        if extra:
            logger.info("kept config keys that are no option: %s", ", ".join(sorted(extra)))
    return trainer_view(opt, parser)


def trainer_view(opt: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Check MESM's options and add the names the trainer reads (bsz, wd, ...), derived from them."""
    if not opt.train_path and opt.resume is None:
        parser.error("--train_path is required (our jsonl; python -m univtg_core.training.convert turns Charades-STA "
                     "and TACoS annotations into it)")
    if not opt.feat_files:
        parser.error("--feat_files is required (video features: .hdf5 files or folders of <vid>.npz)")
    if opt.t_feat_dir is None:
        parser.error("--t_feat_dir is required: MESM reads per-token text features here (no text tower is held); "
                     "make them with python -m univtg_core.training.extract")
    if opt.tokenizer_type != "CLIP":
        parser.error(f"--tokenizer_type {opt.tokenizer_type}: this trainer trains MESM on CLIP text features only "
                     "(GloVe checkpoints load and evaluate, but do not train here yet)")
    if opt.span_loss_type != "l1":
        parser.error("only --span_loss_type l1 is supported (the official model raises for ce)")
    if opt.position_embedding != "sine":
        parser.error("only --position_embedding sine is supported (the official model has no learned video positions)")
    if opt.pre_norm:
        parser.error("--pre_norm is not supported (the official MESM layers are post-norm only)")
    for name in ("batch_size", "grad_accum_steps"):
        if getattr(opt, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if opt.hidden_dim % opt.nheads:
        parser.error(f"--hidden_dim {opt.hidden_dim} must be divisible by --nheads {opt.nheads}")
    if opt.clip_len != -1 and not opt.clip_len > 0:
        parser.error(f"--clip_len must be positive seconds or -1 (normalised positions), got {opt.clip_len}")
    if opt.results_dir is None:
        if opt.exp_id is None:
            parser.error("--exp_id (or --results_dir) is required")
        opt.results_dir = os.path.join(opt.result_root, opt.exp_id)
    if isinstance(opt.train_path, str):  # a config file may give one path as a string
        opt.train_path = [opt.train_path]
    if opt.local_rank == -1 and "LOCAL_RANK" in os.environ:
        opt.local_rank = int(os.environ["LOCAL_RANK"])
    if opt.debug:
        opt.num_workers = 0
    opt.model_id = "mesm"
    opt.dataset_name = opt.dataset_name or "charades"
    # The generic trainer's names, derived (one source for each setting).
    opt.bsz = opt.batch_size
    opt.eval_bsz = opt.batch_size if opt.eval_batch_size == -1 else opt.eval_batch_size
    opt.wd = opt.weight_decay
    opt.lr_gamma = opt.gamma
    opt.eval_epoch = opt.eval_epoch_interval
    opt.eval_init = opt.eval_untrained
    opt.main_metric = f"MR-full-{opt.stop_score}"
    opt.v_feat_dirs = list(opt.feat_files)
    opt.clip_length = float(opt.clip_len) if opt.clip_len > 0 else None
    if opt.round_multiple is None:  # the official post-processor rounds to clip_len
        opt.round_multiple = 1 if opt.clip_len > 0 else -1
    opt.use_video = True
    opt.no_norm_vfeat = opt.no_norm_tfeat = True  # MESM normalises each source (and its text) itself
    opt.language_free = False
    opt.lf_feat_dir = None
    return opt
