"""Run one training job end to end: run folder, config, model printout, the shared loop, the
test report and the HTML report. Tasks are looked up by name; nothing here depends on which."""

from __future__ import annotations

import importlib
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from . import __version__
from .errors import UserError
from .models import count_parameters, describe
from .options import TASKS
from .runs import find_checkpoint, load_checkpoint, new_run_dir, read_json, write_json
from .train import TrainConfig, fit, seed_everything



def task_parts(name: str):
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    module, *classes = TASKS[name]
    mod = importlib.import_module(module)
    return tuple(getattr(mod, c) for c in classes)


def from_dict(cls, data: dict):
    """Rebuild a config dataclass from JSON, ignoring keys it does not know."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def _ready_out_dir(out: Path) -> Path:
    if out.exists() and any(out.glob("*.pt")):
        raise UserError(f"{out} already holds a run; use --resume {out} to continue it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    return out


def run_training(task_name: str, task_cfg, model_cfg, train_cfg: TrainConfig,
                 out: str | Path | None = None, runs_root: str | Path = "runs", log=print) -> Path:
    """Train a fresh run; returns its folder."""
    _, TaskCls, _ = task_parts(task_name)
    seed_everything(train_cfg.seed)
    task = TaskCls(task_cfg, seed=train_cfg.seed)
    model_cfg = task.model_config(model_cfg)
    seed_everything(train_cfg.seed)  # the model's initial weights depend on the seed alone
    model = task.build_model(model_cfg)
    run_dir = _ready_out_dir(Path(out)) if out else new_run_dir(runs_root, task_name, model_cfg.cell)
    write_json(run_dir / "config.json", {
        "task": task_name, "task_config": asdict(task_cfg), "model_config": asdict(model_cfg),
        "train_config": asdict(train_cfg), "rnnlab_version": __version__, "torch_version": _torch_version(),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    })
    (run_dir / "model.txt").write_text(describe(model), encoding="utf-8")
    log(f"run folder: {run_dir}")
    log(_data_line(task.data_report))
    return _train_and_report(task_name, task, model, model_cfg, train_cfg, run_dir, resume=False, log=log)


def resume_training(run_dir: str | Path, epochs: int | None = None, device: str | None = None, log=print) -> Path:
    """Continue an interrupted run from its last checkpoint (optionally with more epochs)."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    ConfigCls, TaskCls, _ = task_parts(config["task"])
    ckpt = load_checkpoint(find_checkpoint(run_dir, "last"))
    task_cfg = from_dict(ConfigCls, config["task_config"])
    model_cfg = from_dict(TaskCls.model_config_cls, config["model_config"])
    train = dict(config["train_config"])
    if epochs is not None:
        train["epochs"] = epochs
    if device is not None:
        train["device"] = device
    train_cfg = from_dict(TrainConfig, train)
    task = TaskCls(task_cfg, seed=train_cfg.seed, state=ckpt["meta"]["task_state"])
    model = task.build_model(model_cfg)
    if epochs is not None:
        config["train_config"] = asdict(train_cfg)
        write_json(run_dir / "config.json", config)
    return _train_and_report(config["task"], task, model, model_cfg, train_cfg, run_dir, resume=True, log=log)


def _train_and_report(task_name, task, model, model_cfg, train_cfg, run_dir: Path, resume: bool, log) -> Path:
    from .device import resolve_device
    from .report import render_run_report

    device = resolve_device(train_cfg.device)
    meta: dict[str, Any] = {"task": task_name, "task_config": asdict(task.cfg), "model_config": asdict(model_cfg),
                            "task_state": task.state()}
    try:
        train_summary = fit(task, model, train_cfg, run_dir, device, meta, resume=resume, log=log)
    except KeyboardInterrupt:
        if (run_dir / "last.pt").is_file():
            log(f"interrupted: continue with  rnnlab train {task_name} --resume {run_dir}")
        raise
    test = task.final_report(model, device)
    write_json(run_dir / "summary.json", {"data": task.data_report, "train": train_summary,
                                          "parameters": count_parameters(model), "test": test})
    log(f"{task.headline(test)}  ({train_summary['train_time']:.1f} s training, best epoch {train_summary['best_epoch']})")
    report = render_run_report(run_dir)
    log(f"report: {report}")
    return run_dir


def _data_line(report: dict) -> str:
    counts = {"train": report.get("train_items_used", report.get("train_items", 0)),
              "val": report.get("val_items", 0), "test": report.get("test_items", 0)}
    parts = [f"{n} {split}" for split, n in counts.items()]
    if isinstance(report.get("dropped"), dict):  # tasks that count drops by reason
        dropped = [f"{n} {reason}" for reason, n in report["dropped"].items()] or ["none"]
    else:
        dropped = [f"{report.get(k, 0)} {k.replace('_', ' ')}" for k in ("duplicates_dropped", "junk", "empty")]
    return f"data: {', '.join(parts)} ({report['protocol']} split); dropped: {', '.join(dropped)}"


def _torch_version() -> str:
    import torch

    return torch.__version__
