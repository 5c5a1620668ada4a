"""The ``rnnlab`` command line. Heavy imports (torch) happen inside the commands, so that
``rnnlab --help`` answers at once."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import UserError
from .options import (BACKENDS, CELLS, DEFAULT_TEMPERATURE, DEVICES, NONLINEARITIES, OPTIMIZERS, POEM_FORMS, POOLS,
                      SCHEDULES, TASKS)

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

    names = {f.name for f in fields(base)}
    values = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    values.update({k: v for k, v in extra.items() if v is not None and k in names})
    return replace(base, **values)


def _configs(args):
    import importlib
    from dataclasses import fields

    from .experiment import task_parts

    ConfigCls, *_ = task_parts(args.task)
    # Each task module names its tested defaults (DEFAULT_MODEL, DEFAULT_TRAIN); options override them.
    module = importlib.import_module(TASKS[args.task][0])
    task_cfg = _given(args, ConfigCls())
    # The tutorial network reads one-hot letters, as in the tutorial, unless told otherwise.
    default_input = "onehot" if args.cell == "tutorial" and args.input is None else None
    model_cfg = _given(args, module.DEFAULT_MODEL, input=default_input)
    train_cfg = _given(args, module.DEFAULT_TRAIN, progress=False if args.no_progress else None)
    # An option that none of this task's configurations has would be silently ignored: say so.
    used = {f.name for cfg in (task_cfg, model_cfg, train_cfg) for f in fields(cfg)}
    unused = [d for d in args.config_options if getattr(args, d, None) is not None and d not in used]
    if unused:
        flags = ", ".join("--" + d.replace("_", "-") if d != "members" else "--ensemble" for d in unused)
        raise UserError(f"{flags}: not an option of the {args.task} task")
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
    _, _, predictor = _load_run(args.run, args.device)
    texts = args.texts if args.texts else [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UserError("nothing to predict: give texts as arguments or one per line on standard input")
    results = predictor.predict(texts, top=args.top)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    for r in results:
        print(predictor.format(r))
    return 0


def _load_run(run: str, device: str):
    """(config.json, checkpoint, predictor) of a run folder."""
    from .device import resolve_device
    from .experiment import task_parts
    from .runs import find_checkpoint, load_checkpoint, read_json

    path = Path(run)
    ckpt = load_checkpoint(find_checkpoint(path))  # first: it names a missing folder clearly
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a run folder (no config.json)")
    *_, PredictorCls = task_parts(ckpt["meta"].get("task", ""))
    return read_json(path / "config.json"), ckpt, PredictorCls(ckpt, resolve_device(device))


def cmd_generate(args) -> int:
    from .poetry import format_poem

    config, _, predictor = _load_run(args.run, args.device)
    if config["task"] != "poems":
        raise UserError(f"{args.run}: a {config['task']} run; generate needs a poems run")
    poems = predictor.generate(n=args.n, begin=args.begin or "", acrostic=args.acrostic or "", form=args.form,
                               temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                               rhyme=not args.no_rhyme, tones=not args.no_tones, rhyme_scheme=args.rhyme_scheme,
                               prefix=args.prefix or "", candidates=args.candidates, repeats=args.allow_repeats,
                               details=args.json)
    if args.json:
        print(json.dumps(poems, ensure_ascii=False, indent=2))
        return 0
    for i, poem in enumerate(poems):
        if i:
            print()
        print(format_poem(poem) or "(empty)")
    return 0


def cmd_evaluate(args) -> int:
    from dataclasses import replace

    from .device import resolve_device
    from .experiment import from_dict, task_parts

    config, ckpt, predictor = _load_run(args.run, args.device)
    ConfigCls, TaskCls, _ = task_parts(config["task"])
    task_cfg = from_dict(ConfigCls, config["task_config"])
    if args.samples is not None and hasattr(task_cfg, "samples"):
        task_cfg = replace(task_cfg, samples=args.samples)
    seed = config["train_config"].get("seed", 0)
    task = TaskCls(task_cfg, seed=seed, state=ckpt["meta"]["task_state"])
    extra = {"temperature": args.temperature} if args.temperature is not None and config["task"] == "poems" else {}
    if config["task"] == "poems":
        extra["rhyme_scheme"] = args.rhyme_scheme
    report = task.final_report(predictor.model, resolve_device(args.device), **extra)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(task.headline(report))
        for key in ("samples", "corpus"):
            if key in report:
                print(f"{key}: " + json.dumps({k: v for k, v in report[key].items() if k != "settings"}, ensure_ascii=False))
        if "regulated" in report:  # poems: the forms written under the rules of regulated verse
            r = report["regulated"]
            print(f"regulated ({r['per_form']} per form, {r['rhyme_scheme']}): negative log-probability per token "
                  f"{r['nll_ratio']:.2f}x the free samples'")
            for form, q in r["forms"].items():
                print(f"  {form}: " + json.dumps(q, ensure_ascii=False))
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
    first = len(p._actions)
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
    n = p.add_argument_group("names task (--val-fraction, --test-fraction, --class-weights, --limit: all tasks that have them)")
    n.add_argument("--split", choices=["grouped", "random"])
    n.add_argument("--val-fraction", type=float)
    n.add_argument("--test-fraction", type=float)
    n.add_argument("--class-weights", choices=["none", "balanced", "sqrt"])
    n.add_argument("--max-words", type=int)
    n.add_argument("--limit", type=int, help="use only this many training items")
    po = p.add_argument_group("poems task")
    po.add_argument("--convert", choices=["auto", "t2s", "none"], help="traditional -> simplified (auto: for --data)")
    po.add_argument("--min-chars", type=int, help="shortest poem kept (characters with punctuation, default 5)")
    po.add_argument("--max-chars", type=int, help="longest poem kept (default 80)")
    po.add_argument("--forms", help="keep only these forms, e.g. 5x4,7x4 (default: all poems)")
    po.add_argument("--min-count", type=int, help="poems, sentiment: rarer tokens become <unk> (default 2)")
    po.add_argument("--samples", type=int, help="unconstrained samples scored in the final report (default 200)")
    se = p.add_argument_group("sentiment task")
    se.add_argument("--label-col", help="CSV label column (default label)")
    se.add_argument("--text-col", help="CSV text column (default review, else text)")
    se.add_argument("--tokenizer", choices=["jieba", "char", "jieba+char"],
                    help="words (jieba), characters, or both (the default jieba+char): ensemble members read words "
                         "and characters in turn, so it needs --ensemble 2 or more")
    se.add_argument("--user-dict", help="jieba user dictionary file")
    se.add_argument("--stopwords", help="default (stopwords-iso, negations and degree words kept), none, or a file")
    se.add_argument("--vectors", help="random, word2vec (trained on the training texts) or a word2vec file")
    se.add_argument("--w2v-epochs", type=int, help="word2vec training epochs (default 10)")
    se.add_argument("--max-tokens", type=int, help="texts are cut to this many tokens (default 400)")
    m.add_argument("--freeze-vectors", dest="freeze_embedding", action="store_const", const=True,
                   help="keep the input vectors fixed")
    m.add_argument("--softmax", choices=["full", "adaptive"], help="language model output layer")
    m.add_argument("--tie-weights", action=argparse.BooleanOptionalAction, help="language model: output layer = embedding")
    # Every option above that sets a configuration field (checked against the task's configurations).
    skip = {"data", "out", "resume", "threads", "no_progress", "help"}
    p.set_defaults(config_options=[a.dest for a in p._actions[first:] if a.dest not in skip])


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

    train = sub.add_parser("train", help="train a model on a task (names, poems, sentiment)")
    train.add_argument("task", choices=TASK_NAMES)
    add_training_options(train)
    train.set_defaults(func=cmd_train)

    compare = sub.add_parser("compare", help="train several cells with the same split and seed, one report")
    compare.add_argument("task", choices=TASK_NAMES)
    compare.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated (default: %(default)s)")
    add_training_options(compare)
    compare.set_defaults(func=cmd_compare)

    predict = sub.add_parser("predict", help="predict with a trained run (names: language; sentiment: label and "
                             "the words behind it; poems: perplexity and next characters)")
    predict.add_argument("--run", required=True, help="run folder")
    predict.add_argument("texts", nargs="*", help="inputs (default: one per line on standard input)")
    predict.add_argument("--top", type=int, default=3)
    predict.add_argument("--json", action="store_true", help="machine-readable output")
    predict.add_argument("--device", default="cpu", choices=DEVICES)
    predict.set_defaults(func=cmd_predict)

    grads = sub.add_parser("gradients", help="measure vanishing/exploding gradients for each cell")
    grads.add_argument("--cells", help="comma-separated from rnn-tanh,rnn-sigmoid,rnn-relu,lstm,gru,lstm-f2,gru-z2,"
                       "lstm-chrono,gru-chrono (-f2/-z2: forget/update gate bias +2; -chrono: chrono init; default: all but -chrono)")
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

    lr = sub.add_parser("longrange", help="recall the first symbol after T steps: where the vanilla RNN fails")
    lr.add_argument("--cells", help="comma-separated from rnn-tanh,rnn-sigmoid,rnn-relu,lstm,gru,lstm-f2,gru-z2,"
                    "lstm-chrono,gru-chrono (default rnn-tanh,lstm,lstm-chrono,gru-chrono)")
    lr.add_argument("--lengths", help="values of T (default 10,25,50,100,200)")
    lr.add_argument("--epochs", type=int, help="epochs of 100 steps per model (default 8)")
    lr.add_argument("--hidden", type=int, help="hidden size (default 64)")
    lr.add_argument("--seed", type=int)
    lr.add_argument("--device", default="auto", choices=DEVICES)
    lr.add_argument("--out", help="output folder (default: runs/longrange-<time>)")
    lr.add_argument("--quick", action="store_true", help="a small configuration that finishes in seconds")
    lr.add_argument("--threads", type=int, default=0)
    lr.set_defaults(func=cmd_longrange)

    gen = sub.add_parser("generate", help="write poems with a trained poems run")
    gen.add_argument("--run", required=True, help="run folder")
    gen.add_argument("--begin", help="the poem's first character")
    gen.add_argument("--acrostic", help="each line's first character, e.g. 春夏秋冬")
    gen.add_argument("--form", default="free", choices=POEM_FORMS, help="characters x lines (default: %(default)s)")
    gen.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE,
                     help="below 1: safer; above 1: wilder (default %(default)s)")
    gen.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest characters (0 = all)")
    gen.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: smallest set with this probability")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("-n", type=int, default=1, help="how many poems")
    verse = gen.add_argument_group("regulated verse (with --form or --acrostic)")
    verse.add_argument("--rhyme-scheme", default="pingshui", choices=("pingshui", "xinyun"),
                       help="tones and rhyme groups: Pingshui (平水韵, Tang) or 中华新韵 (modern) (default %(default)s)")
    verse.add_argument("--no-rhyme", action="store_true", help="rhyming lines need not rhyme")
    verse.add_argument("--no-tones", action="store_true", help="no tone pattern (平仄)")
    verse.add_argument("--candidates", type=int, default=8, help="candidate lines drawn per line, the likeliest kept "
                                                                  "(default %(default)s)")
    verse.add_argument("--allow-repeats", action="store_true", help="a character may come back in a later line")
    gen.add_argument("--prefix", help="text already written (e.g. the first lines with their marks): continue it")
    gen.add_argument("--json", action="store_true", help="poems with their lines, rhyme group, pattern, log-probability")
    gen.add_argument("--device", default="cpu", choices=DEVICES)
    gen.set_defaults(func=cmd_generate)

    ev = sub.add_parser("evaluate", help="test-set figures of a trained run (poems: perplexity and sample quality)")
    ev.add_argument("--run", required=True, help="run folder")
    ev.add_argument("--samples", type=int, help="poems: unconstrained samples to score")
    ev.add_argument("--temperature", type=float, help=f"poems: sampling temperature (default {DEFAULT_TEMPERATURE})")
    ev.add_argument("--rhyme-scheme", default="pingshui", choices=("pingshui", "xinyun"),
                    help="poems: the scheme the regulated samples are written in (both are measured)")
    ev.add_argument("--json", action="store_true")
    ev.add_argument("--device", default="cpu", choices=DEVICES)
    ev.set_defaults(func=cmd_evaluate)

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
