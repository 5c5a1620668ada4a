"""The web app behind ``rnnlab serve``: a JSON API under ``/api`` and one page at ``/``.

Its rooms: this module makes the app (``create_app``: lanes, warm-up, the page); ``registry.py`` the
models and runs and the Runs routes; ``routes.py`` the task routes, derived from the tasks' verbs;
``errors.py`` the one-line JSON errors; ``guard.py`` body limits and Host checks; ``wire.py`` body
bytes counted on the wire.

Models come from a small registry: the bundled models (``names``, ``names-rnn``, ``names-gru``,
``poems``, ``sentiment``) and the run folders found under the ``runs_dirs`` given at start. Each is
loaded once, on first use (through :func:`rnnlab.load_run`), and again only when its checkpoint file
changes (a run that is still training). Requests name a model with ``"run"``: a bundled name or a
run folder's id as ``GET /api/runs`` lists it; without it a task's default model answers.

Inference runs in worker threads, one lane per task (``lanes.py``: at most ``concurrency`` requests
of a task at once, so that a name never waits behind a queue of poems; requests of a list-input verb
that arrive together batched into one forward pass; a bounded queue, past which the answer is 503
with Retry-After), under ``torch.inference_mode()``, with ``threads`` torch threads each.

Every bad input is a 4xx answer ``{"error": "one line"}`` naming the field: 400 for values the model
refuses and for bodies that are not JSON objects, 404 for an unknown run or route, 405 for a wrong
method, 409 for a run that cannot be loaded yet (no checkpoint), 413 for a body over the size limit,
415 for a body sent as something other than JSON, 422 for a field outside its declared range or of
the wrong type; 503 (with Retry-After) when the task's queue is full. A 500 is a bug: it is logged
with its traceback and answered without it.

Files: the page's own files (``static/``) and, for each listed run, only the report files a run
writes (``REPORT_FILES``: report.html, the plots, metrics, summary), opened without following a link
and served only when they are a regular file with one link directly in the run folder -- never a
checkpoint, never a file planted there as a link or a hard link.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import anyio
from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles

from .. import __version__, verbs
from ..tasks import TASKS
from .errors import install_error_handlers
from .guard import MAX_BODY, Guard
from .lanes import QUEUE, Lane
from .registry import Registry, add_run_routes
from .routes import add_task_routes
from .lab_routes import LabWorkspace, add_lab_routes

log = logging.getLogger("rnnlab.serve")

STATIC = Path(__file__).parent / "static"


def warm_up(registry: Registry) -> None:
    """Each bundled model answers its verbs' examples once, so that no user waits for the first call."""
    import torch

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


SETTINGS_VARIABLE = "RNNLAB_SERVE_SETTINGS"  # create_app's arguments as JSON, for each process of `rnnlab serve`


def app_from_environment() -> FastAPI:
    """The app of ``rnnlab serve``'s settings (``SETTINGS_VARIABLE``): uvicorn calls this in each of
    its worker processes, so each holds its own models."""
    settings = json.loads(os.environ[SETTINGS_VARIABLE])
    settings["hosts"] = tuple(settings["hosts"]) if settings.get("hosts") else None
    return create_app(**settings)


def create_app(runs_dirs=(), bundled: bool = True, threads: int = 1, concurrency: int | None = None,
               device: str = "cpu", preload: bool = False, hosts: tuple[str, ...] | None = None,
               port: int | None = None, queue: int = QUEUE, lab: str | None = None) -> FastAPI:
    """The app. ``runs_dirs``: folders of run folders (or run folders) served beside the bundled
    models; ``threads``: torch threads per inference; ``concurrency``: inferences of a task at once
    (default: the CPU count); ``queue``: requests of a task waiting beyond those (past it: 503);
    ``lab``: a student's lab workspace whose cells the Gradients tab offers (and whose ``runs``
    folder, if any, is listed); ``preload``: load and warm up the bundled models in the background at
    start; ``hosts``: the only Host names answered (``rnnlab serve`` on loopback: 127.0.0.1,
    localhost, ::1), None for any; ``port``: the port listened on (a Host header naming another is refused)."""
    import torch

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    workspace = LabWorkspace(lab) if lab else None
    if workspace is not None and (Path(lab) / "runs").is_dir():
        runs_dirs = [*runs_dirs, Path(lab) / "runs"]
    registry = Registry(runs_dirs, bundled=bundled, device=device)
    concurrency = max(1, concurrency or os.cpu_count() or 1)

    def in_inference_mode(fn):
        with torch.inference_mode():
            return fn()

    def lookup(run_id: str | None, task: str):
        with torch.inference_mode(False):  # a model loaded here keeps ordinary tensors (saliency needs grads)
            return registry.get(run_id, task)

    # One lane per task, each ``concurrency`` wide with a bounded queue (lanes.py): a name typed on the
    # page never waits behind a queue of poems or long reviews, and a full queue answers 503 at once.
    lanes = {task: Lane(task, in_inference_mode, concurrency, queue, nice=cls.serve_nice) for task, cls in TASKS.items()}
    started = time.time()

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app):
        if preload:
            threading.Thread(target=warm_up, args=(registry,), name="rnnlab-preload", daemon=True).start()
        yield

    app = FastAPI(title="rnnlab", version=__version__, docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  lifespan=lifespan)
    app.state.registry = registry

    install_error_handlers(app)

    @app.get("/api/health")
    async def health():
        entries = registry._entries.values()
        return {"status": "ok", "version": __version__, "uptime_s": round(time.time() - started, 1),
                "models": [e.id for e in entries if e.kind == "bundled"],
                "runs": sum(1 for e in entries if e.kind == "run"), "loaded": registry.loaded(),
                "threads": torch.get_num_threads(), "concurrency": concurrency, "pid": os.getpid(),
                "lanes": {task: lane.figures() for task, lane in lanes.items()}}

    add_run_routes(app, registry)
    add_task_routes(app, TASKS, lanes, lookup)
    add_lab_routes(app, workspace)

    @app.get("/", include_in_schema=False)  # the page
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, limit=MAX_BODY, hosts=hosts, port=port)
    return app

