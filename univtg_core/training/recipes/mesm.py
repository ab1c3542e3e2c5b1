"""Training MESM: its options (MESM's names, `training.mesm_options`), its config and criterion from them,
its data rule (a video with all its queries is one item, `training.mesm_data`), its checkpoint format and
its Charades-STA / TACoS report."""

from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from ...models.mesm import MESMConfig, mesm_checkpoint, video_sources_from_options
from .. import mesm_data
from ..mesm_losses import MESMCriterion, MESMLossConfig
from ..mesm_options import build_parser, parse_options
from . import TrainingRecipe

# MESM options this trainer accepts (so official configs and launch lines run) but does not use: the BPE file
# and the text tower (we read per-token text features; open_clip's tokenizer has the same vocabulary),
# sorting (results are always sorted), the result-folder name part, and the GloVe vocabulary switch (only the
# CLIP text path trains here).
IGNORED_OPTIONS = frozenset({"bpe_path", "text_model_path", "sort_results", "ctx_mode", "load_vocab_pkl"})


def config_from_options(opt: argparse.Namespace) -> MESMConfig:
    """The architecture from MESM's options, after the data set the widths (opt.v_feat_dim includes tef)."""
    video_width = int(opt.v_feat_dim) - (2 if opt.use_tef else 0)
    return MESMConfig(
        v_feat_dim=int(opt.v_feat_dim), t_feat_dim=int(opt.t_feat_dim), hidden_dim=opt.hidden_dim,
        nheads=opt.nheads, dim_feedforward=opt.dim_feedforward, dropout=opt.dropout, input_dropout=opt.input_dropout,
        num_recfw_layers=opt.num_recfw_layers, t2v_layers=opt.t2v_layers, enc_layers=opt.enc_layers,
        dec_layers=opt.dec_layers, num_queries=opt.num_queries, n_input_proj=opt.n_input_proj,
        max_words_l=opt.max_words_l, max_video_l=opt.max_video_l, use_txt_pos=opt.use_txt_pos,
        aux_loss=opt.aux_loss, rec_fw=opt.rec_fw, rec_ss=opt.rec_ss, num_recss_layers=opt.num_recss_layers,
        share_MLP=opt.share_MLP, vocab_size=opt.vocab_size, text_path="clip", normalize_txt=opt.normalize_txt,
        normalize_video=opt.normalize_video, use_tef=opt.use_tef, clip_len=float(opt.clip_len),
        dataset_name=opt.dataset_name, video_sources=video_sources_from_options(opt.feat_files, video_width),
        max_ts_val=float(opt.max_ts_val),
    )


def loss_config(opt: argparse.Namespace) -> MESMLossConfig:
    return MESMLossConfig(
        set_cost_span=opt.set_cost_span, set_cost_giou=opt.set_cost_giou, set_cost_class=opt.set_cost_class,
        loss_span_coef=opt.loss_span_coef, loss_giou_coef=opt.loss_giou_coef, loss_label_coef=opt.loss_label_coef,
        loss_saliency_coef=opt.loss_saliency_coef, eos_coef=opt.eos_coef, loss_recfw_coef=opt.loss_recfw_coef,
        loss_recss_coef=opt.loss_recss_coef, rank_coef=opt.rank_coef, use_triplet=opt.use_triplet,
        saliency_margin=opt.saliency_margin, iou_gamma=opt.iou_gamma, recss_tau=opt.recss_tau,
        aux_loss=opt.aux_loss, dec_layers=opt.dec_layers, rec_fw=opt.rec_fw, rec_ss=opt.rec_ss,
        multi_clip=opt.dataset_name == "qvhighlights",
    )


class TrainingCriterion(nn.Module):
    """MESM's criterion as the trainer calls it: `losses = criterion(outputs, targets)` (the weighted terms
    only; the masked-word loss when the outputs come from the training forward) and `total(losses)`."""

    def __init__(self, config: MESMLossConfig):
        super().__init__()
        self.criterion = MESMCriterion(config)
        self.weight_dict = self.criterion.weight_dict

    def forward(self, outputs: dict, targets: dict) -> dict[str, torch.Tensor]:
        losses, _ = self.criterion(outputs, targets, is_training="recfw_words_logit" in outputs)
        return {k: v for k, v in losses.items() if k in self.weight_dict}

    def total(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(losses[k] * self.weight_dict[k] for k in losses)


def build_criterion(opt: argparse.Namespace) -> TrainingCriterion:
    return TrainingCriterion(loss_config(opt))


def make_dataset(records, store, opt: argparse.Namespace, *, train: bool, load_labels: bool = True,
                 query_field: str = "last_hidden_state",  # noqa: ARG001 - the recipe interface; MESM reads its own
                 clip_feat_dir: str | None = None):  # noqa: ARG001 - (UniVTG's teacher folder)
    return mesm_data.dataset_for(records, store, opt, config_from_options(opt), train=train, load_labels=load_labels)


def checkpoint_payload(model, optimizer, scheduler, epoch: int, opt: argparse.Namespace) -> dict[str, Any]:
    """MESM's official checkpoint (`opt` with MESM's names, `device` a torch.device)."""
    from . import plain_options

    return mesm_checkpoint(model, vars(plain_options(opt)), epoch, optimizer, scheduler)


def evaluate(records: list[dict], ground_truth: list[dict], opt: argparse.Namespace) -> dict:
    """MESM's report (R1@{0.3,0.5,0.7}, mIoU, mAP by length bucket) for the dataset's family."""
    from ...evaluation.charades import evaluate_moment_retrieval

    return evaluate_moment_retrieval(records, ground_truth, dataset=opt.dataset_name, match_number=True)


RECIPE = TrainingRecipe(
    architecture="mesm",
    config_from_options=config_from_options,
    build_criterion=build_criterion,
    make_dataset=make_dataset,
    collate=mesm_data.collate,
    prepare_batch=mesm_data.prepare_batch,
    video_mask_key="video_mask",
    labelled=lambda targets: "norm_moment" in targets,
    checkpoint_payload=checkpoint_payload,
    ignored_options=IGNORED_OPTIONS,
    query_arguments=None,
    unused_parameters=lambda _opt: True,  # the enhancer exists with rec_fw off; text positions only with use_txt_pos
    parse_options=parse_options,
    build_parser=build_parser,
    evaluate=evaluate,
)
