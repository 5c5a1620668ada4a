"""Load on ``rnnlab serve``: start the server on 127.0.0.1 (loopback only), fire requests from
concurrent clients for a fixed time (mixed tasks, as the page sends them), and print requests/s and
p50/p95/p99 latency per route, the errors (must be 0), the server's peak RSS (VmHWM) and each target
as met or not met.

    python benchmarks/serve.py                        # the bundled models: 16 clients, 30 s
    python benchmarks/serve.py --runs runs --duration 5 --no-bundled   # a smoke run on your runs

Targets (the issue's, on 2 CPU cores under this load): names p95 < 50 ms, sentiment p95 < 150 ms,
a 7x4 poem p95 < 500 ms. It stops by itself: after ``--duration`` seconds or ``--max-requests``
answers, whichever comes first; every request has a timeout.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# route -> (weight in the mix, p95 target in ms or None)
ROUTES = {
    "names/predict": (4, 50.0),
    "names/trace": (1, None),
    "sentiment/predict": (3, 150.0),
    "poems/generate 7x4": (2, 500.0),
}
FALLBACK_NAMES = ["Satoshi", "Jackson", "Dovesky", "Nguyen", "Schmidt", "Rossi", "Kowalski", "Papadopoulos"]
FALLBACK_REVIEWS = ["房间很干净，服务也很热情，下次还来。", "隔音太差，一晚没睡好，前台态度也不好。", "位置方便，早餐一般，性价比还可以。"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def inputs(limit: int = 2000) -> tuple[list[str], list[str]]:
    """Names and reviews from the bundled data (so the server sees real, varied input)."""
    names, reviews = [], []
    for f in sorted((ROOT / "data" / "names").glob("*.txt")):
        names += [line.strip() for line in f.read_text(encoding="utf-8").splitlines()[:150] if line.strip()]
    csv_path = ROOT / "data" / "sentiment" / "ChnSentiCorp_htl_all.csv"
    if csv_path.is_file():
        with open(csv_path, encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                text = (row.get("review") or "").strip()
                if text:
                    reviews.append(text[:1000])
                if len(reviews) >= limit:
                    break
    return names or FALLBACK_NAMES, reviews or FALLBACK_REVIEWS


def request_body(route: str, rng: random.Random, names: list[str], reviews: list[str]) -> tuple[str, dict]:
    if route == "names/predict":
        return "/api/names/predict", {"names": [rng.choice(names)], "top": 3}
    if route == "names/trace":
        return "/api/names/trace", {"name": rng.choice(names)}
    if route == "sentiment/predict":
        return "/api/sentiment/predict", {"texts": [rng.choice(reviews)]}
    return "/api/poems/generate", {"form": "7x4", "seed": rng.randrange(1_000_000)}


class Client(threading.Thread):
    """One user: a keep-alive connection, requests back to back in the weighted mix of routes."""

    def __init__(self, port: int, seed: int, stop_at: float, budget: "Budget", names, reviews, timeout: float) -> None:
        super().__init__(daemon=True)
        self.port, self.rng, self.stop_at, self.budget = port, random.Random(seed), stop_at, budget
        self.names, self.reviews, self.timeout = names, reviews, timeout
        self.latencies: dict[str, list[float]] = {r: [] for r in ROUTES}
        self.errors: dict[str, list[str]] = {r: [] for r in ROUTES}

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        routes, weights = list(ROUTES), [w for w, _ in ROUTES.values()]
        while time.monotonic() < self.stop_at and self.budget.take():
            route = self.rng.choices(routes, weights)[0]
            path, body = request_body(route, self.rng, self.names, self.reviews)
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            start = time.perf_counter()
            try:
                conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                elapsed = time.perf_counter() - start
                if response.status == 200:
                    self.latencies[route].append(elapsed)
                else:
                    self.errors[route].append(f"{response.status} {payload[:200].decode('utf-8', 'replace')}")
            except (OSError, http.client.HTTPException) as e:
                self.errors[route].append(f"{type(e).__name__}: {e}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        conn.close()


class Budget:
    """At most ``n`` requests in all."""

    def __init__(self, n: int) -> None:
        self.n, self.lock = n, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.n <= 0:
                return False
            self.n -= 1
            return True


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def get_json(port: int, path: str, timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def post_json(port: int, path: str, body: dict, timeout: float = 120.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def start_server(args, port: int) -> tuple[subprocess.Popen, float]:
    cmd = [sys.executable, "-m", "rnnlab.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--threads", str(args.threads), "--log-level", "warning"]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    for d in args.runs:
        cmd += ["--runs", d]
    if args.no_bundled:
        cmd.append("--no-bundled")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve benchmark: the server exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        try:
            if get_json(port, "/api/health", timeout=1)[0] == 200:
                return proc, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("serve benchmark: the server did not answer within 120 s")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load (default %(default)s)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default %(default)s)")
    p.add_argument("--max-requests", type=int, default=200_000, help="stop after this many requests in all")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before one request counts as an error")
    p.add_argument("--runs", action="append", default=[], metavar="DIR", help="run folders for the server (--runs)")
    p.add_argument("--no-bundled", action="store_true", help="serve only --runs (the server's --no-bundled)")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads per request (default %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="the server's requests computed at once (default: its own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if not (0 < args.duration <= 600 and 1 <= args.clients <= 256 and args.max_requests >= 1):
        p.error("--duration in (0, 600], --clients in [1, 256], --max-requests >= 1")

    names, reviews = inputs()
    port = free_port()
    proc, start_s = start_server(args, port)
    try:
        # Warm-up (not timed): every model loaded, the tokenizer's dictionary read.
        warm = {}
        for i, route in enumerate(ROUTES):
            path, body = request_body(route, random.Random(i), names, reviews)
            t = time.perf_counter()
            status, answer = post_json(port, path, body)
            if status != 200:
                raise SystemExit(f"serve benchmark: warm-up {route} answered {status}: {answer}")
            warm[route] = (time.perf_counter() - t, answer.get("run"))
        _, health = get_json(port, "/api/health")
        stop_at = time.monotonic() + args.duration
        budget = Budget(args.max_requests)
        clients = [Client(port, args.seed * 1000 + i, stop_at, budget, names, reviews, args.timeout)
                   for i in range(args.clients)]
        t0 = time.perf_counter()
        for c in clients:
            c.start()
        for c in clients:
            c.join(args.duration + args.timeout + 10)
        wall = time.perf_counter() - t0
        hwm = vm_hwm_mb(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()

    rows, checks, total, errors = [], [], 0, 0
    for route, (_, target) in ROUTES.items():
        lat = [x for c in clients for x in c.latencies[route]]
        errs = [e for c in clients for e in c.errors[route]]
        total += len(lat) + len(errs)
        errors += len(errs)
        p50, p95, p99 = (percentile(lat, q) * 1000 for q in (50, 95, 99))
        rows.append({"route": route, "model": warm[route][1], "requests": len(lat) + len(errs),
                     "req/s": f"{len(lat) / wall:.1f}", "p50 ms": f"{p50:.1f}", "p95 ms": f"{p95:.1f}",
                     "p99 ms": f"{p99:.1f}", "errors": len(errs), "first (load) ms": f"{warm[route][0] * 1000:.0f}"})
        if target is not None:
            checks.append((f"{route} p95 < {target:.0f} ms", f"{p95:.1f} ms", "met" if p95 < target else "NOT met"))
        for e in errs[:3]:
            print(f"  error on {route}: {e}", file=sys.stderr)
    checks.append(("errors: 0", str(errors), "met" if errors == 0 else "NOT met"))

    sys.path.insert(0, str(HERE))
    from benchutil import format_table, machine_info

    import torch

    torch.set_num_threads(args.threads)
    print(f"rnnlab serve under load: {args.clients} clients, {wall:.1f} s, mix "
          + ", ".join(f"{r} x{w}" for r, (w, _) in ROUTES.items()))
    print(f"machine: {machine_info()} (server: {health['threads']} torch thread(s) per request, "
          f"{health['workers']} at once; the clients run on the same cores)")
    print(f"server ready {start_s:.1f} s after start; models: {', '.join(sorted(set(m for _, m in warm.values())))}")
    print()
    print(format_table(rows, ["route", "model", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
                              "first (load) ms"]))
    print()
    rss = f"{hwm:.0f} MB" if hwm is not None else "unknown (no /proc)"
    print(f"all routes: {total} requests, {total / wall:.1f} req/s, {errors} errors; server peak RSS (VmHWM): {rss}")
    print()
    print(format_table([{"target": a, "measured": b, "": c} for a, b, c in checks], ["target", "measured", ""]))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "checks": checks, "wall_s": wall, "vm_hwm_mb": hwm,
                                               "clients": args.clients, "total": total, "errors": errors},
                                              ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
