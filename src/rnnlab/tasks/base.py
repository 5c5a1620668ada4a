"""The task contract: what a task provides, and who uses each part.

A task is one lab experiment (names -> language, Tang poems, sentiment). Everything else in rnnlab
-- the training loop, the experiment runner, the reports, ``load_run`` and its verbs, the command
line and the web app -- talks to a task only through the members below. To add a task, write
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
check_options(task_cfg,  optional: the command line, the Python API and the runner, before any data is
  model_cfg, given)      read -- options the chosen values make meaningless (``given``: the names set
                         explicitly) or that contradict each other across the two configs; raise
                         ValueError naming the flag (default: nothing to check)
monitor, monitor_mode  the loop: early stopping and best.pt follow ``val_<monitor>``
__init__(cfg, seed,    the experiment runner (fresh runs: ``state`` None) and resume/evaluate
  state)               (``state`` from the checkpoint fixes the vocabulary and labels)
data_report            a dict written to summary.json; ``data_line()`` says it in one line
model_config(cfg)      fills in what the data decides (vocabulary size, classes)
build_model(cfg,       the model to train, with what training needs besides weights (e.g. loss weights);
  fresh)                 ``fresh``: also initialise from the data (word vectors), not when resuming
rebuild_model(cfg)     the same architecture from its config alone, to load a checkpoint into
state()                what a checkpoint needs besides weights (vocabulary, labels, ...): JSON-able
data_fingerprint()     optional: what identifies the data read (JSON-able), stored in config.json and
                         every checkpoint; a resume (and ``evaluate``) refuses data that no longer
                         matches, saying which file was added, removed or changed. Default: every file
                         of ``self.data_files`` (else the path in ``data_report["data"]``) by name
                         relative to the data path, with its size and SHA-256 (about 20 ms for the
                         7 MB bundled poems)
num_batches, batches,  the loop (see rnnlab.train.LoopTask): batches are dicts of tensors passed as
  evaluate               ``logits, loss = model(**batch)``; ``evaluate`` returns metrics with "loss"
loss_weight(batch)     the loop on several processes (rnnlab.distributed): what the model's loss
                       averages over in ``batch`` -- items (default), the class weights' sum with class
                       weights, real target tokens for a language model. Each rank's loss is scaled by
                       its share, so that the averaged gradient equals the single-process one.
final_report(model,    the test-set figures after training (summary.json "test"), and ``evaluate``;
  device)                ``report_options``: the options it takes (flags of ``rnnlab evaluate``), and
                         ``report_lines(test)`` what ``evaluate`` prints under the headline
headline(test)         one line of those figures for the terminal
baseline(),            the classical baseline on the same split, and the model against it (every
  versus_baseline()      run shows both, unless --no-baseline)
report_section(test),  the task's part of report.html (HTML) and its plots, so reports never probe
  report_figures         keys
compare_columns(test)  the task's columns in ``rnnlab compare``'s table
predictor_cls          ``load_run(...).predict/generate/...``: built as
                       ``predictor_cls(model, model_cfg, task_cfg, state, device)``; its ``verbs``
                       (rnnlab.verbs) declare what it does, with input and options, once for the
                       command line (``rnnlab VERB``), the Python API, the web API and the page
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
    # The server's CPU priority for this task's computations (a nice value, 0-19): long ones (a poem
    # decoded character by character) yield the cores to the short ones (a name, a review) under load.
    serve_nice: ClassVar[int] = 0

    cfg: Any
    data_report: dict

    def __init__(self, cfg, seed: int, state: dict | None = None) -> None:
        raise NotImplementedError

    @classmethod
    def check_options(cls, task_cfg, model_cfg, given: set[str] = frozenset()) -> None:
        """Raise ValueError (naming the flag) for options that the chosen values do not use or that
        contradict each other across the task and model configs. Runs before any data is read."""

    # --- the data ------------------------------------------------------------------------------
    def data_fingerprint(self) -> dict:
        """What identifies the data this task read: ``{"files": {name: {"bytes", "sha256"}}}``."""
        from pathlib import Path

        where = self.data_report.get("data")
        files = getattr(self, "data_files", None)
        if not where and files is None:
            return {}
        root = Path(where) if where else Path(files[0]).parent
        if files is None:
            files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        return fingerprint_files([Path(f) for f in files], root if root.is_dir() else root.parent)

    # --- the model ---------------------------------------------------------------------------
    def model_config(self, model_cfg):
        return model_cfg

    def build_model(self, model_cfg, fresh: bool = True):
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

    def loss_weight(self, batch: dict) -> float:
        """What the model's loss is a mean over in ``batch``: by default its items (rows). A task whose
        loss averages over something else (tokens, weighted items) says so here; only the loop on
        several processes asks."""
        from ..train import batch_rows

        return float(batch_rows(batch))

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

    # Options of ``final_report`` beyond the model and device (an Options class), given to ``rnnlab
    # evaluate`` as flags and to ``Run.evaluate`` by name; None: it takes none.
    report_options: ClassVar[type | None] = None

    @staticmethod
    def report_lines(test: dict) -> list[str]:
        """What ``rnnlab evaluate`` prints under the headline."""
        return []

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


def fingerprint_files(files: list, root) -> dict:
    """``{"files": {name: {"bytes": n, "sha256": hex}}}`` with names relative to ``root`` (the data
    folder), so that the same data found elsewhere (another checkout, another machine) matches."""
    import hashlib
    import os

    from ..errors import UserError

    out = {}
    for f in files:
        digest = hashlib.sha256()
        try:
            with open(f, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            size = os.stat(f).st_size
        except OSError as e:
            raise UserError(f"{f}: cannot read ({e.strerror})") from None
        out[os.path.relpath(f, root).replace(os.sep, "/")] = {"bytes": size, "sha256": digest.hexdigest()}
    return {"files": out}


def fingerprint_changes(recorded: dict, now: dict, limit: int = 3) -> list[str]:
    """What differs between two data fingerprints, in words: files added, removed or changed."""
    a, b = recorded.get("files", {}), now.get("files", {})
    changes = [f"{name} removed" for name in sorted(set(a) - set(b))]
    changes += [f"{name} added" for name in sorted(set(b) - set(a))]
    for name in sorted(set(a) & set(b)):
        if a[name] != b[name]:
            was, now_bytes = a[name].get("bytes"), b[name].get("bytes")
            size = (f"{was:,} -> {now_bytes:,} bytes" if isinstance(was, int) and isinstance(now_bytes, int)
                    and was != now_bytes else "same size, other bytes")
            changes.append(f"{name} changed ({size})")
    if len(changes) > limit:
        changes = changes[:limit] + [f"{len(changes) - limit} more"]
    return changes
