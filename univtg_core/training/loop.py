"""The training loop: any registered architecture, its recipe's criterion and data, periodic evaluation
through the architecture's own decoder, the best checkpoint, resume, DDP.

Arithmetic follows main/train_mr.py and main/inference_mr.py: AdamW over all trainable parameters, gradient
clipping, the official step / warmup schedules stepped per epoch, evaluation every `eval_epoch` epochs.
The best checkpoint by `main_metric` is saved as `model_best.ckpt` in the architecture's official format,
so the official code and `univtg_core.load_model` both load it. The pieces live beside this file:
`schedule` (learning rates, seeding), `checkpoints` (files, resume), `distributed` (torchrun),
`data_setup` (datasets from the options), `predict` (decoding into Predictions), `logs` (CSV, TensorBoard).

Extras: torchrun / DistributedDataParallel (batch size is per process), gradient accumulation, mixed
precision on CUDA, tqdm progress, language-free training.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import UniVTGError
from ..models import get_architecture
from . import checkpoints
from .data import save_jsonl, seed_worker
from .data_setup import setup_data
from .distributed import barrier, broadcast_flag, init_distributed, pick_train_device, shutdown
from .logs import CsvLog, TensorBoardLog
from .options import warn_unused_options
from .predict import DecodeSettings, predict, resolve_metric
from .schedule import build_scheduler, set_seed

logger = logging.getLogger(__name__)


def _scalar(value: torch.Tensor | float) -> float:
    return float(value.detach()) if torch.is_tensor(value) else float(value)


def _drops_at(opt: argparse.Namespace, epoch: int) -> bool:
    """Whether the learning rate drops after `epoch` (--lr_drop: one epoch interval, or a list of epochs)."""
    drops = opt.lr_drop if isinstance(opt.lr_drop, (list, tuple)) else [opt.lr_drop]
    return any(d > 0 and (epoch + 1) % d == 0 for d in drops)


class _Trainable(nn.Module):
    """The model plus (in language-free mode) the pseudo-query encoder, so one DDP wrapper covers both."""

    def __init__(self, model: nn.Module, pseudo_query: nn.Module | None, query_arguments: tuple[str, str] | None):
        super().__init__()
        self.model = model
        self.pseudo_query = pseudo_query
        self.query_arguments = query_arguments

    def forward(self, inputs: dict, candidates: torch.Tensor | None = None, step=None):
        """The model's outputs; with `step` (a recipe's training step bound to its batch), what it returns."""
        if step is not None:
            return step(self.model)
        if candidates is not None:
            tokens, mask = self.query_arguments
            inputs = dict(inputs)
            inputs[tokens], inputs[mask] = self.pseudo_query(candidates)
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


@dataclass
class _Best:
    score: float
    epoch: int | None
    path: Path | None
    metric: str | None = None
    evals_without_gain: int = 0


class Trainer:
    """Builds everything from parsed options; `fit()` runs the loop. See `train()` for the one-call API."""

    def __init__(self, opt: argparse.Namespace):
        self.opt = opt
        self.architecture = get_architecture(opt.model_id)
        self.recipe = self.architecture.training_recipe()
        self.dist = init_distributed(opt)
        self.device = pick_train_device(opt, self.dist)
        self.results_dir = Path(opt.results_dir)
        self.progress = not opt.no_progress and self.dist.main
        if self.dist.main:
            self.results_dir.mkdir(parents=True, exist_ok=True)
            parser = self.recipe.build_parser() if self.recipe.build_parser is not None else None
            warn_unused_options(opt, self.recipe.ignored_options, self.architecture.name, parser)
        set_seed(opt.seed)
        resume = checkpoints.read_resume(opt.resume, self.architecture) if opt.resume else None
        self.data = (self.recipe.setup_data or setup_data)(opt, self.recipe, progress=self.progress)
        self.train_dataset, self.eval_dataset = self.data.train_dataset, self.data.eval_dataset
        self._build_model(resume)
        main = self.dist.main
        self.train_log = CsvLog(self.results_dir / opt.log_csv if opt.log_csv and main else None)
        self.eval_log = CsvLog(self.results_dir / "eval_log.csv" if opt.log_csv and main else None)
        self.tb = TensorBoardLog(self.results_dir / "tensorboard_log" if opt.tensorboard and main else None)

    # -- setup ---------------------------------------------------------------------------------------
    def _loader(self, dataset, batch_size: int, shuffle: bool, sampler=None) -> DataLoader:
        generator = torch.Generator()
        generator.manual_seed(self.opt.seed)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                          num_workers=self.opt.num_workers, collate_fn=self.recipe.collate,
                          pin_memory=self.opt.pin_memory and self.device.type == "cuda",
                          worker_init_fn=seed_worker, generator=generator,
                          persistent_workers=self.opt.num_workers > 0)

    def _build_model(self, resume) -> None:
        opt, recipe = self.opt, self.recipe
        try:
            self.config = recipe.config_from_options(opt)
        except ValueError as exc:
            raise UniVTGError(f"cannot build {self.architecture.name} from these options: {exc}") from exc
        self.model = self.architecture.build(self.config).to(self.device)
        self.criterion = recipe.build_criterion(opt)
        self.pseudo_query = None
        if opt.language_free:
            from .language_free import PseudoQueryEncoder

            self.pseudo_query = PseudoQueryEncoder(opt.t_feat_dim, opt.lf_selector_dim, opt.lf_noise).to(self.device)
        if recipe.build_optimizer is not None:
            self.optimizer, self.scheduler = recipe.build_optimizer(self.model, opt)
        else:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW([{"params": params}], lr=opt.lr, weight_decay=opt.wd)
            self.scheduler = build_scheduler(opt, self.optimizer)
        self.lf_optimizer = (torch.optim.AdamW(self.pseudo_query.parameters(), lr=opt.lr, weight_decay=opt.wd)
                             if self.pseudo_query is not None else None)
        if opt.start_epoch is not None:
            self.start_epoch = opt.start_epoch
        else:
            self.start_epoch = -1 if opt.eval_init else 0  # epoch -1 only evaluates
        if resume is not None:
            resumed = checkpoints.restore(resume, self.architecture, self.model, self.optimizer, self.scheduler,
                                          opt.resume_all, self._selector())
            if resumed is not None:
                self.start_epoch = resumed  # --resume_all continues after the saved epoch

        trainable = _Trainable(self.model, self.pseudo_query, recipe.query_arguments)
        if self.dist.enabled:
            trainable = nn.parallel.DistributedDataParallel(
                trainable, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=recipe.unused_parameters(opt))
        self.trainable = trainable
        self.amp_enabled = bool(opt.amp) and self.device.type == "cuda"
        if opt.amp and not self.amp_enabled:
            logger.warning("--amp needs CUDA; training in float32 on %s", self.device)
        self.amp_dtype = torch.bfloat16 if opt.amp_dtype == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_enabled and self.amp_dtype == torch.float16)
        spec = self.model.input_spec
        logger.info("%s: %.2fM parameters; video %s, text %s (%d)", self.architecture.name,
                    sum(p.numel() for p in self.model.parameters()) / 1e6, spec.describe_video(), spec.text.name,
                    spec.text.dim)

    def _selector(self):
        return (self.pseudo_query, self.lf_optimizer) if self.pseudo_query is not None else None

    def _autocast(self):
        if not self.amp_enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    # -- one epoch -----------------------------------------------------------------------------------
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
            inputs, targets = self.recipe.prepare_batch(batch, self.device, non_blocking=opt.pin_memory)
            candidates = targets.pop("lf_candidates", None)
            boundary = (step + 1) % accum == 0 or step + 1 == n_batches
            sync = self.trainable.no_sync() if self.dist.enabled and not boundary else contextlib.nullcontext()
            with sync:
                if self.recipe.train_step is not None:
                    with self._autocast():
                        losses, total = self.trainable(inputs, step=partial(
                            self.recipe.train_step, criterion=self.criterion, inputs=inputs, targets=targets,
                            epoch=epoch))
                else:
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
                if k in self.criterion.weight_dict:
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

    # -- evaluation and checkpoints --------------------------------------------------------------------
    def evaluate(self) -> tuple[list[dict], dict[str, float], dict | None]:
        """Prediction records on the eval set, eval losses, and the recipe's report (QVHighlights by default;
        None without GT)."""
        if self.recipe.predict is not None:
            records = self.recipe.predict(self.model, self.eval_dataset, self.opt, self.device, self.progress)
            losses: dict[str, float] = {}
        else:
            records, losses = self._predict()
        if not self.data.eval_labelled:
            return records, losses, None
        if self.recipe.evaluate is not None:
            return records, losses, self.recipe.evaluate(records, self.data.eval_records, self.opt)
        from ..evaluation import evaluate_qvhighlights

        return records, losses, evaluate_qvhighlights(records, self.data.eval_records, match_number=True)

    def _predict(self) -> tuple[list[dict], dict[str, float]]:
        """Batched forwards over the eval set, decoded by the architecture's decoder, and the eval losses."""
        loader = self._loader(self.eval_dataset, self.opt.eval_bsz, shuffle=False)
        predictions, losses = predict(self.model, loader, self.recipe, DecodeSettings.from_options(self.opt),
                                      self.opt, self.device, self.criterion,
                                      self._autocast if self.amp_enabled else None, progress=self.progress)
        return [p.to_dict() for p in predictions], losses

    def _save(self, name: str, epoch: int) -> Path:
        payload = self.recipe.checkpoint_payload(self.model, self.optimizer, self.scheduler, epoch, self.opt)
        return checkpoints.save_checkpoint(self.results_dir / name, payload, self._selector())

    def _evaluate_epoch(self, epoch: int, best: _Best, eval_history: list[dict]) -> bool:
        """Evaluate, log, keep the best checkpoint; returns whether to stop early."""
        opt = self.opt
        split = opt.eval_split_name
        records, losses, report = self.evaluate()
        latest_preds = self.results_dir / f"latest_{split}_preds.jsonl"
        save_jsonl(records, latest_preds)
        brief = report["brief"] if report is not None else {}
        eval_row = {"epoch": epoch + 1, **{f"eval_{k}": v for k, v in losses.items()}, **brief}
        eval_history.append(eval_row)
        self.eval_log.write(eval_row)
        self.tb.write("Eval", eval_row, epoch + 1)
        stop = False
        if report is not None:
            best.metric = best.metric or resolve_metric(brief, opt.main_metric)
            score = float(brief[best.metric])
            logger.info("eval epoch %d: %s = %.2f (best %.2f) | %s", epoch + 1, best.metric, score, best.score,
                        " ".join(f"{k} {v}" for k, v in brief.items() if "R1" in k))
            if score > best.score:
                best.score, best.epoch, best.evals_without_gain = score, epoch, 0
                best.path = self._save(checkpoints.BEST_NAME, epoch)
                shutil.copyfile(latest_preds, self.results_dir / f"{split}_preds.jsonl")
                with (self.results_dir / f"{split}_metrics.json").open("w") as f:
                    json.dump(report, f, indent=2)
                checkpoints.record_best(self.results_dir, best.metric, score, epoch)
                logger.info("saved %s (epoch %d)", best.path, epoch + 1)
            else:
                best.evals_without_gain += 1
                if opt.max_es_cnt != -1 and best.evals_without_gain > opt.max_es_cnt:
                    logger.info("early stop at epoch %d (best %.2f at epoch %d)", epoch + 1, best.score,
                                (best.epoch or 0) + 1)
                    stop = True
        if epoch > -1:
            self._save(checkpoints.LATEST_NAME, epoch)
        return stop

    # -- the loop --------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        from tqdm import trange

        opt = self.opt
        sampler = None
        if self.dist.enabled:
            from torch.utils.data.distributed import DistributedSampler

            sampler = DistributedSampler(self.train_dataset, shuffle=True, seed=opt.seed)
        train_loader = self._loader(self.train_dataset, opt.bsz, shuffle=True, sampler=sampler)
        if self.dist.main:
            checkpoints.write_options(self.results_dir, self.data.saved_options)
        score, epoch = checkpoints.best_so_far(self.results_dir, opt.resume_all)
        best = _Best(score, epoch, self.results_dir / checkpoints.BEST_NAME if epoch is not None else None)
        history: list[dict] = []
        eval_history: list[dict] = []
        last_trained: int | None = None
        logger.info("training %d %s (%d batches of %d per process) for epochs %d..%d on %s",
                    len(self.train_dataset), getattr(self.train_dataset, "item_name", "queries"), len(train_loader),
                    opt.bsz, max(self.start_epoch, 0) + 1, opt.n_epoch, self.device)
        for epoch in trange(self.start_epoch, opt.n_epoch, desc="epochs", disable=not self.progress):
            if epoch > -1:
                if sampler is not None:
                    sampler.set_epoch(epoch)
                row = {"epoch": epoch + 1, **self.train_epoch(train_loader, epoch)}
                if self.scheduler is not None:
                    self.scheduler.step()
                history.append(row)
                last_trained = epoch
                if self.dist.main:
                    self.train_log.write(row)
                    self.tb.write("Train", row, epoch + 1)
                logger.info("epoch %d: %s", epoch + 1, " ".join(
                    f"{k} {row[k]:.4f}" for k in ("loss_overall", *self.criterion.weight_dict) if k in row))
            do_eval = self.eval_dataset is not None and ((epoch + 1) % opt.eval_epoch == 0 or epoch == opt.n_epoch - 1)
            stop = self._evaluate_epoch(epoch, best, eval_history) if do_eval and self.dist.main else False
            if self.dist.main and epoch > -1 and ((epoch + 1) % opt.save_interval == 0 or _drops_at(opt, epoch)):
                self._save(checkpoints.periodic_name(epoch), epoch)
            if do_eval:
                stop = broadcast_flag(stop, self.dist, self.device)
                barrier(self.dist)
            if stop or opt.debug:
                break
        if best.path is None and last_trained is not None and self.dist.main:
            best.path, best.epoch = self._save(checkpoints.BEST_NAME, last_trained), last_trained
            logger.info("no GT to rank checkpoints by (no --eval_path, or it has no relevant_windows): saved the "
                        "last epoch as %s", best.path)
        self.tb.close()
        return TrainResult(self.results_dir, best.path, best.metric,
                           best.score if best.metric is not None and best.epoch is not None else None,
                           best.epoch, history, eval_history)


def train(opt: argparse.Namespace) -> TrainResult:
    """Train from parsed options (see options.parse_options); returns what the run produced."""
    trainer = Trainer(opt)
    try:
        return trainer.fit()
    finally:
        shutdown(trainer.dist)
