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

On several processes (torchrun; see rnnlab.distributed) the same loop runs data-parallel: the model
is wrapped in DistributedDataParallel, every rank draws the same global batch of ``--batch-size``
and trains on its contiguous share of the rows, and the local loss is scaled by
``world_size * local_weight / global_weight`` (the weights being what the task's loss averages over,
``loss_weight``), so that DDP's averaged gradient is the gradient of the single-process batch mean.
Rank 0 alone evaluates, decides (early stopping, --max-time), writes and prints; the others get its
figures by broadcast and stop at the same step. In one process nothing of this runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Protocol

import torch
from torch import nn

from .distributed import Dist, current, row_range
from .errors import UserError
from .options import DEVICES, OPTIMIZERS, SCHEDULES, Options, option
from .runs import append_jsonl, load_checkpoint, save_checkpoint, write_json, write_jsonl
from .threads import AUTO, ThreadGovernor, parse_threads


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
    average: int = option(0, "averaged weights (AWD-LSTM's non-monotonically triggered averaging, NT-ASGD): once "
                          "validation has not improved for this many epochs, a running mean of the weights after "
                          "every step is kept from then on, and it is what is evaluated and saved (0 = off)",
                          min=0, max=1000)
    pretrain: str = option("none", "lm: first train each member's embedding and recurrent layers as a language model "
                           "on the training texts, then fine-tune with discriminative rates and gradual unfreezing "
                           "(ULMFiT; names, sentiment)", choices=("none", "lm"))
    pretrain_epochs: int = option(3, "with --pretrain lm: the language model's epochs", min=1, max=1000)
    max_time: float = option(0.0, "stop training after this many seconds (0 = no limit)", min=0, resume=True)
    seed: int = option(0, "random seed: splits, initial weights, batches", min=0, max=2**32 - 1)
    device: str = option("auto", "auto picks CUDA when present", choices=DEVICES, resume=True)
    progress: bool = option(True, "a progress bar on a terminal", resume=True)
    baseline: bool = option(True, "also fit the task's classical baseline on the same split and compare with it "
                            "(seconds)", resume=True)
    threads: str = option(AUTO, "CPU threads: auto (one per core that other processes leave free, followed while "
                          "training; see rnnlab.threads) or a fixed number", parse=parse_threads, resume=True,
                          metavar="auto|N")

    def __post_init__(self) -> None:
        if isinstance(self.threads, int) and not isinstance(self.threads, bool):  # threads=2 from Python
            object.__setattr__(self, "threads", str(self.threads))
        super().__post_init__()

    def check(self) -> None:
        try:
            parse_threads(self.threads)
        except ValueError as e:
            raise ValueError(f"--threads {e}") from None

    def implied(self, given: set[str]) -> "TrainConfig":
        if "momentum" in given and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(f"--momentum: --optimizer {self.optimizer} has none (only sgd and rmsprop use it)")
        if self.average and self.patience and self.average > self.patience:
            raise ValueError(f"--average {self.average}: early stopping (--patience {self.patience}) would end the run "
                             "before the averaging starts; give at most the patience, or --patience 0")
        return self


class LoopTask(Protocol):
    """What the loop needs of a task (the full contract is rnnlab.tasks.base.Task; the long-range
    experiment's RecallTask implements only this part)."""

    name: str
    monitor: str  # the validation metric that early stopping and best.pt follow, e.g. "accuracy"
    monitor_mode: str  # "max" or "min"

    def num_batches(self, split: str, batch_size: int) -> int: ...

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator) -> Iterable[dict]: ...

    def evaluate(self, model: nn.Module, split: str, device: torch.device) -> dict: ...

    # Optional: ``loss_weight(batch) -> float``, what the model's loss averages over in ``batch`` (items;
    # real target tokens for a language model). Without it, the batch's rows. Used only on several processes.


def batch_rows(batch: dict) -> int:
    """The number of items in a batch: the first dimension of its ``targets`` (else of its first tensor)."""
    t = batch.get("targets")
    if not isinstance(t, torch.Tensor):
        t = next(v for v in batch.values() if isinstance(v, torch.Tensor))
    return int(t.shape[0])


def loss_weight(task, batch: dict) -> float:
    """What ``task``'s loss averages over in ``batch`` (``task.loss_weight``, else the rows)."""
    fn = getattr(task, "loss_weight", None)
    return float(fn(batch)) if fn is not None else float(batch_rows(batch))


def local_rows(batch: dict, rows: int, lo: int, hi: int) -> dict:
    """Rows [lo, hi) of every tensor whose first dimension is the batch's ``rows``; the rest as is.
    An empty share is the batch's last row (the caller gives it weight 0: every rank must run a step)."""
    if hi <= lo:
        lo, hi = rows - 1, rows
    return {k: (v[lo:hi] if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == rows else v)
            for k, v in batch.items()}


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
                 meta: dict[str, Any], log=print, dist: Dist | None = None, plan=None) -> None:
        self.task, self.model, self.cfg, self.run_dir, self.device, self.meta, self.log = (
            task, model, cfg, Path(run_dir), device, meta, log)
        # plan: fine-tuning after pretraining (rnnlab.pretrain.FineTuning): the optimizer's parameter groups
        # and unfreeze(epoch), called before each epoch; None: every trainable weight at --lr
        self.plan = plan
        self.dist = dist if dist is not None else current()
        if not self.dist.is_main:
            self.log = lambda *a, **k: None  # rank 0 alone prints
        model.to(device)
        # What the loop calls: the model itself, or (several processes) the model in DDP, which starts
        # every rank from rank 0's weights. Checkpoints always hold the model's own state_dict.
        self.net, self.group = model, None
        if self.dist.enabled:
            self.dist.barrier()  # rank 0 may still be preparing alone (word vectors, the run folder)
            with self.dist.guard("while wrapping the model in DDP"):
                self.net = self.dist.wrap(model, device)
            self.group = self.dist.compute_group(device)
            if not self.dist.is_main:  # dropout and token dropout: an own random stream per rank
                torch.manual_seed(cfg.seed * 1_000_003 + self.dist.rank)
        self.opt = make_optimizer(cfg, plan.groups if plan else [p for p in model.parameters() if p.requires_grad])
        self.steps_per_epoch = task.num_batches("train", cfg.batch_size)
        self.sched, self.per_batch = make_schedule(cfg, self.opt, self.steps_per_epoch, task.monitor_mode)
        self.state = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "bad_epochs": 0, "elapsed": 0.0,
                      "stop": Stop.NOT_YET.value, "averaging_from": 0}
        self.averaged = None  # with --average, once triggered: the running mean of the weights (AveragedModel)
        self.history: list[dict] = []  # every epoch's metrics row, also kept in last.pt
        # Threads: on CPU, ``auto`` follows the cores other processes leave free (several processes: fixed).
        self.threads = ThreadGovernor(cfg.threads, follow=not self.dist.enabled)
        self._changes_logged = 0
        if device.type == "cpu":
            self.threads.start()
            self.log(self.threads.describe())

    # --- 1. restore -------------------------------------------------------------------------
    def restore(self) -> None:
        """Continue from last.pt: weights, optimizer, schedule, random state, counters and history."""
        if self.dist.enabled:  # rank 0 reads, every rank gets it (no shared file system needed)
            ckpt = self.dist.on_main(load_checkpoint, self.run_dir / "last.pt", map_location="cpu")
        else:
            ckpt = load_checkpoint(self.run_dir / "last.pt", map_location=self.device)
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if self.sched is not None and "scheduler" in ckpt:
            self.sched.load_state_dict(ckpt["scheduler"])
        self.state.update(ckpt["meta"]["train_state"])
        if "averaged" in ckpt:  # the running mean of the weights, and how many steps it holds
            self._start_averaging()
            self.averaged.load_state_dict(ckpt["averaged"])
        self.history = list(ckpt["meta"].get("history", []))
        torch.set_rng_state(self._rng_of(ckpt))
        if self.state["stop"] == Stop.EPOCHS.value and self.state["epoch"] < self.cfg.epochs:
            self.state["stop"] = Stop.NOT_YET.value  # a finished run resumed with more --epochs trains on
        if self.state["stop"] == Stop.TIME.value and (not self.cfg.max_time or self.state["elapsed"] < self.cfg.max_time):
            self.state["stop"] = Stop.NOT_YET.value  # resumed with a larger (or no) --max-time
        # The checkpoint is the truth: lines written after it (an epoch that will run again) go, and a
        # line lost to an interruption between the checkpoint and the append comes back.
        if self.dist.is_main:
            write_jsonl(self.run_dir / "metrics.jsonl", self.history)
        self.log(f"resuming {self.run_dir} after epoch {self.state['epoch']} (step {self.state['step']})")

    def _rng_of(self, ckpt: dict) -> torch.Tensor:
        """This rank's random state in ``ckpt``: its own when the run had as many processes, else rank 0's
        (rank 0 and a single process) or a fresh stream per rank."""
        d = self.dist
        ranks = ckpt.get("rng_ranks")
        if d.enabled and ranks is not None and len(ranks) == d.world_size:
            return ranks[d.rank]
        if d.is_main:
            return ckpt["rng"]
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + d.rank * 7919 + self.state["step"]).get_state()

    # --- 2. one epoch -----------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> tuple[float, float, bool]:
        """Train one epoch -> (mean training loss, seconds, whether --max-time ran out)."""
        cfg, model = self.cfg, self.net
        if self.plan is not None:
            self.plan.unfreeze(epoch)
        model.train()
        # Shuffling depends only on (seed, epoch): a resumed run sees the same batches.
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        t0 = time.perf_counter()
        total_loss, seen, out_of_time = 0.0, 0, False
        batches = _progress(self.task.batches("train", cfg.batch_size, True, gen), self.steps_per_epoch,
                            f"epoch {epoch}/{cfg.epochs}", cfg.progress and self.dist.is_main)
        for batch in batches:
            loss, out_of_time = self.step(batch, epoch, t0)
            total_loss += loss
            seen += 1
            self.threads.tick()
            if out_of_time:
                break
        return total_loss / max(seen, 1), time.perf_counter() - t0, out_of_time

    def step(self, batch: dict, epoch: int, t0: float) -> tuple[float, bool]:
        """One optimisation step on this process's share of the global batch (one process: all of it; a
        single process is a world of one) -> (the global batch's loss, whether --max-time ran out, as
        rank 0's clock says). The gradient DDP averages equals the single-process batch gradient."""
        cfg, d, state = self.cfg, self.dist, self.state
        local, share = batch, 1.0
        if d.enabled:  # this rank's rows, and its share of what the loss averages over
            rows = batch_rows(batch)
            total = loss_weight(self.task, batch)
            lo, hi = row_range(rows, d.world_size, d.rank)
            local = local_rows(batch, rows, lo, hi)
            share = (loss_weight(self.task, local) if hi > lo else 0.0) / total if total > 0 else 0.0
        local = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in local.items()}
        with d.guard("in a training step", self.run_dir):
            _, loss = self.net(**local)
            # One small reduction per step: the global loss (for the log and the divergence check, the
            # same on every rank) and rank 0's clock, so that every rank stops after the same step.
            late = d.is_main and bool(cfg.max_time) and state["elapsed"] + time.perf_counter() - t0 >= cfg.max_time
            both = torch.tensor([0.0, float(late)], dtype=torch.float64, device=self.device)
            if share:
                both[0] = loss.detach().double() * share
            d.all_reduce_sum(both, self.group)
            global_loss, out_of_time = both.tolist()
            if not math.isfinite(global_loss):
                raise UserError(f"training diverged at epoch {epoch}, step {state['step'] + 1} (loss {global_loss}); "
                                "lower --lr or keep --clip on")
            self.opt.zero_grad(set_to_none=True)
            (loss * (d.world_size * share) if d.enabled else loss).backward()  # DDP divides the summed gradients by world_size
            if cfg.clip > 0:
                nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
            self.opt.step()
            if self.averaged is not None:
                self.averaged.update_parameters(self.model)
        if self.per_batch:
            self.sched.step()
        state["step"] += 1
        return global_loss, out_of_time > 0

    # --- 3. evaluate and checkpoint ----------------------------------------------------------
    def evaluate_and_checkpoint(self, epoch: int, train_loss: float, seconds: float, out_of_time: bool) -> dict:
        cfg, state, task = self.cfg, self.state, self.task
        if self.dist.enabled:  # rank 0 evaluates; every rank takes its figures and its clock
            scores, seconds = self.dist.on_main(lambda: (self._scores(), seconds))
        state["elapsed"] += seconds
        state["epoch"] = epoch
        row: dict[str, Any] = {"epoch": epoch, "step": state["step"], "lr": self.opt.param_groups[0]["lr"],
                               "train_loss_running": train_loss}
        if not self.dist.enabled:
            scores = self._scores()
        for split in ("train", "val"):
            row.update({f"{split}_{k}": v for k, v in scores[split].items()})
        row.setdefault("train_loss", row["train_loss_running"])  # tasks that do not re-score training data
        if self.evaluated() is not self.model:
            row["averaged"] = True  # the figures are those of the averaged weights (--average)
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
        if cfg.average and self.averaged is None and state["bad_epochs"] >= cfg.average:
            # NT-ASGD's trigger: validation has stalled, so average the weights from the next step on
            # (and give the averaged weights as long to improve as the patience allows).
            self._start_averaging()
            state.update(averaging_from=epoch + 1, bad_epochs=0)
            self.log(f"averaging the weights from epoch {epoch + 1} on (val {task.monitor} has not improved for "
                     f"{cfg.average} epochs)")
        if out_of_time:
            state["stop"] = Stop.TIME.value
        elif cfg.patience and state["bad_epochs"] >= cfg.patience:
            state["stop"] = Stop.EARLY.value
        elif epoch >= cfg.epochs:
            state["stop"] = Stop.EPOCHS.value
        self.history.append(row)
        if self.dist.enabled:  # rank 0 writes (every rank's random state in last.pt); the others wait for it
            rngs = self.dist.gather_objects(torch.get_rng_state())
            self.dist.on_main(self._write_epoch, row, improved, rngs)
        else:
            self._write_epoch(row, improved)
        self.log(f"epoch {epoch:>3}  train loss {row['train_loss']:.4f}  val loss {row['val_loss']:.4f}  "
                 f"val {task.monitor} {value:.4f}{'  *' if improved else ''}  ({seconds:.1f} s)"
                 f"{self.threads.epoch_note(self._changes_logged)}")
        self._changes_logged = len(self.threads.changes)
        if state["stop"] == Stop.TIME.value:
            self.log(f"stopping: --max-time {cfg.max_time:g} s reached")
        elif state["stop"] == Stop.EARLY.value:
            self.log(f"stopping early: no improvement in val {task.monitor} for {cfg.patience} epochs")
        return row

    def _start_averaging(self) -> None:
        from torch.optim.swa_utils import AveragedModel

        self.averaged = AveragedModel(self.model, use_buffers=True)

    def evaluated(self) -> nn.Module:
        """The weights that are evaluated and saved: the model's, or their running mean once averaging."""
        if self.averaged is None or not self.averaged.n_averaged:
            return self.model
        return self.averaged.module

    def _scores(self) -> dict[str, dict]:
        return {split: self.task.evaluate(self.evaluated(), split, self.device) for split in ("train", "val")}

    def _write_epoch(self, row: dict, improved: bool, rngs: list | None = None) -> None:
        if improved:
            self._checkpoint("best.pt", with_optimizer=False)
        self._checkpoint("last.pt", with_optimizer=True, rngs=rngs)  # holds the history: the line below is a copy
        append_jsonl(self.run_dir / "metrics.jsonl", row)

    def _checkpoint(self, name: str, with_optimizer: bool, rngs: list | None = None) -> None:
        meta = {**self.meta, "train_config": asdict(self.cfg), "train_state": dict(self.state)}
        if with_optimizer:
            meta["history"] = self.history
        weights = self.model if with_optimizer else self.evaluated()  # last.pt: the weights training goes on from
        payload = {"model": {k: v.detach().cpu() for k, v in weights.state_dict().items()},
                   "meta": meta, "rng": torch.get_rng_state()}
        if with_optimizer:
            payload["optimizer"] = self.opt.state_dict()
            if self.averaged is not None:
                payload["averaged"] = {k: v.detach().cpu() for k, v in self.averaged.state_dict().items()}
            if self.sched is not None:
                payload["scheduler"] = self.sched.state_dict()
            if rngs is not None:  # several processes: each rank's random state, for an exact resume
                payload["rng_ranks"] = rngs
        save_checkpoint(self.run_dir / name, **payload)

    # --- the whole run ------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict:
        if resume:
            self.restore()
        for epoch in range(self.state["epoch"] + 1, self.cfg.epochs + 1):
            if self.state["stop"]:
                break
            self.evaluate_and_checkpoint(epoch, *self.train_epoch(epoch))
        state = self.state
        summary = {"best_epoch": state["best_epoch"], f"best_val_{self.task.monitor}": state["best"],
                   "epochs_run": state["epoch"], "steps": state["step"], "train_time": round(state["elapsed"], 2),
                   "stopped": state["stop"]}
        if self.device.type == "cpu":
            summary["threads"] = self.threads.summary()
        if not self.dist.is_main:  # the others are done: rank 0 reports
            return summary
        best = load_checkpoint(self.run_dir / "best.pt", map_location=self.device)
        self.model.load_state_dict(best["model"])
        write_json(self.run_dir / "train_summary.json", summary)
        return summary


def fit(task: LoopTask, model: nn.Module, cfg: TrainConfig, run_dir: Path, device: torch.device,
        meta: dict[str, Any], resume: bool = False, log=print, plan=None) -> dict:
    """Train ``model`` on ``task``; write metrics and checkpoints into ``run_dir``.

    ``meta`` (model config, task state such as the vocabulary) goes into every checkpoint, so
    that a checkpoint alone rebuilds the model. With ``resume`` the loop continues from
    ``run_dir/last.pt``. Returns a summary; the model holds the best weights afterwards (on several
    processes: on rank 0, which alone writes and reports).
    """
    return Trainer(task, model, cfg, run_dir, device, meta, log, plan=plan).fit(resume)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
