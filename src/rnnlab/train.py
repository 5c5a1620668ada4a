"""One training loop for every task -- and it knows nothing about the model.

The loop sees a task only through ``LoopTask`` (below) and a model only through one call::

    logits, loss = model(**batch)        # every batch is a dict of tensors; the loss is a scalar

Per epoch it trains with the chosen optimizer, clips the gradient norm, steps the schedule,
evaluates on the training sample and the validation split, writes ``last.pt`` (weights, optimizer,
schedule, random state and the metrics history, so that ``--resume`` continues exactly) and
``best.pt`` when the monitored metric improves, then appends the epoch's line to ``metrics.jsonl``.
The checkpoint holds the history too: an interruption between the two writes loses nothing, since
a resume rewrites ``metrics.jsonl`` from the checkpoint. Training stops for one of the reasons in
``Stop``.

    restore()  ->  for each epoch: train_epoch()  ->  evaluate_and_checkpoint()  ->  summary
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Protocol

import torch
from torch import nn

from .errors import UserError
from .options import DEVICES, OPTIMIZERS, SCHEDULES, Options, option
from .runs import append_jsonl, load_checkpoint, save_checkpoint, write_json, write_jsonl


@dataclass(frozen=True)
class TrainConfig(Options):
    """How to train (every task): options declared once, see rnnlab.options."""

    epochs: int = option(10, "passes over the training data", min=1, max=100_000, resume=True)
    batch_size: int = option(64, "items per training step", min=1, max=1_000_000)
    lr: float = option(3e-3, "learning rate", above=0, max=10)
    optimizer: str = option("adam", "optimizer", choices=OPTIMIZERS)
    momentum: float = option(0.0, "momentum (sgd, rmsprop)", min=0, below=1)
    weight_decay: float = option(0.0, "L2 weight decay", min=0, max=1)
    # Recurrent nets can explode: clipping keeps a step sane.
    clip: float = option(1.0, "max gradient norm (0 = off)", min=0)
    schedule: str = option("cosine", "learning-rate schedule: cosine (per step, to 0), plateau (halve when "
                           "validation stalls) or none", choices=SCHEDULES)
    patience: int = option(4, "early stopping: epochs without validation improvement (0 = never stop early)",
                           min=0, resume=True)
    max_time: float = option(0.0, "stop training after this many seconds (0 = no limit)", min=0, resume=True)
    seed: int = option(0, "random seed: splits, initial weights, batches", min=0, max=2**32 - 1)
    device: str = option("auto", "auto picks CUDA when present", choices=DEVICES, resume=True)
    progress: bool = option(True, "a progress bar on a terminal", resume=True)
    baseline: bool = option(True, "also fit the task's classical baseline on the same split and compare with it "
                            "(seconds)", resume=True)


class LoopTask(Protocol):
    """What the loop needs of a task (the full contract is rnnlab.tasks.base.Task; the long-range
    experiment's RecallTask implements only this part)."""

    name: str
    monitor: str  # the validation metric that early stopping and best.pt follow, e.g. "accuracy"
    monitor_mode: str  # "max" or "min"

    def num_batches(self, split: str, batch_size: int) -> int: ...

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterable[dict]: ...

    def evaluate(self, model: nn.Module, split: str, device: torch.device) -> dict: ...


class Stop(str, Enum):
    """Why training stopped (stored in checkpoints and train_summary.json as the value)."""

    NOT_YET = ""
    EPOCHS = "epochs"  # ran every epoch asked for
    EARLY = "early"  # no validation improvement for --patience epochs
    TIME = "time"  # --max-time reached


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def make_schedule(cfg: TrainConfig, opt, steps_per_epoch: int, mode: str):
    """Returns (scheduler or None, whether it steps per batch)."""
    if cfg.schedule == "cosine":  # per batch, from lr down to 0 over all epochs
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs * steps_per_epoch)), True
    if cfg.schedule == "plateau":  # per epoch: halve the rate after 2 epochs without improvement
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=1), False
    return None, False


def _progress(iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    # disable=None: a bar on a terminal, nothing in logs and CI.
    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None, dynamic_ncols=True)


def _better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value > best if mode == "max" else value < best


class Trainer:
    """The loop's state between epochs, and its three parts. Knows the task only as a ``LoopTask``."""

    def __init__(self, task: LoopTask, model: nn.Module, cfg: TrainConfig, run_dir: Path, device: torch.device,
                 meta: dict[str, Any], log=print) -> None:
        self.task, self.model, self.cfg, self.run_dir, self.device, self.meta, self.log = (
            task, model, cfg, Path(run_dir), device, meta, log)
        model.to(device)
        self.opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
        self.steps_per_epoch = task.num_batches("train", cfg.batch_size)
        self.sched, self.per_batch = make_schedule(cfg, self.opt, self.steps_per_epoch, task.monitor_mode)
        self.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "elapsed": 0.0,
                      "stop": Stop.NOT_YET.value}
        self.history: list[dict] = []  # every epoch's metrics row, also kept in last.pt

    # --- 1. restore -------------------------------------------------------------------------
    def restore(self) -> None:
        """Continue from last.pt: weights, optimizer, schedule, random state, counters and history."""
        ckpt = load_checkpoint(self.run_dir / "last.pt", map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.sched is not None and "scheduler" in ckpt:
            self.sched.load_state_dict(ckpt["scheduler"])
        self.state.update(ckpt["meta"]["train_state"])
        self.history = list(ckpt["meta"].get("history", []))
        torch.set_rng_state(ckpt["rng"])
        if self.state["stop"] == Stop.EPOCHS.value and self.state["epoch"] < self.cfg.epochs:
            self.state["stop"] = Stop.NOT_YET.value  # a finished run resumed with more --epochs trains on
        if self.state["stop"] == Stop.TIME.value and (not self.cfg.max_time or self.state["elapsed"] < self.cfg.max_time):
            self.state["stop"] = Stop.NOT_YET.value  # resumed with a larger (or no) --max-time
        # The checkpoint is the truth: lines written after it (an epoch that will run again) go, and a
        # line lost to an interruption between the checkpoint and the append comes back.
        write_jsonl(self.run_dir / "metrics.jsonl", self.history)
        self.log(f"resuming {self.run_dir} after epoch {self.state['epoch']} (step {self.state['step']})")

    # --- 2. one epoch -----------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float, bool]:
        """Train one epoch -> (mean training loss, seconds, whether --max-time ran out)."""
        cfg, model, state = self.cfg, self.model, self.state
        model.train()
        # Shuffling depends only on (seed, epoch): a resumed run sees the same batches.
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        t0 = time.perf_counter()
        total_loss, seen, out_of_time = 0.0, 0, False
        batches = _progress(self.task.batches("train", cfg.batch_size, True, gen), self.steps_per_epoch,
                            f"epoch {epoch}/{cfg.epochs}", cfg.progress)
        for batch in batches:
            batch = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            _, loss = model(**batch)
            if not torch.isfinite(loss):
                raise UserError(f"training diverged at epoch {epoch}, step {state['step'] + 1} (loss {loss.item()}); "
                                "lower --lr or keep --clip on")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            self.opt.step()
            if self.per_batch:
                self.sched.step()
            state["step"] += 1
            total_loss += loss.item()
            seen += 1
            if cfg.max_time and state["elapsed"] + time.perf_counter() - t0 >= cfg.max_time:
                out_of_time = True
                break
        return total_loss / max(seen, 1), time.perf_counter() - t0, out_of_time

    # --- 3. evaluate and checkpoint ----------------------------------------------------------
    def evaluate_and_checkpoint(self, epoch: int, train_loss: float, seconds: float, out_of_time: bool) -> dict:
        cfg, state, task = self.cfg, self.state, self.task
        state["elapsed"] += seconds
        state["epoch"] = epoch
        row: dict[str, Any] = {"epoch": epoch, "step": state["step"], "lr": self.opt.param_groups[0]["lr"],
                               "train_loss_running": train_loss}
        for split in ("train", "val"):
            row.update({f"{split}_{k}": v for k, v in task.evaluate(self.model, split, self.device).items()})
        row.setdefault("train_loss", row["train_loss_running"])  # tasks that do not re-score training data
        row["epoch_time"] = round(seconds, 3)
        row["elapsed"] = round(state["elapsed"], 3)

        value = row[f"val_{task.monitor}"]
        if self.sched is not None and not self.per_batch:
            self.sched.step(value)
        improved = _better(value, state["best"], task.monitor_mode)
        if improved:
            state.update(best=value, best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        if out_of_time:
            state["stop"] = Stop.TIME.value
        elif cfg.patience and state["bad_epochs"] >= cfg.patience:
            state["stop"] = Stop.EARLY.value
        elif epoch >= cfg.epochs:
            state["stop"] = Stop.EPOCHS.value
        self.history.append(row)
        if improved:
            self._checkpoint("best.pt", with_optimizer=False)
        self._checkpoint("last.pt", with_optimizer=True)  # holds the history: the line below is a copy
        append_jsonl(self.run_dir / "metrics.jsonl", row)
        self.log(f"epoch {epoch:>3}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
                 f"val {task.monitor} {value:.4f}{'  *' if improved else ''}  ({seconds:.1f} s)")
        if state["stop"] == Stop.TIME.value:
            self.log(f"stopping: --max-time {cfg.max_time:g} s reached")
        elif state["stop"] == Stop.EARLY.value:
            self.log(f"stopping early: no improvement in val {task.monitor} for {cfg.patience} epochs")
        return row

    def _checkpoint(self, name: str, with_optimizer: bool) -> None:
        meta = {**self.meta, "train_config": asdict(self.cfg), "train_state": dict(self.state)}
        if with_optimizer:
            meta["history"] = self.history
        payload = {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                   "meta": meta, "rng": torch.get_rng_state()}
        if with_optimizer:
            payload["optimizer"] = self.opt.state_dict()
            if self.sched is not None:
                payload["scheduler"] = self.sched.state_dict()
        save_checkpoint(self.run_dir / name, **payload)

    # --- the whole run ------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        if resume:
            self.restore()
        for epoch in range(self.state["epoch"] + 1, self.cfg.epochs + 1):
            if self.state["stop"]:
                break
            self.evaluate_and_checkpoint(epoch, *self.train_epoch(epoch))
        best = load_checkpoint(self.run_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(best["model"])
        state = self.state
        summary = {"best_epoch": state["best_epoch"], f"best_val_{self.task.monitor}": state["best"],
                   "epochs_run": state["epoch"], "steps": state["step"], "train_time": round(state["elapsed"], 2),
                   "stopped": state["stop"]}
        write_json(self.run_dir / "train_summary.json", summary)
        return summary


def fit(task: LoopTask, model: nn.Module, cfg: TrainConfig, run_dir: Path, device: torch.device,
        meta: dict[str, Any], resume: bool = False, log=print) -> dict:
    """Train ``model`` on ``task``; write metrics and checkpoints into ``run_dir``.

    ``meta`` (model config, task state such as the vocabulary) goes into every checkpoint, so
    that a checkpoint alone rebuilds the model. With ``resume`` the loop continues from
    ``run_dir/last.pt``. Returns a summary; the model holds the best weights afterwards.
    """
    return Trainer(task, model, cfg, run_dir, device, meta, log).fit(resume)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
