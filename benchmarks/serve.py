"""Load on ``rnnlab serve``: start the server on 127.0.0.1 (loopback only, a free port), send it
requests as the page sends them, and print latency per route or action, the errors, the load shed
(503s), the server's peak RSS and each target as met or not met.

Three loads (each section starts a fresh server of its own, warms every route up once, untimed, and
stops the server when done; with ``--all`` the three run one after another):

* the mix (the default): ``--clients`` (16) closed-loop clients, each on one keep-alive connection,
  send requests back to back for ``--duration`` seconds (or ``--max-requests`` in all) in a weighted
  mix: names/predict x4, names/trace x1, sentiment/predict x3 (real reviews of the bundled data of
  at most 300 characters, not cut), poems/generate 7x4 x2.
* ``--classroom N``: N simulated students follow a lesson script once each, starting at random
  within the first ``--stagger`` seconds and thinking ``--think`` seconds (random, seeded) before
  each action: open the page (GET / and every file it loads -- the stylesheet, app.js and the
  modules it imports, found by reading them -- then /api/tasks, /api/runs, /api/health: one "page"
  action timed as a whole); five names, each followed by its trace, then one name's saliency;
  three poems (7x4 or 5x4, as the page asks: details and the top 6 characters), with one line of
  one of them rewritten (regenerate) and the alternatives of that poem; three reviews drawn from
  the whole bundled data (full texts, their real lengths; cut only at the API's own limit). The
  lesson ends when every student is done (about a minute with the default think time), or after
  300 s (the students still in it stop there, and are counted as not finished).
* ``--burst N``: N clients of the mix start at the same instant, without think time, for
  ``--duration`` seconds, while a prober GETs /api/health every 50 ms on a connection of its own.
* alone (with ``--all``, not ``--quick``): one client, five bundled reviews of about 1,000 characters,
  each explained three times (the median kept) as the page asks by default (occlusion of the words the
  gradient ranks first) and three times by gradient x input: the explanation's cost when nothing else runs.

A 503 answer is load shedding, not an error (the server's queue of that task was full): it is
counted apart. A student does what the page does: waits the answer's Retry-After (x 1 to 1.5, so
that students do not come back together) and tries again, up to ``--retries`` (5) times; the
action's latency runs from the first try to the final answer, and an action still refused after
the last try counts as shed (a 503-failure), apart from the errors. A mix or burst client does not
retry: it counts the 503, waits Retry-After and sends its next request. Any other answer than a 2xx,
and a connection failure or timeout, is an error. A request sent on a keep-alive connection that
the server closed while it was idle is sent again once on a new connection, as browsers do.

    python benchmarks/serve.py                       # the mix: 16 clients, 30 s, the bundled models
    python benchmarks/serve.py --classroom 40        # a lesson of 40 students
    python benchmarks/serve.py --burst 64            # 64 clients at once for --duration, health probed
    python benchmarks/serve.py --all                 # all three (RESULTS.md); --quick: small sizes
    python benchmarks/serve.py --runs runs --duration 5 --no-bundled   # a smoke run on your runs

Targets (the issues', on 2 CPU cores, the clients on the same cores):
  16-client mix:    names p95 < 50 ms, sentiment (reviews <= 300 characters) p95 < 150 ms,
                    a 7x4 poem p95 < 500 ms, 0 errors;
  classroom of 40:  >= 95 % of the actions answered within 1 s, 0 errors, no 5xx other than 503;
  64-client burst:  0 errors (503s aside), /api/health p99 < 100 ms;
  alone:            a 1,000-character review explained in < 500 ms.

Server options: ``--workers N`` starts N server processes on the port (the server's ``--workers``;
1, the default, passes nothing), ``--concurrency N`` the requests of a task computed at once (the
server's ``--concurrency``; 0 passes nothing). The server's peak RSS is the sum of the peak (VmHWM)
of the server process and of every process under it, each also shown alone, beside the peak of their
summed current RSS (VmRSS, sampled every 0.5 s).

Every request has a timeout (``--timeout``) and every section stops by itself. The exit status is 1
when any error occurred (a missed target or a 503 is not an error), else 0.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The mix: route -> (weight, p95 target in ms or None)
ROUTES = {
    "names/predict": (4, 50.0),
    "names/trace": (1, None),
    "sentiment/predict": (3, 150.0),
    "poems/generate 7x4": (2, 500.0),
}
MIX_REVIEW_CHARS = 300  # the target's reviews: at most 300 characters
# The lesson's actions, in the order the report lists them.
ACTIONS = ("page", "names/predict", "names/trace", "names/saliency", "poems/generate", "poems/regenerate",
           "poems/alternatives", "sentiment/predict")
POEM_FORMS = ("7x4", "5x4")
WITHIN_S = 1.0  # the classroom's bar: an action answered within 1 s
CLASSROOM_SHARE = 0.95
HEALTH_P99_MS = 100.0
ALONE_CHARS = (950, 1100)  # "a 1,000-character review explained alone": the bundled reviews of this length
ALONE_REVIEWS, ALONE_TRIES = 5, 3
ALONE_MS = 500.0
PROBE_EVERY_S = 0.05
LESSON_LIMIT_S = 300.0  # a lesson stops here whatever is left
SAMPLE_MEMORY_S = 0.5
LINE_MARKS = "，。？！；"  # rnnlab.poetry.LINE_MARKS: the marks that end a line of a poem
FALLBACK_NAMES = ["Satoshi", "Jackson", "Dovesky", "Nguyen", "Schmidt", "Rossi", "Kowalski", "Papadopoulos"]
FALLBACK_REVIEWS = ["房间很干净，服务也很热情，下次还来。", "隔音太差，一晚没睡好，前台态度也不好。", "位置方便，早餐一般，性价比还可以。"]


# --- input: the bundled data ------------------------------------------------------------------
def read_names() -> list[str]:
    names = []
    for f in sorted((ROOT / "data" / "names").glob("*.txt")):
        names += [line.strip() for line in f.read_text(encoding="utf-8").splitlines()[:150] if line.strip()]
    return names or FALLBACK_NAMES


MIN_REVIEW_CHARS = 8  # shorter reviews ("经朋") may hold no word the model knows: the server rightly answers 400


def read_reviews() -> list[str]:
    """Every review of the bundled data of at least ``MIN_REVIEW_CHARS`` characters, whole."""
    path = ROOT / "data" / "sentiment" / "ChnSentiCorp_htl_all.csv"
    if not path.is_file():
        return FALLBACK_REVIEWS
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return [text for row in csv.DictReader(fh)
                if len(text := (row.get("review") or "").strip()) >= MIN_REVIEW_CHARS] or FALLBACK_REVIEWS


def inputs(limit: int = 2000) -> tuple[list[str], list[str]]:
    """The mix's names and reviews: real, varied input; the first ``limit`` reviews of at most 300
    characters (whole reviews, never cut ones)."""
    return read_names(), [r for r in read_reviews() if len(r) <= MIX_REVIEW_CHARS][:limit]


def request_body(route: str, rng: random.Random, names: list[str], reviews: list[str]) -> tuple[str, dict]:
    if route == "names/predict":
        return "/api/names/predict", {"names": [rng.choice(names)], "top": 3}
    if route == "names/trace":
        return "/api/names/trace", {"name": rng.choice(names)}
    if route == "sentiment/predict":
        return "/api/sentiment/predict", {"texts": [rng.choice(reviews)]}
    return "/api/poems/generate", {"form": "7x4", "seed": rng.randrange(1_000_000)}


# --- HTTP: one connection, one action (with the page's retries), what they got ----------------------
class Session:
    """One keep-alive connection, as a browser tab holds one; every request with a timeout."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def send(self, method: str, path: str, body: dict | None = None) -> tuple[int | None, float | None, bytes, str]:
        """-> (status or None, Retry-After seconds or None, body, error text). A request on a
        connection the server closed while it was idle goes again once on a new one."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {} if body is None else {"Content-Type": "application/json"}
        for _ in range(2):
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                return r.status, retry_after(r.getheader("Retry-After")), r.read(), ""
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.conn.close()
                if reused:
                    continue
                return None, None, b"", f"{type(e).__name__}: {e}"
            except (OSError, http.client.HTTPException) as e:  # refused, timed out, a broken answer
                self.conn.close()
                return None, None, b"", f"{type(e).__name__}: {e}"
        return None, None, b"", "the server closed the connection twice"

    def close(self) -> None:
        self.conn.close()


def retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not what rnnlab sends
        return None


class Result:
    """One action's outcome: ``kind`` ok / shed (503 after the last try) / error; ``seconds`` from the
    first try to the final answer; ``busy``: the 503 answers on the way; ``body``: the last answer."""

    def __init__(self, kind: str, seconds: float, busy: int, status: int | None, body: bytes = b"",
                 detail: str = "", wait: float | None = None) -> None:
        self.kind, self.seconds, self.busy, self.status = kind, seconds, busy, status
        self.body, self.detail, self.wait = body, detail, wait

    def json(self):
        return json.loads(self.body)


def perform(session: Session, steps: list[tuple], rng: random.Random, retries: int, stop_at: float) -> Result:
    """The requests of one action in order (the page: several GETs; a click: one POST). A 503 is
    tried again after its Retry-After (x 1..1.5) up to ``retries`` times, never past ``stop_at``."""
    start, busy = time.perf_counter(), 0
    status, body = None, b""
    for method, path, payload in steps:
        tries = 0
        while True:
            status, wait, body, failure = session.send(method, path, payload)
            if status != 503:
                break
            busy += 1
            pause = (wait if wait is not None else 1.0) * rng.uniform(1.0, 1.5)
            if tries >= retries or time.monotonic() + pause > stop_at:
                return Result("shed", time.perf_counter() - start, busy, 503, body, wait=wait)
            tries += 1
            time.sleep(pause)
        if status is None or not 200 <= status < 300:  # 204: the page's favicon.ico
            detail = failure or f"{status} {body[:200].decode('utf-8', 'replace')}"
            return Result("error", time.perf_counter() - start, busy, status, body, f"{method} {path}: {detail}")
    return Result("ok", time.perf_counter() - start, busy, status, body)


class Tally:
    """What one route or action got: the latencies of its answers, the 503s, the shed ones, the errors."""

    def __init__(self) -> None:
        self.ok: list[float] = []
        self.busy = self.shed = self.server_errors = 0
        self.errors: list[str] = []

    def add(self, r: Result) -> None:
        self.busy += r.busy
        if r.kind == "ok":
            self.ok.append(r.seconds)
        elif r.kind == "shed":
            self.shed += 1
        else:
            self.errors.append(r.detail)
            self.server_errors += r.status is not None and r.status >= 500

    @property
    def count(self) -> int:
        return len(self.ok) + self.shed + len(self.errors)

    @staticmethod
    def merged(tallies: list["Tally"]) -> "Tally":
        out = Tally()
        for t in tallies:
            out.ok += t.ok
            out.errors += t.errors
            out.busy, out.shed = out.busy + t.busy, out.shed + t.shed
            out.server_errors += t.server_errors
        return out


def merge(per_thread: list[dict[str, Tally]], keys) -> dict[str, Tally]:
    return {k: Tally.merged([d[k] for d in per_thread]) for k in keys}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[k]


def latency_columns(seconds: list[float]) -> dict:
    return {f"p{q} ms": f"{percentile(seconds, q) * 1000:.1f}" if seconds else "-" for q in (50, 95, 99)}


def pause_until(seconds: float, stop_at: float) -> None:
    time.sleep(max(0.0, min(seconds, stop_at - time.monotonic())))


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


# --- the server: started, watched, stopped ------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(port: int, path: str, timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def process_tree(root: int) -> list[int]:
    """``root`` and every process under it (from each process's parent in /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(VmHWM, VmRSS) of one process in MB, None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        fields = dict(line.split(":", 1) for line in lines if ":" in line)
        return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None


def process_role(pid: int, root: int) -> str:
    """main, worker (a uvicorn worker: a spawned process) or what its command line says."""
    if pid == root:
        return "main"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return "?"
    return ("resource tracker" if "resource_tracker" in cmdline else "worker" if "spawn_main" in cmdline
            else cmdline.strip()[-40:])


class MemoryWatch(threading.Thread):
    """Samples the server's processes every 0.5 s: each one's peak (VmHWM, kept after it exits)
    and the peak of their summed current RSS."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.done = root, threading.Event()
        self.hwm: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.rss_sum_peak = 0.0

    def sample(self) -> None:
        total = 0.0
        for pid in process_tree(self.root):
            m = memory_mb(pid)
            if m is not None:
                self.hwm[pid] = max(self.hwm.get(pid, 0.0), m[0])
                total += m[1]
                if pid not in self.roles:
                    self.roles[pid] = process_role(pid, self.root)
        self.rss_sum_peak = max(self.rss_sum_peak, total)

    def run(self) -> None:
        while not self.done.wait(SAMPLE_MEMORY_S):
            self.sample()

    def stop(self) -> dict:
        self.done.set()
        self.join(5)
        self.sample()
        per = {f"{pid} ({self.roles.get(pid, '?')})": round(mb, 1) for pid, mb in self.hwm.items()}
        return {"vm_hwm_mb": round(sum(self.hwm.values()), 1) if self.hwm else None, "processes": len(self.hwm),
                "vm_hwm_per_process_mb": per, "vm_rss_sum_peak_mb": round(self.rss_sum_peak, 1), "root_pid": self.root}


def memory_line(m: dict) -> str:
    if m["vm_hwm_mb"] is None:
        return "server peak RSS: unknown (no /proc)"
    if m["processes"] == 1:
        return f"server peak RSS (VmHWM): {m['vm_hwm_mb']:.0f} MB"
    each = ", ".join(f"pid {pid} {mb:.0f}" for pid, mb in m["vm_hwm_per_process_mb"].items())
    return (f"server peak RSS: {m['vm_hwm_mb']:.0f} MB, the sum of the VmHWM of its {m['processes']} processes "
            f"(MB: {each}); peak of their summed current VmRSS: {m['vm_rss_sum_peak_mb']:.0f} MB")


class Server:
    """``rnnlab serve`` on a free loopback port for one section: ``with Server(args) as s:``; its
    memory watched until the section ends (``s.memory``)."""

    def __init__(self, args) -> None:
        self.args, self.port = args, free_port()

    def __enter__(self) -> "Server":
        a = self.args
        cmd = [sys.executable, "-m", "rnnlab.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
               "--threads", str(a.threads), "--log-level", "warning"]
        cmd += ["--workers", str(a.workers)] if a.workers > 1 else []
        cmd += ["--concurrency", str(a.concurrency)] if a.concurrency else []
        for d in a.runs:
            cmd += ["--runs", d]
        cmd += ["--no-bundled"] if a.no_bundled else []
        env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
        started = time.perf_counter()
        # Its log in a file (a pipe nobody reads would block a server that logs many tracebacks).
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True)
        self.watch = MemoryWatch(self.proc.pid)
        self.watch.start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.watch.stop()
                raise SystemExit(f"serve benchmark: the server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                status, self.health = get_json(self.port, "/api/health", timeout=1)
                if status == 200:
                    self.ready_s = time.perf_counter() - started
                    return self
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.__exit__()
        raise SystemExit("serve benchmark: the server did not answer within 120 s")

    def __exit__(self, *exc) -> None:
        self.memory = self.watch.stop()
        pids = process_tree(self.proc.pid)
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for pid in pids[1:]:  # a worker process left behind by its parent: ours to end
            try:
                os.kill(pid, 9)
            except OSError:
                pass

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log (its last traceback, when it logged one)."""
        self.log.flush()
        self.log.seek(0)
        return "\n".join(self.log.read().splitlines()[-lines:])

    def show_errors(self, tallies: dict[str, "Tally"]) -> None:
        """The first errors of each route or action on stderr and, after a 5xx, the end of the
        server's log (its tracebacks)."""
        for what, t in tallies.items():
            for e in t.errors[:3]:
                print(f"  error on {what}: {e}", file=sys.stderr)
        if any(t.server_errors for t in tallies.values()):
            print(f"  the server's log, last lines:\n{self.log_tail()}\n", file=sys.stderr)

    def describe(self) -> str:
        h = self.health
        said = ", ".join(f"{k} {h[k]}" for k in ("threads", "workers", "concurrency") if k in h)
        a = self.args
        asked = (f"--threads {a.threads}" + (f" --workers {a.workers}" if a.workers > 1 else "")
                 + (f" --concurrency {a.concurrency}" if a.concurrency else ""))
        return f"server: {asked} (its health: {said}); ready {self.ready_s:.1f} s after start"


def warm_up(port: int, names: list[str], reviews: list[str]) -> dict[str, tuple[float, str]]:
    """Each route of the mix once, untimed: every model loaded. -> route -> (seconds, model)."""
    warm, session = {}, Session(port, 120.0)
    for i, route in enumerate(ROUTES):
        path, body = request_body(route, random.Random(i), names, reviews)
        r = perform(session, [("POST", path, body)], random.Random(i), 5, time.monotonic() + 120)
        if r.kind != "ok":
            raise SystemExit(f"serve benchmark: warm-up {route}: {r.detail or r.kind}")
        warm[route] = (r.seconds, r.json().get("run"))
    session.close()
    return warm


# --- the mix and the burst: closed-loop clients ---------------------------------------------------
class Client(threading.Thread):
    """One user: a keep-alive connection, requests back to back in the weighted mix of routes (after
    a 503: its Retry-After, then the next request)."""

    def __init__(self, port: int, seed: int, go: threading.Event, clock: dict, budget: Budget, names, reviews,
                 timeout: float) -> None:
        super().__init__(daemon=True)
        self.port, self.rng, self.go, self.clock, self.budget = port, random.Random(seed), go, clock, budget
        self.names, self.reviews, self.timeout = names, reviews, timeout
        self.tallies = {r: Tally() for r in ROUTES}

    def run(self) -> None:
        session = Session(self.port, self.timeout)
        routes, weights = list(ROUTES), [w for w, _ in ROUTES.values()]
        self.go.wait()
        stop_at = self.clock["stop_at"]
        while time.monotonic() < stop_at and self.budget.take():
            route = self.rng.choices(routes, weights)[0]
            path, body = request_body(route, self.rng, self.names, self.reviews)
            r = perform(session, [("POST", path, body)], self.rng, 0, stop_at)
            self.tallies[route].add(r)
            if r.kind == "shed":
                pause_until(r.wait if r.wait is not None else 1.0, stop_at)
        session.close()


class Prober(threading.Thread):
    """GET /api/health every 50 ms on a connection of its own (a 5 s timeout) until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.done, self.tally = port, threading.Event(), Tally()

    def run(self) -> None:
        session, tick = Session(self.port, 5.0), time.monotonic()
        while not self.done.is_set():
            self.tally.add(perform(session, [("GET", "/api/health", None)], random.Random(0), 0, time.monotonic()))
            tick = max(tick + PROBE_EVERY_S, time.monotonic())
            self.done.wait(tick - time.monotonic())
        session.close()


def closed_loop(args, server: Server, clients: int, names, reviews, probe: bool) -> tuple[dict, float, Tally | None]:
    """``clients`` mix clients started at one instant for ``--duration`` s (and the health prober)."""
    duration = args.duration
    go, clock = threading.Event(), {}
    budget = Budget(args.max_requests)
    pool = [Client(server.port, args.seed * 1000 + i, go, clock, budget, names, reviews, args.timeout)
            for i in range(clients)]
    for c in pool:
        c.start()
    prober = Prober(server.port) if probe else None
    clock["stop_at"] = time.monotonic() + duration
    t0 = time.perf_counter()
    if prober:
        prober.start()
    go.set()
    for c in pool:
        c.join(duration + args.timeout + 10)
    wall = time.perf_counter() - t0
    if prober:
        prober.done.set()
        prober.join(10)
    return merge([c.tallies for c in pool], ROUTES), wall, prober.tally if prober else None


def route_rows(tallies: dict[str, Tally], wall: float, warm: dict) -> list[dict]:
    rows = []
    for route, t in tallies.items():
        rows.append({"route": route, "model": warm[route][1], "requests": t.count, "req/s": f"{len(t.ok) / wall:.1f}",
                     **latency_columns(t.ok), "503": t.shed, "errors": len(t.errors),
                     "first (load) ms": f"{warm[route][0] * 1000:.0f}"})
    return rows


def check(target: str, measured: str, ok: bool) -> tuple[str, str, str]:
    return target, measured, "met" if ok else "NOT met"


ROUTE_COLUMNS = ["route", "model", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "503", "errors",
                 "first (load) ms"]


def run_mix(args, burst: int = 0) -> dict:
    """The mix (``burst`` 0: ``--clients``, as before) or the burst (``burst`` clients, health probed)."""
    from benchutil import format_table

    clients = burst or args.clients
    label = f"{clients}-client burst" if burst else f"{clients}-client mix"
    names, reviews = inputs()
    with Server(args) as server:
        warm = warm_up(server.port, names, reviews)
        tallies, wall, health = closed_loop(args, server, clients, names, reviews, probe=bool(burst))
    rows = route_rows(tallies, wall, warm)
    every = Tally.merged(list(tallies.values()))
    errors = len(every.errors) + (len(health.errors) if health else 0)
    print(f"### {label}: {clients} clients {'fired at once, ' if burst else ''}{wall:.1f} s, mix "
          + ", ".join(f"{r} x{w}" for r, (w, _) in ROUTES.items())
          + f" (reviews of at most {MIX_REVIEW_CHARS} characters)"
          + ("; /api/health probed every 50 ms" if burst else ""))
    print(f"{server.describe()}; models: {', '.join(sorted(set(m for _, m in warm.values())))}")
    print()
    print(format_table(rows, ROUTE_COLUMNS))
    print()
    print(f"all routes: {every.count} requests, {every.count / wall:.1f} req/s, {len(every.ok)} answered, "
          f"{every.shed} shed (503), {len(every.errors)} errors ({every.server_errors} 5xx other than 503)")
    figures = {"mode": "burst" if burst else "mix", "label": label, "clients": clients, "wall_s": round(wall, 2),
               "rows": rows, "total": every.count, "answered": len(every.ok), "shed_503": every.shed,
               "errors": errors, "server_errors_5xx": every.server_errors, **server.memory}
    checks = []
    if burst:
        hrow = {"probe": "GET /api/health", "requests": health.count, **latency_columns(health.ok),
                "max ms": f"{max(health.ok) * 1000:.1f}" if health.ok else "-", "errors": len(health.errors)}
        print(format_table([hrow], ["probe", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"]))
        p99 = percentile(health.ok, 99) * 1000
        figures["health"] = hrow
        checks.append(check(f"{label}: errors besides 503s: 0", f"{errors} ({every.shed} 503s)", errors == 0))
        checks.append(check(f"{label}: /api/health p99 < {HEALTH_P99_MS:.0f} ms", f"{p99:.1f} ms",
                            p99 < HEALTH_P99_MS and not health.errors))
    else:
        for route, (_, target) in ROUTES.items():
            if target is not None:
                p95 = percentile(tallies[route].ok, 95) * 1000
                checks.append(check(f"{label}: {route} p95 < {target:.0f} ms", f"{p95:.1f} ms", p95 < target))
        checks.append(check(f"{label}: errors: 0", str(errors), errors == 0))
    print(memory_line(server.memory))
    print()
    server.show_errors({**tallies, **({"/api/health": health} if health else {})})
    figures["checks"] = checks
    return figures


# --- one client alone: a long review explained -------------------------------------------------------
def run_alone(args) -> dict:
    """The server alone with one client: ``ALONE_REVIEWS`` bundled reviews of about 1,000 characters, each
    explained ``ALONE_TRIES`` times after a warm-up (the median kept) as the page asks by default
    (``explain: auto``: occlusion of the words the gradient ranks first), and as many times by the
    gradient x input estimate (``explain: gradient``) beside it: the whole request."""
    from benchutil import format_table

    reviews = [r for r in read_reviews() if ALONE_CHARS[0] <= len(r) <= ALONE_CHARS[1]][:ALONE_REVIEWS]
    rows, medians = [], {"auto": [], "gradient": []}
    with Server(args) as server:
        session = Session(server.port, args.timeout)
        session.send("POST", "/api/sentiment/predict", {"texts": [reviews[0]]})  # warm-up: the model, jieba
        for text in reviews:
            row = {"characters": len(text)}
            for how in ("auto", "gradient"):
                times, answer = [], {}
                for _ in range(ALONE_TRIES):
                    start = time.perf_counter()
                    status, _, body, failure = session.send("POST", "/api/sentiment/predict",
                                                            {"texts": [text], "explain": how})
                    times.append(time.perf_counter() - start)
                    if status != 200:
                        raise SystemExit(f"serve benchmark: a long review answered {status or failure}")
                    answer = json.loads(body)["results"][0]
                medians[how].append(sorted(times)[len(times) // 2] * 1000)
                row.update({"words": len(answer["words"]), f"{how}: measured": answer["measured"],
                            f"{how}: median ms": f"{medians[how][-1]:.0f}", f"{how}: max ms": f"{max(times) * 1000:.0f}"})
            rows.append(row)
        session.close()
    worst = max(medians["auto"])
    print(f"### alone: one client, {len(reviews)} bundled reviews of {ALONE_CHARS[0]}-{ALONE_CHARS[1]} characters, "
          f"each explained {ALONE_TRIES} times by the default (explain=auto: occlusion of the words the gradient ranks "
          f"first) and as many by explain=gradient (gradient x input, an estimate)")
    print(server.describe())
    print()
    print(format_table(rows, ["characters", "words"] + [f"{how}: {c}" for how in ("auto", "gradient")
                                                         for c in ("measured", "median ms", "max ms")]))
    print()
    return {"mode": "alone", "rows": rows, "errors": 0,
            "checks": [check(f"alone: a 1,000-character review explained < {ALONE_MS:.0f} ms (the default; the slowest median)",
                             f"{worst:.0f} ms (explain=gradient: {max(medians['gradient']):.0f} ms)", worst < ALONE_MS)]}


# --- the classroom: students following a lesson ----------------------------------------------------
def page_files(port: int) -> list[str]:
    """What the page loads at once: the files index.html links (not lazy images) and, from each
    script, the modules it imports, recursively; then favicon.ico, as a browser asks for it."""
    session, found, todo = Session(port, 10.0), [], ["/"]
    while todo:
        path = todo.pop(0)
        status, _, body, failure = session.send("GET", path)
        if status != 200:
            raise SystemExit(f"serve benchmark: GET {path} answered {status or failure}")
        text = body.decode("utf-8", "replace")
        if path == "/":
            tags = [t for t in re.findall(r"<(?:link|script|img)\b[^>]*>", text) if 'loading="lazy"' not in t]
            refs = [m.group(1) for t in tags if (m := re.search(r'\b(?:href|src)="([^"]+)"', t))]
        elif path.endswith(".js"):
            refs = re.findall(r"""(?:\bfrom|\bimport)\s*["']([^"']+)["']""", text)
        else:
            refs = []
        for ref in refs:
            url = urljoin(f"http://x{path}", ref)
            if url.startswith("http://x/"):
                rel = url[len("http://x"):]
                if rel not in found and rel != "/":
                    found.append(rel)
                    todo.append(rel)
    session.close()
    return found + ["/favicon.ico"]


def poem_lines(poem: dict | str) -> tuple[str, list[str]]:
    """(text, lines each with its mark) of one poem of a generate answer."""
    if isinstance(poem, dict):
        return poem["poem"], poem.get("lines") or poem_lines(poem["poem"])[1]
    return poem, re.findall(f"[^{LINE_MARKS}]+[{LINE_MARKS}]?", poem)


def lesson(rng: random.Random, page: list[tuple], names: list[str], reviews: list[str]):
    """One student's lesson: yields (action, requests); is sent back each action's Result."""
    post = lambda path, body: [("POST", path, body)]  # noqa: E731
    yield "page", page
    chosen = rng.sample(names, 5)
    for name in chosen:
        yield "names/predict", post("/api/names/predict", {"names": [name], "top": 3})
        yield "names/trace", post("/api/names/trace", {"name": name, "top": 5})
    yield "names/saliency", post("/api/names/saliency", {"name": rng.choice(chosen)})
    rewrite_at, rewritten = rng.randrange(3), False
    for i in range(3):
        form = rng.choice(POEM_FORMS)
        body = {"form": form, "seed": rng.randrange(100_000), "top": 6, "n": 1, "details": True}  # as the page asks
        r = yield "poems/generate", post("/api/poems/generate", body)
        if i >= rewrite_at and not rewritten and r.kind == "ok":  # this poem's line rewritten, its alternatives
            answer = r.json()
            text, lines = poem_lines(answer["results"][0])
            yield "poems/regenerate", post("/api/poems/regenerate", {
                "lines": lines, "line": rng.randrange(len(lines)), "form": form, "seed": rng.randrange(10**9),
                "top": 6, "run": answer["run"]})
            yield "poems/alternatives", post("/api/poems/alternatives", {"poem": text, "top": 6, "run": answer["run"]})
            rewritten = True
    for text in rng.sample(reviews, 3):
        yield "sentiment/predict", post("/api/sentiment/predict", {"texts": [text]})


class Student(threading.Thread):
    def __init__(self, port: int, seed: int, args, page, names, reviews, stop_at: float) -> None:
        super().__init__(daemon=True)
        self.port, self.rng, self.args, self.stop_at = port, random.Random(seed), args, stop_at
        self.script = lesson(self.rng, page, names, reviews)
        self.tallies = {a: Tally() for a in ACTIONS}
        self.finished = False

    def run(self) -> None:
        lo, hi = self.args.think
        pause_until(self.rng.uniform(0, self.args.stagger), self.stop_at)
        session = Session(self.port, self.args.timeout)
        try:
            action, steps = next(self.script)
            while time.monotonic() < self.stop_at:
                result = perform(session, steps, self.rng, self.args.retries, self.stop_at)
                self.tallies[action].add(result)
                action, steps = self.script.send(result)
                pause_until(self.rng.uniform(lo, hi), self.stop_at)  # reads the answer, types the next
        except StopIteration:
            self.finished = True
        session.close()


def run_classroom(args, students: int) -> dict:
    from benchutil import format_table

    label = f"classroom of {students}"
    names, mix_reviews = inputs()
    with Server(args) as server:
        warm_up(server.port, names, mix_reviews)
        page = [("GET", "/", None)] + [("GET", f, None) for f in page_files(server.port)] + [
            ("GET", p, None) for p in ("/api/tasks", "/api/runs", "/api/health")]
        _, tasks = get_json(server.port, "/api/tasks")
        try:  # the API's own limit on one review, as it declares it
            limit = next(t["verbs"]["predict"]["input"]["max_chars"]
                         for t in tasks["tasks"] if t["name"] == "sentiment")
        except (KeyError, TypeError, StopIteration):
            limit = 10**9
        every_review = read_reviews()
        reviews = [r[:limit] for r in every_review]
        stop_at = time.monotonic() + LESSON_LIMIT_S
        pool = [Student(server.port, args.seed * 1000 + i, args, page, names, reviews, stop_at)
                for i in range(students)]
        t0 = time.perf_counter()
        for s in pool:
            s.start()
        for s in pool:
            s.join(max(1.0, stop_at - time.monotonic()) + args.timeout + 10)
        wall = time.perf_counter() - t0
    tallies = merge([s.tallies for s in pool], ACTIONS)
    rows = []
    for action, t in tallies.items():
        within = sum(x <= WITHIN_S for x in t.ok)
        rows.append({"action": action, "actions": t.count, **latency_columns(t.ok),
                     "within 1 s": f"{within / t.count:.1%}" if t.count else "-", "503 answers": t.busy,
                     "shed": t.shed, "errors": len(t.errors), "5xx": t.server_errors})
    every = Tally.merged(list(tallies.values()))
    within = sum(x <= WITHIN_S for x in every.ok)
    share = within / every.count if every.count else float("nan")
    finished = sum(s.finished for s in pool)
    lengths = sorted(len(r) for r in every_review)
    print(f"### {label}: {students} students, each the lesson once (think {args.think[0]:g}-{args.think[1]:g} s, "
          f"start within {args.stagger:g} s; a 503 retried after Retry-After up to {args.retries} times); "
          f"{wall:.1f} s, {finished} of {students} students finished")
    static = sum(p.startswith("/static/") for _, p, _ in page)
    print(f"{server.describe()}; the page: {len(page)} requests (/, {static} files under /static/, "
          + ", ".join(p for _, p, _ in page if p != "/" and not p.startswith("/static/")) + ")")
    print(f"reviews: {len(reviews)} of the bundled data, whole: {percentile(lengths, 50):.0f} characters at the "
          f"median, {percentile(lengths, 95):.0f} at p95, {lengths[-1]} the longest; "
          f"{sum(n > limit for n in lengths)} cut at the API's limit of {limit} characters")
    print()
    print(format_table(rows, ["action", "actions", "p50 ms", "p95 ms", "p99 ms", "within 1 s", "503 answers", "shed",
                              "errors", "5xx"]))
    print()
    print(f"all actions: {every.count}, {share:.1%} answered within 1 s; {every.busy} 503 answers, {every.shed} "
          f"actions shed after {args.retries} retries; {len(every.errors)} errors "
          f"({every.server_errors} 5xx other than 503)")
    print(memory_line(server.memory))
    print()
    server.show_errors(tallies)
    errors = len(every.errors)
    checks = [check(f"{label}: actions answered within 1 s >= {CLASSROOM_SHARE:.0%}", f"{share:.1%} of {every.count}",
                    share >= CLASSROOM_SHARE),
              check(f"{label}: errors: 0", f"{errors} ({every.shed} shed by 503)", errors == 0),
              check(f"{label}: 5xx other than 503: 0", str(every.server_errors), every.server_errors == 0)]
    return {"mode": "classroom", "label": label, "students": students, "finished": finished, "wall_s": round(wall, 2),
            "think_s": list(args.think), "stagger_s": args.stagger, "retries": args.retries,
            "page": [p for _, p, _ in page], "rows": rows, "actions": every.count, "within_1s": within,
            "within_1s_share": share, "busy_503": every.busy,
            "shed_503": every.shed, "errors": errors, "server_errors_5xx": every.server_errors,
            "checks": checks, **server.memory}


# --- the command ----------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classroom", type=int, default=0, metavar="N", help="a lesson of N students (--all: 40)")
    p.add_argument("--burst", type=int, default=0, metavar="N", help="N clients at once, health probed (--all: 64)")
    p.add_argument("--all", action="store_true", help="the mix, then the classroom, then the burst, each on a fresh "
                   "server, and one targets table")
    p.add_argument("--quick", action="store_true", help="a smoke run: 5 s, a classroom of 4 thinking 0.2-1 s, "
                   "a burst of 8 (sizes given explicitly win)")
    p.add_argument("--duration", type=float, help="seconds of the mix and of the burst (default 30; --quick 5)")
    p.add_argument("--clients", type=int, default=16, help="the mix's clients (default %(default)s)")
    p.add_argument("--think", help="a student's think time before each action, MIN,MAX seconds (default 1,4)")
    p.add_argument("--stagger", type=float, help="students start at random within this many seconds (default 5)")
    p.add_argument("--retries", type=int, default=5, help="a student's tries again after a 503 (default %(default)s)")
    p.add_argument("--max-requests", type=int, default=200_000, help="the mix or burst stops after this many requests")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before one request counts as an error")
    p.add_argument("--runs", action="append", default=[], metavar="DIR", help="run folders for the server (--runs)")
    p.add_argument("--no-bundled", action="store_true", help="serve only --runs (the server's --no-bundled)")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads per request (default %(default)s)")
    p.add_argument("--workers", type=int, default=1, help="the server's processes (its --workers; 1: not passed)")
    p.add_argument("--concurrency", type=int, default=0,
                   help="the server's requests of a task computed at once (its --concurrency; 0: not passed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):  # the tables and the errors (stderr) in the order they come
        sys.stdout.reconfigure(line_buffering=True)
    args.duration = args.duration if args.duration is not None else 5.0 if args.quick else 30.0
    args.stagger = args.stagger if args.stagger is not None else 1.0 if args.quick else 5.0
    try:
        args.think = tuple(float(x) for x in (args.think or ("0.2,1" if args.quick else "1,4")).split(","))
        assert len(args.think) == 2 and 0 <= args.think[0] <= args.think[1] <= 60
    except (ValueError, AssertionError):
        p.error("--think MIN,MAX: seconds, 0 <= MIN <= MAX <= 60")
    if args.all:
        args.classroom = args.classroom or (4 if args.quick else 40)
        args.burst = args.burst or (8 if args.quick else 64)
    if not (0 < args.duration <= 600 and 1 <= args.clients <= 256 and args.max_requests >= 1):
        p.error("--duration in (0, 600], --clients in [1, 256], --max-requests >= 1")
    if not (0 <= args.classroom <= 500 and 0 <= args.burst <= 512 and 0 <= args.retries <= 20 and args.workers >= 1
            and args.concurrency >= 0 and 0 <= args.stagger <= 120 and args.timeout > 0):
        p.error("--classroom in [0, 500], --burst in [0, 512], --retries in [0, 20], --workers >= 1, "
                "--concurrency >= 0, --stagger in [0, 120], --timeout > 0")

    sys.path.insert(0, str(HERE))
    from benchutil import format_table, machine_info

    import torch

    torch.set_num_threads(args.threads)
    print(f"rnnlab serve under load; machine: {machine_info()} (the clients run on the same cores)", flush=True)
    print()
    sections = []
    if args.all or not (args.classroom or args.burst):
        sections.append(run_mix(args))
        sys.stdout.flush()
    if args.classroom:
        sections.append(run_classroom(args, args.classroom))
        sys.stdout.flush()
    if args.burst:
        sections.append(run_mix(args, burst=args.burst))
    if args.all and not args.quick:
        sections.append(run_alone(args))
    checks = [c for s in sections for c in s["checks"]]
    errors = sum(s["errors"] for s in sections)
    print(format_table([{"target": a, "measured": b, "": c} for a, b, c in checks], ["target", "measured", ""]))
    if args.json:
        Path(args.json).write_text(json.dumps({"sections": sections, "checks": checks, "errors": errors,
                                               "machine": machine_info(), "options": vars(args)},
                                              ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
