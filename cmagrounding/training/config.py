"""Training settings (the optimizer, the schedule and everything around them), serializable to JSON."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from cmagrounding.errors import ConfigError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """How a CMA network is trained.

    ``batch_size`` is the global batch: with DDP each of W processes takes ``batch_size // W``.
    """

    epochs: int = 500  # fallback (LGI): 500 on Charades-STA, 300 on ActivityNet; the paper is silent
    batch_size: int = 100  # paper
    lr: float = 1e-3  # paper (Adam, initial learning rate 1e-3)
    # "constant" (the paper names no decay) or "cosine": lr x (1 + cos(pi e / epochs)) / 2 at epoch e
    # (0-based), set at the start of each epoch, so a resumed run follows the same schedule
    lr_schedule: str = "constant"
    weight_decay: float = 0.0  # fallback: the paper names none
    grad_clip: float | None = None  # max global grad norm; fallback: the paper names none
    seed: int = 0
    amp: bool | None = None  # mixed precision; None = on for CUDA (bf16 where supported, else fp16 + scaler)
    device: str | None = None  # None = CUDA (the local rank's GPU under DDP) when available, else CPU
    num_workers: int = 0  # DataLoader workers
    num_threads: int | None = None  # torch CPU threads per process; None = torch's default
    eval_batch_size: int = 256
    select_metric: str = "R1@0.5"  # validation metric that picks the best epoch (the paper's ablation metric)
    eval_every: int = 1  # epochs between validations (the last epoch is always validated)
    time_limit: float | None = None  # seconds; no epoch is started that would likely end past it
    progress: bool = True  # tqdm bar (main process only)
    log_every: int = 0  # also log the loss every this many steps (0 = per epoch only)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ConfigError(f"TrainConfig.lr must be positive, got {self.lr!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"TrainConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.num_workers < 0 or self.log_every < 0:
            raise ConfigError("TrainConfig.num_workers and log_every must be >= 0")
        valid = {"R1@0.1", "R1@0.3", "R1@0.5", "R1@0.7", "mIoU"}
        if self.select_metric not in valid:
            raise ConfigError(f"TrainConfig.select_metric must be one of {sorted(valid)}, got {self.select_metric!r}")

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of 0-based ``epoch`` under ``lr_schedule``."""
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / self.epochs))
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        from cmagrounding._config import dataclass_from_dict

        return dataclass_from_dict(cls, d)

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)
