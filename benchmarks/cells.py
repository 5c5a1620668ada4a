"""Cell speed: rnnlab.nn (cells from the equations, hand-written BPTT) vs torch.nn's fused layers.

Forward + backward of one layer, batch 64, 32 steps, input 128, hidden 256 by default; median of
repeated calls on the same machine in the same run, with the thread count fixed (2 by default).

    python benchmarks/cells.py [--threads 2] [--repeats 30] [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

import rnnlab.nn as rnn_scratch
from benchutil import machine_info, print_table

TARGET_RATIO = 1.3  # issue: rnnlab / torch.nn <= 1.3 for LSTM and GRU


def time_pair(fn_a, fn_b, repeats: int, warmup: int, sync) -> tuple[float, float]:
    """Median ms of two callables, measured interleaved (a, b, a, b, ...) so that drift in the
    machine's speed during the run affects both alike."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, out in ((fn_a, samples[0]), (fn_b, samples[1])):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - start)
    return statistics.median(samples[0]) * 1000.0, statistics.median(samples[1]) * 1000.0


def measure(args) -> list[dict]:
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for name in ("RNN", "LSTM", "GRU"):
        torch.manual_seed(args.seed)
        ref = getattr(torch.nn, name)(args.input, args.hidden).to(device)
        ours = getattr(rnn_scratch, name)(args.input, args.hidden).to(device)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(args.steps, args.batch, args.input, device=device, requires_grad=True)

        def step(model):
            def run():
                out, _ = model(x)
                out.sum().backward()
            return run

        ms_ref, ms_ours = time_pair(step(ref), step(ours), args.repeats, args.warmup, sync)
        target = TARGET_RATIO if name in ("LSTM", "GRU") else None
        ratio = ms_ours / ms_ref
        rows.append({
            "cell": name, "torch_ms": round(ms_ref, 2), "rnnlab_ms": round(ms_ours, 2), "ratio": round(ratio, 2),
            "target": f"<= {target}" if target else "-",
            "met": ("yes" if ratio <= target else "NO") if target else "-",
        })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="fewer repeats, for smoke checks")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup = 5, 2
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = measure(args)
    if args.json:
        print(json.dumps({"rows": rows, "machine": machine_info(args.device)}))
        return 0
    print(f"cells: forward+backward, batch {args.batch}, {args.steps} steps, input {args.input}, "
          f"hidden {args.hidden}, median of {args.repeats}")
    print_table(rows, ["cell", "torch_ms", "rnnlab_ms", "ratio", "target", "met"])
    info = machine_info(args.device)
    print(f"machine: {info}; seed {args.seed}; wall {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
