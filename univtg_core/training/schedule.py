"""Learning-rate schedules and seeding, as the official train scripts set them up (stepped per epoch)."""

from __future__ import annotations

import argparse
import random

import numpy as np
import torch


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
