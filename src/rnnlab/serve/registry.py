"""The models and runs a server answers with: the bundled models and the run folders under the
``runs_dirs`` given at start, by id (``Registry``), each loaded once, on first use, and again when its
checkpoint changes; and what the Runs tab lists of each, read from its files without loading it --
only the report files a run writes (``REPORT_FILES``), opened without following links."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import Response

from ..tasks import TASKS
from .errors import ApiError

log = logging.getLogger("rnnlab.serve")

BUNDLED_NAMES = ("names", "names-rnn", "names-gru", "poems", "sentiment")  # the default of each task comes first
MODEL_FILES = ("run.json", "config.json")  # a bundled model folder's description (or a run's config)
# Files of a run folder the page may read: the reports, plots and records a run (or a bundled model
# folder) writes under these names -- never checkpoints, never anything else planted in the folder.
REPORT_FILES = ("report.html", "loss.png", "accuracy.png", "perplexity.png", "confusion.png", "metrics.jsonl",
                "summary.json", "train_summary.json", "config.json", "model.txt", "run.json")
MAX_REPORT_FILE = 64 * 1024 * 1024  # bytes of one report file served (a run's are kilobytes)
MEDIA = {".html": "text/html; charset=utf-8", ".png": "image/png", ".json": "application/json",
         ".jsonl": "application/x-ndjson", ".txt": "text/plain; charset=utf-8"}
CHECKPOINT_SUFFIXES = (".pt", ".safetensors")


@dataclass
class Entry:
    id: str
    path: Path
    kind: str  # "bundled" | "run"
    task: str | None
    config: dict = field(default_factory=dict)


def bundled_models() -> list[tuple[str, Path]]:
    """(name, folder) of each bundled model present, the default of each task first."""
    import rnnlab

    try:
        from ..api import models_dir
    except ImportError:  # an rnnlab without the Python API: the checkout's models/ folder
        def models_dir() -> Path:
            return Path(rnnlab.__file__).resolve().parents[2] / "models"
    root = models_dir()
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and any((p / f).is_file() for f in MODEL_FILES)]
    order = {name: i for i, name in enumerate(BUNDLED_NAMES)}
    return [(p.name, p) for p in sorted(found, key=lambda p: (order.get(p.name, len(order)), p.name))]


def _read_plain(path: Path) -> bytes | None:
    """A run folder's file as the server reads it for the page: not through a link, a regular file
    with one link (else None, as if it were missing)."""
    fd = _open_plain(path.parent, path.name)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_REPORT_FILE + 1)


def _read_json(path: Path) -> dict:
    """A JSON object of a run folder (config.json, summary.json ...); {} for a file that is missing,
    planted as a link, damaged, nested too deeply or of another shape (a list): listed, never a 500."""
    raw = _read_plain(path)
    try:
        data = json.loads(raw.decode("utf-8")) if raw is not None else {}
        return data if isinstance(data, dict) else {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return {}


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows; a line being written (no newline yet, not valid JSON) is left out."""
    raw = _read_plain(path)
    try:
        text = raw.decode("utf-8") if raw is not None else ""
    except UnicodeDecodeError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _run_folders(root: Path) -> list[tuple[str, Path]]:
    """(id, folder) of every run under ``root``: ``root`` itself, its sub-folders, and the runs of a
    comparison folder (``compare.json`` beside one folder per cell, id ``<comparison>/<cell>``) or of a
    --folds/--seeds folder (``repeats.json`` beside fold-1 ..., id ``<folder>/fold-1``)."""
    if not root.is_dir():
        return []
    if (root / "config.json").is_file():
        return [(root.name, root)]
    out = []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []
    for child in children:
        if (child / "config.json").is_file():
            out.append((child.name, child))
        elif (child / "compare.json").is_file() or (child / "repeats.json").is_file():
            for sub in sorted(p for p in child.iterdir() if p.is_dir() and not p.is_symlink()):
                if (sub / "config.json").is_file():
                    out.append((f"{child.name}/{sub.name}", sub))
    return out


def _stamp(path: Path) -> float:
    """When the folder's checkpoints last changed (a run still training rewrites best.pt)."""
    try:
        return max((p.stat().st_mtime for p in path.iterdir() if p.suffix in (".pt", ".safetensors")), default=0.0)
    except OSError:
        return 0.0


class Registry:
    """Bundled models and run folders by id; each model loaded once, on first use."""

    def __init__(self, runs_dirs=(), bundled: bool = True, device: str = "cpu") -> None:
        self.runs_dirs = [Path(d) for d in runs_dirs]
        self.bundled = bundled
        self.device = device
        self._entries: dict[str, Entry] = {}
        self._configs: dict[Path, tuple[float, dict]] = {}
        self._loaded: dict[str, tuple[float, Path, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.scan()

    def _config(self, path: Path) -> dict:
        """config.json of a run, or run.json of a bundled model folder (cached while unchanged)."""
        f = next((path / n for n in ("config.json", "run.json") if (path / n).is_file()), path / "config.json")
        try:
            mtime = f.stat().st_mtime
        except OSError:
            return {}
        cached = self._configs.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        config = _read_json(f)
        self._configs[path] = (mtime, config)
        return config

    def scan(self) -> dict[str, Entry]:
        """Look at the folders again (runs appear and disappear while the server runs)."""
        entries: dict[str, Entry] = {}
        if self.bundled:
            for name, path in bundled_models():
                config = self._config(path)
                entries[name] = Entry(name, path, "bundled", config.get("task") or _task_of_name(name), config)
        for root in self.runs_dirs:
            for rid, path in _run_folders(root):
                config = self._config(path)
                if not isinstance(config.get("task"), str):
                    continue
                base, n = rid, 1
                while rid in entries:
                    n += 1
                    rid = f"{base}~{n}"
                entries[rid] = Entry(rid, path, "run", config["task"], config)
        with self._lock:
            self._entries = entries
            for gone in set(self._loaded) - set(entries):
                del self._loaded[gone]
        return entries

    def entry(self, run_id: str) -> Entry:
        e = self._entries.get(run_id)
        if e is None:
            e = self.scan().get(run_id)
        if e is None:
            known = ", ".join(list(self._entries)[:12]) or "none"
            raise ApiError(404, f"run {run_id!r}: no such model or run folder (known: {known})")
        if not e.path.is_dir():
            self.scan()
            raise ApiError(404, f"run {run_id!r}: its folder {e.path.name} no longer exists")
        return e

    def default(self, task: str) -> str:
        entries = self._entries if any(e.task == task for e in self._entries.values()) else self.scan()
        bundled = [e for e in entries.values() if e.kind == "bundled" and e.task == task]
        if bundled:
            return bundled[0].id
        runs = [e for e in entries.values() if e.task == task and _stamp(e.path)]
        if runs:  # the newest run of the task
            return max(runs, key=lambda e: (e.config.get("created", ""), e.id)).id
        raise ApiError(404, f"run: no {task} model here; start rnnlab serve with --runs DIR holding a {task} run")

    def get(self, run_id: str | None, task: str):
        """The loaded model of ``run_id`` (or the task's default), checked to be a ``task`` model."""
        rid = run_id or self.default(task)
        e = self.entry(rid)
        if e.task and e.task != task:
            raise ApiError(400, f"run {rid!r} is a {e.task} model; this route needs a {task} model")
        stamp = _stamp(e.path)
        with self._lock:
            lock = self._locks.setdefault(rid, threading.Lock())
        with lock:
            cached = self._loaded.get(rid)
            if cached and cached[0] == stamp and cached[1] == e.path:
                return rid, cached[2]
            run = self._load(e)
            if run.task != task:
                raise ApiError(400, f"run {rid!r} is a {run.task} model; this route needs a {task} model")
            with self._lock:
                self._loaded[rid] = (stamp, e.path, run)
            return rid, run

    def _load(self, e: Entry):
        import rnnlab

        started = time.perf_counter()
        check_checkpoints(e)
        try:
            run = rnnlab.load_run(str(e.path), device=self.device)
        except ValueError as err:
            if not e.path.is_dir():
                raise ApiError(404, f"run {e.id!r}: its folder {e.path.name} no longer exists") from None
            raise ApiError(409, f"run {e.id!r} cannot be loaded: {err}") from None
        log.info("loaded %s (%s) in %.2f s", e.id, run.task, time.perf_counter() - started)
        return run

    def loaded(self) -> list[str]:
        return list(self._loaded)


def _task_of_name(name: str) -> str | None:
    head = name.split("-")[0]
    return head if head in TASKS else None


# --- run listings -------------------------------------------------------------------------------
def _headline(summary: dict) -> dict:
    test = summary.get("test") if isinstance(summary.get("test"), dict) else {}
    out = {k: test[k] for k in ("accuracy", "macro_f1", "test_perplexity") if isinstance(test.get(k), (int, float))}
    if isinstance(summary.get("parameters"), int):
        out["parameters"] = summary["parameters"]
    return out


def _open_plain(folder: Path, name: str) -> int | None:
    """A descriptor of ``folder/name`` opened without following a link, if it is a regular file with
    one link (a hard link to a file elsewhere has two; path checks cannot tell it apart), else None."""
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), dir_fd=dfd)
    except OSError:  # missing, a symbolic link (ELOOP), unreadable
        return None
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > MAX_REPORT_FILE:
        os.close(fd)
        return None
    return fd


def read_report_file(folder: Path, name: str) -> bytes | None:
    """The bytes of a report file the run wrote (one of ``REPORT_FILES``, a plain file directly in
    its folder), else None."""
    if name not in REPORT_FILES:
        return None
    fd = _open_plain(folder, name)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_REPORT_FILE + 1)


def _report_files(folder: Path) -> list[str]:
    """The report files of a folder the server would serve (a planted link or hard link is left out)."""
    out = []
    for name in REPORT_FILES:
        try:
            st = os.lstat(folder / name)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
            out.append(name)
    return sorted(out)


def check_checkpoints(e: Entry) -> None:
    """Before loading: each checkpoint of the folder (best.pt, last.pt, model.safetensors) is a
    regular file we can read, not a link planted in its place; else a 409 naming the file."""
    try:
        names = [p.name for p in e.path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES]
    except OSError:
        return  # the load says what is wrong with the folder
    for name in names:
        try:
            st = os.lstat(e.path / name)
        except OSError:
            continue
        why = ("a link, not a checkpoint file (rnnlab writes plain files)" if stat.S_ISLNK(st.st_mode)
               else "not a regular file" if not stat.S_ISREG(st.st_mode)
               else "cannot be read (permission denied)" if not os.access(e.path / name, os.R_OK) else "")
        if why:
            raise ApiError(409, f"run {e.id!r} cannot be loaded: {name} is {why}")


def _describe(e: Entry) -> dict:
    """What the Runs tab lists for one model or run (from its files; nothing is loaded)."""
    model = e.config.get("model_config", {}) if isinstance(e.config.get("model_config"), dict) else {}
    metrics = e.path / "metrics.jsonl"
    rows = read_metrics(metrics) if metrics.is_file() else []
    summary = _read_json(e.path / "summary.json") if (e.path / "summary.json").is_file() else {}
    if not summary and isinstance(e.config.get("test"), dict):  # a bundled model records its test figures
        summary = {"test": e.config["test"]}
    try:
        updated = max(p.stat().st_mtime for p in e.path.iterdir())
    except (OSError, ValueError):
        updated = 0.0
    done = bool(summary) or e.kind == "bundled"
    files = _report_files(e.path)
    return {"id": e.id, "kind": e.kind, "task": e.task, "cell": model.get("cell"), "backend": model.get("backend"),
            "hidden": model.get("hidden"), "layers": model.get("layers"), "bidirectional": model.get("bidirectional"),
            "members": model.get("members"), "created": e.config.get("created"), "epochs": len(rows),
            "planned_epochs": (e.config.get("train_config") or {}).get("epochs"), "done": done,
            "training": not done and time.time() - updated < 600, "test": _headline(summary), "files": files}



def add_run_routes(app: FastAPI, registry: Registry) -> None:
    """``GET /api/runs``, ``/api/runs/{id}``, ``/api/runs/{id}/metrics`` and ``/api/runs/{id}/files/{name}``."""

    @app.get("/api/runs")
    async def runs():
        entries = await anyio.to_thread.run_sync(registry.scan)
        listed = await anyio.to_thread.run_sync(lambda: [_describe(e) for e in entries.values()])
        defaults = {}
        for task in TASKS:
            try:
                defaults[task] = registry.default(task)
            except ApiError:
                defaults[task] = None
        return {"runs": listed, "defaults": defaults}

    @app.get("/api/runs/{run_id:path}/metrics")
    async def run_metrics(run_id: str):
        e = registry.entry(run_id)
        rows = await anyio.to_thread.run_sync(read_metrics, e.path / "metrics.jsonl")
        info = await anyio.to_thread.run_sync(_describe, e)
        return {"run": e.id, "task": e.task, "rows": rows, "done": info["done"], "training": info["training"],
                "test": info["test"]}

    @app.get("/api/runs/{run_id:path}/files/{name}")
    async def run_file(run_id: str, name: str):
        e = registry.entry(run_id)
        if name not in REPORT_FILES:
            raise ApiError(404, f"file {name!r}: not a report file of run {e.id!r}")
        data = await anyio.to_thread.run_sync(read_report_file, e.path, name)
        if data is None:
            raise ApiError(404, f"file {name!r}: not in run {e.id!r}")
        return Response(data, media_type=MEDIA.get(Path(name).suffix, "application/octet-stream"))

    @app.get("/api/runs/{run_id:path}")
    async def run_info(run_id: str):
        e = registry.entry(run_id)
        info = await anyio.to_thread.run_sync(_describe, e)
        config = {k: v for k, v in e.config.items() if k != "task_state"}  # not the whole vocabulary
        return {**info, "config": config}
