"""One training loop for every task.

A task brings its data, its model and its metrics; this loop does the rest and never looks at
the model's type. What a task provides (see ``Task``):

* ``batches(split, batch_size, shuffle, generator)`` -> iterable of dicts of tensors, passed to
  the model as keyword arguments: ``logits, loss = model(**batch)``;
* ``evaluate(model, split, device)`` -> dict of metrics for a split (``loss`` among them);
* ``monitor`` / ``monitor_mode``: the validation metric for early stopping and the best checkpoint.

Per epoch the loop trains with the chosen optimizer, clips the gradient norm, steps the schedule,
evaluates, appends a line to ``metrics.jsonl``, writes ``last.pt`` (with optimizer state, so that
``--resume`` continues exactly) and ``best.pt`` when the monitored metric improves, and stops
early after ``patience`` epochs without improvement.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Protocol

import torch
from torch import nn

from .errors import UserError
from .options import OPTIMIZERS, SCHEDULES
from .runs import append_jsonl, load_checkpoint, read_jsonl, save_checkpoint, write_json, write_jsonl



@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    momentum: float = 0.0  # sgd / rmsprop
    weight_decay: float = 0.0
    clip: float = 1.0  # max gradient norm; 0 = off. Recurrent nets can explode: clipping keeps a step sane.
    schedule: str = "cosine"
    patience: int = 4  # epochs without validation improvement before stopping; 0 = never stop early
    max_time: float = 0.0  # seconds of training before stopping (0 = no limit)
    seed: int = 0
    device: str = "auto"
    progress: bool = True


class Task(Protocol):
    name: str
    monitor: str
    monitor_mode: str  # "max" or "min"

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterable[dict]: ...

    def num_batches(self, split: str, batch_size: int) -> int: ...

    def evaluate(self, model: nn.Module, split: str, device: torch.device) -> dict: ...


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.lr <= 0 or not math.isfinite(cfg.lr):
        raise UserError(f"--lr must be a positive number, got {cfg.lr}")
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise UserError(f"--optimizer {cfg.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")


def make_schedule(cfg: TrainConfig, opt, steps_per_epoch: int, mode: str):
    """Returns (scheduler or None, whether it steps per batch)."""
    if cfg.schedule == "none":
        return None, False
    if cfg.schedule == "cosine":  # per batch, from lr down to 0 over all epochs
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs * steps_per_epoch)), True
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=1), False
    raise UserError(f"--schedule {cfg.schedule!r}: choose one of {', '.join(SCHEDULES)}")


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


def fit(task: Task, model: nn.Module, cfg: TrainConfig, run_dir: Path, device: torch.device,
        meta: dict[str, Any], resume: bool = False, log=print) -> dict:
    """Train ``model`` on ``task``; write metrics and checkpoints into ``run_dir``.

    ``meta`` (model config, task state such as the vocabulary) goes into every checkpoint, so
    that a checkpoint alone rebuilds the model. With ``resume`` the loop continues from
    ``run_dir/last.pt``. Returns a summary; the model holds the best weights afterwards.
    """
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise UserError(f"--epochs and --batch-size must be at least 1, got {cfg.epochs}, {cfg.batch_size}")
    run_dir = Path(run_dir)
    model.to(device)
    opt = make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad])
    steps_per_epoch = task.num_batches("train", cfg.batch_size)
    sched, per_batch = make_schedule(cfg, opt, steps_per_epoch, task.monitor_mode)
    state = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "elapsed": 0.0,
             "stop": ""}  # why training stopped: "", "epochs", "early" or "time"

    if resume:
        ckpt = load_checkpoint(run_dir / "last.pt", map_location=device)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None and "scheduler" in ckpt:
            sched.load_state_dict(ckpt["scheduler"])
        state.update(ckpt["meta"]["train_state"])
        torch.set_rng_state(ckpt["rng"])
        if state["stop"] == "epochs" and state["epoch"] < cfg.epochs:
            state["stop"] = ""  # a finished run resumed with more --epochs trains on
        # Metrics written after the last checkpoint belong to an epoch that will be run again.
        rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["epoch"] <= state["epoch"]]
        write_jsonl(run_dir / "metrics.jsonl", rows)
        log(f"resuming {run_dir} after epoch {state['epoch']} (step {state['step']})")

    def checkpoint(name: str, with_optimizer: bool) -> None:
        payload = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                   "meta": {**meta, "train_config": asdict(cfg), "train_state": dict(state)},
                   "rng": torch.get_rng_state()}
        if with_optimizer:
            payload["optimizer"] = opt.state_dict()
            if sched is not None:
                payload["scheduler"] = sched.state_dict()
        save_checkpoint(run_dir / name, **payload)

    start_epoch = state["epoch"]
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        if state["stop"]:
            break
        model.train()
        # Shuffling depends only on (seed, epoch): a resumed run sees the same batches.
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        t0 = time.perf_counter()
        total_loss, seen = 0.0, 0
        out_of_time = False
        batches = _progress(task.batches("train", cfg.batch_size, True, gen), steps_per_epoch,
                            f"epoch {epoch}/{cfg.epochs}", cfg.progress)
        for batch in batches:
            batch = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
            _, loss = model(**batch)
            if not torch.isfinite(loss):
                raise UserError(f"training diverged at epoch {epoch}, step {state['step'] + 1} (loss {loss.item()}); "
                                "lower --lr or keep --clip on")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            if per_batch:
                sched.step()
            state["step"] += 1
            total_loss += loss.item()
            seen += 1
            if cfg.max_time and state["elapsed"] + time.perf_counter() - t0 >= cfg.max_time:
                out_of_time = True
                break
        train_time = time.perf_counter() - t0
        state["elapsed"] += train_time
        state["epoch"] = epoch

        row: dict[str, Any] = {"epoch": epoch, "step": state["step"], "lr": opt.param_groups[0]["lr"],
                               "train_loss_running": total_loss / max(seen, 1)}
        for split in ("train", "val"):
            row.update({f"{split}_{k}": v for k, v in task.evaluate(model, split, device).items()})
        row.setdefault("train_loss", row["train_loss_running"])  # tasks that do not re-score training data
        row["epoch_time"] = round(train_time, 3)
        row["elapsed"] = round(state["elapsed"], 3)

        value = row[f"val_{task.monitor}"]
        if sched is not None and not per_batch:
            sched.step(value)
        improved = _better(value, state["best"], task.monitor_mode)
        if improved:
            state.update(best=value, best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        if out_of_time:
            state["stop"] = "time"
        elif cfg.patience and state["bad_epochs"] >= cfg.patience:
            state["stop"] = "early"
        elif epoch == cfg.epochs:
            state["stop"] = "epochs"
        if improved:
            checkpoint("best.pt", with_optimizer=False)
        checkpoint("last.pt", with_optimizer=True)  # first the checkpoint, then the metrics line
        append_jsonl(run_dir / "metrics.jsonl", row)
        log(f"epoch {epoch:>3}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
            f"val {task.monitor} {value:.4f}{'  *' if improved else ''}  ({train_time:.1f} s)")
        if state["stop"] == "time":
            log(f"stopping: --max-time {cfg.max_time:g} s reached")
        elif state["stop"] == "early":
            log(f"stopping early: no improvement in val {task.monitor} for {cfg.patience} epochs")

    best = load_checkpoint(run_dir / "best.pt", map_location=device)
    model.load_state_dict(best["model"])
    summary = {"best_epoch": state["best_epoch"], f"best_val_{task.monitor}": state["best"],
               "epochs_run": state["epoch"], "steps": state["step"], "train_time": round(state["elapsed"], 2),
               "stopped": state["stop"]}
    write_json(run_dir / "train_summary.json", summary)
    return summary


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
