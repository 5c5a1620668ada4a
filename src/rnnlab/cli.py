"""The ``rnnlab`` command line. Heavy imports (torch) happen inside the commands, so that
``rnnlab --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UserError
from .options import BACKENDS, CELLS, DEVICES, NONLINEARITIES, OPTIMIZERS, POOLS, SCHEDULES, TASKS

TASK_NAMES = list(TASKS)


def cmd_data_import(args) -> int:
    from .bundle import import_all

    stats = import_all(Path(args.src), Path(args.dst))
    print(json.dumps(stats, indent=2))
    print(f"wrote {args.dst}/ (see {args.dst}/SOURCES.md)")
    return 0


def cmd_data_summary(args) -> int:
    from .bundle import default_data_dir, summary

    info = summary(Path(args.data) if args.data else default_data_dir())
    names = info.pop("names")
    print(f"data folder: {info['data']}")
    print(f"names: {len(names)} languages, {sum(names.values()):,} non-empty lines")
    for label, n in names.items():
        print(f"  {label:<12} {n:>6,}")
    print(f"poems: {info.get('poems', 0):,} Tang poems (simplified)")
    print(f"sentiment: {', '.join(info['sentiment']) or 'none'}")
    return 0


def _given(args, base, **extra):
    """``base`` (a config dataclass instance) with the options the user gave; None = keep base's value."""
    from dataclasses import fields, replace

    values = {f.name: getattr(args, f.name) for f in fields(base) if getattr(args, f.name, None) is not None}
    values.update({k: v for k, v in extra.items() if v is not None})
    return replace(base, **values)


def _configs(args):
    import importlib

    from .experiment import task_parts

    ConfigCls, *_ = task_parts(args.task)
    # Each task module names its tested defaults (DEFAULT_MODEL, DEFAULT_TRAIN); options override them.
    module = importlib.import_module(TASKS[args.task][0])
    task_cfg = _given(args, ConfigCls())
    # The tutorial network reads one-hot letters, as in the tutorial, unless told otherwise.
    default_input = "onehot" if args.cell == "tutorial" and args.input is None else None
    model_cfg = _given(args, module.DEFAULT_MODEL, input=default_input)
    train_cfg = _given(args, module.DEFAULT_TRAIN, progress=False if args.no_progress else None)
    return task_cfg, model_cfg, train_cfg


def _apply_threads(args) -> None:
    if getattr(args, "threads", 0):
        import torch

        torch.set_num_threads(args.threads)


def cmd_train(args) -> int:
    from .experiment import resume_training, run_training

    _apply_threads(args)
    if args.resume:
        resume_training(args.resume, epochs=args.epochs, device=args.device)
        return 0
    task_cfg, model_cfg, train_cfg = _configs(args)
    run_training(args.task, task_cfg, model_cfg, train_cfg, out=args.out)
    return 0


def cmd_compare(args) -> int:
    from dataclasses import replace

    from .experiment import run_training
    from .report import render_compare_report
    from .runs import new_run_dir, write_json

    _apply_threads(args)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    bad = [c for c in cells if c not in CELLS]
    if not cells or bad:
        raise UserError(f"--cells {args.cells!r}: give a comma-separated list from {', '.join(CELLS)}")
    out = Path(args.out) if args.out else new_run_dir("runs", args.task, "compare")
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    # One after another, never in parallel: two processes' threads fight on a small CPU.
    for cell in cells:
        args.cell = cell
        task_cfg, model_cfg, train_cfg = _configs(args)
        print(f"== {cell} ==")
        runs[cell] = run_training(args.task, task_cfg, replace(model_cfg, cell=cell), train_cfg, out=out / cell)
    write_json(out / "compare.json", {"task": args.task, "runs": {k: v.name for k, v in runs.items()}})
    print(f"comparison report: {render_compare_report(out, runs)}")
    return 0


def cmd_predict(args) -> int:
    from .device import resolve_device
    from .experiment import task_parts
    from .runs import find_checkpoint, load_checkpoint

    ckpt = load_checkpoint(find_checkpoint(Path(args.run)))
    *_, PredictorCls = task_parts(ckpt["meta"].get("task", ""))
    predictor = PredictorCls(ckpt, resolve_device(args.device))
    texts = args.texts if args.texts else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UserError("nothing to predict: give names as arguments or one per line on standard input")
    results = predictor.predict(texts, top=args.top)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    for r in results:
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
        note = f"  (unseen characters: {''.join(r['unknown_characters'])})" if r["unknown_characters"] else ""
        print(f"{r['name']}: {tops}{note}")
    return 0


def cmd_report(args) -> int:
    from .report import render_compare_report, render_run_report
    from .runs import read_json

    run = Path(args.run)
    if (run / "compare.json").is_file():
        names = read_json(run / "compare.json")["runs"]
        print(render_compare_report(run, {k: run / v for k, v in names.items()}))
    elif (run / "config.json").is_file():
        print(render_run_report(run))
    else:
        raise UserError(f"{run}: not a run folder (no config.json)")
    return 0


def cmd_gradients(args) -> int:
    from dataclasses import replace

    from .gradflow import GradFlowConfig, main as gradients_main, parse_cells
    from .runs import new_run_dir

    _apply_threads(args)
    cfg = GradFlowConfig()
    if args.quick:  # a small configuration that finishes in seconds (used by the tests)
        cfg = replace(cfg, steps=30, hidden=16, batch=8, seeds=1, train_steps=10, scales=(0.5, 1.5))
    changes = {"cells": parse_cells(args.cells) if args.cells else None, "steps": args.steps, "seeds": args.seeds,
               "hidden": args.hidden, "train_steps": args.train_steps, "seed": args.seed,
               "scales": tuple(float(v) for v in args.scales.split(",")) if args.scales else None}
    try:
        cfg = replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    except ValueError as e:
        raise UserError(f"--scales: {e}") from None
    if cfg.steps < 2 or cfg.seeds < 1 or cfg.hidden < 1 or any(s <= 0 for s in cfg.scales):
        raise UserError("--steps must be at least 2, --seeds and --hidden at least 1, --scales positive")
    out = Path(args.out) if args.out else new_run_dir("runs", "gradients")
    out.mkdir(parents=True, exist_ok=True)
    print(f"report: {gradients_main(cfg, out)}")
    return 0


def cmd_longrange(args) -> int:
    from dataclasses import replace

    from .device import resolve_device
    from .gradflow import parse_cells
    from .longrange import LongRangeConfig, parse_ints, run, write_report
    from .runs import new_run_dir

    _apply_threads(args)
    cfg = LongRangeConfig()
    if args.quick:  # a small configuration that finishes in seconds (used by the tests)
        cfg = replace(cfg, lengths=(5, 30), hidden=16, steps_per_epoch=20, epochs=2, eval_size=200)
    changes = {"cells": parse_cells(args.cells) if args.cells else None,
               "lengths": parse_ints(args.lengths, "--lengths") if args.lengths else None,
               "epochs": args.epochs, "hidden": args.hidden, "seed": args.seed}
    cfg = replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    out = Path(args.out) if args.out else new_run_dir("runs", "longrange")
    out.mkdir(parents=True, exist_ok=True)
    results = run(cfg, out, resolve_device(args.device))
    for line in results["findings"]:
        print(line)
    print(f"report: {write_report(results, out)}")
    return 0


def add_training_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and run")
    g.add_argument("--data", help="data folder or file (default: the bundled set)")
    g.add_argument("--out", help="run folder (default: runs/<task>-<cell>-<time>)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    g.add_argument("--seed", type=int)
    g.add_argument("--device", choices=DEVICES, help="auto picks CUDA when present")
    g.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--momentum", type=float)
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--clip", type=float, help="max gradient norm (0 = off)")
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--patience", type=int, help="early stopping: epochs without validation improvement (0 = off)")
    t.add_argument("--max-time", type=float, help="stop training after this many seconds")
    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=CELLS)
    m.add_argument("--backend", choices=BACKENDS, help="scratch: rnnlab's cells; torch: torch.nn's fused layers")
    m.add_argument("--nonlinearity", choices=NONLINEARITIES, help="for --cell rnn")
    m.add_argument("--layers", type=int)
    m.add_argument("--hidden", type=int)
    m.add_argument("--embed-dim", type=int)
    m.add_argument("--input", choices=["embedding", "onehot"])
    m.add_argument("--bidirectional", action="store_const", const=True)
    m.add_argument("--dropout", type=float)
    m.add_argument("--pool", choices=POOLS)
    m.add_argument("--token-dropout", type=float, help="training: hide this share of input characters")
    m.add_argument("--ensemble", dest="members", type=int, metavar="N", help="train a seed ensemble of N models")
    n = p.add_argument_group("names task")
    n.add_argument("--split", choices=["grouped", "random"])
    n.add_argument("--val-fraction", type=float)
    n.add_argument("--test-fraction", type=float)
    n.add_argument("--class-weights", choices=["none", "balanced", "sqrt"])
    n.add_argument("--max-words", type=int)
    n.add_argument("--limit", type=int, help="use only this many training items")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnnlab",
        description="Recurrent networks from their equations: train, compare and inspect RNN, LSTM and GRU.",
    )
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    data = sub.add_parser("data", help="import or summarise the bundled data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    imp = dsub.add_parser("import", help="turn the raw sets into the project's data/ folder (deterministic)")
    imp.add_argument("--from", dest="src", default="../shared/data", help="raw data folder (default: %(default)s)")
    imp.add_argument("--to", dest="dst", default="data", help="output folder (default: %(default)s)")
    imp.set_defaults(func=cmd_data_import)
    summ = dsub.add_parser("summary", help="print what the bundled data holds")
    summ.add_argument("--data", help="data folder (default: the bundled one)")
    summ.set_defaults(func=cmd_data_summary)
    data.set_defaults(func=lambda a: (data.print_help(), 0)[1])

    train = sub.add_parser("train", help="train a model on a task (names)")
    train.add_argument("task", choices=TASK_NAMES)
    add_training_options(train)
    train.set_defaults(func=cmd_train)

    compare = sub.add_parser("compare", help="train several cells with the same split and seed, one report")
    compare.add_argument("task", choices=TASK_NAMES)
    compare.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated (default: %(default)s)")
    add_training_options(compare)
    compare.set_defaults(func=cmd_compare)

    predict = sub.add_parser("predict", help="predict with a trained run")
    predict.add_argument("--run", required=True, help="run folder")
    predict.add_argument("texts", nargs="*", help="inputs (default: one per line on standard input)")
    predict.add_argument("--top", type=int, default=3)
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.add_argument("--device", default="cpu", choices=DEVICES)
    predict.set_defaults(func=cmd_predict)

    grads = sub.add_parser("gradients", help="measure vanishing/exploding gradients for each cell")
    grads.add_argument("--cells", help="comma-separated from rnn-tanh,rnn-sigmoid,rnn-relu,lstm,gru,lstm-f2,gru-z2 "
                       "(-f2/-z2: forget/update gate bias +2; default: all)")
    grads.add_argument("--steps", type=int, help="sequence length T (default 100)")
    grads.add_argument("--scales", help="spectral radii of the recurrent weights (default 0.5,1.0,1.5)")
    grads.add_argument("--seeds", type=int, help="seeds averaged (default 3)")
    grads.add_argument("--hidden", type=int, help="hidden size (default 64)")
    grads.add_argument("--train-steps", type=int, help="training steps before the second measurement (default 150)")
    grads.add_argument("--seed", type=int)
    grads.add_argument("--out", help="output folder (default: runs/gradients-<time>)")
    grads.add_argument("--quick", action="store_true", help="a small configuration that finishes in seconds")
    grads.add_argument("--threads", type=int, default=0)
    grads.set_defaults(func=cmd_gradients)

    lr = sub.add_parser("longrange", help="recall-the-first-symbol after T steps: where the vanilla RNN fails")
    lr.add_argument("--cells", help="comma-separated from rnn-tanh,rnn-sigmoid,rnn-relu,lstm,gru (default rnn-tanh,lstm,gru,gru-z2)")
    lr.add_argument("--lengths", help="values of T (default 10,25,50,100,200)")
    lr.add_argument("--epochs", type=int, help="epochs of 100 steps per model (default 8)")
    lr.add_argument("--hidden", type=int, help="hidden size (default 64)")
    lr.add_argument("--seed", type=int)
    lr.add_argument("--device", default="auto", choices=DEVICES)
    lr.add_argument("--out", help="output folder (default: runs/longrange-<time>)")
    lr.add_argument("--quick", action="store_true", help="a small configuration that finishes in seconds")
    lr.add_argument("--threads", type=int, default=0)
    lr.set_defaults(func=cmd_longrange)

    report = sub.add_parser("report", help="redraw the plots and report.html of a run or comparison folder")
    report.add_argument("run")
    report.set_defaults(func=cmd_report)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"rnnlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
