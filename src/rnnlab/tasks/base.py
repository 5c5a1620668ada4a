"""The task contract: what a task provides, and who uses each part.

A task is one lab experiment (names -> language, Tang poems, sentiment). Everything else in rnnlab
-- the training loop, the experiment runner, the reports, ``load_run`` and its verbs, the command
line and the web app -- talks to a task only through the members below. To add a fifth task, write
one module with a subclass and decorate it with ``@register``::

    @register
    class DigitsTask(Task):
        name = "digits"
        config_cls = DigitsConfig            # the data options: a frozen dataclass of option() fields
        model_config_cls = ClassifierConfig  # the model options (reuse one, or declare your own)
        default_model = ClassifierConfig(hidden=32)
        default_train = TrainConfig(epochs=5)
        monitor, monitor_mode = "accuracy", "max"
        predictor_cls = DigitsPredictor

        def __init__(self, cfg, seed, state=None): ...   # read and split the data, build the vocabulary
        ...

``tests/test_contract.py`` is such a task in one file. Who uses what:

=====================  ===============================================================================
member                 used by
=====================  ===============================================================================
name, config_cls,      the command line (``rnnlab train NAME``; flags, --help and range checks are
model_config_cls,      derived from the option() declarations of the three configs), config.json, the
default_model,         Python API (``rnnlab.train``) and the web app
default_train
monitor, monitor_mode  the loop: early stopping and best.pt follow ``val_<monitor>``
__init__(cfg, seed,    the experiment runner (fresh runs: ``state`` None) and resume/evaluate
  state)               (``state`` from the checkpoint fixes the vocabulary and labels)
data_report            a dict written to summary.json; ``data_line()`` says it in one line
model_config(cfg)      fills in what the data decides (vocabulary size, classes)
build_model(cfg)       a fresh model to train (may use the data, e.g. word vectors)
rebuild_model(cfg)     the same architecture from its config alone, to load a checkpoint into
state()                what a checkpoint needs besides weights (vocabulary, labels, ...): JSON-able
num_batches, batches,  the loop (see rnnlab.train.LoopTask): batches are dicts of tensors passed as
  evaluate               ``logits, loss = model(**batch)``; ``evaluate`` returns metrics with "loss"
final_report(model,    the test-set figures after training (summary.json "test"), and ``evaluate``
  device)
headline(test)         one line of those figures for the terminal
baseline(),            the classical baseline on the same split, and the model against it (every
  versus_baseline()      run shows both, unless --no-baseline)
report_section(test),  the task's part of report.html (HTML) and its plots, so reports never probe
  report_figures         keys
compare_columns(test)  the task's columns in ``rnnlab compare``'s table
predictor_cls          ``load_run(...).predict/generate/...``: built as
                       ``predictor_cls(model, model_cfg, task_cfg, state, device)``
=====================  ===============================================================================

A model follows makemore's single interface ``logits, loss = model(**batch)`` (loss None without
targets). Errors about user input are ``ValueError`` (``rnnlab.errors.UserError`` is one); the
command line prints them as one line, the web app as a 4xx JSON error.
"""

from __future__ import annotations

import html
from typing import Any, ClassVar

TASKS: dict[str, type["Task"]] = {}


def register(cls: type["Task"]) -> type["Task"]:
    """Class decorator: make a task known to the command line, load_run and the web app by its name."""
    TASKS[cls.name] = cls
    return cls


class Task:
    """Base class of every task: the members every task provides (see the module docstring)."""

    name: ClassVar[str]
    config_cls: ClassVar[type]
    model_config_cls: ClassVar[type]
    default_model: ClassVar[Any]
    default_train: ClassVar[Any]
    predictor_cls: ClassVar[type]
    monitor: ClassVar[str] = "accuracy"
    monitor_mode: ClassVar[str] = "max"

    cfg: Any
    data_report: dict

    def __init__(self, cfg, seed: int, state: dict | None = None) -> None:
        raise NotImplementedError

    # --- the model ---------------------------------------------------------------------------
    def model_config(self, model_cfg):
        return model_cfg

    def build_model(self, model_cfg):
        return self.rebuild_model(model_cfg)

    @classmethod
    def rebuild_model(cls, model_cfg):
        raise NotImplementedError

    def state(self) -> dict:
        return {}

    # --- the loop ----------------------------------------------------------------------------
    def num_batches(self, split: str, batch_size: int) -> int:
        raise NotImplementedError

    def batches(self, split: str, batch_size: int, shuffle: bool, generator=None):
        raise NotImplementedError

    def evaluate(self, model, split: str, device) -> dict:
        raise NotImplementedError

    # --- after training ------------------------------------------------------------------------
    def final_report(self, model, device) -> dict:
        return {f"test_{k}": v for k, v in self.evaluate(model, "test", device).items()}

    def baseline(self) -> dict:
        """The task's classical baseline on this run's own split (trained on train, chosen on val,
        scored on test): ``{"name", "val": {...}, "test": {...}, "seconds"}``, or {} for none."""
        return {}

    def versus_baseline(self, test: dict, baseline: dict) -> dict:
        """The model's test figures against the baseline's: ``{"text": one line, ...numbers}``."""
        return {}

    def data_line(self) -> str:
        """The data report in one line: split sizes and what was dropped."""
        r = self.data_report
        counts = {"train": r.get("train_items_used", r.get("train_items", 0)), "val": r.get("val_items", 0),
                  "test": r.get("test_items", 0)}
        dropped = [f"{n} {reason}" for reason, n in r.get("dropped", {}).items()] or ["none"]
        return (f"data: {', '.join(f'{n} {split}' for split, n in counts.items())} ({r.get('protocol', '')} split); "
                f"dropped: {', '.join(dropped)}")

    @staticmethod
    def headline(test: dict) -> str:
        return ", ".join(f"{k} {v:.4f}" for k, v in test.items() if isinstance(v, float))

    @classmethod
    def report_section(cls, test: dict) -> str:
        rows = "".join(f"<tr><td class='l'>{html.escape(k)}</td><td>{v:.4f}</td></tr>"
                       for k, v in test.items() if isinstance(v, float))
        return f"<table>{rows}</table>"

    @staticmethod
    def report_figures(test: dict, run_dir) -> None:
        """Draw the task's own plots into ``run_dir`` (the report's curves are drawn for every task)."""

    @classmethod
    def compare_columns(cls, test: dict) -> dict[str, Any]:
        return {k: v for k, v in test.items() if isinstance(v, float)}
