"""The Python API: load a trained run (or a bundled model) and use it; train a task from options.

    import rnnlab
    run = rnnlab.load_run("names")                 # a bundled model, a run folder, or a model folder
    run.predict(["Satoshi", "Jackson"])            # names, sentiment; poems: perplexity and next chars
    run.trace("Satoshi")                           # names: the answer and the gates, character by character
    poems = rnnlab.load_run("poems").generate(begin="山", form="7x4", n=2)
    run.verbs                                      # what a model can do: its task's verbs (rnnlab.verbs)
    folder = rnnlab.train_task("names", hidden=64, epochs=3)   # options by their config field names

A run is what ``rnnlab train`` writes (``best.pt`` with the model config, vocabulary and labels);
a *bundled model* (``models/<name>/``) is the same thing exported for shipping: ``model.safetensors``
(float16 weights, no pickle) and ``run.json`` (task, configs, vocabulary, recorded test figures).
Both rebuild their model in one line: ``Task.rebuild_model(ModelConfig(**meta["model_config"]))``.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .errors import UserError
from .files import models_dir
from .runs import REPEATS_FILE, check_run_meta, find_checkpoint, load_checkpoint, read_json, write_json

MODEL_FORMAT = "rnnlab-model-1"
WEIGHTS_FILE, META_FILE, CURVES_FILE = "model.safetensors", "run.json", "metrics.jsonl"


def bundled_models() -> list[str]:
    """Names of the bundled models that are present."""
    root = models_dir()
    return sorted(p.name for p in root.iterdir() if (p / META_FILE).is_file()) if root.is_dir() else []


def resolve(spec: str | Path) -> Path:
    """A run folder, a model folder, or the name of a bundled model -> its folder."""
    if isinstance(spec, str) and not spec.strip():
        raise UserError("--run: empty; give a run folder, a model folder or a bundled model's name")
    path = Path(spec)
    if path.is_dir():
        return path
    if isinstance(spec, str) and spec and "/" not in spec and os.sep not in spec and (models_dir() / spec).is_dir():
        return models_dir() / spec
    known = ", ".join(bundled_models()) or "none present"
    raise UserError(f"{spec}: no such run folder, and not a bundled model ({known})")


class Run:
    """A trained model with its task, configs, vocabulary and the task's verbs."""

    def __init__(self, path: Path, meta: dict, weights: dict | None, device, weights_file: Path | None = None) -> None:
        import torch

        from .tasks import get_task

        self.path, self.meta = Path(path), meta
        self.name = self.path.name
        self.task = meta["task"]
        self.task_cls = get_task(self.task)
        where = str(self.path)
        try:
            self.task_config = self.task_cls.config_cls.from_dict(meta["task_config"], where)
            self.model_config = self.task_cls.model_config_cls.from_dict(meta["model_config"], where)
        except (TypeError, ValueError) as e:
            raise UserError(f"{where}: {e}" if where not in str(e) else str(e)) from None
        self.state = meta["task_state"]
        self.device = torch.device(device) if isinstance(device, str) else device
        self.model = self.task_cls.rebuild_model(self.model_config)
        try:
            if weights_file is not None:
                from safetensors.torch import load_model

                load_model(self.model, str(weights_file))
            else:
                self.model.load_state_dict(weights)
        except Exception as e:  # RuntimeError, OSError, safetensors' SafetensorError ...: a damaged weights file
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise UserError(f"{weights_file or self.path}: damaged weights, or weights that do not fit the model its "
                            f"config describes ({first[:150]})") from None
        self.model.to(self.device).eval()
        try:
            self.predictor = self.task_cls.predictor_cls(self.model, self.model_config, self.task_config, self.state,
                                                         self.device)
        except (KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{where}: damaged task state ({type(e).__name__}: {e})") from None

    @property
    def labels(self) -> list[str] | None:
        return self.state.get("labels")

    @property
    def vocab(self):
        return self.predictor.vocab

    @property
    def train_config(self):
        from .train import TrainConfig

        return TrainConfig.from_dict(self.meta.get("train_config", {}), str(self.path))

    def info(self) -> dict:
        from .models import count_parameters

        return {"name": self.name, "task": self.task, "path": str(self.path), "cell": self.model_config.cell,
                "backend": self.model_config.backend, "parameters": count_parameters(self.model),
                "model_config": asdict(self.model_config), "test": self.meta.get("test", {})}

    # --- the task's verbs (declared by its predictor: rnnlab.verbs) ---------------------------------
    @property
    def verbs(self) -> dict:
        """What this model can do: verb name -> its declaration (input, options, help)."""
        from .verbs import verbs_of

        return verbs_of(self.task_cls)

    def call(self, verb: str, value=None, **options):
        """``verb`` on ``value`` (its input, if it takes one) with ``options`` by field name, checked
        as on the command line and the web API: ``run.call("predict", ["Satoshi"], top=3)``."""
        from .verbs import call, find_verb

        return call(self.predictor, find_verb(self.task_cls, verb), value, options)

    def __getattr__(self, name: str):
        """``run.predict(texts, top=3)``, ``run.trace(name)``, ``run.generate(form="5x4")`` ...: every verb
        of the run's task is a method."""
        if name.startswith("_") or "predictor" not in self.__dict__:
            raise AttributeError(name)
        if name not in self.verbs:
            raise AttributeError(f"a {self.task} model has no {name!r} (its verbs: {', '.join(self.verbs)})")
        verb = self.verbs[name]

        def run_verb(*value, **options):
            if len(value) > (verb.input is not None):
                raise TypeError(f"{name}() takes {'one input' if verb.input else 'no input'} and options by name")
            return self.call(name, *value, **options)

        run_verb.__name__, run_verb.__doc__ = name, verb.help
        return run_verb

    def format(self, result: dict) -> str:
        return self.predictor.format(result)

    def evaluate(self, task_changes: dict | None = None, **report_options) -> dict:
        """The test-set figures, recomputed from the data the run was trained on (same split)."""
        from .experiment import check_data

        if report_options:  # checked against the task's declarations (rnnlab evaluate's flags)
            if self.task_cls.report_options is None:
                raise UserError(f"{', '.join(report_options)}: a {self.task} model's report takes no options")
            self.task_cls.report_options.from_dict(report_options, "evaluate")
        task_cfg = replace(self.task_config, **(task_changes or {}))
        task = self.task_cls(task_cfg, seed=self.train_config.seed, state=self.state)
        check_data(task, self.meta, self.path, log=lambda *a: None)  # other data: other test figures
        return task.final_report(self.model, self.device, **report_options)

    def export(self, to: str | Path, half: bool = True, test: dict | None = None, made_by: dict | None = None) -> Path:
        """Write this run as a bundled model folder: ``model.safetensors`` (float16 with ``half``),
        ``run.json`` (everything else, with the test figures measured on the exported weights) and the
        run's training curves ``metrics.jsonl``."""
        from safetensors.torch import save_model

        out = Path(to)
        out.mkdir(parents=True, exist_ok=True)
        model = copy.deepcopy(self.model).cpu()
        if half:
            model = model.half()
        save_model(model, str(out / WEIGHTS_FILE))
        meta = {"format": MODEL_FORMAT, **{k: self.meta[k] for k in ("task", "task_config", "model_config", "task_state")},
                **({"data_fingerprint": self.meta["data_fingerprint"]} if "data_fingerprint" in self.meta else {}),
                "train_config": self.meta.get("train_config", {}), "weights": "float16" if half else "float32",
                "test": test if test is not None else self.meta.get("test", {}), "made_by": made_by or {}}
        write_json(out / META_FILE, meta)
        curves, copy_ = self.path / CURVES_FILE, out / CURVES_FILE  # the training curves go with the model
        if curves.is_file() and curves.resolve() != copy_.resolve():
            shutil.copyfile(curves, copy_)
        elif not curves.is_file():
            copy_.unlink(missing_ok=True)  # an earlier export's curves are not this model's
        return out

    def record_test(self, test: dict) -> None:
        """Store the test figures of a bundled model in its run.json (what the tests re-check)."""
        if not (self.path / META_FILE).is_file():
            raise UserError(f"{self.path}: not a bundled model folder")
        self.meta["test"] = compact(test)
        write_json(self.path / META_FILE, self.meta)


def compact(report: dict) -> dict:
    """The numbers of a test report (and of its nested dicts of numbers), without examples and lists."""
    out = {}
    for k, v in report.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, dict)):
            continue
        if isinstance(v, dict):
            v = {kk: vv for kk, vv in v.items() if isinstance(vv, (int, float)) and not isinstance(vv, bool)}
            if not v:
                continue
        out[k] = v
    return out


def load_run(spec: str | Path, device: str = "cpu") -> Run:
    """A run folder (``best.pt``), a bundled model folder (``model.safetensors`` + ``run.json``) or the
    name of a bundled model -> a ``Run`` ready to predict."""
    from .device import resolve_device

    path = resolve(spec)
    device = resolve_device(device)
    if (path / META_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        meta = read_json(path / META_FILE)
        if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
            raise UserError(f"{path / META_FILE}: not an rnnlab model description")
        check_run_meta(meta, path / META_FILE)
        return Run(path, meta, None, device, weights_file=path / WEIGHTS_FILE)
    if (path / REPEATS_FILE).is_file() and not (path / "best.pt").is_file():
        first = next((p.name for p in sorted(path.iterdir()) if (p / "best.pt").is_file()), "fold-1")
        raise UserError(f"{path}: a --folds/--seeds run of several models; give one of its runs, e.g. {path / first}")
    checkpoint = find_checkpoint(path)
    ckpt = load_checkpoint(checkpoint, map_location="cpu")
    meta = check_run_meta(ckpt["meta"], checkpoint)
    if (path / "config.json").is_file():  # a checkpoint copied into another run's folder
        config = read_json(path / "config.json", dict)  # of another shape (a list): an error naming it
        if config.get("task") not in (None, meta["task"]):
            raise UserError(f"{path}: config.json is of a {config.get('task')} run but {checkpoint.name} holds a "
                            f"{meta['task']} model; the folder mixes two runs")
    if (path / "summary.json").is_file():
        summary = read_json(path / "summary.json", dict)
        test = summary.get("test", {})
        meta = {**meta, "test": test if isinstance(test, dict) else {}}
    return Run(path, meta, ckpt["model"], device)


def train_task(task: str, out: str | Path | None = None, log=print, **options: Any) -> Path:
    """Train ``task`` with options given by their config field names (``hidden=64, epochs=3, data=...``):
    each goes to the task, model or training config that declares it; an unknown name is an error.
    Returns the run folder. Paths may be given as ``pathlib.Path`` (``data=tmp / "names"``). With
    ``folds=K`` or ``seeds=N`` (names, sentiment) the folder holds one run per fold or seed and their
    mean ± std ``summary.json`` (rnnlab.repeats)."""
    from .experiment import configs_from_options
    from .repeats import run_job

    options = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
    task_cfg, model_cfg, train_cfg = configs_from_options(task, options)
    return run_job(task, task_cfg, model_cfg, train_cfg, out=out, log=log)
