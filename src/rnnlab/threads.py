"""How many threads torch uses: chosen when training starts, and followed while it runs.

Why (measured on a 2-core machine; benchmarks/contention.py has the table): torch's CPU work runs
OpenMP threads that meet at a barrier at the end of every parallel region -- hundreds per training
step of a recurrent net. Quiet, 2 threads beat 1. But when another process keeps one core busy, the
thread that shares its core is descheduled for whole time slices, and every barrier waits for it: an
epoch that takes 3 s alone took 12 s beside a busy Python loop, and two default trainings at once
slowed each other 4x (``OMP_WAIT_POLICY=PASSIVE`` helps the busy case but costs the quiet one).
One thread per core that is actually free avoids the fight, so that is what ``--threads auto`` (the
default) uses::

    cores   = the CPUs this process may run on (os.sched_getaffinity), capped by the cgroup's CPU
              quota and by OMP_NUM_THREADS when it is set (a cap the user or a launcher chose)
    others  = cores' worth of CPU time the rest of the machine used over the last window
              (/proc/stat's busy and stolen time on those CPUs, minus this process's own CPU time)
    threads = max(1, min(cores, round(cores - others)))

It is measured for 0.2 s before the first step, then every second while training (``tick`` after
each step, a few microseconds); the count changes when two windows in a row agree (a neighbour that
arrives costs at most two slow seconds, a command that runs for one second changes nothing).
``--threads N`` fixes N.

Changing the count mid-run must not change a seeded run's numbers, and by default it would: MKL
splits a matrix product differently for 1 and 2 threads, so the last bits differ (about 1e-7 after a
few steps) and a run would depend on its neighbours. rnnlab therefore turns on MKL's strict
conditional numerical reproducibility (``MKL_CBWR=AUTO,STRICT``, set when rnnlab is imported, unless
the environment sets MKL_CBWR already; it takes effect if torch has run no matrix product yet), under
which the products are bit-identical for any thread count. tests/test_threads.py checks that a run on
1 thread and on 2 gives the same weights.

Torch-free at import (the CLI reads ``--threads`` before torch loads); torch is imported when a
count is applied. Without /proc (not Linux) ``auto`` uses every core and does not follow the load.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from .options import BadValue

AUTO = "auto"
MAX_THREADS = 1024
STRICT_REPRODUCIBILITY = ("MKL_CBWR", "AUTO,STRICT")
WINDOW_S = 1.0  # how often the load is measured while training
PROBE_S = 0.2  # the first measurement, before training starts


def parse_threads(text) -> str:
    """``auto`` or a whole number of threads from 1 to 1024 (as text: that is how config.json stores it)."""
    value = str(text).strip().lower()
    if value == AUTO:
        return AUTO
    try:
        n = int(value)
    except ValueError:
        raise BadValue(f"{text}: give auto or a number of threads from 1 to {MAX_THREADS}") from None
    if not 1 <= n <= MAX_THREADS:
        raise BadValue(f"{text}: give auto or a number of threads from 1 to {MAX_THREADS}")
    return str(n)


parse_threads.__name__ = "threads"


def ensure_reproducible_products() -> None:
    """Ask MKL for thread-count-independent results (see the module docstring)."""
    os.environ.setdefault(*STRICT_REPRODUCIBILITY)


def _quota_cores() -> float | None:
    """The cgroup v2 CPU quota in cores (``cpu.max``: "quota period"), or None when unlimited/unknown."""
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max", encoding="ascii").read().split()[:2]
        return None if quota == "max" else max(1.0, int(quota) / int(period))
    except (OSError, ValueError):
        return None


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def core_cap() -> tuple[int, str]:
    """How many threads ``auto`` may use at most, and why: the usable CPUs, the cgroup quota, OMP_NUM_THREADS."""
    cores, why = len(usable_cpus()), "cores this process may use"
    quota = _quota_cores()
    if quota is not None and int(quota) < cores:
        cores, why = int(quota), "the cgroup's CPU quota"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and 0 < int(env) < cores:
        cores, why = int(env), "OMP_NUM_THREADS"
    return max(1, cores), why


@dataclass
class Sample:
    wall: float  # seconds (monotonic)
    busy: float | None  # CPU seconds spent busy (or stolen) on our CPUs, all processes; None without /proc/stat
    own: float  # this process's CPU seconds


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def sample(cpus: list[int]) -> Sample:
    """One reading of the clock, the machine's busy time on ``cpus`` and this process's CPU time."""
    wanted = {f"cpu{i}" for i in cpus}
    busy = None
    try:
        with open("/proc/stat", encoding="ascii") as f:
            busy = 0.0
            for line in f:
                if not line.startswith("cpu"):
                    break
                parts = line.split()
                if parts[0] not in wanted:
                    continue
                # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
                values = [int(v) for v in parts[1:9]]
                busy += sum(values) - values[3] - values[4]
            busy /= _TICK
    except (OSError, ValueError):
        busy = None
    return Sample(time.monotonic(), busy, time.process_time())


def others_load(before: Sample, after: Sample) -> float | None:
    """Cores' worth of CPU the rest of the machine used between two samples (None: unknown)."""
    wall = after.wall - before.wall
    if before.busy is None or after.busy is None or wall <= 0:
        return None
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / wall)


def fitting(cores: int, others: float | None) -> int:
    if others is None:
        return cores
    return max(1, min(cores, int(cores - others + 0.5)))


def set_torch_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


@dataclass
class ThreadGovernor:
    """Applies ``--threads`` (``auto`` or N) to torch and, for ``auto``, follows the machine's load.

    ``start()`` once before training, ``tick()`` after every step, ``summary()`` for train_summary.json.
    ``follow=False`` (several processes under torchrun) keeps the starting count."""

    spec: str = AUTO
    follow: bool = True
    window: float = WINDOW_S
    cores: int = 0
    cap_reason: str = ""
    threads: int = 0
    others: float | None = None
    changes: list = field(default_factory=list)  # (seconds since start, old, new, others' load)
    _last: Sample | None = None
    _pending: tuple = (0, 0)  # (the count the last windows wanted, how many windows in a row)
    _t0: float = 0.0
    _since: float = 0.0
    _seconds: dict = field(default_factory=dict)  # threads -> seconds spent at that count

    @property
    def auto(self) -> bool:
        return self.spec == AUTO

    def start(self, probe: float = PROBE_S) -> int:
        self.spec = parse_threads(self.spec)
        self._t0 = self._since = time.monotonic()
        if not self.auto:
            self.threads, self.cores, self.cap_reason = int(self.spec), int(self.spec), "--threads"
            set_torch_threads(self.threads)
            return self.threads
        self.cores, self.cap_reason = core_cap()
        self._cpus = usable_cpus()
        self.threads = self.cores
        if self.cores > 1:  # one thread is all there is to choose otherwise: no need to look
            before = sample(self._cpus)
            time.sleep(probe)
            self._last = sample(self._cpus)
            self.others = others_load(before, self._last)
            self.threads = fitting(self.cores, self.others)
        set_torch_threads(self.threads)
        return self.threads

    def tick(self) -> None:
        """After a training step: every ``window`` seconds, measure and follow the load."""
        if not (self.auto and self.follow and self.cores > 1 and self._last is not None):
            return
        now = time.monotonic()
        if now - self._last.wall < self.window:
            return
        current = sample(self._cpus)
        self.others = others_load(self._last, current)
        self._last = current
        want = fitting(self.cores, self.others)
        if want == self.threads:
            self._pending = (0, 0)
            return
        # A change needs two windows in a row that want it: a command that runs for a second (or a
        # neighbour that pauses for one) should not make the count flap.
        seen = self._pending[1] + 1 if self._pending[0] == want else 1
        self._pending = (want, seen)
        if seen >= 2:
            self._pending = (0, 0)
            self._account(now)
            self.changes.append((round(now - self._t0, 1), self.threads, want, round(self.others or 0.0, 2)))
            self.threads = want
            set_torch_threads(want)

    def _account(self, now: float) -> None:
        self._seconds[self.threads] = self._seconds.get(self.threads, 0.0) + now - self._since
        self._since = now

    def describe(self) -> str:
        """One line for the run's log."""
        if not self.auto:
            return f"threads: {self.threads} (--threads {self.spec})"
        if self.others is None:  # one usable core, or no /proc/stat to read the load from
            return f"threads: {self.threads} (auto: {self.cores} at most, by {self.cap_reason})"
        busy = "quiet" if self.others < 0.5 else f"other processes keep {self.others:.1f} core(s) busy"
        follow = "; followed while training" if self.follow and self.cores > 1 else ""
        return f"threads: {self.threads} of {self.cores} (auto: {busy}{follow})"

    def epoch_note(self, since: int) -> str:
        """The changes after the first ``since`` ones, for an epoch's log line ('' when none)."""
        new = self.changes[since:]
        return "" if not new else "  threads " + " ".join(f"{a}->{b}" for _, a, b, _ in new)

    def summary(self) -> dict:
        """What the run did so far (reading it changes nothing: the current count's open interval is
        added to a copy)."""
        seconds = dict(self._seconds)
        seconds[self.threads] = seconds.get(self.threads, 0.0) + time.monotonic() - self._since
        return {"policy": self.spec, "cores": self.cores, "cap": self.cap_reason, "threads_now": self.threads,
                "changes": [list(c) for c in self.changes],
                "seconds_at": {str(k): round(v, 1) for k, v in sorted(seconds.items())}}
