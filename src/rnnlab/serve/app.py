"""The web app behind ``rnnlab serve``: a JSON API under ``/api`` and one page at ``/``.

Models come from a small registry: the bundled models (``names``, ``names-rnn``, ``names-gru``,
``poems``, ``sentiment``) and the run folders found under the ``runs_dirs`` given at start. Each is
loaded once, on first use (through :func:`rnnlab.load_run`), and again only when its checkpoint file
changes (a run that is still training). Requests name a model with ``"run"``: a bundled name or a
run folder's id as ``GET /api/runs`` lists it; without it a task's default model answers.

Inference runs in worker threads, one lane per task (at most ``workers`` requests of a task at
once, so that a name never waits behind a queue of poems), under ``torch.inference_mode()``, with
``threads`` torch threads each. Every bad input is a 4xx answer ``{"error": "one line"}`` naming
the field: 400 for values the model refuses and for bodies that are not JSON objects, 404 for an
unknown run or route, 405 for a wrong method, 409 for a run that cannot be loaded yet (no
checkpoint), 413 for a body over the size limit, 415 for a body sent as something other than JSON,
422 for a field outside its declared range or of the wrong type. A 500 is a bug: it is logged with its traceback and answered without it.

Files: the page's own files (``static/``) and, for each listed run, only its plain report files
(report.html, the plots, metrics, summary) -- looked up by name in the listing, never by joining a
request's path onto a folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, verbs
from ..tasks import TASKS
from .routes import add_task_routes
from .lab_routes import add_lab_routes

log = logging.getLogger("rnnlab.serve")

STATIC = Path(__file__).parent / "static"
BUNDLED_NAMES = ("names", "names-rnn", "names-gru", "poems", "sentiment")  # the default of each task comes first
MODEL_FILES = ("run.json", "config.json")  # a bundled model folder's description (or a run's config)
MAX_BODY = 2 * 1024 * 1024  # bytes of one request body
# Files of a run folder the page may read: plots, reports and the text records, never checkpoints.
RUN_FILE = re.compile(r"[A-Za-z0-9_.-]+\.(?:html|png|svg|json|jsonl|txt|md)")


# --- errors -------------------------------------------------------------------------------------
class ApiError(Exception):
    """An answer other than 200, with its one-line message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _api_names(message: str) -> str:
    """The command line's flags in a message (``--top-k``) as the API's field names (``top_k``)."""
    return re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), message)


def _where(loc) -> str:
    parts = [p for p in loc if p != "body"]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "body"


def _validation_message(errors: list[dict]) -> tuple[int, str]:
    """FastAPI's validation errors -> (status, one line naming the field)."""
    e = errors[0]
    kind, where, ctx = e.get("type", ""), _where(e.get("loc", ())), e.get("ctx") or {}
    value = e.get("input")
    if kind == "json_invalid":
        return 400, f"body: not valid JSON ({ctx.get('error', 'parse error')})"
    if where == "body" and kind in ("model_attributes_type", "dict_type", "model_type", "missing"):
        return 400, "body: expected a JSON object"
    if kind == "string_too_long":
        got = f" (got {len(value):,})" if isinstance(value, str) else ""
        n = ctx.get("max_length", 0)
        msg = f"{where}: at most {n:,} character{'s' if n != 1 else ''}{got}"
    elif kind == "string_too_short":
        msg = f"{where}: must not be empty"
    elif kind == "too_short":
        msg = f"{where}: give at least {ctx.get('min_length', 1)} item(s)"
    elif kind == "too_long" and isinstance(value, str):
        n = ctx.get("max_length", 0)
        msg = f"{where}: at most {n:,} character{'s' if n != 1 else ''} (got {len(value):,})"
    elif kind == "too_long":
        msg = f"{where}: at most {ctx.get('max_length', 0)} items (got {ctx.get('actual_length', '?')})"
    elif kind == "missing":
        msg = f"{where}: required"
    elif kind == "extra_forbidden":
        msg = f"{where}: unknown field"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        msg = f"{where}: {e.get('msg', '').lower().replace('input ', '')} (got {value!r})"
    else:
        m = str(e.get("msg", "invalid value"))
        m = m.removeprefix("Value error, ")
        msg = f"{where}: {m[:1].lower() + m[1:]}"
    more = len(errors) - 1
    return 422, _one_line(msg + (f" (and {more} more error{'s' if more > 1 else ''})" if more else ""))


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": _one_line(message)}, status_code=status)


# --- the registry of models ---------------------------------------------------------------------
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


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl rows; a line being written (no newline yet, not valid JSON) is left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
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
    try:
        files = sorted(p.name for p in e.path.iterdir() if p.is_file() and RUN_FILE.fullmatch(p.name))
    except OSError:
        files = []
    return {"id": e.id, "kind": e.kind, "task": e.task, "cell": model.get("cell"), "backend": model.get("backend"),
            "hidden": model.get("hidden"), "layers": model.get("layers"), "bidirectional": model.get("bidirectional"),
            "members": model.get("members"), "created": e.config.get("created"), "epochs": len(rows),
            "planned_epochs": (e.config.get("train_config") or {}).get("epochs"), "done": done,
            "training": not done and time.time() - updated < 600, "test": _headline(summary), "files": files}


# --- the app ------------------------------------------------------------------------------------
class Guard:
    """Before the app: refuse request bodies over ``limit`` bytes (413) before they are read into
    memory, and, with ``hosts``, requests whose Host header names another machine (400): a page on
    the internet that rebinds its own name to 127.0.0.1 cannot read this server."""

    def __init__(self, app, limit: int = MAX_BODY, hosts: tuple[str, ...] | None = None) -> None:
        self.app, self.limit = app, limit
        self.hosts = {h.lower() for h in hosts} if hosts else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.hosts is not None:
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.hosts:
                return await _error(400, f"Host header {host[:80]!r}: this server answers only "
                                         f"{', '.join(sorted(self.hosts))}")(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            message = (f"body: {int(length):,} bytes, over the limit of {self.limit:,}" if length.isdigit()
                       else "body: bad Content-Length header")
            return await _error(413 if length.isdigit() else 400, message)(scope, receive, send)
        if length is not None:  # the server reads no more than the declared length
            return await self.app(scope, receive, send)
        # No Content-Length (a chunked body): read it here, up to the limit, then hand it on.
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return None  # the client went away
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await _error(413, f"body: over the limit of {self.limit:,} bytes")(scope, receive, send)
            more = msg.get("more_body", False)
        body, handed = b"".join(chunks), False

        async def replay():
            nonlocal handed
            if not handed:
                handed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


def create_app(runs_dirs=(), bundled: bool = True, threads: int = 1, workers: int | None = None,
               device: str = "cpu", preload: bool = False, hosts: tuple[str, ...] | None = None) -> FastAPI:
    """The app. ``runs_dirs``: folders of run folders (or run folders) served beside the bundled
    models; ``threads``: torch threads per inference; ``workers``: inferences of a task at once
    (default: the CPU count); ``preload``: load and warm up the bundled models in the background at
    start; ``hosts``: the only Host names answered (``rnnlab serve`` on loopback: 127.0.0.1,
    localhost, ::1), None for any."""
    import torch

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    registry = Registry(runs_dirs, bundled=bundled, device=device)
    workers = max(1, workers or os.cpu_count() or 1)
    # One lane per task, each ``workers`` wide: a name typed on the page never waits behind a queue
    # of poems or long reviews (the cores are shared; the lanes only keep one task from starving another).
    lanes = {task: anyio.CapacityLimiter(workers) for task in TASKS}
    started = time.time()

    async def answer(task: str, run_id: str | None, fn):
        """``fn(run_id, run)`` in a worker thread of the task's lane, the model looked up (and loaded
        on first use) there too, under ``torch.inference_mode()``."""
        def call():
            rid, run = registry.get(run_id, task)
            with torch.inference_mode():
                return fn(rid, run)

        return await anyio.to_thread.run_sync(call, limiter=lanes[task])

    def warm_up() -> None:
        """Each bundled model answers its verbs' examples once, so that no user waits for the first call."""
        for e in list(registry.scan().values()):
            if e.kind != "bundled" or e.task not in TASKS:
                continue
            try:
                _, run = registry.get(e.id, e.task)
                with torch.inference_mode():
                    for verb in run.verbs.values():
                        if verb.example is not None:
                            verbs.warm_up(run.predictor, verb)
            except Exception:  # a model that fails here fails again, with its message, on request
                log.exception("warm-up of %s failed", e.id)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        if preload:
            threading.Thread(target=warm_up, name="rnnlab-preload", daemon=True).start()
        yield

    app = FastAPI(title="rnnlab", version=__version__, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.registry = registry

    # --- errors: one JSON line, never a traceback ------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        kind = request.headers.get("content-type", "")
        if kind and "json" not in kind.lower():
            return _error(415, f"body: send a JSON object with Content-Type: application/json, not {kind[:60]}")
        status, message = _validation_message(list(exc.errors()))
        return _error(status, message)

    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError):
        return _error(400, _api_names(str(exc)) or "bad input")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = {404: f"not found: {request.url.path}", 405: f"method {request.method} not allowed on {request.url.path}"}
        return _error(exc.status_code, message.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    # --- API ----------------------------------------------------------------------------------
    @app.get("/api/health")
    async def health():
        entries = registry._entries.values()
        return {"status": "ok", "version": __version__, "uptime_s": round(time.time() - started, 1),
                "models": [e.id for e in entries if e.kind == "bundled"],
                "runs": sum(1 for e in entries if e.kind == "run"), "loaded": registry.loaded(),
                "threads": torch.get_num_threads(), "workers": workers}

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
        if not RUN_FILE.fullmatch(name):
            raise ApiError(404, f"file {name!r}: not a report file of run {e.id!r}")
        # Only a plain file directly inside the run folder, found in its listing (no path is joined
        # from the request: '..', links and sub-folders never match).
        try:
            listing = {p.name: p for p in e.path.iterdir() if p.is_file() and not p.is_symlink()}
        except OSError:
            listing = {}
        path = listing.get(name)
        if path is None:
            raise ApiError(404, f"file {name!r}: not in run {e.id!r}")
        media = "application/x-ndjson" if name.endswith(".jsonl") else None
        return FileResponse(path, media_type=media)

    @app.get("/api/runs/{run_id:path}")
    async def run_info(run_id: str):
        e = registry.entry(run_id)
        info = await anyio.to_thread.run_sync(_describe, e)
        config = {k: v for k, v in e.config.items() if k != "task_state"}  # not the whole vocabulary
        return {**info, "config": config}

    add_task_routes(app, TASKS, answer)
    add_lab_routes(app)
    add_lab_routes(app)

    # --- the page -------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, limit=MAX_BODY, hosts=hosts)
    return app

