"""The ``rnnlab`` command line.

Flags are not written here: each task's parser is derived from the option() declarations of its
three configurations (training, model, data; see rnnlab.options), so ``rnnlab train names --help``
lists the names task's options and the shared ones, and every value is range-checked by the
configuration it builds. Heavy imports (torch) happen inside the commands, so that ``rnnlab
--help`` answers at once. Bad input of any kind ends in one line on stderr and exit code 2 (a bug
in rnnlab: one line and exit code 3).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from ._version import __version__
from .errors import UserError
from .options import DEVICES, declared, field_kind, flag_of
from .threads import AUTO, parse_threads


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage block first)."""

    def error(self, message: str):
        self.exit(2, f"rnnlab: error: {message} (see {self.prog} --help)\n")


# --- flags derived from declarations -------------------------------------------------------------
def _default_text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if value == "":
        return "none"
    return str(value)


def add_declared(group, cfg_cls, defaults, resume_note: bool = False) -> list[str]:
    """One flag per declared field of ``cfg_cls`` (help shows ``defaults``' value and the range).
    Returns the field names. Values stay None unless given, so that we know what the user chose."""
    from .options import describe_range

    names = []
    for f, opt in declared(cfg_cls):
        if not opt.cli:
            continue
        kind = field_kind(f)
        extra = [f"default {_default_text(getattr(defaults, f.name))}"]
        if describe_range(opt) and not opt.choices:
            extra.append(describe_range(opt))
        if resume_note and opt.resume:
            extra.append("may change on --resume")
        text = f"{opt.help} ({'; '.join(extra)})".replace("%", "%%")
        flag = flag_of(f.name, opt)
        if kind is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            metavar = opt.metavar or ("{" + ",".join(map(str, opt.choices)) + "}" if opt.choices else f.name.upper())
            group.add_argument(flag, dest=f.name, type=opt.parse or kind, default=None, metavar=metavar, help=text)
        names.append(f.name)
    return names


def given_values(args, names: list[str]) -> dict:
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def task_parser(command: str, task_cls) -> Parser:
    """``rnnlab train|compare TASK``'s parser: run options, then the training, model and task options."""
    from .train import TrainConfig

    p = Parser(prog=f"rnnlab {command} {task_cls.name}",
               description=(task_cls.__doc__ or "").strip().splitlines()[0] if task_cls.__doc__ else None)
    run = p.add_argument_group("run")
    run.add_argument("--out", help="run folder (default: runs/<task>-<cell>-<time>)")
    if command == "train":
        changeable = ", ".join(flag_of(f.name, opt) for f, opt in declared(TrainConfig) if opt.resume and opt.cli)
        run.add_argument("--resume", metavar="RUN_DIR",
                         help=f"continue an interrupted run from its last checkpoint; only {changeable} may change (the "
                              "task, model and data options and the data files are the run's own)")
    else:
        run.add_argument("--cells", default="rnn,lstm,gru", help="cells to compare, comma-separated (default %(default)s)")
    if command == "train":
        run.add_argument("--nproc", type=int, default=0, metavar="N",
                         help="train data-parallel on N processes of this machine (one per CPU core or GPU), "
                              "launched with torch's elastic launcher (torchrun); with torchrun itself for "
                              "several machines (see the README's 'More than one process')")
    p.set_defaults(
        train_names=add_declared(p.add_argument_group("training"), TrainConfig, task_cls.default_train, resume_note=True),
        model_names=add_declared(p.add_argument_group("model"), task_cls.model_config_cls, task_cls.default_model),
        task_names=add_declared(p.add_argument_group(f"{task_cls.name} data"), task_cls.config_cls, task_cls.config_cls()))
    return p


def configs_from_args(task_cls, args):
    """The three configurations: the task's tested defaults with the given flags applied (and checked)."""
    from .experiment import configs_from_options

    return configs_from_options(task_cls.name, given_values(args, args.task_names + args.model_names + args.train_names))


def _not_empty(args, *names: str) -> None:
    """A folder option given as an empty string is a mistake (a variable that was not set), not "the default"."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not value.strip():
            raise UserError(f"--{name}: empty; give a folder")


def _threads(spec: str) -> None:
    """gradients / longrange: the thread policy's starting count (rnnlab.threads; training follows the load)."""
    from .threads import ThreadGovernor

    governor = ThreadGovernor(spec, follow=False)
    governor.start()
    print(governor.describe())


def _task_args(command: str, argv: list[str]):
    """``TASK [options]`` -> (task class, parsed options); (None, None) after printing the usage."""
    from .tasks import TASKS, get_task

    if not argv or argv[0].startswith("-"):
        names = ", ".join(TASKS)
        print(f"usage: rnnlab {command} TASK [options]   (TASK: {names}; rnnlab {command} TASK --help lists its options)")
        if argv and argv[0] not in ("-h", "--help"):
            raise UserError(f"rnnlab {command}: give the task first ({names})")
        return None, None
    task_cls = get_task(argv[0])
    targs, unknown = task_parser(command, task_cls).parse_known_args(argv[1:])
    if unknown:
        what = next((u.split("=")[0] for u in unknown if u.startswith("-")), unknown[0])
        raise UserError(f"{what}: not an option of the {task_cls.name} task (rnnlab {command} {task_cls.name} --help "
                        "lists them)")
    return task_cls, targs


# --- commands -----------------------------------------------------------------------------------
def cmd_train(argv: list[str]) -> int:
    from .repeats import resume_job, run_job

    task_cls, targs = _task_args("train", argv)
    if task_cls is None:
        return 0
    if targs.nproc:
        repeated = getattr(targs, "folds", None) or (getattr(targs, "seeds", None) or 1) > 1 or (
            targs.resume and (Path(targs.resume) / "repeats.json").is_file())
        if repeated:
            raise UserError(f"--nproc {targs.nproc}: --folds/--seeds train their runs one after another in one "
                            "process; drop --nproc")
        return launch(targs, argv, task_cls)
    _not_empty(targs, "out", "resume")
    if targs.resume is not None:
        if targs.out is not None:
            raise UserError("--out: a resumed run stays in its own folder (--resume)")
        other = given_values(targs, targs.task_names + targs.model_names)
        if other:
            raise UserError(f"{', '.join(flag_of(k) for k in other)}: the run's own data and model options are kept "
                            "on --resume; train a new run to change them")
        resume_job(targs.resume, task=task_cls.name, **given_values(targs, targs.train_names))
        return 0
    task_cfg, model_cfg, train_cfg = configs_from_args(task_cls, targs)
    run_job(task_cls.name, task_cfg, model_cfg, train_cfg, out=targs.out)
    return 0


def launch(targs, argv: list[str], task_cls) -> int:
    """``rnnlab train ... --nproc N``: the same command on N processes of this machine, started by torch's
    elastic launcher (what ``torchrun --standalone --nproc_per_node=N -m rnnlab train ...`` does)."""
    from .distributed import Dist, cpu_count

    n = targs.nproc
    if n < 0:
        raise UserError(f"--nproc {n}: give a number of processes from 1 up")
    if Dist.from_env().enabled:
        raise UserError(f"--nproc {n}: already one of {os.environ['WORLD_SIZE']} processes (torchrun); drop --nproc")
    rest = _without_nproc(argv)
    if n == 1:
        return cmd_train(rest)
    if not targs.resume:  # check the options here before starting anything
        configs_from_args(task_cls, targs)
    import torch

    device = targs.device or "auto"
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        have = torch.cuda.device_count()
        if n > have:
            raise UserError(f"--nproc {n}: this machine has {have} GPU{'s' if have != 1 else ''} (one process per GPU)")
    else:
        have = cpu_count()
        threads = 1 if targs.threads in (None, "auto") else int(targs.threads)  # auto: one per process
        if n * threads > have:
            raise UserError(f"--nproc {n}: this machine has {have} CPU core{'s' if have != 1 else ''} for this "
                            f"process ({n} processes x {threads} thread{'s' if threads != 1 else ''} would not fit)")
        os.environ["OMP_NUM_THREADS"] = str(threads)  # one thread per process unless --threads says otherwise
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    # The launcher's own log lines (worker starts, closing signals) are noise beside the workers' messages.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(["--standalone", f"--nproc_per_node={n}", "--monitor_interval=0.5", "-m", "rnnlab", "train", *rest])
    except ChildFailedError as e:
        codes = {rank: f.exitcode for rank, f in e.failures.items()}
        if 2 in codes.values():  # a worker already said what was wrong, in one line
            return 2
        rank, first = e.get_first_failure()  # the root cause; the launcher then stopped the others
        code = first.exitcode
        how = f"signal {first.signal_name()}" if code < 0 else f"exit code {code}"
        raise UserError(f"training on {n} processes failed: rank {rank} ended with {how} (the launcher stopped the "
                        "others; the last checkpoint is intact: continue with --resume RUN_DIR)") from None
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def cmd_compare(argv: list[str]) -> int:
    from .distributed import setup
    from .experiment import run_training
    from .options import CELLS, parse_names
    from .runreport import render_compare_report
    from .runs import new_run_dir, write_json

    task_cls, targs = _task_args("compare", argv)
    if task_cls is None:
        return 0
    _not_empty(targs, "out")
    try:
        cells = parse_names(CELLS)(targs.cells)
    except ValueError as e:
        raise UserError(f"--cells {e}") from None
    if len(set(cells)) != len(cells):
        raise UserError(f"--cells {targs.cells!r}: each cell once")
    if "cell" in given_values(targs, targs.model_names):
        raise UserError("--cell: compare trains every cell of --cells")
    # Check every configuration before training any: a bad one must not fail after hours of work.
    plans = {}
    for cell in cells:
        targs.cell = cell
        plans[cell] = configs_from_args(task_cls, targs)
        if getattr(plans[cell][0], "repeats", 0):
            raise UserError("--folds/--seeds: compare trains one run per cell; give them to rnnlab train, once per --cell")
    dist = setup()  # under torchrun: rank 0 alone makes the folder, writes and prints
    out = dist.on_main(lambda: output_folder(targs.out) if targs.out else new_run_dir("runs", task_cls.name, "compare"))
    runs = {}
    # One after another, never in parallel: two processes' threads fight on a small CPU.
    for cell, (task_cfg, model_cfg, train_cfg) in plans.items():
        if dist.is_main:
            print(f"== {cell} ==")
        runs[cell] = run_training(task_cls.name, task_cfg, model_cfg, train_cfg, out=out / cell)
    if dist.is_main:
        write_json(out / "compare.json", {"task": task_cls.name, "runs": {k: v.name for k, v in runs.items()}})
        print(f"comparison report: {render_compare_report(out, runs)}")
    return 0


def _load(args):
    from .api import load_run

    return load_run(args.run, device=args.device)


# --- a trained model's verbs: flags derived from the task's declarations (rnnlab.verbs) ---------------
RUN_HELP = "run folder, bundled model folder, or bundled model name (names, names-rnn, names-gru, poems, sentiment)"


def run_arguments(p) -> None:
    p.add_argument("--run", required=True, help=RUN_HELP)
    p.add_argument("--device", default="cpu", choices=DEVICES)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def verb_parser(verb, task_cls) -> Parser:
    """``rnnlab VERB``'s parser for one task: the run, the input, then the verb's declared options."""
    p = Parser(prog=f"rnnlab {verb.name}", description=f"{task_cls.name} models: {verb.help}")
    run_arguments(p)
    if verb.input is not None:
        more = " (default: one per line on standard input)" if verb.input.many else " (default: standard input)"
        p.add_argument("value", nargs="*" if verb.input.many else "?", metavar=verb.input.name.upper(),
                       help=verb.input.help + more)
    p.set_defaults(option_names=add_declared(p.add_argument_group(f"{verb.name} options"), verb.options, verb.options()))
    return p


def _run_task(spec: str):
    """The task of a run or model folder, read from its description (the model is loaded later)."""
    from .api import META_FILE, load_run, resolve
    from .runs import read_json
    from .tasks import get_task

    path = resolve(spec)
    for name in (META_FILE, "config.json"):
        meta = read_json(path / name) if (path / name).is_file() else None
        if isinstance(meta, dict) and isinstance(meta.get("task"), str):
            return get_task(meta["task"])
    return load_run(path).task_cls  # a checkpoint alone: its own meta says (or why it cannot be read)


def cmd_verb(name: str, argv: list[str]) -> int:
    """``rnnlab VERB --run RUN [INPUT ...] [options]``: the options are those the run's task declares for
    VERB; without --run, --help shows them for every task that has the verb."""
    from .tasks import TASKS
    from .verbs import every_verb, find_verb, verbs_of

    tasks = every_verb(TASKS).get(name, [])
    if not tasks:
        raise UserError(f"{name!r}: not a command (rnnlab --help lists the commands; rnnlab verbs what trained "
                        "models can do)")
    pre = Parser(add_help=False)
    pre.add_argument("--run")
    pre.add_argument("--device", default="cpu")
    pre.add_argument("-h", "--help", action="store_true")
    known, _ = pre.parse_known_args(argv)
    if known.run is None:
        if not known.help:
            raise UserError(f"rnnlab {name}: give --run (a run folder or a bundled model: {RUN_HELP.split('(')[1]}")
        for task in tasks:
            print(f"== {task} ==\n{verb_parser(find_verb(TASKS[task], name), TASKS[task]).format_help()}")
        return 0
    _not_empty(known, "run")
    task_cls = _run_task(known.run)
    if name not in verbs_of(task_cls):
        _load(pre.parse_known_args(argv)[0])  # a damaged run says so first; then that it cannot do this
    verb = find_verb(task_cls, name)
    args = verb_parser(verb, task_cls).parse_args(argv)
    run = _load(args)
    value = None
    if verb.input is not None:
        value = args.value
        if not value:
            lines = [line.rstrip("\n") for line in sys.stdin if line.strip()]
            if not lines:
                raise UserError(f"nothing to {name}: give the {verb.input.name} as arguments or on standard input")
            value = lines if verb.input.many else lines[0]
    options = given_values(args, args.option_names)
    if args.json and "details" in args.option_names:  # --json: with the details the verb offers
        options.setdefault("details", True)
    result = run.call(name, value, **options)
    if args.json or verb.text is None:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    words = [getattr(run.predictor, verb.text)(r) for r in (result if isinstance(result, list) else [result])]
    print(("\n\n" if any("\n" in w for w in words) else "\n").join(words))
    return 0


def cmd_evaluate(argv: list[str]) -> int:
    """``rnnlab evaluate --run RUN``: the test figures again; the task's report options (poems: how the
    samples are drawn) are flags derived from their declarations."""
    pre = Parser(add_help=False)
    pre.add_argument("--run")
    pre.add_argument("--device", default="cpu")
    known, _ = pre.parse_known_args(argv)
    run = _load(known) if known.run and not {"-h", "--help"} & set(argv) else None
    p = Parser(prog="rnnlab evaluate", description="test-set figures of a trained run, recomputed from its split")
    run_arguments(p)
    report_cls = getattr(run.task_cls if run else None, "report_options", None)
    names = add_declared(p.add_argument_group("report"), report_cls, report_cls()) if report_cls else []
    if run is None or hasattr(run.task_config, "samples"):
        p.add_argument("--samples", type=int, help="poems: unconstrained samples to score")
    args = p.parse_args(argv)
    changes = {"samples": args.samples} if getattr(args, "samples", None) is not None else {}
    report = run.evaluate(changes, **given_values(args, names))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(run.task_cls.headline(report))
        for line in run.task_cls.report_lines(report):
            print(line)
    return 0


def cmd_export(args) -> int:
    from .api import load_run

    out = _load(args).export(check_export_folder(args.to), half=not args.float32)
    if args.evaluate:  # the figures of the weights as shipped (float16), not of the run's float32 ones
        exported = load_run(out)
        exported.record_test(exported.evaluate())
        print(exported.task_cls.headline(exported.meta["test"]) if exported.task != "poems" else
              f"test perplexity {exported.meta['test']['test_perplexity']:.2f}")
    print(f"wrote {out}")
    return 0


def check_export_folder(to: str) -> Path:
    """``export --to``: a new or empty folder, or an earlier export (which is replaced); never a run
    folder or any other folder with files of its own."""
    from .api import CURVES_FILE, META_FILE, WEIGHTS_FILE
    from .files import folder_for_writing

    if not to or not to.strip():
        raise UserError("--to: give the folder to write the model into")
    out = Path(to)
    folder_for_writing(out, "--to", create=False)
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in (META_FILE, WEIGHTS_FILE, CURVES_FILE))
        if other:
            raise UserError(f"--to {out}: the folder holds other files ({', '.join(other[:3])}"
                            f"{', ...' if len(other) > 3 else ''}); give a new or empty folder, or an earlier export")
    return out


def cmd_report(args) -> int:
    from .runreport import render_compare_report, render_run_report
    from .runs import read_json

    if not args.run.strip():
        raise UserError("report: empty folder name; give a run or comparison folder")
    run = Path(args.run)
    if (run / "repeats.json").is_file():
        from .runreport import render_repeats_report

        print(render_repeats_report(run))
    elif (run / "compare.json").is_file():
        names = read_json(run / "compare.json", dict).get("runs")
        if not isinstance(names, dict) or not names or not all(isinstance(v, str) for v in names.values()):
            raise UserError(f"{run / 'compare.json'}: damaged ('runs' is not a map of names to run folders)")
        outside = next((v for v in names.values() if v in ("", ".", "..") or Path(v).name != v), None)
        if outside is not None:  # rnnlab compare writes each run in a folder of the comparison
            raise UserError(f"{run / 'compare.json'}: run folder {outside!r} is not a folder of {run}")
        print(render_compare_report(run, {k: run / v for k, v in names.items()}))
    elif (run / "config.json").is_file():
        print(render_run_report(run))
    else:
        raise UserError(f"{run}: not a run folder (no config.json)")
    return 0


def cmd_data_import(args) -> int:
    from .bundle import import_all

    stats = import_all(Path(args.src), Path(args.dst))
    print(json.dumps(stats, indent=2))
    print(f"wrote {args.dst}/ (see {args.dst}/SOURCES.md)")
    return 0


def cmd_data_summary(args) -> int:
    from .bundle import default_data_dir, summary

    folder = Path(args.data) if args.data else default_data_dir()
    if not folder.is_dir():
        raise UserError(f"--data {folder}: no such folder")
    info = summary(folder)
    names = info.pop("names")
    print(f"data folder: {info['data']}")
    print(f"names: {len(names)} languages, {sum(names.values()):,} non-empty lines")
    for label, n in names.items():
        print(f"  {label:<12} {n:>6,}")
    print(f"poems: {info.get('poems', 0):,} Tang poems (simplified)")
    print(f"sentiment: {', '.join(info['sentiment']) or 'none'}")
    return 0


def output_folder(out: str) -> Path:
    """``--out`` of compare, gradients and longrange, created; a file in the way is a one-line error."""
    from .files import folder_for_writing

    folder_for_writing(Path(out))
    return Path(out)


def _experiment_config(args, cfg_cls, quick: dict):
    """A gradients/longrange config: the defaults, the --quick preset beside the config, then the flags."""
    cfg = cfg_cls(**quick) if args.quick else cfg_cls()
    return replace(cfg, **given_values(args, args.config_names))


def cmd_gradients(args) -> int:
    from .gradflow import QUICK, GradFlowConfig, main as gradients_main
    from .runs import new_run_dir

    cfg = _experiment_config(args, GradFlowConfig, QUICK)
    _threads(args.threads)
    _not_empty(args, "out")
    out = output_folder(args.out) if args.out else new_run_dir("runs", "gradients")
    print(f"report: {gradients_main(cfg, out)}")
    return 0


def cmd_longrange(args) -> int:
    from .device import resolve_device
    from .longrange import QUICK, LongRangeConfig, run, write_report
    from .runs import new_run_dir

    cfg = _experiment_config(args, LongRangeConfig, QUICK)
    _threads(args.threads)
    _not_empty(args, "out")
    out = output_folder(args.out) if args.out else new_run_dir("runs", "longrange")
    results = run(cfg, out, resolve_device(args.device))
    for line in results["findings"]:
        print(line)
    print(f"report: {write_report(results, out)}")
    return 0


def _run_experiment(name: str, module: str, cfg_name: str, rest: list[str]) -> int:
    """gradients / longrange: flags from their config's declarations (the module, which imports torch,
    is imported only when the command is chosen)."""
    import importlib

    mod = importlib.import_module(module)
    cfg_cls = getattr(mod, cfg_name)
    p = Parser(prog=f"rnnlab {name}", description=(mod.__doc__ or "").strip().splitlines()[0])
    names = add_declared(p.add_argument_group("experiment"), cfg_cls, cfg_cls())
    p.add_argument("--out", help=f"output folder (default: runs/{name}-<time>)")
    p.add_argument("--quick", action="store_true", help="a small configuration that finishes in seconds")
    p.add_argument("--threads", type=parse_threads, default=AUTO, metavar="auto|N",
                   help="CPU threads: auto (one per core other processes leave free) or a number (default auto)")
    if name == "longrange":
        p.add_argument("--device", default="auto", choices=DEVICES)
    args = p.parse_args(rest)
    args.config_names = names
    return cmd_gradients(args) if name == "gradients" else cmd_longrange(args)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="rnnlab",
               description="Recurrent networks from their equations: train, compare and inspect RNN, LSTM and GRU.")
    p.add_argument("--version", action="version", version=f"rnnlab {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    data = sub.add_parser("data", help="import or summarise the bundled data sets")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    imp = dsub.add_parser("import", help="turn the raw sets into the project's data/ folder (deterministic)")
    imp.add_argument("--from", dest="src", default="../shared/data", help="raw data folder (default: %(default)s)")
    imp.add_argument("--to", dest="dst", default="data", help="output folder (default: %(default)s)")
    imp.set_defaults(func=cmd_data_import)
    summ = dsub.add_parser("summary", help="print what the bundled data holds")
    summ.add_argument("--data", help="data folder (default: the bundled one)")
    summ.set_defaults(func=cmd_data_summary)
    data.set_defaults(func=lambda a: (data.print_help(), 0)[1])

    # These parse their own options (derived from declarations, after importing torch): listed here for --help.
    for name, text in DELEGATED_HELP.items():
        sub.add_parser(name, help=text, add_help=False)

    def run_parser(name: str, help: str):
        q = sub.add_parser(name, help=help)
        q.add_argument("--run", required=True, help="run folder, bundled model folder, or bundled model name "
                       "(names, names-rnn, names-gru, poems, sentiment)")
        q.add_argument("--device", default="cpu", choices=DEVICES)
        return q

    exp = run_parser("export", "write a run as a bundled model folder (safetensors weights + run.json)")
    exp.add_argument("--to", required=True, help="output folder, e.g. models/names")
    exp.add_argument("--float32", action="store_true", help="keep float32 weights (default: float16)")
    exp.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                     help="do not record the test figures of the exported weights")
    exp.set_defaults(func=cmd_export)

    report = sub.add_parser("report", help="redraw the plots and report.html of a run or comparison folder")
    report.add_argument("run")
    report.set_defaults(func=cmd_report)

    from .lab.cli import add_lab_parser
    from .serve.cli import add_serve_parser

    add_serve_parser(sub)
    add_lab_parser(sub)
    p.commands = set(sub.choices)
    p.epilog = (f"A trained model's verbs: rnnlab VERB --run RUN [INPUT ...] [options], VERB one of "
                f"{', '.join(VERB_NAMES)} (as its task declares; rnnlab VERB --help lists the options, rnnlab "
                "verbs every task's)")
    return p


DELEGATED_HELP = {
    "train": "train a model on a task (rnnlab train TASK --help: its options)",
    "evaluate": "test-set figures of a trained run (poems: perplexity and sample quality)",
    "verbs": "what trained models can do, per task: each verb's input and options",
    "compare": "train several cells with the same split and seed, one report (rnnlab compare TASK --help)",
    "gradients": "measure vanishing/exploding gradients for each cell (--help: options)",
    "longrange": "recall the first symbol after T steps: where the vanilla RNN fails (--help: options)",
}
DELEGATED = {
    "train": cmd_train, "compare": cmd_compare, "evaluate": cmd_evaluate, "verbs": lambda rest: cmd_verbs(rest),
    "gradients": lambda rest: _run_experiment("gradients", "rnnlab.gradflow", "GradFlowConfig", rest),
    "longrange": lambda rest: _run_experiment("longrange", "rnnlab.longrange", "LongRangeConfig", rest),
}


# A trained model's verbs, named in `rnnlab --help` without importing the tasks (torch); each task
# declares its own (rnnlab.verbs) and tests/test_verbs.py checks that this list names them all.
VERB_NAMES = ("predict", "generate", "trace", "saliency", "score", "regenerate", "alternatives", "units")


def cmd_verbs(argv: list[str]) -> int:
    """``rnnlab verbs``: every task's verbs, their input and options (what the doors are derived from)."""
    from .options import declared
    from .tasks import TASKS
    from .verbs import verbs_of

    Parser(prog="rnnlab verbs", description="what trained models can do, per task").parse_args(argv)
    for task, cls in TASKS.items():
        print(f"{task}:")
        for verb in verbs_of(cls).values():
            what = f" {verb.input.name.upper()}{' ...' if verb.input.many else ''}" if verb.input else ""
            print(f"  rnnlab {verb.name} --run RUN{what}: {verb.help}")
            for f, opt in declared(verb.options):
                print(f"      {flag_of(f.name, opt)} (default {_default_text(f.default)}): {opt.help}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = None
    if argv and argv[0] not in DELEGATED and not argv[0].startswith("-"):
        parser = build_parser()
        if argv[0] not in parser.commands:  # a trained model's verb (an unknown word says so)
            DELEGATED[argv[0]] = lambda rest, name=argv[0]: cmd_verb(name, rest)
    if argv and argv[0] in DELEGATED:
        command, rest = DELEGATED[argv[0]], argv[1:]

        def run():
            try:
                return command(rest)
            except SystemExit as e:  # --help, or a flag argparse could not read (already said in one line)
                return e.code
    else:
        parser = parser or build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        run = lambda: args.func(args)  # noqa: E731
    try:
        return int(run() or 0)
    except (ValueError, TypeError) as e:  # UserError is a ValueError: bad input, said in one line
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        if _said_by_rank_0(e):
            return 2
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"rnnlab: error: {message}", file=sys.stderr)
        return 2
    except OSError as e:  # a file the user named: unreadable, a folder, no space left ...
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        if _said_by_rank_0(e):
            return 2
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"rnnlab: error: {where}{' '.join(str(e.strerror or e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, with a different exit code, and the way to see more
        if os.environ.get("RNNLAB_DEBUG"):
            raise
        message = " ".join(str(e).split())[:300] or "no message"
        print(f"rnnlab: internal error ({type(e).__name__}: {message}); please report it "
              "(RNNLAB_DEBUG=1 shows the traceback)", file=sys.stderr)
        return INTERNAL_ERROR


# Exit codes: 0 done, 2 bad input (one line on stderr), 3 a bug in rnnlab (one line), 130 interrupted.
INTERNAL_ERROR = 3


def _said_by_rank_0(e: BaseException) -> bool:
    """On several processes every rank meets the same bad input (or gets rank 0's error): rank 0 says it.
    A rank that lost the others (DistributedError) speaks for itself."""
    from .distributed import Dist, DistributedError, current

    if isinstance(e, DistributedError):
        return False
    d = current()
    if not d.enabled:  # before joining the others (bad options): the environment says which rank this is
        try:
            d = Dist.from_env()
        except ValueError:
            return False
    return not d.is_main


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "build_parser", "task_parser", "configs_from_args"]
