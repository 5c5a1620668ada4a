"""A training epoch alone and beside a busy neighbour, under the old thread policy and the new.

The workload is the issue's: one epoch of GRU on the bundled names (``rnnlab train names --cell gru``),
timed by the run itself (``epoch_time`` in metrics.jsonl: training and validation, not start-up);
each figure is the median epoch of ``--epochs`` epochs, then the median over ``--rounds`` rounds
that alternate the policies (so that drift in the machine's speed touches all alike).

    scenario        neighbour
    quiet           nothing
    busy loop       one pure-Python ``while True: pass`` process, started before the training
    two trainings   a second copy of the same training under the same policy, started together

    policy          what it is
    1 thread        --threads 1                      (the reference: quiet single-thread epoch)
    old             --threads <cores>, MKL's default  (what rnnlab did before: torch's own choice)
    old + PASSIVE   the same with OMP_WAIT_POLICY=PASSIVE (threads sleep instead of spinning)
    auto            the default now (rnnlab.threads: one thread per core left free, followed)

Targets (issue #18): beside the busy loop, auto <= 1.3x the quiet 1-thread epoch; two auto trainings,
each <= 1.3x it; quiet, auto within 5 % of the best fixed count.

    python benchmarks/contention.py [--rounds 2] [--epochs 3] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchutil import print_table

TARGET_BUSY = 1.3
TARGET_QUIET = 1.05
BUSY_LOOP = "while True: pass"


def policies(cores: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    old_env = {"MKL_CBWR": "AUTO"}  # MKL's own default mode (rnnlab now asks for AUTO,STRICT)
    return {
        "1 thread": (["--threads", "1"], {}),
        "old": (["--threads", str(cores)], old_env),
        "old + PASSIVE": (["--threads", str(cores)], {**old_env, "OMP_WAIT_POLICY": "PASSIVE"}),
        "auto": ([], {}),
    }


def train_command(out: Path, args, flags: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "rnnlab", "train", "names", "--cell", "gru", "--ensemble", "1", "--epochs", str(args.epochs),
           "--patience", "0", "--no-baseline", "--no-progress", "--out", str(out), *flags]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    return cmd


def environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_CBWR")}
    env.update(extra)
    return env


def epoch_figures(out: Path) -> dict:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = json.loads((out / "train_summary.json").read_text())
    threads = summary.get("threads", {})
    return {"epoch_s": statistics.median(r["epoch_time"] for r in rows), "threads": threads.get("seconds_at", {}),
            "changes": len(threads.get("changes", []))}


def run_scenario(scenario: str, flags: list[str], env: dict, args, root: Path) -> list[dict]:
    """Train once in ``scenario``; the figures of the measured run (and of its twin for two trainings)."""
    root.mkdir(parents=True, exist_ok=True)
    outs = [root / "a"] + ([root / "b"] if scenario == "two trainings" else [])
    neighbour = None
    if scenario == "busy loop":
        neighbour = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
        time.sleep(1.0)
    try:
        procs = [subprocess.Popen(train_command(o, args, flags), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for o in outs]
        for p in procs:
            _, err = p.communicate(timeout=3600)
            if p.returncode:
                raise SystemExit(f"contention: training failed ({err.strip().splitlines()[-1] if err.strip() else p.returncode})")
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    return [epoch_figures(o) for o in outs]


def measure(args) -> dict:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    pol = policies(cores)
    plan = [("quiet", name) for name in pol] + [(s, name) for s in ("busy loop", "two trainings")
                                                for name in pol if name != "1 thread"]
    samples: dict[tuple[str, str], list[dict]] = {key: [] for key in plan}
    with tempfile.TemporaryDirectory(prefix="rnnlab-contention-") as tmp:
        for r in range(args.rounds):
            order = plan if r % 2 == 0 else list(reversed(plan))
            for i, (scenario, name) in enumerate(order):
                flags, extra = pol[name]
                figs = run_scenario(scenario, flags, environment(extra), args, Path(tmp) / f"r{r}-{i}")
                samples[(scenario, name)].extend(figs)
                print(f"round {r + 1}/{args.rounds}  {scenario:<13} {name:<14} "
                      + "  ".join(f"{f['epoch_s']:.2f} s (threads {f['threads']})" for f in figs), flush=True)
    one = statistics.median(f["epoch_s"] for f in samples[("quiet", "1 thread")])
    best_quiet = min(statistics.median(f["epoch_s"] for f in samples[("quiet", n)]) for n in pol if n != "auto")
    rows = []
    for (scenario, name), figs in samples.items():
        epoch = statistics.median(f["epoch_s"] for f in figs)
        row = {"scenario": scenario, "policy": name, "epoch_s": round(epoch, 2), "vs_quiet_1_thread": round(epoch / one, 2),
               "threads_used": " ".join(sorted({k for f in figs for k in f["threads"]})) or "-", "target": "-", "met": "-"}
        if name == "auto" and scenario != "quiet":
            row["target"] = f"<= {TARGET_BUSY}x 1 thread"
            row["met"] = "yes" if epoch / one <= TARGET_BUSY else "NO"
        elif name == "auto":
            row["target"] = f"<= {TARGET_QUIET}x best fixed ({best_quiet:.2f} s)"
            row["met"] = "yes" if epoch / best_quiet <= TARGET_QUIET else "NO"
        rows.append(row)
    return {"rows": rows, "cores": cores, "quiet_1_thread_s": round(one, 2), "best_fixed_quiet_s": round(best_quiet, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (median over them)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per training (median epoch)")
    p.add_argument("--limit", type=int, default=0, help="training items (0 = all; --quick: 2000)")
    p.add_argument("--quick", action="store_true", help="one round of 2-epoch runs on 2,000 names")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.epochs, args.limit = 1, 2, args.limit or 2000
    start = time.perf_counter()
    result = measure(args)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"contention: GRU on the bundled names{f' ({args.limit} items)' if args.limit else ''}, median epoch of "
          f"{args.epochs}, median of {args.rounds} round(s); {result['cores']} cores")
    print_table(result["rows"], ["scenario", "policy", "epoch_s", "vs_quiet_1_thread", "threads_used", "target", "met"])
    print(f"wall {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
