"""Repeated runs of a classification task, to read a difference against its noise: K-fold
cross-validation (``--folds K``) or the same run with N seeds (``--seeds N``: seed, seed+1, ...,
so other splits and other initial weights).

Each member is an ordinary run (``run_training``: the same loop, test report and classical baseline)
in a folder of its own under the parent run folder -- ``fold-1`` ... ``fold-K`` or ``seed-S`` ... --
so ``load_run``, ``evaluate``, ``serve`` and ``--resume`` work on each. A member of ``--folds K`` has
``folds=K, fold=k`` in its config (its split is the k-th fold's); a member of ``--seeds`` is an
ordinary run (``seeds=1``) with its own seed. The parent folder holds::

    repeats.json    the plan: task, kind (folds | seeds), members, and the three configs
    summary.json    mean and sample standard deviation (n-1) of every test figure of the model and
                    of the baseline over the members, each member's figures, and in how many members
                    the model beat the baseline
    report.html     the same as a table, with links to each member's report

``--resume PARENT`` finishes what is missing: a member with a summary.json is kept, one with a
last.pt is resumed, any other is trained afresh; then the summary is written again. The members run
one after another in one process: several processes (``--nproc``, torchrun) are refused.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ._version import __version__
from .errors import UserError
from .runs import REPEATS_FILE, RunLock, read_json, write_json


def run_job(task_name: str, task_cfg, model_cfg, train_cfg, out: str | Path | None = None,
            runs_root: str | Path = "runs", log=print) -> Path:
    """What ``rnnlab train`` and ``rnnlab.train_task`` run: one run (``run_training``), or with
    ``--folds`` / ``--seeds`` the member runs and their summary (``run_repeats``)."""
    from .experiment import run_training

    run = run_repeats if getattr(task_cfg, "repeats", 0) else run_training
    return run(task_name, task_cfg, model_cfg, train_cfg, out=out, runs_root=runs_root, log=log)


def resume_job(run_dir: str | Path, task: str | None = None, log=print, **train_changes) -> Path:
    """What ``rnnlab train --resume`` runs: ``resume_training`` for a run folder, ``resume_repeats``
    for a --folds / --seeds folder."""
    from .experiment import resume_training

    if (Path(run_dir) / REPEATS_FILE).is_file():
        return resume_repeats(run_dir, task=task, log=log, **train_changes)
    return resume_training(run_dir, task=task, log=log, **train_changes)


def members(task_cfg, train_cfg) -> list[tuple[str, Any, Any]]:
    """(folder name, task config, training config) of each member run that the options ask for."""
    if task_cfg.folds:
        return [(f"fold-{k}", replace(task_cfg, fold=k), train_cfg) for k in range(1, task_cfg.folds + 1)]
    return [(f"seed-{train_cfg.seed + j}", replace(task_cfg, seeds=1), replace(train_cfg, seed=train_cfg.seed + j))
            for j in range(task_cfg.seeds)]


def _kind(task_cfg) -> str:
    return "folds" if task_cfg.folds else "seeds"


def _refuse_several_processes() -> None:
    from .distributed import Dist

    if Dist.from_env().enabled:
        raise UserError("--folds/--seeds: the member runs train one after another in one process; drop --nproc "
                        "(or torchrun)")


def run_repeats(task_name: str, task_cfg, model_cfg, train_cfg, out: str | Path | None = None,
                runs_root: str | Path = "runs", log=print) -> Path:
    """Train every member run of ``--folds`` / ``--seeds`` into ``out`` (made like a run folder) and
    summarise them; returns the parent folder."""
    from .files import folder_for_writing, remove_if_empty
    from .runs import new_run_dir, refuse_run_in

    _refuse_several_processes()
    if train_cfg.seed + task_cfg.seeds - 1 > 2**32 - 1:
        raise UserError(f"--seed {train_cfg.seed} and --seeds {task_cfg.seeds}: the last seed would pass {2**32 - 1}")
    parent, created = (Path(out), folder_for_writing(Path(out))) if out else (
        new_run_dir(runs_root, task_name, model_cfg.cell, _kind(task_cfg)), True)
    runs = members(task_cfg, train_cfg)
    lock, wrote, undo = RunLock(parent, log=log), False, False
    try:
        lock.acquire()
        if out:
            refuse_run_in(parent)
            if (parent / REPEATS_FILE).is_file() or (parent / "config.json").is_file():
                raise UserError(f"{parent} already holds a run; use --resume {parent} to continue it, or choose "
                                "another --out")
        write_json(parent / REPEATS_FILE, {
            "task": task_name, "kind": _kind(task_cfg), "job": uuid.uuid4().hex,
            "members": [name for name, _, _ in runs],
            "task_config": asdict(task_cfg), "model_config": asdict(model_cfg), "train_config": asdict(train_cfg),
            "rnnlab_version": __version__, "created": time.strftime("%Y-%m-%d %H:%M:%S")})
        wrote = True
        return _run_members(parent, read_json(parent / REPEATS_FILE, dict), runs, model_cfg, {}, log)
    except BaseException:
        # Failed before any member began (bad data): leave no trace, as a single run does.
        undo = wrote and not any((parent / name).exists() for name, _, _ in runs)
        if undo:
            (parent / REPEATS_FILE).unlink(missing_ok=True)
        raise
    finally:
        lock.release()
        if undo and created:
            remove_if_empty(parent)


def resume_repeats(parent: Path, task: str | None = None, log=print, **train_changes) -> Path:
    """Finish a ``--folds`` / ``--seeds`` run: keep the finished members, resume the interrupted ones,
    train those not begun; then summarise. Only the options a resume may change can change."""
    from .experiment import resume_changes
    from .tasks import get_task
    from .train import TrainConfig

    train_changes = resume_changes(train_changes)
    _refuse_several_processes()
    parent = Path(parent)
    with RunLock(parent, log=log, hint="wait for it to finish"):
        plan = read_json(parent / REPEATS_FILE, dict)
        where = str(parent / REPEATS_FILE)
        try:
            task_cls = get_task(plan["task"])
            task_cfg = task_cls.config_cls.from_dict(plan["task_config"], where)
            model_cfg = task_cls.model_config_cls.from_dict(plan["model_config"], where)
            train_cfg = replace(TrainConfig.from_dict(plan["train_config"], where), **train_changes)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(str(e) if where in str(e) else f"{where}: damaged ({type(e).__name__}: {e})") from None
        if task is not None and plan["task"] != task:
            raise UserError(f"--resume {parent}: a {plan['task']} run, not a {task} one; continue it with "
                            f"rnnlab train {plan['task']} --resume {parent}")
        runs = members(task_cfg, train_cfg)
        if [name for name, _, _ in runs] != plan.get("members"):
            raise UserError(f"{where}: its members {plan.get('members')} are not those its configs describe")
        return _run_members(parent, plan, runs, model_cfg, train_changes, log)


def _run_members(parent: Path, plan: dict, runs: list, model_cfg, changes: dict, log) -> Path:
    """Train (or finish) each member in turn, then write the summary and the report. A member folder
    already there must be this job's (``check_member``): checked for all before any trains."""
    from .experiment import resume_training, run_training
    from .runreport import render_repeats_report, summary_lines

    task_name = plan["task"]
    for i, (name, task_cfg, _) in enumerate(runs, 1):
        check_member(parent, plan, name, i, task_cfg)
    for i, (name, task_cfg, train_cfg) in enumerate(runs, 1):
        folder = parent / name
        if (folder / "summary.json").is_file():
            log(f"== {name} ({i} of {len(runs)}): finished already ==")
            continue
        log(f"== {name} ({i} of {len(runs)}) ==")
        if (folder / "last.pt").is_file():
            resume_training(folder, task=task_name, log=log, **changes)
        else:
            run_training(task_name, task_cfg, model_cfg, train_cfg, out=folder, log=log,
                         member_of=member_identity(plan, name, i))
    summary = summarise(parent, [name for name, _, _ in runs])
    write_json(parent / "summary.json", summary)
    for line in summary_lines(summary):
        log(line)
    log(f"report: {render_repeats_report(parent)}")
    return parent


def member_identity(plan: dict, name: str, index: int) -> dict:
    """What a member's config.json records of its parent: the job id of repeats.json, the kind, its
    name and its index (fold k or the k-th seed)."""
    return {"job": plan.get("job"), "kind": plan.get("kind"), "name": name, "index": index}


def _json_form(value):
    return json.loads(json.dumps(value))


def check_member(parent: Path, plan: dict, name: str, index: int, task_cfg=None) -> dict | None:
    """The config of member ``name`` of a --folds/--seeds run, checked to belong to it: the same task,
    the parent's job id, name and index (runs made before job ids: the same data options), and the
    data options of that member. None when the member has not begun (no folder, or one without a
    run); else a one-line error naming the folder -- a run of another job or task moved in is never
    resumed nor averaged into the summary."""
    folder = parent / name
    if folder.is_symlink():
        raise UserError(f"{folder}: a link, not a member folder of {parent}; a member is written in place")
    if not any((folder / f).exists() for f in ("config.json", "summary.json", "last.pt", "best.pt")):
        return None
    config = read_json(folder / "config.json", dict)
    hint = f"move it out of {parent} and --resume again to train {name} afresh"
    if config.get("task") != plan.get("task"):
        raise UserError(f"{folder}: a {config.get('task')} run, not {name} of this {plan.get('task')} run; {hint}")
    if plan.get("job") and config.get("member_of") != member_identity(plan, name, index):
        got = config.get("member_of")
        said = (f"it says it is {got.get('name')} of job {str(got.get('job'))[:12]}" if isinstance(got, dict)
                else "it records no parent")
        raise UserError(f"{folder}: not {name} of {parent} (job {str(plan['job'])[:12]}): {said}; {hint}")
    if task_cfg is not None and config.get("task_config") != _json_form(asdict(task_cfg)):
        mine, theirs = _json_form(asdict(task_cfg)), config.get("task_config")
        keys = sorted(k for k in mine if not isinstance(theirs, dict) or theirs.get(k) != mine[k])[:4]
        raise UserError(f"{folder}: its data options differ from {name}'s of {parent} "
                        f"({', '.join(keys) or 'all'}); {hint}")
    return config


def mean_std(values: list[float]) -> dict:
    """Mean and sample standard deviation (n-1; 0 for one value) of a figure over the members."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": std, "values": values}


def _figures(tests: list[dict]) -> dict[str, dict]:
    """Every number that all the members' test dicts hold -> its mean_std."""
    keys = [k for k, v in tests[0].items() if isinstance(v, float)]
    return {k: mean_std([float(t[k]) for t in tests]) for k in keys
            if all(isinstance(t.get(k), (int, float)) and not isinstance(t.get(k), bool) for t in tests)}


def summarise(parent: Path, names: list[str]) -> dict:
    """The parent's summary.json from its members' summary.json files."""
    plan = read_json(parent / REPEATS_FILE, dict)
    configs = {}
    for i, name in enumerate(names, 1):
        configs[name] = check_member(parent, plan, name, i)
        if configs[name] is None:
            raise UserError(f"{parent / name}: not trained yet; rnnlab train {plan.get('task')} --resume {parent}")
    prints = {name: json.dumps(c.get("data_fingerprint"), sort_keys=True) for name, c in configs.items()}
    if len(set(prints.values())) > 1:
        first = names[0]
        other = next(n for n in names if prints[n] != prints[first])
        raise UserError(f"{parent / other}: trained on other data than {first} (their data fingerprints differ); "
                        "the members of one run share their data")
    summaries = {name: read_json(parent / name / "summary.json", dict) for name in names}
    try:
        out: dict = {"task": plan["task"], "kind": plan["kind"], "runs": len(names), "members": names,
                     "model": _figures([s["test"] for s in summaries.values()])}
        if all(s.get("baseline") for s in summaries.values()):
            out["baseline_name"] = next(iter(summaries.values()))["baseline"]["name"]
            out["baseline"] = _figures([s["baseline"]["test"] for s in summaries.values()])
        if all(s.get("versus") for s in summaries.values()):
            versus = [s["versus"] for s in summaries.values()]
            out["versus"] = {"metric": versus[0]["metric"],
                             "difference": mean_std([float(v["difference"]) for v in versus]),
                             "model_better": sum(v["difference"] > 0 for v in versus),
                             "model_better_outside_noise": sum(v["difference"] > 0 and not v["within_noise"]
                                                               for v in versus)}
        out["train_time"] = mean_std([float(s["train"]["train_time"]) for s in summaries.values()])
        out["per_run"] = {name: {"test": {k: v for k, v in s["test"].items() if isinstance(v, float)},
                                 "baseline": s.get("baseline", {}).get("test", {}),
                                 "difference": s.get("versus", {}).get("difference"),
                                 "data": {k: v for k, v in s.get("data", {}).items() if k.endswith("_items")}}
                          for name, s in summaries.items()}
    except (KeyError, TypeError, IndexError, AttributeError) as e:
        raise UserError(f"{parent}: a member's summary.json is damaged ({type(e).__name__}: {e})") from None
    return out


__all__ = ["run_job", "resume_job", "members", "run_repeats", "resume_repeats", "summarise", "mean_std",
           "check_member", "member_identity"]
