"""Run one training job end to end: run folder, config, model printout, the shared loop, the test
report and the HTML report. Nothing here depends on which task it runs: tasks are found in the
registry (rnnlab.tasks) and used only through their contract (rnnlab.tasks.base.Task).

On several processes (torchrun, ``--nproc``; see rnnlab.distributed) every rank reads the data and
builds the model alike; rank 0 alone makes the run folder, writes and prints, and what it reads or
decides reaches the others through ``Dist.on_main``.

Checkpoints carry ``meta``::

    {"task", "task_config", "model_config", "task_state",     # what rebuilds and uses the model
     "data_fingerprint",                                      # the files the data came from (Task.data_fingerprint)
     "train_config", "train_state", "history"}                # what the loop needs to resume

A run folder is written by one process at a time: ``run_training`` and ``resume_training`` hold its
``RunLock`` from before any data is read until after the report (with several processes, rank 0 --
the one that writes -- holds it). A resume refuses what does not belong:
another task's run, a config.json that disagrees with last.pt, other model or data options, and
data files that changed since the run began.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from . import distributed
from ._version import __version__
from .errors import UserError
from .files import folder_for_writing, remove_if_empty
from .models import count_parameters, describe
from .options import declared
from .pretrain import STAGE, FineTuning, check_pretrain, pretrain
from .runs import (REPEATS_FILE, RunLock, check_run_meta, find_checkpoint, load_checkpoint, new_run_dir, read_json,
                   refuse_run_in, write_json)
from .train import TrainConfig, fit, seed_everything


def default_configs(task_cls) -> tuple[Any, Any, TrainConfig]:
    """The task's tested defaults: (task config, model config, training config)."""
    return task_cls.config_cls(), task_cls.default_model, task_cls.default_train


def configs_from_options(task_name: str, options: dict) -> tuple[Any, Any, TrainConfig]:
    """Options by field name -> the three configs, starting from the task's defaults. A name that no
    config of the task declares is an error, not silently ignored; so is an option that the other
    choices make meaningless (``Options.implied``, ``Task.check_options``)."""
    from .tasks import get_task

    task_cls = get_task(task_name)
    configs = list(default_configs(task_cls))
    left = dict(options)
    given = []
    for i, cfg in enumerate(configs):
        mine = {f.name: left.pop(f.name) for f, _ in declared(cfg) if f.name in left}
        configs[i] = (replace(cfg, **mine) if mine else cfg).implied(set(mine))
        given.append(set(mine))
    if left:
        raise UserError(f"{', '.join(sorted(left))}: not an option of the {task_name} task")
    task_cls.check_options(configs[0], configs[1], given[0] | given[1])
    return tuple(configs)


def _check_space(run_dir: Path, model) -> None:
    """Refuse to start when the disk cannot hold the checkpoints: best.pt, last.pt (with the optimizer's
    state) and the temporary copy of each while it is replaced."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    need = 8 * weights + 16 * 2**20
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        return
    if free < need:
        raise UserError(f"--out {run_dir}: {free / 2**20:.1f} MiB free, but this run's checkpoints need about "
                        f"{need / 2**20:.1f} MiB; free some space or choose another --out")


def run_training(task_name: str, task_cfg, model_cfg, train_cfg: TrainConfig,
                 out: str | Path | None = None, runs_root: str | Path = "runs", log=print,
                 member_of: dict | None = None) -> Path:
    """Train a fresh run; returns its folder. The folder is locked (``RunLock``, held by rank 0) from
    before any data is read until after the report. Options asking for several runs (``--folds``,
    ``--seeds``) are rnnlab.repeats' (``run_job``), which calls this for each, with ``member_of``:
    the parent's identity (job id, kind, member name and index), written into config.json."""
    from .device import resolve_device
    from .tasks import get_task

    task_cls = get_task(task_name)
    task_cls.check_options(task_cfg, model_cfg, frozenset())  # before any data is read
    check_pretrain(task_cls, model_cfg, train_cfg, distributed.Dist.from_env().enabled)
    resolve_device(train_cfg.device)  # --device cuda without CUDA: said before anything is made
    if getattr(task_cfg, "repeats", 0):  # --folds K / --seeds N: several runs, one level up
        raise UserError("--folds/--seeds: several runs; train them with rnnlab.repeats.run_job (what rnnlab train "
                        "and rnnlab.train_task do)")
    dist = distributed.setup()
    log = log if dist.is_main else _quiet
    held: dict[str, Any] = {}

    def claim() -> Path:  # rank 0 alone: one run folder, whatever the number of processes, locked
        run_dir, created = (Path(out), folder_for_writing(Path(out))) if out else (new_run_dir(runs_root, task_name, model_cfg.cell), True)
        lock = RunLock(run_dir, log=log)
        try:
            lock.acquire()
            if out:
                refuse_run_in(run_dir)
        except BaseException:
            lock.release()
            if created:
                remove_if_empty(run_dir)
            raise
        held.update(lock=lock, created=created)
        return run_dir

    run_dir = dist.on_main(claim)
    failed = True
    try:
        seed_everything(train_cfg.seed)
        task = task_cls(task_cfg, seed=train_cfg.seed)
        model_cfg = task.model_config(model_cfg)
        seed_everything(train_cfg.seed)  # the model's initial weights depend on the seed alone
        model = task.build_model(model_cfg)
        fingerprint = task.data_fingerprint()

        def write_config() -> None:  # rank 0 alone
            _check_space(run_dir, model)
            write_json(run_dir / "config.json", {
                "task": task_name, "task_config": asdict(task_cfg), "model_config": asdict(model_cfg),
                "train_config": asdict(train_cfg), "data_fingerprint": fingerprint, "rnnlab_version": __version__,
                "torch_version": _torch_version(), "created": time.strftime("%Y-%m-%d %H:%M:%S"),
                **({"member_of": member_of} if member_of else {}),
            })
            (run_dir / "model.txt").write_text(describe(model), encoding="utf-8")

        dist.on_main(write_config)
        log(f"run folder: {run_dir}")
        log(task.data_line())
        if dist.enabled:
            log(f"training on {dist.world_size} processes: {train_cfg.batch_size} items per step in all, "
                f"about {train_cfg.batch_size // dist.world_size} per process")
        result = _train_and_report(task, model, model_cfg, train_cfg, run_dir, fingerprint, resume=False, log=log)
        failed = False
        return result
    finally:
        if held:
            held["lock"].release()
            if failed and held["created"]:
                remove_if_empty(run_dir)  # nothing was written: leave no empty folder behind


def _differences(recorded: dict, now: dict, prefix: str = "--", skip=()) -> list[str]:
    keys = sorted((set(recorded) | set(now)) - set(skip))
    return [f"{prefix}{k.replace('_', '-')} {recorded.get(k)!r} vs {now.get(k)!r}" for k in keys
            if recorded.get(k) != now.get(k)]


def _read_run(run_dir: Path, task_name: str | None) -> tuple[dict, dict, dict]:
    """config.json and last.pt of a run to resume -> (config, checkpoint, its meta), refusing what does
    not belong: another task's run, a config.json that disagrees with the checkpoint."""
    config_path = run_dir / "config.json"
    config = read_json(config_path, dict)
    if not (run_dir / "last.pt").is_file() and (run_dir / STAGE / "last.pt").is_file():
        raise UserError(f"--resume {run_dir}: its language-model pretraining (--pretrain lm, {run_dir / STAGE}) did "
                        "not finish, and a run resumes from its fine-tuning only; train it again")
    last = find_checkpoint(run_dir, "last")
    ckpt = load_checkpoint(last)
    meta = check_run_meta(ckpt["meta"], last)
    for key in ("optimizer", "rng"):
        if key not in ckpt:
            raise UserError(f"{last}: not a checkpoint to resume from (it has no {key} state)")
    if not isinstance(meta.get("train_state"), dict):
        raise UserError(f"{last}: not a checkpoint to resume from (it has no training state)")
    if not (run_dir / "best.pt").is_file():
        raise UserError(f"{run_dir}: best.pt is missing (the best weights so far, which the run ends with); the run "
                        "cannot be finished without it")
    if config.get("task") != meta["task"]:
        raise UserError(f"{run_dir}: config.json and last.pt disagree on the task ({config.get('task')!r} vs "
                        f"{meta['task']!r}); the folder mixes two runs")
    if task_name is not None and meta["task"] != task_name:
        raise UserError(f"--resume {run_dir}: a {meta['task']} run, not a {task_name} one; continue it with "
                        f"rnnlab train {meta['task']} --resume {run_dir}")
    for key in ("task_config", "model_config", "train_config"):
        if not isinstance(config.get(key), dict):
            raise UserError(f"{config_path}: {key!r} is missing or not a JSON object")
    resumable = {f.name for f, opt in declared(TrainConfig) if opt.resume}
    diffs = (_differences(meta["task_config"], config["task_config"]) + _differences(meta["model_config"], config["model_config"])
             + _differences(meta.get("train_config", config["train_config"]), config["train_config"], skip=resumable))
    if diffs:
        raise UserError(f"{config_path} disagrees with last.pt ({'; '.join(diffs[:3])}{'; ...' if len(diffs) > 3 else ''} "
                        "for last.pt vs config.json); the run's options cannot change -- train a new run to change them")
    return config, ckpt, meta


def _check_weights(model, checkpoint: Path) -> None:
    """last.pt's weights fit the model config.json describes (else one line, not a traceback later)."""
    try:
        model.load_state_dict(load_checkpoint(checkpoint)["model"])
    except (RuntimeError, ValueError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{checkpoint}: the weights do not fit the model config.json describes ({first[:150]})") from None


def resume_training(run_dir: str | Path, epochs: int | None = None, device: str | None = None, log=print,
                    task: str | None = None, **train_changes) -> Path:
    """Continue an interrupted run from its last checkpoint. Only the training options declared as
    changeable on resume (``resume=True``: --epochs, --max-time, --patience, --device, --progress, ...)
    may change; the task, model and data options are the run's own, and so are the data files (their
    fingerprint is checked). With ``task``, a run of another task is refused. Rank 0 holds the
    folder's ``RunLock`` until the report is written."""
    from .tasks import get_task

    run_dir = Path(run_dir)
    changes = resume_changes({**train_changes, **{k: v for k, v in (("epochs", epochs), ("device", device))
                                                   if v is not None}})
    if (run_dir / REPEATS_FILE).is_file():
        raise UserError(f"--resume {run_dir}: a --folds/--seeds folder of several runs; resume it with rnnlab train "
                        "--resume (rnnlab.repeats.resume_job), or one of its runs with this")
    dist = distributed.setup()
    log = log if dist.is_main else _quiet
    held: dict[str, Any] = {}

    def read_run() -> tuple[dict, dict]:  # rank 0 locks and reads; every rank gets the config and the meta
        if not run_dir.is_dir():
            raise UserError(f"--resume {run_dir}: " + ("a file, not a run folder" if run_dir.exists()
                                                       else "no such run folder"))
        lock = RunLock(run_dir, log=log, hint="wait for it to finish")
        lock.acquire()
        try:
            config, _, meta = _read_run(run_dir, task)
        except BaseException:
            lock.release()
            raise
        held["lock"] = lock
        return config, meta

    config, meta = dist.on_main(read_run)
    try:
        task_cls = get_task(config["task"])
        where = str(run_dir / "config.json")
        try:
            task_cfg = task_cls.config_cls.from_dict(config["task_config"], where)
            model_cfg = task_cls.model_config_cls.from_dict(config["model_config"], where)
            train_cfg = replace(TrainConfig.from_dict(config["train_config"], where), **changes)
        except (TypeError, ValueError) as e:
            raise UserError(f"{where}: {e}" if where not in str(e) else str(e)) from None
        loaded = task_cls(task_cfg, seed=train_cfg.seed, state=meta["task_state"])
        fingerprint = dist.on_main(check_data, loaded, meta, run_dir, log)
        model = loaded.build_model(model_cfg, fresh=False)  # the weights come from last.pt
        dist.on_main(_check_weights, model, run_dir / "last.pt")
        if changes and dist.is_main:
            config["train_config"] = asdict(train_cfg)
            write_json(run_dir / "config.json", config)
        return _train_and_report(loaded, model, model_cfg, train_cfg, run_dir, fingerprint, resume=True, log=log)
    finally:
        if held:
            held["lock"].release()


def resume_changes(changes: dict) -> dict:
    """The training options a resume changes, refused unless declared changeable (``resume=True``)."""
    allowed = {f.name for f, opt in declared(TrainConfig) if opt.resume}
    fixed = sorted(set(changes) - allowed)
    if fixed:
        raise UserError(f"{', '.join('--' + k.replace('_', '-') for k in fixed)}: cannot change when resuming "
                        f"(only {', '.join('--' + k.replace('_', '-') for k in sorted(allowed))} can)")
    if "device" in changes:
        from .device import resolve_device

        resolve_device(changes["device"])
    return changes


def check_data(task, meta: dict, run_dir: Path, log=print) -> dict:
    """The task's data fingerprint, checked against the one the run recorded: changed data is an
    error that says which files differ (a run made before fingerprints were recorded is noted)."""
    from .tasks.base import fingerprint_changes

    now = task.data_fingerprint()
    recorded = meta.get("data_fingerprint")
    if recorded is None:
        log(f"{run_dir}: no data fingerprint recorded (an older run): the data cannot be checked")
        return now
    if not isinstance(recorded, dict):
        raise UserError(f"{run_dir}: damaged checkpoint (its data fingerprint is not a JSON object)")
    changes = fingerprint_changes(recorded, now)
    if changes:
        raise UserError(f"{run_dir}: the data changed since this run began ({', '.join(changes)}); restore it, "
                        "or train a new run on the new data")
    return recorded


def _train_and_report(task, model, model_cfg, train_cfg, run_dir: Path, fingerprint: dict, resume: bool, log) -> Path:
    from .runreport import render_run_report

    dist = distributed.current()
    device = dist.device(train_cfg.device)  # on CUDA with several processes: this rank's own GPU
    meta: dict[str, Any] = {"task": task.name, "task_config": asdict(task.cfg), "model_config": asdict(model_cfg),
                            "task_state": task.state(), "data_fingerprint": fingerprint}
    plan = None
    try:
        with dist.guard("while training", run_dir):
            if train_cfg.pretrain == "lm":  # ULMFiT: the encoder learns the texts first, then fine-tunes
                meta["pretrain"] = pretrain(task, model, train_cfg, run_dir, device, meta, log)
                plan = FineTuning(model, train_cfg.lr)
            train_summary = fit(task, model, train_cfg, run_dir, device, meta, resume=resume, log=log, plan=plan)
    except KeyboardInterrupt:
        if (run_dir / "last.pt").is_file():
            log(f"interrupted: continue with  rnnlab train {task.name} --resume {run_dir}")
        raise
    if not dist.is_main:  # rank 0 alone tests and reports
        return run_dir
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


def _quiet(*args, **kwargs) -> None:
    """The log of every rank but 0: rank 0 alone prints."""


def _torch_version() -> str:
    import torch

    return torch.__version__


__all__ = ["configs_from_options", "default_configs", "run_training", "resume_training", "resume_changes", "check_data"]
