"""Training UniVTG: its config from the options, its criterion, its data rule (one item per query, or per
pseudo-moment in language-free mode) and the official checkpoint format."""

from __future__ import annotations

import argparse

import numpy as np

from ...models.univtg import TEF_COLUMNS, UniVTGConfig
from ..data import GroundingDataset, collate, prepare_batch
from ..losses import UniVTGCriterion
from . import TrainingRecipe, official_checkpoint

# Official options the UniVTG trainer parses (so official launch scripts run) but UniVTG does not use: DETR
# decoder and matcher settings, QFVS summarisation, list-style multi-dataset paths, the learned video
# position embedding (the official build refuses it too) and bookkeeping flags.
IGNORED_OPTIONS = frozenset({
    "domain_name", "resume_dir", "no_sort_results", "conf_thd", "clip_len_list", "max_windows",
    "train_path_list", "eval_path_list", "feat_root_list", "t_feat_type", "position_embedding",
    "sub_enc_layers", "dec_layers", "num_queries", "set_cost_span", "set_cost_giou", "set_cost_class",
    "saliency_margin", "aux_loss", "max_segment_num", "max_frame_num", "top_percent", "qfvs_vid_feature",
    "qfvs_txt_feature", "qfvs_split", "qfvs_dense_shot", "qfvs_score_ensemble", "qfvs_score_gather",
    "qfvs_loss_gather",
})


def video_feature_width(opt: argparse.Namespace) -> int:
    """The clip features' width without the tef columns (opt.v_feat_dim includes them after finalize_dims)."""
    return int(opt.v_feat_dim) - (TEF_COLUMNS if opt.use_tef else 0)


def config_from_options(opt: argparse.Namespace) -> UniVTGConfig:
    return UniVTGConfig(
        video_dim=video_feature_width(opt), text_dim=opt.t_feat_dim, hidden_dim=opt.hidden_dim,
        enc_layers=opt.enc_layers, nheads=opt.nheads, dim_feedforward=opt.dim_feedforward,
        n_input_proj=opt.n_input_proj, input_dropout=opt.input_dropout, dropout=opt.dropout,
        droppath=opt.droppath, use_txt_pos=opt.use_txt_pos, max_q_l=opt.max_q_l, max_v_l=opt.max_v_l,
        pre_norm=opt.pre_norm, span_loss_type=opt.span_loss_type, clip_length=opt.clip_length,
        use_tef=opt.use_tef, normalize_video=not opt.no_norm_vfeat, normalize_text=not opt.no_norm_tfeat,
        video_types=opt.v_feat_types,
    )


def make_dataset(records, store, opt: argparse.Namespace, *, train: bool, load_labels: bool = True,
                 query_field: str = "last_hidden_state", clip_feat_dir: str | None = None):
    """One item per query with the official per-clip targets; language-free training: per pseudo-moment."""
    common = dict(use_tef=opt.use_tef, use_video=opt.use_video, max_v_l=opt.max_v_l,
                  max_q_l=opt.max_q_l if opt.use_txt_pos else None, dset_name=opt.dset_name,
                  add_easy_negative=opt.add_easy_negative, easy_negative_only=opt.easy_negative_only,
                  v_feat_dim=video_feature_width(opt) if opt.use_video else None, t_feat_dim=opt.t_feat_dim)
    if train and opt.language_free:
        from ..language_free import LanguageFreeDataset

        return LanguageFreeDataset(records, store, clip_feat_dir, opt.clip_length,
                                   moments_per_video=opt.lf_moments_per_video, num_frames=opt.lf_num_frames,
                                   min_clips=opt.lf_min_clips, max_ratio=opt.lf_max_ratio, **common)
    if train:
        return GroundingDataset(records, store, opt.clip_length, txt_drop_ratio=opt.txt_drop_ratio, **common)
    return GroundingDataset(records, store, opt.clip_length, query_field=query_field, load_labels=load_labels,
                            **common)


def eval_saliency(decoded, opt: argparse.Namespace) -> np.ndarray:
    """As main/inference_mr.py: saliency stored in half precision, plus the foreground probability with
    `--eval_mode add`."""
    saliency = decoded.saliency.astype(np.float16).astype(np.float32)
    if opt.eval_mode == "add":
        saliency = saliency + decoded.scores
    return saliency


RECIPE = TrainingRecipe(
    architecture="univtg",
    config_from_options=config_from_options,
    build_criterion=UniVTGCriterion.from_options,
    make_dataset=make_dataset,
    collate=collate,
    prepare_batch=prepare_batch,
    video_mask_key="src_vid_mask",
    labelled=lambda targets: "timestamp_window" in targets,
    checkpoint_payload=official_checkpoint,
    eval_saliency=eval_saliency,
    ignored_options=IGNORED_OPTIONS,
    query_arguments=("src_txt", "src_txt_mask"),
    unused_parameters=lambda opt: not opt.use_txt_pos,
)
