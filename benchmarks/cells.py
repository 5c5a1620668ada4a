"""Cell speed: rnnlab.nn (cells from the equations, hand-written BPTT) vs torch.nn's fused layers.

Forward + backward of one layer, 32 steps, input 128; median of repeated calls measured alternately
on the same machine in the same run, with the thread count fixed (2 by default). Shapes: the
reference (batch 64, hidden 256), hidden 64 and 512, batch 1 and 16. For the LSTM and the GRU a
second rnnlab figure, ``eager_ms``, is the pure-PyTorch step (RNNLAB_FUSED=0: what runs where the
one-pass C kernels of rnnlab.nn.fused cannot), so the table shows what the kernels buy.

    python benchmarks/cells.py [--threads 2] [--repeats 30] [--device cpu] [--json] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

import rnnlab.nn as rnn_scratch
from benchutil import machine_info, print_table

# Issue #18: rnnlab / torch.nn at the reference shape: LSTM <= 1.15, GRU and RNN <= 1.0; LSTM <= 1.4 at hidden 64.
REFERENCE = (64, 256)  # (batch, hidden)
SHAPES = (REFERENCE, (64, 64), (64, 512), (1, 256), (16, 256))
TARGETS = {("LSTM", REFERENCE): 1.15, ("GRU", REFERENCE): 1.0, ("RNN", REFERENCE): 1.0, ("LSTM", (64, 64)): 1.4}


def time_all(fns: list, repeats: int, warmup: int, sync) -> list[float]:
    """Median ms of each callable, measured interleaved (a, b, c, a, b, c, ...) so that drift in the
    machine's speed during the run affects all alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - start)
    return [statistics.median(s) * 1000.0 for s in samples]


def eager(fn):
    """``fn`` with rnnlab's one-pass C kernels switched off (the pure-PyTorch reference path)."""
    def run():
        os.environ["RNNLAB_FUSED"] = "0"
        try:
            fn()
        finally:
            os.environ.pop("RNNLAB_FUSED", None)
    return run


def measure(args) -> list[dict]:
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for batch, hidden in args.shapes:
        for name in ("RNN", "LSTM", "GRU"):
            torch.manual_seed(args.seed)
            ref = getattr(torch.nn, name)(args.input, hidden).to(device)
            ours = getattr(rnn_scratch, name)(args.input, hidden).to(device)
            ours.load_state_dict(ref.state_dict())
            x = torch.randn(args.steps, batch, args.input, device=device, requires_grad=True)

            def step(model):
                def run():
                    out, _ = model(x)
                    out.sum().backward()
                return run

            fns = [step(ref), step(ours)] + ([eager(step(ours))] if name in ("LSTM", "GRU") and device.type == "cpu" else [])
            ms = time_all(fns, args.repeats, args.warmup, sync)
            target = TARGETS.get((name, (batch, hidden)))
            ratio = ms[1] / ms[0]
            rows.append({
                "cell": name, "batch": batch, "hidden": hidden, "torch_ms": round(ms[0], 2), "rnnlab_ms": round(ms[1], 2),
                "ratio": round(ratio, 2), "eager_ms": round(ms[2], 2) if len(ms) > 2 else "-",
                "eager_ratio": round(ms[2] / ms[0], 2) if len(ms) > 2 else "-",
                "target": f"<= {target}" if target else "-",
                "met": ("yes" if ratio <= target else "NO") if target else "-",
            })
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", default=",".join(f"{b}x{h}" for b, h in SHAPES),
                   help="batch x hidden pairs (default %(default)s)")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--input", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quick", action="store_true", help="fewer repeats, for smoke checks")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = p.parse_args(argv)
    args.shapes = [tuple(int(v) for v in shape.split("x")) for shape in args.shapes.split(",") if shape]
    if args.quick:
        args.repeats, args.warmup = 5, 2
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    rows = measure(args)
    if args.json:
        print(json.dumps({"rows": rows, "machine": machine_info(args.device)}))
        return 0
    print(f"cells: forward+backward of one layer, {args.steps} steps, input {args.input}, median of {args.repeats}; "
          "eager: rnnlab's LSTM and GRU without their one-pass C kernels")
    print_table(rows, ["cell", "batch", "hidden", "torch_ms", "rnnlab_ms", "ratio", "eager_ms", "eager_ratio", "target", "met"])
    info = machine_info(args.device)
    print(f"machine: {info}; seed {args.seed}; wall {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
