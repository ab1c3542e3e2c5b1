"""How the one trainer trains an architecture: a `TrainingRecipe` per registered model.

The registry entry (`univtg_core.models`) names its recipe as "module:attribute" (`Architecture.training`);
the trainer looks it up by `--model_id` and never branches on the architecture. A recipe supplies:

- `config_from_options(opt)`: the architecture's config from the parsed options (after the data set the
  feature widths; `opt.v_feat_dim` then includes tef columns, as the official parser leaves it). Raises
  ValueError naming a bad setting.
- `build_criterion(opt)`: an nn.Module with `forward(outputs, targets) -> {loss name: value}`, a
  `weight_dict` {loss name: coefficient} and `total(losses)`.
- the data rule: `make_dataset(records, store, opt, train=..., load_labels=..., query_field=...,
  clip_feat_dir=...)` (what one item is: a query, or all queries of a video), `collate(items) -> (metas,
  batch)` with one meta (qid, vid, query, duration) per row of the model's outputs, i.e. per query, and
  `prepare_batch(batch, device, non_blocking) -> (forward kwargs, criterion targets)`; the trainer calls
  `model(**kwargs)` and the model's `decode_outputs(outputs, kwargs[video_mask_key], clip_len, durations)`.
- `checkpoint_payload(model, optimizer, scheduler, epoch, opt) -> dict`: the saved file's dictionary (the
  official format, so the official code loads ours).
- `eval_saliency(decoded, opt)`: the per-clip scores written as `pred_saliency_scores` (official eval
  options such as UniVTG's `--eval_mode add`).
- `ignored_options`: options the parser accepts (official names) that this architecture does not use; the
  trainer warns when one is set to a non-default value.
- `parse_options(argv)`: the architecture's own command line (its official option names and defaults,
  e.g. MESM's and its JSON configs), returning the options with the names the trainer reads added; None:
  UniVTG's options (`training.options`). `build_parser()` is that parser (its defaults decide which
  ignored options were set).
- `evaluate(records, ground_truth, opt) -> report`: the validation report ({"brief": {metric: value}, ...});
  None: the QVHighlights report.

Optional hooks, for an architecture whose training does not fit one forward + one criterion call (None: the
trainer's own way):

- `setup_data(opt, recipe, progress) -> RunData`: the run's annotations, features and datasets (RGNet's
  long videos and its feature files' keys); None: `training.data_setup.setup_data`.
- `train_step(model, criterion, inputs, targets, epoch) -> (losses, total)`: one step's loss dict and the
  total to back-propagate (several forwards, e.g. RGNet's query x window pairs and negative windows); runs
  inside the DistributedDataParallel wrapper, so gradients synchronise. Only keys in the criterion's
  `weight_dict` are logged.
- `predict(model, eval_dataset, opt, device, progress) -> records`: the validation predictions (QVHighlights
  keys), e.g. whole-video inference; no eval losses are computed then.
- `build_optimizer(model, opt) -> (optimizer, scheduler)`: the architecture's own parameter groups and
  schedule (stepped per epoch); None: AdamW over all trainable parameters and `training.schedule`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


def official_checkpoint(model: torch.nn.Module, optimizer: Any, scheduler: Any, epoch: int,
                        opt: argparse.Namespace) -> dict:
    """The layout of UniVTG's, Moment-DETR's and QD-DETR's train scripts: keys in this order, `opt` holding only
    JSON-able values so that the file loads with weights_only=True and argparse.Namespace allowed."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "lr_scheduler": scheduler.state_dict() if scheduler is not None else {},
        "epoch": int(epoch),
        "opt": plain_options(opt),
    }


def plain_options(opt: argparse.Namespace) -> argparse.Namespace:
    """A copy of opt holding only JSON-able values (anything else becomes its str)."""
    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return str(value)

    return argparse.Namespace(**{k: plain(v) for k, v in vars(opt).items()})


def raw_saliency(decoded: Any, opt: argparse.Namespace) -> np.ndarray:  # noqa: ARG001 - the recipe hook's signature
    return decoded.saliency


@dataclass(frozen=True)
class TrainingRecipe:
    """See the module docstring; every callable is a plain function so a recipe is data."""

    architecture: str
    config_from_options: Callable[[argparse.Namespace], Any]
    build_criterion: Callable[[argparse.Namespace], torch.nn.Module]
    make_dataset: Callable[..., torch.utils.data.Dataset]
    collate: Callable[[list], tuple[list[dict], dict]]
    prepare_batch: Callable[..., tuple[dict, dict]]
    video_mask_key: str  # the forward argument holding the (B, L) video mask (what decode_outputs reads)
    labelled: Callable[[dict], bool]  # whether a batch's targets carry labels (eval losses are computed then)
    checkpoint_payload: Callable[..., dict] = official_checkpoint
    eval_saliency: Callable[[Any, argparse.Namespace], np.ndarray] = raw_saliency
    ignored_options: frozenset[str] = field(default_factory=frozenset)
    # The forward arguments holding the query tokens and their mask: language-free training replaces them
    # with pseudo-queries. None: the architecture cannot train language-free.
    query_arguments: tuple[str, str] | None = None
    # Whether some parameters get no gradient for these options (DistributedDataParallel must know).
    unused_parameters: Callable[[argparse.Namespace], bool] = lambda _opt: True
    parse_options: Callable[[Sequence[str] | None], argparse.Namespace] | None = None
    build_parser: Callable[[], argparse.ArgumentParser] | None = None  # the parser of `parse_options`
    evaluate: Callable[[list[dict], list[dict], argparse.Namespace], dict] | None = None
    setup_data: Callable[..., Any] | None = None
    train_step: Callable[..., tuple[dict, torch.Tensor]] | None = None
    predict: Callable[..., list[dict]] | None = None
    build_optimizer: Callable[[torch.nn.Module, argparse.Namespace], tuple[Any, Any]] | None = None
