"""torchrun set-up: which process this is, which device it trains on, and the few collective calls the
trainer needs (rank 0 alone logs, writes files and evaluates)."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


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


def wants_gpu(opt: argparse.Namespace) -> bool:
    """--device as UniVTG's options give it (an int: -1 is the CPU) or MESM's ("cuda" / "cpu")."""
    if isinstance(opt.device, str):
        return opt.device.lower() != "cpu"
    return opt.device >= 0


def init_distributed(opt: argparse.Namespace) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, Gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", max(opt.local_rank, 0)))
    use_cuda = torch.cuda.is_available() and wants_gpu(opt)
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        # Rank 0 evaluates while the others wait at a barrier: a long validation (RGNet over hour-long videos)
        # must not hit the default 10-minute NCCL timeout.
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=3))
    return DistInfo(rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size())


def pick_train_device(opt: argparse.Namespace, dist_info: DistInfo) -> torch.device:
    """CUDA (this process's GPU under torchrun, else --gpu_id) unless --device -1 / cpu or there is none."""
    if wants_gpu(opt) and torch.cuda.is_available():
        return torch.device("cuda", dist_info.local_rank if dist_info.enabled else opt.gpu_id)
    if wants_gpu(opt):
        logger.info("CUDA is not available: training on CPU")
    return torch.device("cpu")


def barrier(dist_info: DistInfo) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()


def broadcast_flag(flag: bool, dist_info: DistInfo, device: torch.device) -> bool:
    """Rank 0's decision (e.g. early stop) on every process."""
    if not dist_info.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item() > 0.5)


def shutdown(dist_info: DistInfo) -> None:
    if dist_info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
