"""Run one training job end to end: run folder, config, model printout, the shared loop, the test
report and the HTML report. Nothing here depends on which task it runs: tasks are found in the
registry (rnnlab.tasks) and used only through their contract (rnnlab.tasks.base.Task).

Checkpoints carry ``meta``::

    {"task", "task_config", "model_config", "task_state",     # what rebuilds and uses the model
     "train_config", "train_state", "history"}                # what the loop needs to resume
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import UserError
from .models import count_parameters, describe
from .options import declared
from .runs import find_checkpoint, load_checkpoint, new_run_dir, read_json, write_json
from .train import TrainConfig, fit, seed_everything


def default_configs(task_cls) -> tuple[Any, Any, TrainConfig]:
    """The task's tested defaults: (task config, model config, training config)."""
    return task_cls.config_cls(), task_cls.default_model, task_cls.default_train


def configs_from_options(task_name: str, options: dict) -> tuple[Any, Any, TrainConfig]:
    """Options by field name -> the three configs, starting from the task's defaults. A name that no
    config of the task declares is an error, not silently ignored."""
    from .tasks import get_task

    task_cls = get_task(task_name)
    configs = list(default_configs(task_cls))
    left = dict(options)
    for i, cfg in enumerate(configs):
        mine = {f.name: left.pop(f.name) for f, _ in declared(cfg) if f.name in left}
        configs[i] = replace(cfg, **mine) if mine else cfg
    if left:
        raise UserError(f"{', '.join(sorted(left))}: not an option of the {task_name} task")
    return tuple(configs)


def _ready_out_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file is in the way (give a folder)")
    if out.exists() and any(out.glob("*.pt")):
        raise UserError(f"{out} already holds a run; use --resume {out} to continue it, or choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out}: cannot create the folder ({e.strerror})") from None
    return out


def run_training(task_name: str, task_cfg, model_cfg, train_cfg: TrainConfig,
                 out: str | Path | None = None, runs_root: str | Path = "runs", log=print) -> Path:
    """Train a fresh run; returns its folder."""
    from .tasks import get_task

    task_cls = get_task(task_name)
    seed_everything(train_cfg.seed)
    task = task_cls(task_cfg, seed=train_cfg.seed)
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
    log(task.data_line())
    return _train_and_report(task, model, model_cfg, train_cfg, run_dir, resume=False, log=log)


def resume_training(run_dir: str | Path, epochs: int | None = None, device: str | None = None, log=print,
                    **train_changes) -> Path:
    """Continue an interrupted run from its last checkpoint. Only the training options declared as
    changeable on resume (``resume=True``: --epochs, --max-time, --patience, --device, --progress) may
    change; the task, model and data options are the run's own."""
    from .tasks import get_task

    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    ckpt = load_checkpoint(find_checkpoint(run_dir, "last"))
    if not isinstance(config, dict) or config.get("task") != ckpt["meta"].get("task"):
        raise UserError(f"{run_dir}: config.json and last.pt disagree on the task "
                        f"({config.get('task') if isinstance(config, dict) else config!r} vs {ckpt['meta'].get('task')!r})")
    task_cls = get_task(config["task"])
    where = str(run_dir / "config.json")
    task_cfg = task_cls.config_cls.from_dict(config["task_config"], where)
    model_cfg = task_cls.model_config_cls.from_dict(config["model_config"], where)
    changes = {**train_changes, **{k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None}}
    allowed = {f.name for f, opt in declared(TrainConfig) if opt.resume}
    fixed = sorted(set(changes) - allowed)
    if fixed:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in fixed)}: cannot change when resuming "
                        f"(only {', '.join('--' + k.replace('_', '-') for k in sorted(allowed))} can)")
    train_cfg = replace(TrainConfig.from_dict(config["train_config"], where), **changes)
    task = task_cls(task_cfg, seed=train_cfg.seed, state=ckpt["meta"]["task_state"])
    model = task.rebuild_model(model_cfg)
    if changes:
        config["train_config"] = asdict(train_cfg)
        write_json(run_dir / "config.json", config)
    return _train_and_report(task, model, model_cfg, train_cfg, run_dir, resume=True, log=log)


def _train_and_report(task, model, model_cfg, train_cfg, run_dir: Path, resume: bool, log) -> Path:
    from .device import resolve_device
    from .runreport import render_run_report

    device = resolve_device(train_cfg.device)
    meta: dict[str, Any] = {"task": task.name, "task_config": asdict(task.cfg), "model_config": asdict(model_cfg),
                            "task_state": task.state()}
    try:
        train_summary = fit(task, model, train_cfg, run_dir, device, meta, resume=resume, log=log)
    except KeyboardInterrupt:
        if (run_dir / "last.pt").is_file():
            log(f"interrupted: continue with  rnnlab train {task.name} --resume {run_dir}")
        raise
    test = task.final_report(model, device)
    log(f"{task.headline(test)}  ({train_summary['train_time']:.1f} s training, best epoch {train_summary['best_epoch']})")
    summary = {"data": task.data_report, "train": train_summary, "parameters": count_parameters(model), "test": test}
    if train_cfg.baseline:
        baseline = task.baseline()
        if baseline:
            summary["versus"] = task.versus_baseline(test, baseline)
            summary["baseline"] = {k: v for k, v in baseline.items() if k != "test_predictions"}
            log(summary["versus"]["text"].replace("model", model_cfg.cell.upper(), 1))
    write_json(run_dir / "summary.json", summary)
    report = render_run_report(run_dir)
    log(f"report: {report}")
    return run_dir


def _torch_version() -> str:
    import torch

    return torch.__version__


__all__ = ["configs_from_options", "default_configs", "run_training", "resume_training"]
