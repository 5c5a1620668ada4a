"""Data-parallel scaling: training throughput of the names and poems tasks on 1 and 2 processes
(torchrun, gloo on CPU, 1 thread per process), the scaling efficiency, where a step's time goes
(compute vs gradient all-reduce), and what to expect on more cores or GPUs.

    python benchmarks/distributed.py            # about 2-3 minutes on a quiet 2-core machine
    python benchmarks/distributed.py --quick    # a smoke run (smaller epochs)

Each configuration is a real ``torchrun --standalone --nproc_per_node=N`` launch of this script's
worker, which builds the task's default model and trains it through rnnlab's own loop
(``Trainer.train_epoch``: the same DDP wrapping, row split and loss scaling as ``rnnlab train``) for
one warm-up epoch and one timed epoch on a slice of the training data, at the global batch size of
the task's defaults (64). Then it times the parts of a step: forward + backward + optimizer on the
rank's share of each batch without gradient sync (``no_sync``), an all-reduce of a gradient-sized
buffer, and of a 2-number buffer (the loop's per-step loss/stop reduction, and the latency).

The estimate for N processes is ``t_step(N) = t_compute(64 / N rows) + t_allreduce(N)``: the compute
at a share of 64/N rows is measured in the 1-process run, and a ring all-reduce is modelled as
``2 (N-1) alpha + 2 (N-1)/N * S / beta`` with the latency alpha and bandwidth beta calibrated on the
2-process measurement (one machine, loopback TCP). It assumes one free core per process and that
memory bandwidth does not run out: an estimate, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASKS = ("names", "poems")
FULL = {"names": 6400, "poems": 1280}  # training items per timed epoch
QUICK = {"names": 1280, "poems": 256}
BATCH = 64
SHARES = (64, 32, 16, 8, 4)  # rows per process at N = 1, 2, 4, 8, 16


# --- the worker: one process of a torchrun launch ---------------------------------------------------
def worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "src"))
    from dataclasses import replace

    from rnnlab import distributed
    from rnnlab.experiment import default_configs
    from rnnlab.tasks import get_task
    from rnnlab.train import Trainer, batch_rows, local_rows, seed_everything

    d = distributed.setup()
    task_cls = get_task(args.task)
    task_cfg, model_cfg, train_cfg = default_configs(task_cls)
    task_cfg = replace(task_cfg, limit=args.items)
    if args.task == "names":  # one network: the names default's ensemble of 5 would only make each step 5 times longer
        model_cfg = replace(model_cfg, ensemble=1)
    train_cfg = replace(train_cfg, batch_size=BATCH, epochs=2, max_time=0.0, progress=False, patience=0)
    seed_everything(0)
    task = task_cls(task_cfg, seed=0)
    model_cfg = task.model_config(model_cfg)
    seed_everything(0)
    model = task.build_model(model_cfg)
    device = d.device("cpu")
    run_dir = Path(d.on_main(tempfile.mkdtemp, prefix="rnnlab-dist-bench-"))
    trainer = Trainer(task, model, train_cfg, run_dir, device, meta={}, log=lambda *a: None)
    trainer.train_epoch(1)  # warm-up: allocator, oneDNN kernels, DDP buckets
    d.barrier()
    _, seconds, _ = trainer.train_epoch(2)
    seconds = max(d.gather_objects(seconds))  # the slowest rank sets the pace
    items = len(task.splits["train"])
    tokens = 0
    if args.task == "poems":  # characters (real target tokens) per epoch
        tokens = int(sum(float(task.loss_weight(b)) for b in task.batches("train", BATCH, False)))

    # The parts of a step on this rank's share of each batch, without the gradient all-reduce.
    def step_time(rows_of) -> float:
        net, opt = trainer.net, trainer.opt
        gen = torch.Generator().manual_seed(7)
        times = []
        for i, batch in enumerate(task.batches("train", BATCH, True, gen)):
            rows = batch_rows(batch)
            lo, hi = rows_of(rows)
            if hi <= lo:
                continue
            local = local_rows(batch, rows, lo, hi)
            t0 = time.perf_counter()
            with (net.no_sync() if d.enabled else _nothing()):
                _, loss = net(**local)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if i:  # the first is a warm-up
                times.append(time.perf_counter() - t0)
        return sum(times) / max(len(times), 1)

    result = {"task": args.task, "processes": d.world_size, "items": items, "tokens": tokens, "seconds": seconds,
              "steps": trainer.steps_per_epoch,
              "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}
    if d.enabled:
        mine = step_time(lambda rows: distributed.row_range(rows, d.world_size, d.rank))
        result["compute_s"] = max(d.gather_objects(mine))
        group = d.compute_group(device)
        result["allreduce_s"] = _allreduce_time(torch.zeros(result["parameters"]), d, group, args.reps)
        result["scalar_s"] = _allreduce_time(torch.zeros(2, dtype=torch.float64), d, group, args.reps * 4)
    else:
        result["compute_at"] = {str(b): step_time(lambda rows, b=b: (0, min(b, rows))) for b in SHARES}
    if d.is_main:
        Path(args.json).write_text(json.dumps(result), encoding="utf-8")
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _allreduce_time(buf, d, group, reps: int) -> float:
    import torch.distributed as dist

    for _ in range(3):
        dist.all_reduce(buf, group=group)
    d.barrier()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        dist.all_reduce(buf, group=group)
        times.append(time.perf_counter() - t0)
    times.sort()
    return max(d.gather_objects(times[len(times) // 2]))  # the median, slowest rank


# --- the driver ----------------------------------------------------------------------------------------
def launch(task: str, nproc: int, items: int, reps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(Path(__file__).resolve()), "--worker", "--task", task, "--items", str(items), "--reps", str(reps),
               "--json", str(out)]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise SystemExit(f"distributed benchmark: {task} on {nproc} process(es) failed:\n{r.stderr[-3000:]}")
        return json.loads(out.read_text(encoding="utf-8"))


def estimate(one: dict, two: dict, n: int) -> dict:
    """Step time, items/s and efficiency at n processes (see the module docstring)."""
    alpha = two["scalar_s"] / 2  # a 2-process all-reduce of a tiny buffer: two latencies
    bandwidth_term = max(two["allreduce_s"] - 2 * alpha, 0.0)  # S / beta at N = 2
    share = str(BATCH // n) if str(BATCH // n) in one["compute_at"] else str(min(SHARES))
    t_allreduce = 0.0 if n == 1 else 2 * (n - 1) * alpha + 2 * (n - 1) / n * bandwidth_term
    t_scalar = 0.0 if n == 1 else 2 * (n - 1) * alpha
    step = one["compute_at"][share] + t_allreduce + t_scalar
    step_1 = one["compute_at"][str(BATCH)]
    return {"processes": n, "rows per process": int(share), "compute ms": round(one["compute_at"][share] * 1e3, 2),
            "all-reduce ms": round((t_allreduce + t_scalar) * 1e3, 2), "step ms": round(step * 1e3, 2),
            "speed-up": round(step_1 / step, 2), "efficiency": f"{step_1 / step / n:.0%}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller epochs: a smoke run")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--threads", type=int, default=1, help="ignored: every process runs 1 thread (for run_all)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--items", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--reps", type=int, default=20, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    sys.path.insert(0, str(HERE))
    from benchutil import format_table, machine_info

    import torch

    torch.set_num_threads(1)  # as each worker
    started = time.perf_counter()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    sizes, reps = (QUICK, 5) if args.quick else (FULL, 20)
    tasks = [t for t in args.tasks.split(",") if t]
    results, rows, estimates = {}, [], []
    for task in tasks:
        one = launch(task, 1, sizes[task], reps)
        two = launch(task, 2, sizes[task], reps)
        results[task] = {"1": one, "2": two}
        for r in (one, two):
            rate = r["items"] / r["seconds"]
            rows.append({"task": task, "processes": r["processes"], "items/epoch": r["items"], "steps": r["steps"],
                         "seconds": round(r["seconds"], 2), "items/s": round(rate, 1),
                         "chars/s": round(r["tokens"] / r["seconds"]) if r["tokens"] else "",
                         "step ms": round(r["seconds"] / r["steps"] * 1e3, 1),
                         "efficiency": f"{rate / (one['items'] / one['seconds']) / r['processes']:.0%}"})
        mb = two["parameters"] * 4 / 2**20
        estimates.append((task, one, two, mb))
    print("Data-parallel training throughput (torchrun --standalone, gloo, 1 thread per process, global batch "
          f"{BATCH}; {'quick: ' if args.quick else ''}one timed epoch after a warm-up)\n")
    print(format_table(rows, ["task", "processes", "items/epoch", "steps", "seconds", "items/s", "chars/s", "step ms",
                              "efficiency"]))
    print("\nWhere a 2-process step goes (per process, medians; compute = forward + backward + optimizer on its "
          "share without gradient sync):\n")
    parts = [{"task": t, "parameters": f"{two['parameters']:,}", "gradient MB": round(mb, 2),
              "compute ms (1 proc, 64 rows)": round(one["compute_at"][str(BATCH)] * 1e3, 2),
              "compute ms (2 procs, 32 rows each)": round(two["compute_s"] * 1e3, 2),
              "all-reduce ms (gradient)": round(two["allreduce_s"] * 1e3, 2),
              "all-reduce ms (2 numbers)": round(two["scalar_s"] * 1e3, 3)} for t, one, two, mb in estimates]
    print(format_table(parts, list(parts[0])))
    print("\nEstimate for more processes on one machine with a free core each (compute at 64/N rows measured in "
          "one process; ring all-reduce calibrated on the 2-process figures; not measured):\n")
    for task, one, two, _ in estimates:
        table = [estimate(one, two, n) for n in (1, 2, 4, 8, 16)]
        print(f"{task}:")
        print(format_table(table, list(table[0])))
        print()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        print(f"GPUs: {gpus} present; this script measures CPU processes only.")
    else:
        print("GPUs: none on this machine, and no GPU machine was lent to this task: the 1-process vs all-GPUs "
              "measurement was not made. On GPUs (nccl) the all-reduce of these gradients is far cheaper than over "
              "loopback TCP, but the per-step compute of these small recurrent models is dominated by fixed costs "
              "(kernel launches, step by step), so splitting a batch of 64 buys little: raise --batch-size with the "
              "number of GPUs (and --lr with it) to gain throughput.")
    print(f"\nmachine: {machine_info()}; {cores} cores available; wall {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
