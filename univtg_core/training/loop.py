"""The training loop: data -> UniVTG -> criterion, periodic evaluation, best checkpoint, resume, DDP.

Arithmetic follows main/train_mr.py and main/inference_mr.py: AdamW over all trainable parameters, gradient
clipping, the official step / warmup schedules stepped per epoch, evaluation every `eval_epoch` epochs
with the official decoding (windows = (anchor + offsets) * duration, clamped, sorted, optional rounding to
clip multiples and NMS). The best checkpoint by `main_metric` is saved as `model_best.ckpt` in the official
format (model, optimizer, lr_scheduler, epoch, opt) with `opt.json` beside it, so the official code and
`univtg_core.checkpoint.load_model` both load it.

Extras: torchrun / DistributedDataParallel (batch size is per process), gradient accumulation, mixed
precision on CUDA, CSV (and optional TensorBoard) logs, tqdm progress, language-free training.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import random
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import UniVTGError
from ..model import ModelConfig, UniVTG
from ..postprocess import rank_moments
from .data import (
    DataError,
    FeatureStore,
    GroundingDataset,
    check_records,
    collate,
    infer_clip_length,
    load_jsonl,
    prepare_batch,
    raise_if_missing,
    save_jsonl,
    seed_worker,
)
from .losses import LOSS_NAMES, UniVTGCriterion
from .options import finalize_dims

logger = logging.getLogger(__name__)

BEST_NAME = "model_best.ckpt"
LATEST_NAME = "model_latest.ckpt"
OPT_JSON = "opt.json"
LF_SELECTOR_NAME = "lf_selector.pt"


# ---------------------------------------------------------------------------------------------------------
# Small pieces
# ---------------------------------------------------------------------------------------------------------
def _scalar(value: torch.Tensor | float) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA), as the official set_seed does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


class WarmupStepLR(torch.optim.lr_scheduler.LRScheduler):
    """Official WarmupStepLR: linear warmup over `warmup_steps` epochs, then x gamma every `step_size`.

    The attribute names match the official class so state_dicts load either way.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        self.warmup_steps = warmup_steps
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        epoch = self.last_epoch
        if epoch == self.warmup_steps or (epoch % self.step_size != 0 and epoch > self.warmup_steps):
            return [group["lr"] for group in self.optimizer.param_groups]
        if epoch < self.warmup_steps:
            return [group["initial_lr"] * float(epoch + 1) / float(self.warmup_steps)
                    for group in self.optimizer.param_groups]
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]


def build_scheduler(opt: argparse.Namespace, optimizer: torch.optim.Optimizer):
    """The official choice: warmup+step, warmup only (constant after), step only, or none."""
    warmup = 0
    if opt.lr_warmup is not None and opt.lr_warmup > 0:
        warmup = int(opt.lr_warmup) if opt.lr_warmup > 1 else int(opt.lr_warmup * opt.n_epoch)
    if warmup > 0 and opt.lr_drop > 0:
        return WarmupStepLR(optimizer, warmup_steps=warmup, step_size=opt.lr_drop, gamma=opt.lr_gamma)
    if warmup > 0:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, step / max(1, warmup)))
    if opt.lr_drop > 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, opt.lr_drop, gamma=opt.lr_gamma)
    return None


def model_config(opt: argparse.Namespace) -> ModelConfig:
    """Architecture settings from the options (v_feat_dim already includes tef)."""
    return ModelConfig(
        v_feat_dim=opt.v_feat_dim, t_feat_dim=opt.t_feat_dim, hidden_dim=opt.hidden_dim,
        enc_layers=opt.enc_layers, nheads=opt.nheads, dim_feedforward=opt.dim_feedforward,
        n_input_proj=opt.n_input_proj, input_dropout=opt.input_dropout, dropout=opt.dropout,
        droppath=opt.droppath, use_txt_pos=opt.use_txt_pos, max_q_l=opt.max_q_l, max_v_l=opt.max_v_l,
        pre_norm=opt.pre_norm, span_loss_type=opt.span_loss_type, clip_length=opt.clip_length,
        use_tef=opt.use_tef, normalize_video=not opt.no_norm_vfeat, normalize_text=not opt.no_norm_tfeat,
    )


def plain_options(opt: argparse.Namespace) -> argparse.Namespace:
    """A copy of opt holding only JSON-able values, so the checkpoint loads with weights_only=True."""
    def plain(value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return str(value)

    return argparse.Namespace(**{k: plain(v) for k, v in vars(opt).items()})


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    scheduler: Any, epoch: int, opt: argparse.Namespace) -> None:
    """Official layout, keys in order: model, optimizer, lr_scheduler, epoch, opt (v_feat_dim with tef)."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "lr_scheduler": scheduler.state_dict() if scheduler is not None else {},
        "epoch": int(epoch),
        "opt": plain_options(opt),
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(checkpoint, tmp)
    tmp.replace(path)


def resolve_metric(brief: dict[str, float], name: str) -> str:
    """The brief key for --main_metric: exact, else with the '-key' suffix the report uses, else without."""
    for candidate in (name, f"{name}-key", name.removesuffix("-key")):
        if candidate in brief:
            return candidate
    raise UniVTGError(f"--main_metric {name!r} is not in the evaluation report; choose one of "
                      f"{', '.join(sorted(brief))}")


class CsvLog:
    """Appends dict rows to a CSV file; the header is the first row's keys plus any new ones (rewritten)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.rows: list[dict] = []
        if path is not None and path.exists():
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))

    def write(self, row: dict) -> None:
        self.rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        if self.path is None:
            return
        header: list[str] = []
        for r in self.rows:
            header += [k for k in r if k not in header]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)


# ---------------------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------------------
@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(opt: argparse.Namespace) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", max(opt.local_rank, 0)))
    use_cuda = torch.cuda.is_available() and opt.device >= 0
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size())


def pick_train_device(opt: argparse.Namespace, dist_info: DistInfo) -> torch.device:
    if opt.device >= 0 and torch.cuda.is_available():
        return torch.device("cuda", dist_info.local_rank if dist_info.enabled else opt.gpu_id)
    if opt.device >= 0:
        logger.info("CUDA is not available: training on CPU")
    return torch.device("cpu")


def _barrier(dist_info: DistInfo) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def _broadcast_flag(flag: bool, dist_info: DistInfo, device: torch.device) -> bool:
    if not dist_info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item() > 0.5)


# ---------------------------------------------------------------------------------------------------------
# Prediction (shared by in-training eval and tests)
# ---------------------------------------------------------------------------------------------------------
@dataclass
class DecodeSettings:
    """How per-clip outputs become ranked windows (the official inference options)."""

    clip_length: float
    nms_thd: float = -1
    max_before_nms: int = 10
    max_after_nms: int = 10
    round_multiple: int = 1
    eval_mode: str | None = None

    @classmethod
    def from_options(cls, opt: argparse.Namespace) -> DecodeSettings:
        return cls(opt.clip_length, opt.nms_thd, opt.max_before_nms, opt.max_after_nms, opt.round_multiple,
                   opt.eval_mode)


def decode_predictions(outputs: dict[str, torch.Tensor], metas: Sequence[dict], timestamp: torch.Tensor,
                       vid_mask: torch.Tensor, settings: DecodeSettings) -> list[dict]:
    """Model outputs of a batch -> QVHighlights prediction records, windows best first."""
    prob = outputs["pred_logits"][..., 0].float().cpu()
    spans = (timestamp.float() + outputs["pred_spans"].float()).cpu()
    saliency = outputs["saliency_scores"].half().float().cpu()
    if settings.eval_mode == "add":
        saliency = saliency + prob
    lengths = vid_mask.sum(1).long().cpu().tolist()
    use_nms = settings.nms_thd is not None and 0 <= settings.nms_thd < 1
    records = []
    for j, meta in enumerate(metas):
        n = int(lengths[j])
        duration = float(meta.get("duration", n * settings.clip_length))
        windows = (spans[j, :n] * duration).clamp(0, duration).numpy().astype(np.float64)
        if settings.round_multiple > 0:
            windows = np.round(windows / settings.clip_length) * settings.clip_length
        ranked = rank_moments(windows, prob[j, :n].numpy(), duration,
                              nms_threshold=settings.nms_thd if use_nms else None,
                              top_k=settings.max_after_nms if use_nms else None,
                              max_before_nms=settings.max_before_nms if use_nms else None)
        records.append({
            "qid": meta["qid"],
            "query": meta.get("query"),
            "vid": meta["vid"],
            "pred_relevant_windows": [[round(float(s), 4), round(float(e), 4), round(float(c), 4)]
                                      for s, e, c in ranked],
            "pred_saliency_scores": [round(float(x), 4) for x in saliency[j, :n]],
        })
    return records


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, settings: DecodeSettings, device: torch.device,
            criterion: UniVTGCriterion | None = None, autocast: Any = None,
            progress: bool = False) -> tuple[list[dict], dict[str, float]]:
    """Predictions for every query of `loader` (and the mean eval losses when labels are present)."""
    from tqdm import tqdm

    model.eval()
    records: list[dict] = []
    sums: dict[str, float] = defaultdict(float)
    batches = 0
    for metas, batch in tqdm(loader, desc="eval", leave=False, disable=not progress):
        inputs, targets = prepare_batch(batch, device)
        with autocast() if autocast is not None else contextlib.nullcontext():
            outputs = model(**inputs)
        records += decode_predictions(outputs, metas, targets["timestamp"], inputs["src_vid_mask"], settings)
        if criterion is not None and "timestamp_window" in targets:
            losses = criterion(outputs, targets)
            sums["loss_overall"] += _scalar(criterion.total(losses))
            for k, v in losses.items():
                sums[k] += _scalar(v) * criterion.weight_dict[k]
            batches += 1
    return records, {k: v / max(batches, 1) for k, v in sums.items()}


# ---------------------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------------------
class _Trainable(nn.Module):
    """UniVTG plus (in language-free mode) the pseudo-query encoder, so one DDP wrapper covers both."""

    def __init__(self, model: UniVTG, pseudo_query: nn.Module | None):
        super().__init__()
        self.model = model
        self.pseudo_query = pseudo_query

    def forward(self, inputs: dict, candidates: torch.Tensor | None = None) -> dict:
        if candidates is not None:
            inputs = dict(inputs)
            inputs["src_txt"], inputs["src_txt_mask"] = self.pseudo_query(candidates)
        return self.model(**inputs)


@dataclass
class TrainResult:
    """What a run produced: its folder, the best checkpoint and score, and per-epoch history."""

    results_dir: Path
    best_checkpoint: Path | None
    best_metric: str | None
    best_score: float | None
    best_epoch: int | None
    history: list[dict] = field(default_factory=list)
    eval_history: list[dict] = field(default_factory=list)


class Trainer:
    """Builds everything from parsed options; `fit()` runs the loop. See `train()` for the one-call API."""

    def __init__(self, opt: argparse.Namespace):
        self.opt = opt
        self.dist = init_distributed(opt)
        self.device = pick_train_device(opt, self.dist)
        self.results_dir = Path(opt.results_dir)
        self.progress = not opt.no_progress and self.dist.main
        if self.dist.main:
            self.results_dir.mkdir(parents=True, exist_ok=True)
        set_seed(opt.seed)
        self._resume_checkpoint = self._read_resume() if opt.resume else None
        self._build_data()
        self._build_model()
        self.train_log = CsvLog(self.results_dir / opt.log_csv if opt.log_csv and self.dist.main else None)
        self.eval_log = CsvLog(self.results_dir / "eval_log.csv" if opt.log_csv and self.dist.main else None)
        self.tb = self._tensorboard() if opt.tensorboard and self.dist.main else None

    # -- setup ---------------------------------------------------------------------------------------
    def _read_resume(self) -> dict:
        from ..checkpoint import read_checkpoint

        return read_checkpoint(self.opt.resume)

    def _build_data(self) -> None:
        opt = self.opt
        train_records: list[dict] = []
        for path in opt.train_path or []:
            records = load_jsonl(path)
            check_records(records, path, need_labels=not opt.language_free, need_qid=not opt.language_free)
            train_records += records
        if opt.data_ratio != 1:
            train_records = train_records[: int(len(train_records) * opt.data_ratio)]
        eval_records = load_jsonl(opt.eval_path) if opt.eval_path else None
        if eval_records is not None:
            check_records(eval_records, opt.eval_path, need_labels=False)
            if opt.data_ratio != 1:
                eval_records = eval_records[: int(len(eval_records) * opt.data_ratio)]
        self.train_records, self.eval_records = train_records, eval_records
        if not train_records:
            raise DataError("no training annotations: pass --train_path")

        store = FeatureStore(opt.v_feat_dirs or [], opt.t_feat_dir, normalize_video=not opt.no_norm_vfeat,
                             normalize_text=not opt.no_norm_tfeat, cache_mb=opt.cache_mb)
        self.store = store
        raise_if_missing(store, train_records, ", ".join(opt.train_path), queries=not opt.language_free)
        if eval_records is not None:
            raise_if_missing(store, eval_records, opt.eval_path)

        first = train_records[0]
        video_dim = store.video(str(first["vid"])).shape[1] if opt.use_video else 0
        query_field = "pooler_output" if opt.language_free else "last_hidden_state"
        text_source = first if not opt.language_free else (eval_records or [None])[0]
        if text_source is not None:
            text_dim = store.query(text_source["qid"], query_field, text_source.get("t_feat_dir")).shape[1]
        else:
            text_dim = None
        clip_feat_dir = None
        if opt.language_free:
            from .language_free import pick_clip_feature_dir

            if text_dim is None:
                text_dim = store.read_video_dir((opt.lf_feat_dir or opt.v_feat_dirs[0]), str(first["vid"])).shape[1]
            clip_feat_dir = pick_clip_feature_dir(opt.v_feat_dirs, text_dim, store, str(first["vid"]),
                                                  opt.lf_feat_dir)
            lf_width = store.read_video_dir(clip_feat_dir, str(first["vid"])).shape[1]
            if lf_width != text_dim:
                raise DataError(f"--lf_feat_dir {clip_feat_dir} features are {lf_width} wide but the query "
                                f"sentence features are {text_dim}: they must share CLIP's embedding space")
        for name, found in (("v_feat_dim", video_dim), ("t_feat_dim", text_dim)):
            given = getattr(opt, name)
            if given is not None and given != found:
                raise DataError(f"--{name} {given} does not match the feature files ({found} wide, e.g. "
                                f"{'video ' + str(first['vid']) if name == 'v_feat_dim' else 'query'})")
        if opt.clip_length is None:
            clip_length = infer_clip_length(train_records, store) if opt.use_video else None
            if clip_length is None:
                clip_length = 1.0
                logger.warning("no durations to read the clip length from: using UniVTG's default 1 s "
                               "(pass --clip_length)")
            else:
                logger.info("clip length %.3g s (from durations / feature rows; pass --clip_length to force)",
                            clip_length)
        else:
            clip_length = opt.clip_length
        self.saved_options = finalize_dims(opt, video_dim, text_dim, clip_length)
        if opt.use_cache > 0:
            store.preload(train_records, queries=not opt.language_free, progress=self.progress)
            if eval_records is not None:
                store.preload(eval_records, progress=self.progress)

        common = dict(use_tef=opt.use_tef, use_video=opt.use_video, max_v_l=opt.max_v_l,
                      max_q_l=opt.max_q_l if opt.use_txt_pos else None, dset_name=opt.dset_name,
                      add_easy_negative=opt.add_easy_negative, easy_negative_only=opt.easy_negative_only,
                      v_feat_dim=video_dim if opt.use_video else None, t_feat_dim=text_dim)
        if opt.language_free:
            from .language_free import LanguageFreeDataset

            self.train_dataset = LanguageFreeDataset(
                train_records, store, clip_feat_dir, opt.clip_length, moments_per_video=opt.lf_moments_per_video,
                num_frames=opt.lf_num_frames, min_clips=opt.lf_min_clips, max_ratio=opt.lf_max_ratio, **common)
        else:
            self.train_dataset = GroundingDataset(train_records, store, opt.clip_length,
                                                  txt_drop_ratio=opt.txt_drop_ratio, **common)
        self.eval_dataset = None
        if eval_records is not None:
            has_gt = all(r.get("relevant_windows") for r in eval_records)
            self.eval_dataset = GroundingDataset(eval_records, store, opt.clip_length, query_field=query_field,
                                                 load_labels=has_gt, **common)
        self.clip_feat_dir = clip_feat_dir

    def _loader(self, dataset, batch_size: int, shuffle: bool, sampler=None) -> DataLoader:
        generator = torch.Generator()
        generator.manual_seed(self.opt.seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                          num_workers=self.opt.num_workers, collate_fn=collate,
                          pin_memory=self.opt.pin_memory and self.device.type == "cuda",
                          worker_init_fn=seed_worker, generator=generator,
                          persistent_workers=self.opt.num_workers > 0)

    def _build_model(self) -> None:
        opt = self.opt
        self.config = model_config(opt)
        self.model = UniVTG(self.config).to(self.device)
        self.criterion = UniVTGCriterion.from_options(opt)
        pseudo_query = None
        if opt.language_free:
            from .language_free import PseudoQueryEncoder

            pseudo_query = PseudoQueryEncoder(opt.t_feat_dim, opt.lf_selector_dim, opt.lf_noise).to(self.device)
        self.pseudo_query = pseudo_query
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW([{"params": params}], lr=opt.lr, weight_decay=opt.wd)
        self.scheduler = build_scheduler(opt, self.optimizer)
        self.lf_optimizer = (torch.optim.AdamW(pseudo_query.parameters(), lr=opt.lr, weight_decay=opt.wd)
                             if pseudo_query is not None else None)
        if opt.start_epoch is not None:
            self.start_epoch = opt.start_epoch
        else:
            self.start_epoch = -1 if opt.eval_init else 0  # epoch -1 only evaluates
        if self._resume_checkpoint is not None:
            self._load_resume(self._resume_checkpoint)  # --resume_all continues after the saved epoch

        trainable = _Trainable(self.model, pseudo_query)
        if self.dist.enabled:
            trainable = nn.parallel.DistributedDataParallel(
                trainable, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=not opt.use_txt_pos)
        self.trainable = trainable
        self.amp_enabled = bool(opt.amp) and self.device.type == "cuda"
        if opt.amp and not self.amp_enabled:
            logger.warning("--amp needs CUDA; training in float32 on %s", self.device)
        self.amp_dtype = torch.bfloat16 if opt.amp_dtype == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_enabled and self.amp_dtype == torch.float16)
        n_params = sum(p.numel() for p in self.model.parameters())
        logger.info("UniVTG: %.2fM parameters, hidden %d, %d layers, v_feat_dim %d (tef incl.), t_feat_dim %d",
                    n_params / 1e6, opt.hidden_dim, opt.enc_layers, opt.v_feat_dim, opt.t_feat_dim)

    def _load_resume(self, checkpoint: dict) -> None:
        from ..checkpoint import extract_state_dict

        try:
            self.model.load_state_dict(extract_state_dict(checkpoint), strict=True)
        except RuntimeError as exc:
            raise UniVTGError(f"--resume {self.opt.resume} does not fit this model: "
                              f"{str(exc).splitlines()[1:3]}") from exc
        epoch = checkpoint.get("epoch")
        if self.opt.resume_all:
            if checkpoint.get("optimizer"):
                self.optimizer.load_state_dict(checkpoint["optimizer"])
            if self.scheduler is not None and checkpoint.get("lr_scheduler"):
                self.scheduler.load_state_dict(checkpoint["lr_scheduler"])
            self.start_epoch = int(epoch) + 1
            selector = Path(self.opt.resume).with_name(LF_SELECTOR_NAME)
            if self.pseudo_query is not None and selector.is_file():
                state = torch.load(selector, map_location="cpu", weights_only=True)
                self.pseudo_query.load_state_dict(state["model"])
                self.lf_optimizer.load_state_dict(state["optimizer"])
        logger.info("loaded weights saved at epoch %s from %s%s", epoch, self.opt.resume,
                    " (with optimizer, scheduler and epoch)" if self.opt.resume_all else "")

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise UniVTGError("--tensorboard needs the tensorboard package (pip install tensorboard)") from exc
        return SummaryWriter(str(self.results_dir / "tensorboard_log"))

    def _autocast(self):
        if not self.amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # -- loop ----------------------------------------------------------------------------------------
    def train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, float]:
        from tqdm import tqdm

        opt = self.opt
        self.trainable.train()
        sums: dict[str, float] = defaultdict(float)
        n_batches = len(loader)
        accum = opt.grad_accum_steps
        start = time.time()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{opt.n_epoch}", leave=False, disable=not self.progress)
        for step, (_, batch) in enumerate(bar):
            inputs, targets = prepare_batch(batch, self.device, non_blocking=opt.pin_memory)
            candidates = targets.pop("lf_candidates", None)
            boundary = (step + 1) % accum == 0 or step + 1 == n_batches
            sync = contextlib.nullcontext()
            if self.dist.enabled and not boundary:
                sync = self.trainable.no_sync()
            with sync:
                with self._autocast():
                    outputs = self.trainable(inputs, candidates)
                losses = self.criterion(outputs, targets)
                total = self.criterion.total(losses)
                if not torch.isfinite(total):
                    raise UniVTGError(f"the loss became {float(total)} at epoch {epoch + 1}, step {step + 1}; "
                                      "lower --lr or check the features")
                self.scaler.scale(total / accum).backward()
            if boundary:
                self._step()
            sums["loss_overall"] += _scalar(total)
            for k, v in losses.items():
                sums[k] += _scalar(v) * self.criterion.weight_dict[k]
            if self.progress:
                bar.set_postfix(loss=f"{float(total):.3f}")
            if opt.debug:
                n_batches = step + 1
                break
        row = {k: v / max(n_batches, 1) for k, v in sums.items()}
        row["lr"] = float(self.optimizer.param_groups[0]["lr"])
        row["seconds"] = time.time() - start
        return row

    def _step(self) -> None:
        opt = self.opt
        optimizers = [self.optimizer] + ([self.lf_optimizer] if self.lf_optimizer is not None else [])
        if opt.grad_clip > 0:
            for optimizer in optimizers:
                self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), opt.grad_clip)
            if self.pseudo_query is not None:
                nn.utils.clip_grad_norm_(self.pseudo_query.parameters(), opt.grad_clip)
        for optimizer in optimizers:
            self.scaler.step(optimizer)
        self.scaler.update()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)

    def evaluate(self, epoch: int) -> tuple[list[dict], dict[str, float], dict | None]:
        """Predictions on the eval set, eval losses, and the QVHighlights report (None without GT)."""
        loader = self._loader(self.eval_dataset, self.opt.eval_bsz, shuffle=False)
        settings = DecodeSettings.from_options(self.opt)
        records, losses = predict(self.model, loader, settings, self.device, self.criterion,
                                  self._autocast if self.amp_enabled else None, progress=self.progress)
        if not self.eval_dataset.load_labels:
            return records, losses, None
        from ..evaluation import evaluate_qvhighlights

        report = evaluate_qvhighlights(records, self.eval_records, match_number=True)
        return records, losses, report

    def _save(self, name: str, epoch: int) -> Path:
        path = self.results_dir / name
        save_checkpoint(path, self.model, self.optimizer, self.scheduler, epoch, self.opt)
        if self.pseudo_query is not None:
            torch.save({"model": self.pseudo_query.state_dict(), "optimizer": self.lf_optimizer.state_dict()},
                       path.with_name(LF_SELECTOR_NAME))
        return path

    def _write_options(self) -> None:
        with (self.results_dir / OPT_JSON).open("w") as f:
            json.dump(self.saved_options, f, indent=2, default=str)

    def _best_state(self) -> tuple[float, int | None]:
        best = self.results_dir / "best_metric.json"
        if self.opt.resume_all and best.is_file():
            state = json.loads(best.read_text())
            return float(state["score"]), state.get("epoch")
        return -math.inf, None

    def fit(self) -> TrainResult:
        opt = self.opt
        from tqdm import trange

        sampler = None
        if self.dist.enabled:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(self.train_dataset, shuffle=True, seed=opt.seed)
        train_loader = self._loader(self.train_dataset, opt.bsz, shuffle=True, sampler=sampler)
        if self.dist.main:
            self._write_options()
        best_score, best_epoch = self._best_state()
        best_path = self.results_dir / BEST_NAME if best_epoch is not None else None
        metric_key: str | None = None
        es_count = 0
        history, eval_history = [], []
        last_epoch = opt.n_epoch - 1
        last_trained: int | None = None
        logger.info("training %d queries (%d batches of %d per process) for epochs %d..%d on %s",
                    len(self.train_dataset), len(train_loader), opt.bsz, max(self.start_epoch, 0) + 1,
                    opt.n_epoch, self.device)
        for epoch in trange(self.start_epoch, opt.n_epoch, desc="epochs", disable=not self.progress):
            if epoch > -1:
                if sampler is not None:
                    sampler.set_epoch(epoch)
                row = self.train_epoch(train_loader, epoch)
                if self.scheduler is not None:
                    self.scheduler.step()
                row = {"epoch": epoch + 1, **row}
                history.append(row)
                last_trained = epoch
                if self.dist.main:
                    self.train_log.write(row)
                    self._tb_scalars("Train", row, epoch + 1)
                logger.info("epoch %d: %s", epoch + 1,
                            " ".join(f"{k} {row[k]:.4f}" for k in ("loss_overall", *LOSS_NAMES) if k in row))
            do_eval = self.eval_dataset is not None and ((epoch + 1) % opt.eval_epoch == 0 or epoch == last_epoch)
            stop = False
            if do_eval and self.dist.main:
                records, losses, report = self.evaluate(epoch)
                save_jsonl(records, self.results_dir / f"latest_{opt.eval_split_name}_preds.jsonl")
                brief = report["brief"] if report is not None else {}
                eval_row = {"epoch": epoch + 1, **{f"eval_{k}": v for k, v in losses.items()}, **brief}
                eval_history.append(eval_row)
                self.eval_log.write(eval_row)
                self._tb_scalars("Eval", eval_row, epoch + 1)
                if report is not None:
                    metric_key = metric_key or resolve_metric(brief, opt.main_metric)
                    score = float(brief[metric_key])
                    logger.info("eval epoch %d: %s = %.2f (best %.2f) | %s", epoch + 1, metric_key, score,
                                best_score, " ".join(f"{k} {v}" for k, v in brief.items() if "R1" in k))
                    if score > best_score:
                        best_score, best_epoch, es_count = score, epoch, 0
                        best_path = self._save(BEST_NAME, epoch)
                        shutil.copyfile(self.results_dir / f"latest_{opt.eval_split_name}_preds.jsonl",
                                        self.results_dir / f"{opt.eval_split_name}_preds.jsonl")
                        with (self.results_dir / f"{opt.eval_split_name}_metrics.json").open("w") as f:
                            json.dump(report, f, indent=2)
                        with (self.results_dir / "best_metric.json").open("w") as f:
                            json.dump({"metric": metric_key, "score": score, "epoch": epoch}, f)
                        logger.info("saved %s (epoch %d)", best_path, epoch + 1)
                    else:
                        es_count += 1
                        if opt.max_es_cnt != -1 and es_count > opt.max_es_cnt:
                            logger.info("early stop at epoch %d (best %.2f at epoch %d)", epoch + 1,
                                        best_score, (best_epoch or 0) + 1)
                            stop = True
                if epoch > -1:
                    self._save(LATEST_NAME, epoch)
            if self.dist.main and epoch > -1 and ((epoch + 1) % opt.save_interval == 0 or
                                                  (opt.lr_drop > 0 and (epoch + 1) % opt.lr_drop == 0)):
                self._save(f"model_e{epoch:04d}.ckpt", epoch)
            if self.eval_dataset is not None and do_eval:
                stop = _broadcast_flag(stop, self.dist, self.device)
                _barrier(self.dist)
            if stop or opt.debug:
                break
        if best_path is None and last_trained is not None and self.dist.main:
            best_path, best_epoch = self._save(BEST_NAME, last_trained), last_trained
            logger.info("no GT to rank checkpoints by (no --eval_path, or it has no relevant_windows): saved the "
                        "last epoch as %s", best_path)
        if self.tb is not None:
            self.tb.close()
        return TrainResult(self.results_dir, best_path, metric_key, best_score if best_epoch is not None else None,
                           best_epoch, history, eval_history)

    def _tb_scalars(self, prefix: str, row: dict, step: int) -> None:
        if self.tb is None:
            return
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.tb.add_scalar(f"{prefix}/{k}", float(v), step)


def train(opt: argparse.Namespace) -> TrainResult:
    """Train from parsed options (see options.parse_options); returns what the run produced."""
    trainer = Trainer(opt)
    try:
        return trainer.fit()
    finally:
        if trainer.dist.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
