"""Weight drop, the teaching figure: the same poems language model trained three times, on the same
poems, seed and options: plain; with AWD-LSTM's weight drop alone (DropConnect on the recurrent
weights W_hh, one mask per batch: what rnnlab's hand-written cells do in one line and torch's fused
layers cannot, so every run uses ``--backend scratch``); and with AWD-LSTM's dropouts together (weight
drop, locked dropout 0.4 on the embedding and the output, embedding dropout 0.1). A model large for
its data at a constant learning rate overfits: the plain run's validation perplexity turns up after a
few epochs; the figure shows what each regulariser does about it.

It prints each run's validation perplexity per epoch, its best epoch, test perplexity and seconds per
epoch, and the ratio of each test perplexity to the plain run's (below 1: the regularisation helped),
and writes into ``--out``:

* ``plain/``, ``weight-drop/`` and ``awd/``: the runs (each with its report.html);
* ``report.html``: the comparison report (validation curves side by side, the test figures);
* ``compare.json``: so that ``rnnlab serve --runs OUT`` lists the three in the Runs tab, curves and all;
* ``awd-weight-drop.png``: the validation perplexity of the three against the epoch (``--figure``
  copies it elsewhere too, e.g. docs/img/).

    python benchmarks/awd.py [--limit 1000] [--epochs 25] [--hidden 384] [--weight-drop 0.5] [--schedule none]
        [--threads 2]
        [--out DIR] [--figure docs/img/awd-weight-drop.png]

A teaching figure, not a target: the issue's aims for the poems model are measured by
benchmarks/poems.py. Runs one training at a time (never two at once on the same cores).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchutil import machine_info, print_table  # noqa: E402



def runs(drop: float) -> list[tuple[str, str, dict]]:
    """(folder, label, options) of the three runs: plain; weight drop alone; AWD-LSTM's dropouts together
    (weight drop, locked dropout 0.4 on the embedding and the output, embedding dropout 0.1)."""
    return [("plain", "plain", {}), ("weight-drop", f"weight drop {drop:g}", {"weight_drop": drop}),
            ("awd", f"weight drop {drop:g} + locked dropout 0.4 + embedding dropout 0.1",
             {"weight_drop": drop, "dropout": 0.4, "locked_dropout": True, "embed_dropout": 0.1})]


def figure(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=120)
    for (label, rows), style in zip(curves.items(), ("-o", "-s", "-^")):
        ax.plot([r["epoch"] for r in rows], [r["val_perplexity"] for r in rows], style, label=label, markersize=4)
        best = min(rows, key=lambda r: r["val_perplexity"])
        ax.annotate(f"{best['val_perplexity']:.1f}", (best["epoch"], best["val_perplexity"]), textcoords="offset points",
                    xytext=(0, -12), ha="center", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation perplexity (per character)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=1000, help="poems (a small corpus: the plain model overfits)")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--embed-dim", type=int, default=128)
    p.add_argument("--weight-drop", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--schedule", default="none", choices=("none", "cosine", "plateau"),
                   help="the learning-rate schedule (default none: a constant rate, under which overfitting shows)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="folder for the three runs and the comparison (default: a new temporary folder)")
    p.add_argument("--figure", help="also copy the figure here (e.g. docs/img/awd-weight-drop.png)")
    args = p.parse_args(argv)
    import torch

    from rnnlab.api import train_task
    from rnnlab.runreport import render_compare_report
    from rnnlab.runs import read_json, read_jsonl

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rnnlab-bench-awd-"))
    out.mkdir(parents=True, exist_ok=True)
    common = dict(cell="lstm", backend="scratch", embed_dim=args.embed_dim, hidden=args.hidden, softmax="adaptive",
                  tie_weights=False, limit=args.limit, epochs=args.epochs, patience=0, batch_size=args.batch_size,
                  schedule=args.schedule,
                  seed=args.seed, threads=str(args.threads), samples=0, progress=False, baseline=False, max_time=0.0)
    print(f"poems, {args.limit} poems, LSTM {args.hidden} (scratch backend), {args.epochs} epochs, seed {args.seed}; "
          f"weight drop {args.weight_drop}, alone and with AWD-LSTM's dropouts, against none", flush=True)
    rows, curves, dirs = [], {}, {}
    for folder, label, changes in runs(args.weight_drop):
        run = out / folder
        if run.exists():
            shutil.rmtree(run)
        t0 = time.perf_counter()
        train_task("poems", out=run, log=lambda *a: None, **{**common, **changes})
        seconds = time.perf_counter() - t0
        metrics = read_jsonl(run / "metrics.jsonl")
        summary = read_json(run / "summary.json", dict)
        curves[label], dirs[label] = metrics, run
        best = min(metrics, key=lambda r: r["val_perplexity"])
        rows.append({"model": label, "best epoch": best["epoch"], "best val ppl": f"{best['val_perplexity']:.2f}",
                     "last val ppl": f"{metrics[-1]['val_perplexity']:.2f}",
                     "test ppl": f"{summary['test']['test_perplexity']:.2f}",
                     "s / epoch": f"{sum(r['epoch_time'] for r in metrics) / len(metrics):.1f}",
                     "train s": f"{seconds:.0f}"})
        print(f"{label}: " + "  ".join(f"{r['epoch']}:{r['val_perplexity']:.1f}" for r in metrics), flush=True)
    print()
    print_table(rows, list(rows[0]))
    plain = float(rows[0]["test ppl"])
    print()
    for r in rows[1:]:
        ratio = float(r["test ppl"]) / plain
        print(f"test perplexity, {r['model']} / plain: {ratio:.3f} ({'lower' if ratio < 1 else 'not lower'})")
    title = f"Tang poems, {args.limit} poems, LSTM {args.hidden} (scratch): validation perplexity"
    figure(curves, out / "awd-weight-drop.png", title)
    (out / "compare.json").write_text(json.dumps({"task": "poems", "runs": {k: v.name for k, v in dirs.items()}},
                                                 ensure_ascii=False), encoding="utf-8")
    render_compare_report(out, dirs)
    if args.figure:
        shutil.copyfile(out / "awd-weight-drop.png", args.figure)
    print(f"machine: {machine_info()}; seed {args.seed}; wall {time.perf_counter() - started:.0f} s; runs, report and "
          f"figure in {out} (rnnlab serve --runs {out} shows the three in the Runs tab)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
