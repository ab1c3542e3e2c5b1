"""Training RGNet: its options (RGNet's names, `training.rgnet_options`), its config and criterion from them,
its data rule (`training.rgnet_data`), its own step (the official `train_epoch` through
`rgnet_losses.training_losses`), the official optimiser and schedule, the official checkpoint format, and
validation by whole-video inference (`models.rgnet_inference.long_video_moments`, what `ground()` runs) scored
with the MAD or Ego4D-NLQ metrics."""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError
from ...models.rgnet import RGNetConfig
from .. import rgnet_data
from ..rgnet_losses import RGNetCriterion, training_losses
from ..rgnet_options import build_parser, parse_options
from . import TrainingRecipe

logger = logging.getLogger(__name__)

# Official options this trainer parses (so official launch lines run) but does not use: the second data
# ratio (the official code reads neither), evaluation variants we do not reproduce (RGNet always ranks windows
# by its retrieval token when it has one, CONE's pre-filter otherwise: --ret_eval is implied), result
# bookkeeping, launcher settings (torchrun sets the world), LMDB loading modes, the text dropout the official
# dataset stores but never applies, --max_windows (one moment per query), --ctx_mode, the video normalisation
# the official dataset discards, and --topk (overwritten from opt.json in the official inference). --eval_bsz is
# the generic trainer's and has no effect here: validation runs one query at a time over its whole video.
IGNORED_OPTIONS = frozenset({
    "train_data_ratio", "eval_modality", "save_all", "world_size", "cuda_visible_devices", "retrieval", "ret_eval",
    "oracle_ret_eval", "comb_ret_eval", "online_loader", "single_gpu", "topk", "no_sort_results", "txt_drop_ratio",
    "max_windows", "no_norm_vfeat",
})


def config_from_options(opt: argparse.Namespace) -> RGNetConfig:
    """The architecture from RGNet's options (widths filled from the feature files, clip_length scaled)."""
    names = {f.name for f in fields(RGNetConfig)}
    values = {k: v for k, v in vars(opt).items() if k in names and v is not None}
    values["normalize_text"] = not opt.no_norm_tfeat
    values["pos_temperature"] = float(opt.pos_temperature)
    values["official_mask_layout"] = False  # each row reads its own text mask (the official layout bug fixed)
    try:
        return RGNetConfig.from_dict(values).validate()
    except CheckpointError as exc:
        raise ValueError(str(exc)) from exc


def build_criterion(opt: argparse.Namespace) -> RGNetCriterion:
    return RGNetCriterion.from_options(opt)


def make_dataset(records, features, opt: argparse.Namespace, *, train: bool, load_labels: bool = True,  # noqa: ARG001
                 query_field: str = "last_hidden_state", clip_feat_dir: str | None = None):  # noqa: ARG001 - the interface
    if train:
        return rgnet_data.RGNetTrainingSet(records, features, opt)
    return rgnet_data.RGNetEvalSet(records, features)


def train_step(model: nn.Module, criterion: RGNetCriterion, inputs: dict, targets: dict,  # noqa: ARG001
               epoch: int) -> tuple[dict, torch.Tensor]:
    """The official train_epoch step without the optimiser: --winret pairs (or the plain batch), the negative
    windows with --neg_loss, the adapter loss from --start_epoch_for_adapter. The adapter term is reported as
    `loss_adapter` (its weight's name)."""
    losses, total = training_losses(model, criterion, inputs["batch"], epoch)
    if "adapter_loss" in losses:
        losses["loss_adapter"] = losses.pop("adapter_loss")
    return losses, total


def build_optimizer(model: nn.Module, opt: argparse.Namespace):
    """The official setup_model: AdamW with the adapter's parameters at lr x coef_lr (group 0) and the rest at lr
    (group 1), MultiStepLR at --lr_drop epochs x0.1."""
    adapter = [p for n, p in model.named_parameters() if "adapter" in n and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if "adapter" not in n and p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": adapter, "lr": opt.lr * opt.coef_lr}, {"params": rest, "lr": opt.lr}],
                                  lr=opt.lr, weight_decay=opt.wd)
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(opt.lr_drop), gamma=0.1)


@torch.no_grad()
def predict(model: nn.Module, dataset: rgnet_data.RGNetEvalSet, opt: argparse.Namespace, device: torch.device,  # noqa: ARG001
            progress: bool = False) -> list[dict]:
    """Every evaluation query over its whole video, as ground() runs RGNet: the window grid, the learned window
    scores, the top --topk_window windows, fusion and NMS, moments clamped to the video. Records hold the
    QVHighlights keys plus `pred_top_window` [start, end] s (the first-ranked window)."""
    from tqdm import tqdm

    from ...models.rgnet_inference import long_video_moments
    from ...query import Query

    model.eval()
    features, records = dataset.features, []
    for record in tqdm(dataset.records, desc="eval", leave=False, disable=not progress):
        video = features.video(record["vid"])
        query = Query(tokens=features.tokens(record["qid"]), embedding=features.sentence(record["qid"]))
        found = long_video_moments(model, video, query, clip_len=opt.clip_length, coarse_top_k=opt.topk_window)
        top = found.grid[found.window_order[0]] * opt.clip_length
        records.append({
            "qid": record["qid"], "query": record.get("query"), "vid": record["vid"],
            "pred_relevant_windows": [[float(s), float(e), float(c)] for (s, e), c in zip(found.windows, found.scores)],
            "pred_top_window": [float(top[0]), float(top[1])],
        })
    return records


def window_recall(records: list[dict], ground_truth: list[dict]) -> float:
    """Share (%) of queries whose first-ranked window overlaps their moment (a positive window of the data
    rule)."""
    gt = {r["qid"]: r["relevant_windows"][0] for r in ground_truth}
    hits = [float(min(r["pred_top_window"][1], gt[r["qid"]][1]) > max(r["pred_top_window"][0], gt[r["qid"]][0]))
            for r in records if r["qid"] in gt]
    return round(100.0 * float(np.mean(hits)), 2) if hits else 0.0


def evaluate(records: list[dict], ground_truth: list[dict], opt: argparse.Namespace) -> dict:
    """MAD: R@{1,5,10,50,100} at IoU {0.1,0.3,0.5}; Ego4D-NLQ: R@{1,5} at IoU {0.3,0.5} and mIoU; both with
    `R1-mean` (the official stop score) and `window-R1` (the first window overlaps the moment)."""
    if opt.dset_name == "ego4d":
        from ...evaluation.ego4d import evaluate_ego4d

        brief = evaluate_ego4d(records, ground_truth)
        r1 = [brief["R1@0.3"], brief["R1@0.5"]]
    else:
        from ...evaluation.mad import evaluate_mad

        brief = evaluate_mad(records, ground_truth)
        r1 = [brief["R1@0.1"], brief["R1@0.3"], brief["R1@0.5"]]
    brief = {**brief, "R1-mean": round(float(np.mean(r1)), 2), "window-R1": window_recall(records, ground_truth)}
    return {"brief": brief}


RECIPE = TrainingRecipe(
    architecture="rgnet",
    config_from_options=config_from_options,
    build_criterion=build_criterion,
    make_dataset=make_dataset,
    collate=rgnet_data.collate,
    prepare_batch=rgnet_data.prepare_batch,
    video_mask_key="window_mask",
    labelled=lambda _targets: False,  # no eval losses: validation is whole-video inference
    ignored_options=IGNORED_OPTIONS,
    query_arguments=None,
    unused_parameters=lambda _opt: True,  # the plain saliency head exists beside the retrieval token's
    parse_options=parse_options,
    build_parser=build_parser,
    evaluate=evaluate,
    setup_data=rgnet_data.setup_data,
    train_step=train_step,
    predict=predict,
    build_optimizer=build_optimizer,
)
