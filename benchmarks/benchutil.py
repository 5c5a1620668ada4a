"""Small helpers shared by the benchmark scripts: machine facts and plain-text tables."""

from __future__ import annotations

import os
import platform


def machine_info(device: str = "cpu") -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if device.startswith("cuda") and torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def format_table(rows: list[dict], columns: list[str]) -> str:
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda values: "  ".join(v.ljust(w) for v, w in zip(values, widths))  # noqa: E731
    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])


def print_table(rows: list[dict], columns: list[str]) -> None:
    print(format_table(rows, columns))


def round_rows(rows: list[dict], keys: tuple[str, ...] = ("val_acc", "test_acc", "test_macro_f1", "roc_auc")) -> None:
    """Four decimals for scores, one for seconds (in place)."""
    for r in rows:
        for k in keys:
            if r.get(k) is not None:
                r[k] = round(r[k], 4)
        if "train_s" in r:
            r["train_s"] = round(r["train_s"], 1)


def classifier_checks(best: dict | None, base: dict, aim: tuple[float, float], extra_ok: bool = True,
                      what: str = "best recurrent (by val) beats the baseline on test acc and macro-F1") -> list[tuple]:
    """The targets every classification benchmark shares: beat the baseline on both test scores
    (the model chosen on validation), and the issue's aim."""
    if not best:
        return []
    beats = best["test_acc"] > base["test_acc"] and best["test_macro_f1"] > base["test_macro_f1"] and extra_ok
    return [(what, f"{best['model']}: {best['test_acc']:.4f} / {best['test_macro_f1']:.4f} in {best['train_s']} s vs "
                   f"{base['model']}: {base['test_acc']:.4f} / {base['test_macro_f1']:.4f} "
                   f"(accuracy ratio {best['test_acc'] / base['test_acc']:.3f})", "met" if beats else "NOT met"),
            (f"aim: >= {aim[0]} accuracy and >= {aim[1]} macro-F1", f"{best['test_acc']:.4f} / {best['test_macro_f1']:.4f}",
             "met" if best["test_acc"] >= aim[0] and best["test_macro_f1"] >= aim[1] else "not met")]


def finish(checks: list[tuple], started: float, seed: int, where: str, json_path: str | None, payload: dict) -> None:
    """Print the targets table and the machine line; write the JSON results when asked."""
    import json
    import time
    from pathlib import Path

    print_table([{"target": c[0], "measured": c[1], "result": c[2]} for c in checks], ["target", "measured", "result"])
    print(f"machine: {machine_info()}; seed {seed}; wall {time.perf_counter() - started:.0f} s; {where}")
    if json_path:
        Path(json_path).write_text(json.dumps({**payload, "checks": checks}, indent=2, ensure_ascii=False), encoding="utf-8")


def classifier_bench_parser(doc: str, configs: dict, quick_help: str, default: list[str] | None = None):
    """The options every classification benchmark takes (``default``: the configurations run without --configs)."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--configs", help="comma-separated subset of: " + ", ".join(configs) + " (default: "
                   + ", ".join(default or configs) + "; with --folds/--seeds the default configuration only)")
    p.add_argument("--folds", type=int, default=0, metavar="K",
                   help="K-fold cross-validation of each configuration (rnnlab train --folds K): mean ± std tables")
    p.add_argument("--seeds", type=int, default=0, metavar="N",
                   help="each configuration with N seeds (rnnlab train --seeds N): mean ± std tables")
    p.add_argument("--out", help="folder for the runs (default: a temporary folder)")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.set_defaults(default_configs=",".join(default or configs))
    return p


def chosen_configs(args, configs: dict) -> list[str]:
    """--configs, else the default list; with --folds/--seeds the default configuration (named
    "... (default)") alone: each configuration is K or N runs."""
    if args.configs is None:
        repeated = [c for c in configs if c.endswith("(default)")] if args.folds or args.seeds else []
        args.configs = ",".join(repeated) or args.default_configs
    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in configs]
    if unknown:
        raise SystemExit(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(configs)}")
    return names


# --- repeated runs: --folds K / --seeds N ------------------------------------------------------------
REPEAT_COLUMNS = ["model", "val_acc", "test_acc", "test_macro_f1", "baseline_acc", "baseline_macro_f1", "beat_baseline",
                  "diff_points", "train_s"]


def repeats_of(parser, args, task_cfg) -> dict:
    """The --folds / --seeds of a classification benchmark as task options ({} for single runs),
    checked by the task config's own declarations (one line through ``parser.error``)."""
    from dataclasses import replace

    given = {k: v for k, v in (("folds", args.folds), ("seeds", args.seeds)) if v}
    try:
        replace(task_cfg, **given)
    except ValueError as e:
        parser.error(str(e))
    return {k: v for k, v in given.items() if k == "folds" or v > 1}  # --seeds 1: one run


def repeated_rows(task: str, runs: list[tuple], out_root, budget: float | None = None) -> tuple[list[dict], list[tuple]]:
    """Train each (name, task config with folds/seeds, model config, train config) as one repeated run
    (``rnnlab train --folds/--seeds``: member runs, each with its own classical baseline) -> the table's
    rows (mean ± sample std over the members, model and baseline) and one check per configuration
    (``budget``: the most seconds of training any member may take). A configuration whose folder in
    ``out_root`` holds an earlier repeated run is finished (``--resume``) and summarised, not retrained."""
    import re
    from pathlib import Path

    from rnnlab.repeats import mean_std, run_repeats
    from rnnlab.runreport import plus_minus
    from rnnlab.runs import read_json

    pm = lambda figure, *args: plus_minus(figure, *args) or "-"  # noqa: E731
    rows, checks = [], []
    for name, task_cfg, model_cfg, train_cfg in runs:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        parent = Path(out_root) / slug
        if (parent / "repeats.json").is_file():  # an earlier benchmark's folder (--out): finish it, keep what is done
            _finish_earlier(task, parent, task_cfg, model_cfg, train_cfg)
        else:
            run_repeats(task, task_cfg, model_cfg, train_cfg, out=parent, log=lambda *_: None)
        s = read_json(parent / "summary.json")
        base, versus = s.get("baseline", {}), s.get("versus")
        what = "folds" if s["kind"] == "folds" else "seeds"
        val = mean_std([read_json(parent / m / "summary.json")["train"]["best_val_accuracy"] for m in s["members"]])
        rows.append({"model": name, "val_mean": val["mean"], "val_acc": pm(val), "test_acc": pm(s["model"]["accuracy"]),
                     "test_macro_f1": pm(s["model"]["macro_f1"]),
                     "baseline_acc": pm(base.get("accuracy")), "baseline_macro_f1": pm(base.get("macro_f1")),
                     "beat_baseline": f"{versus['model_better']} of {s['runs']} {what}" if versus else "-",
                     "diff_points": pm(versus["difference"], 100, 1) if versus else "-",
                     "train_s": pm(s["train_time"], 1, 1)})
        if versus:
            better = all(s["model"][k]["mean"] > base[k]["mean"] for k in ("accuracy", "macro_f1"))
            slowest = max(s["train_time"]["values"])
            in_time = budget is None or slowest <= budget
            checks.append((f"{name}: mean test accuracy and macro-F1 above the baseline's ({s.get('baseline_name', '')})"
                           + (f", each run within {budget:.0f} s of training" if budget is not None else ""),
                           f"accuracy {rows[-1]['test_acc']} vs {rows[-1]['baseline_acc']}, macro-F1 "
                           f"{rows[-1]['test_macro_f1']} vs {rows[-1]['baseline_macro_f1']}; better in "
                           f"{rows[-1]['beat_baseline']} ({versus['model_better_outside_noise']} outside the noise)"
                           + (f"; slowest run {slowest:.0f} s" if budget is not None else ""),
                           "met" if better and in_time else "NOT met"))
    default = [r for r in rows if r["model"].endswith("(default)")]
    if default and len(rows) > 1:  # the default is chosen on validation, never on test
        best = max(rows, key=lambda r: r["val_mean"])
        checks.append(("the default has the highest mean validation accuracy of the configurations run",
                       ", ".join(f"{r['model']} {r['val_mean']:.4f}" for r in rows),
                       "met" if best is default[0] else "NOT met"))
    return rows, checks


def _finish_earlier(task: str, parent, task_cfg, model_cfg, train_cfg) -> None:
    """An earlier repeated run in ``parent``: refused unless it has the same options (those a resume
    may change aside: threads, epochs, ...); resumed unless it finished."""
    from dataclasses import asdict

    from rnnlab.options import declared
    from rnnlab.repeats import resume_repeats
    from rnnlab.runs import read_json

    plan, train = read_json(parent / "repeats.json"), asdict(train_cfg)
    changeable = {f.name for f, opt in declared(type(train_cfg)) if opt.resume}
    fixed = lambda d: {k: v for k, v in d.items() if k not in changeable}  # noqa: E731
    differ = [what for what, old, new in (("task", plan["task_config"], asdict(task_cfg)),
                                          ("model", plan["model_config"], asdict(model_cfg)),
                                          ("training", fixed(plan["train_config"]), fixed(train))) if old != new]
    if differ:
        raise SystemExit(f"--out: {parent} holds a run with other {' and '.join(differ)} options; give another --out")
    if not (parent / "summary.json").is_file():
        resume_repeats(parent, task=task, log=lambda *_: None, **{k: train[k] for k in changeable})
