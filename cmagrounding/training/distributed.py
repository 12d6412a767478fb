"""Several processes (GPUs or machines) through ``torch.distributed``, started by ``torchrun``.

``torchrun --nproc_per_node 2 -m cmagrounding train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_distributed` reads them and joins
the process group: NCCL when the processes use CUDA, gloo on CPU. Without those variables the run
is a single process and nothing is initialized.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

_logger = logging.getLogger(__name__)

__all__ = ["DistContext", "init_distributed"]


@dataclass
class DistContext:
    """Where this process stands: its rank among ``world_size`` and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized_here: bool = False  # this process group was created by init_distributed

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_true(self, flag: bool) -> bool:
        """True when ``flag`` is True on every process (a collective: every rank must call it)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1 if flag else 0], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def any_true(self, flag: bool) -> bool:
        return not self.all_true(not flag)

    def close(self) -> None:
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()
            self.initialized_here = False


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group described by torchrun's environment variables, if any.

    ``device``: None = the local rank's GPU when CUDA is available, else CPU; "cpu" forces CPU (and
    gloo); "cuda" / "cuda:k" pick GPUs (under DDP "cuda" means the local rank's GPU).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if want_cuda:
        dev = torch.device(f"cuda:{local}") if world > 1 or device in (None, "cuda") else torch.device(device)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu" if device is None else device)
    ctx = DistContext(rank, world, local, dev)
    if world > 1:
        if dist.is_initialized():
            ctx.rank, ctx.world_size = dist.get_rank(), dist.get_world_size()
        else:
            backend = "nccl" if dev.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
            ctx.initialized_here = True
            _logger.info("joined %s process group: rank %d of %d on %s", backend, rank, world, dev)
    return ctx
