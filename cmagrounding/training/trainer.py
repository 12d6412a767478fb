"""The training loop: Adam, mixed precision on GPU, per-epoch validation, checkpoints, resume, DDP.

Reproducibility: every random choice of epoch ``e`` on rank ``r`` derives from ``(seed, e, r)``:
the order of the samples (``DistributedSampler(seed)`` + ``set_epoch``), their sampling offsets
(:class:`~cmagrounding.training.dataset.GroundingDataset`) and dropout (torch's generator is
re-seeded at the start of each epoch). A run stopped after an epoch and resumed from its checkpoint
therefore ends with the same weights and metrics as an uninterrupted run with the same seed.

Outputs under ``output_dir``: ``train_log.jsonl`` (one JSON object per epoch, plus per-step losses
with ``log_every``), ``checkpoints/`` (see :mod:`cmagrounding.training.checkpoint`).

One component over ~300 lines: the :class:`Trainer` (setup, resume, the epoch loop, one epoch).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from cmagrounding._io import write_text_atomic
from cmagrounding.errors import CheckpointError, ConfigError
from cmagrounding.training.checkpoint import (
    TrainingState,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from cmagrounding.training.config import TrainConfig
from cmagrounding.training.dataset import GroundingDataset, collate
from cmagrounding.training.distributed import DistContext, init_distributed
from cmagrounding.training.evaluation import evaluate_network

_logger = logging.getLogger(__name__)

__all__ = ["Trainer", "TrainResult", "LOG_FILE"]

LOG_FILE = "train_log.jsonl"
Callback = Callable[["Trainer", int, dict], None]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns; the (main process's) network holds the best weights afterwards."""

    best_epoch: int  # 1-based epoch whose weights were kept (the last one without validation)
    best_metrics: dict[str, Any] | None  # validation metrics of that epoch
    epochs_completed: int
    history: list[dict[str, Any]] = field(default_factory=list)  # the per-epoch log records
    stopped_early: str | None = None  # e.g. "time limit"
    train_seconds: float = 0.0  # training time over all runs (resumes included)
    stages: dict[str, Any] | None = None  # a two-stage recipe's per-stage figures (protocol._after_stage)


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + rank * 104_729) % (2**63 - 1)


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Run with ``n`` torch CPU threads (None: unchanged), restoring the previous count afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n:
            torch.set_num_threads(before)


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _same_model(saved: dict[str, Any], current: dict[str, Any] | None) -> bool:
    """Whether a checkpoint's model configuration is this run's; a setting added to CMAConfig after
    the checkpoint was written counts as its default (the behaviour the checkpoint was trained with)."""
    if current is None or saved == current:
        return True
    from cmagrounding.model.config import CMAConfig

    try:
        return CMAConfig.from_dict(saved) == CMAConfig.from_dict(current)
    except ConfigError:  # not CMA configurations: only an exact match counts
        return False


class Trainer:
    """Trains ``network`` with ``loss_fn`` on ``train_set``, validating on ``val_set`` each epoch.

    Args:
        network: a :class:`~cmagrounding.model.network.CMANetwork` (any module with its call signature).
        loss_fn: a :class:`~cmagrounding.model.losses.GroundingLoss`.
        train_set: built with ``train=True``; ``val_set`` with ``train=False`` (or None: the last
            epoch is kept).
        config: :class:`TrainConfig`.
        output_dir: where the log and checkpoints go (only the main process writes).
        ctx: the process's place in a DDP run; default: from torchrun's environment variables.
        run_info: JSON describing the run (recipe, configs); saved in checkpoints and compared on
            resume so that a checkpoint is never continued with another model.
        callbacks: called as ``cb(trainer, epoch, record)`` after each epoch's checkpoint.
    """

    def __init__(self, network: torch.nn.Module, loss_fn: torch.nn.Module, train_set: GroundingDataset,
                 val_set: GroundingDataset | None, config: TrainConfig, output_dir: str | Path, *,
                 ctx: DistContext | None = None, run_info: dict[str, Any] | None = None,
                 callbacks: Iterable[Callback] = ()):
        if not train_set.train:
            raise ValueError("train_set must be built with train=True (random sampling offsets)")
        self.config = config
        self.ctx = ctx or init_distributed(config.device)
        self.network = network.to(self.ctx.device)
        self.loss_fn = loss_fn
        self.train_set = train_set
        self.val_set = val_set
        self.output_dir = Path(output_dir)
        self.run_info = run_info or {}
        self.callbacks = list(callbacks)
        self.amp = config.amp if config.amp is not None else self.ctx.device.type == "cuda"
        self.amp_dtype = torch.float32
        if self.amp:
            if self.ctx.device.type == "cuda":
                self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                self.amp_dtype = torch.bfloat16  # CPU autocast supports bf16 only
        # fp16 needs loss scaling; bf16 and fp32 do not
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        params = [p for p in self.network.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        self.model: torch.nn.Module = self.network
        if self.ctx.distributed:
            ids = [self.ctx.device.index] if self.ctx.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=ids)
        world = self.ctx.world_size
        self.per_rank_batch = max(1, config.batch_size // world)
        self.sampler = DistributedSampler(train_set, num_replicas=world, rank=self.ctx.rank,
                                          shuffle=True, seed=config.seed, drop_last=False)
        pad = getattr(train_set.tokenizer, "pad_id", 0)
        self.loader = DataLoader(train_set, batch_size=self.per_rank_batch, sampler=self.sampler,
                                 num_workers=config.num_workers, collate_fn=functools.partial(collate, pad_id=pad),
                                 pin_memory=self.ctx.device.type == "cuda")
        self.checkpoint_dir = self.output_dir / "checkpoints"
        self.log_path = self.output_dir / LOG_FILE

    # ------------------------------------------------------------------ helpers
    def _autocast(self) -> Any:
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.ctx.device.type, dtype=self.amp_dtype)

    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def validate(self) -> dict[str, Any] | None:
        """Metrics of the current network on the validation set (main process; None without one)."""
        if self.val_set is None:
            return None
        return evaluate_network(self.network, self.val_set, self.config.eval_batch_size,
                                self.ctx.device).to_dict()  # fp32 whatever the training precision

    def _resume(self) -> tuple[int, dict[str, Any]]:
        path = latest_checkpoint(self.checkpoint_dir)
        if path is None:
            _logger.info("no checkpoint in %s: epoch 1 starts from the network as given (a new run's initial "
                         "weights, or a first stage's best)", self.checkpoint_dir)
            return 0, {}
        state = load_checkpoint(path)
        saved_model = state.info.get("run", {}).get("model")
        if saved_model is not None and not _same_model(saved_model, self.run_info.get("model")):
            raise CheckpointError(f"{path} was trained with another model configuration; use a new output folder")
        self.network.load_state_dict(state.model, strict=True)
        self.optimizer.load_state_dict(state.optimizer)
        if state.scaler:
            self.scaler.load_state_dict(state.scaler)
        info = dict(state.info)
        info["best_model"] = state.best_model
        if self.ctx.is_main and self.log_path.is_file():  # drop records of epochs after the checkpoint
            kept = [line for line in self.log_path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("epoch", 0) <= state.epoch]
            write_text_atomic(self.log_path, "".join(line + "\n" for line in kept))
        _logger.info("resumed from %s (epoch %d done)", path, state.epoch)
        return state.epoch, info

    # ------------------------------------------------------------------ main loop
    def fit(self, resume: bool = False) -> TrainResult:
        """Train for ``config.epochs`` epochs (continuing from the latest checkpoint with ``resume``)."""
        with cpu_threads(self.config.num_threads):
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        cfg = self.config
        if self.ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if not resume and latest_checkpoint(self.checkpoint_dir) is not None:
                raise CheckpointError(
                    f"{self.checkpoint_dir} already holds a checkpoint: pass resume=True (--resume) to "
                    "continue it, or choose another output folder"
                )
            if not resume and self.log_path.exists():
                self.log_path.unlink()
        self.ctx.barrier()
        start_epoch, info = self._resume() if resume else (0, {})
        best_score = info.get("best_score")
        best_score = -math.inf if best_score is None else float(best_score)
        best_epoch = int(info.get("best_epoch", 0))
        best_metrics = info.get("best_metrics")
        best_state = info.get("best_model") or _clone_state(self.network)
        history: list[dict[str, Any]] = list(info.get("history", []))
        train_seconds = float(info.get("train_seconds", 0.0))
        last_epoch_seconds = float(history[-1]["seconds"]) if history else 0.0
        stopped = None
        run_start = time.perf_counter()
        elapsed_before = train_seconds

        for epoch in range(start_epoch, cfg.epochs):
            if cfg.time_limit is not None:
                spent = elapsed_before + time.perf_counter() - run_start
                if self.ctx.any_true(spent + last_epoch_seconds > cfg.time_limit):
                    stopped = "time limit"
                    _logger.info("stopping before epoch %d: %.0f s spent, time limit %.0f s", epoch + 1, spent, cfg.time_limit)
                    break
            for group in self.optimizer.param_groups:  # the schedule's rate (a resumed run gets the same)
                group["lr"] = cfg.epoch_lr(epoch)
            t0 = time.perf_counter()
            train_stats = self._train_epoch(epoch)
            seconds = time.perf_counter() - t0
            record: dict[str, Any] = {"epoch": epoch + 1, "train": train_stats, "seconds": round(seconds, 3),
                                      "samples_per_s": round(train_stats["samples"] / max(seconds, 1e-9), 2),
                                      "lr": self.optimizer.param_groups[0]["lr"]}
            validate = self.val_set is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs)
            metrics = self.validate() if validate and self.ctx.is_main else None
            if metrics is not None:
                record["val"] = metrics
                score = float(metrics[cfg.select_metric])
                if score > best_score:
                    best_score, best_epoch, best_metrics = score, epoch + 1, metrics
                    best_state = _clone_state(self.network)
                    record["best"] = True
            elif self.val_set is None:
                best_epoch, best_state = epoch + 1, _clone_state(self.network)
            train_seconds = elapsed_before + time.perf_counter() - run_start
            last_epoch_seconds = seconds
            history.append(record)
            self._log(record)
            if self.ctx.is_main:
                save_checkpoint(self.checkpoint_dir, TrainingState(
                    epoch=epoch + 1, model=_clone_state(self.network), best_model=best_state,
                    optimizer=self.optimizer.state_dict(), scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
                    info={"best_score": best_score if math.isfinite(best_score) else None, "best_epoch": best_epoch,
                          "best_metrics": best_metrics, "history": history, "train_seconds": train_seconds,
                          "train_config": cfg.to_dict(), "run": self.run_info},
                ))
                summary = f"epoch {epoch + 1}/{cfg.epochs}: loss {train_stats['total']:.4f}"
                if metrics is not None:
                    summary += f", val {cfg.select_metric} {metrics[cfg.select_metric]:.4f} (best {best_score:.4f} @ {best_epoch})"
                    lgi = metrics.get("lgi")  # the same predictions under LGI's convention (raw ground truth)
                    if isinstance(lgi, dict) and cfg.select_metric in lgi:
                        summary += f"; under LGI's convention {lgi[cfg.select_metric]:.4f}"
                _logger.info(summary)
            self.ctx.barrier()
            for cb in self.callbacks:
                cb(self, epoch + 1, record)

        if self.ctx.is_main:  # only the main process validates; the others keep the last weights
            self.network.load_state_dict(best_state)
        epochs_done = history[-1]["epoch"] if history else start_epoch
        return TrainResult(best_epoch, best_metrics, epochs_done, history, stopped, train_seconds)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, self.ctx.rank))  # dropout of this epoch
        self.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        self.model.train()
        dev = self.ctx.device
        sums = torch.zeros(5, dtype=torch.float64, device=dev)  # total, regression, attention, diversity, samples
        conf_sum = None  # the confidence head's loss, when the network has one
        bar = None
        if cfg.progress and self.ctx.is_main:
            from tqdm import tqdm

            bar = tqdm(total=len(self.loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        for step, batch in enumerate(self.loader):
            b = batch.to(dev)
            with self._autocast():
                out = self.model(b["video"], b["video_mask"], b["words"], b["word_mask"])
            if "confidence" in b:  # confidence-head labels (an addition to the paper)
                lo = self.loss_fn(out, b["target"], b["clip_mask"], b["confidence"])  # losses in fp32
            else:
                lo = self.loss_fn(out, b["target"], b["clip_mask"])  # losses in fp32
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(lo.total).backward()
            if cfg.grad_clip:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), cfg.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = b["target"].shape[0]
            values = torch.stack([lo.total, lo.regression, lo.attention, lo.diversity]).detach().double()
            sums[:4] += values * n  # stays on the device: no synchronization per step
            if getattr(lo, "confidence", None) is not None:
                conf_sum = (0.0 if conf_sum is None else conf_sum) + lo.confidence.detach().double() * n
            sums[4] += n
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{values[0].item():.4f}")
            if cfg.log_every and (step + 1) % cfg.log_every == 0:
                v = values.tolist()
                self._log({"epoch": epoch + 1, "step": step + 1, "loss": v[0], "regression": v[1],
                           "attention": v[2], "diversity": v[3]})
        if bar is not None:
            bar.close()
        if self.ctx.distributed:
            torch.distributed.all_reduce(sums)
        total, reg, att, div, count = sums.tolist()
        count = max(count, 1.0)
        stats = {"total": total / count, "regression": reg / count, "attention": att / count,
                 "diversity": div / count, "samples": int(count)}
        if conf_sum is not None and not self.ctx.distributed:  # (per-rank only: not all-reduced)
            stats["confidence"] = float(conf_sum) / count
        return stats
