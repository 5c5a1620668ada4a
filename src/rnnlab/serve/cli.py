"""``rnnlab serve``: the command that starts the web app (FastAPI + uvicorn) on this machine."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import sys
from pathlib import Path

from ..errors import UserError
from . import QUEUE


def add_serve_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="the lab in a browser: a local web page and JSON API on the bundled models and your runs",
        description="Start a local web server: one page (names, poems, sentiment, runs, gradients) and a JSON API "
                    "under /api, answered by the bundled models and the run folders given with --runs.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--runs", action="append", default=[], metavar="DIR",
                   help="a folder of run folders (or one run folder) served beside the bundled models; repeatable")
    p.add_argument("--no-bundled", action="store_true", help="serve only the runs given with --runs")
    p.add_argument("--lab", metavar="DIR", help="a lab workspace (rnnlab lab new): its cells in the Gradients tab "
                                               "and the runs in DIR/runs (train them with --lab DIR --out DIR/runs/NAME)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per request (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes on the one port, each with its own models (default: %(default)s; "
                        "uvicorn's workers: each process holds the models in memory once more)")
    p.add_argument("--concurrency", type=int, default=0,
                   help="requests of one task computed at once in each process (default: the CPU cores "
                        "divided among the workers)")
    p.add_argument("--queue", type=int, default=QUEUE,
                   help="requests of one task that may wait beyond those computed; past it the answer is 503 "
                        "with Retry-After (default: %(default)s)")
    p.add_argument("--no-preload", action="store_true",
                   help="load each model on its first request instead of warming the bundled ones up at start")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)
    return p


def check_args(args) -> list[Path]:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: give a port from 0 to 65535")
    if not 1 <= args.threads <= 256:
        raise UserError(f"--threads {args.threads}: give a number from 1 to 256")
    if not 1 <= args.workers <= 64:
        raise UserError(f"--workers {args.workers}: give a number from 1 to 64")
    if not 0 <= args.concurrency <= 256:
        raise UserError(f"--concurrency {args.concurrency}: give a number from 0 (the CPU cores) to 256")
    if not 0 <= args.queue <= 10_000:
        raise UserError(f"--queue {args.queue}: give a number from 0 to 10000")
    if args.lab:
        from ..lab.workspace import read_manifest

        try:
            read_manifest(Path(args.lab))
        except UserError as e:
            raise UserError(f"--lab {e}") from None
    dirs = [Path(d) for d in args.runs]
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"--runs {d}: no such folder")
    return dirs


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_port(host: str, port: int) -> None:
    """A clear one-line error now, rather than uvicorn's after the models are set up."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as e:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
                        "choose another port (--port 0 picks a free one)") from None


def cmd_serve(args) -> int:
    dirs = check_args(args)
    _check_port(args.host, args.port)
    import uvicorn

    from .app import SETTINGS_VARIABLE, app_from_environment
    from .registry import Registry
    from .wire import LimitedH11Protocol

    hosts = LOOPBACK_NAMES if _loopback(args.host) else None  # on loopback: no other Host name (DNS rebinding)
    concurrency = args.concurrency or max(1, (os.cpu_count() or 1) // args.workers)
    settings = {"runs_dirs": [str(d) for d in dirs], "bundled": not args.no_bundled, "threads": args.threads,
                "concurrency": concurrency, "preload": not args.no_preload, "hosts": hosts,
                "port": args.port or None, "queue": args.queue, "lab": args.lab}
    lab_runs = [Path(args.lab) / "runs"] if args.lab and (Path(args.lab) / "runs").is_dir() else []
    entries = Registry([*dirs, *lab_runs], bundled=not args.no_bundled).scan()
    bundled = [e.id for e in entries.values() if e.kind == "bundled"]
    runs = [e.id for e in entries.values() if e.kind == "run"]
    print(f"rnnlab serve: bundled models: {', '.join(bundled) or 'none'}; runs: {len(runs)}", file=sys.stderr)
    if not bundled and not runs:
        print("rnnlab serve: no model to answer with: give --runs DIR with trained runs", file=sys.stderr)
    if not _loopback(args.host):
        print(f"rnnlab serve: listening on {args.host}: anyone who can reach this machine can use the page",
              file=sys.stderr)
    if args.workers > 1:
        print(f"rnnlab serve: {args.workers} processes, each with its own models", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    if args.port:
        print(f"rnnlab serve: open http://{shown}:{args.port}/  (Ctrl+C stops)", file=sys.stderr)
    # Each process (one, or uvicorn's --workers) makes its app from these settings.
    os.environ[SETTINGS_VARIABLE] = json.dumps(settings)
    uvicorn.run(f"{app_from_environment.__module__}:{app_from_environment.__name__}", factory=True,
                host=args.host, port=args.port, workers=args.workers, log_level=args.log_level,
                access_log=args.log_level == "debug",
                http=f"{LimitedH11Protocol.__module__}:{LimitedH11Protocol.__name__}")  # bodies counted on the wire too
    return 0
