"""A run's report.html and a comparison's, made from the run folder's files (metrics.jsonl,
summary.json, ...). The task contributes its own section and plots (Task.report_section,
Task.report_figures); this module never looks inside a task's figures.

Plotting is a separate step from training: ``rnnlab report RUN_DIR`` redraws everything from the
files alone, and so do ``rnnlab train`` and ``rnnlab compare`` when they finish.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from .report import font_note, page, plot_confusions, plot_curves, table
from .errors import UserError
from .runs import REPEATS_FILE, read_json, read_jsonl


def render_run_report(run_dir: str | Path) -> Path:
    """Draw the run's plots and write report.html; returns its path. The task contributes its own
    section and plots (``Task.report_section`` / ``report_figures``)."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", dict)
    task = _task_of(config, run_dir / "config.json")
    rows = read_jsonl(run_dir / "metrics.jsonl")
    summary = read_json(run_dir / "summary.json", dict) if (run_dir / "summary.json").is_file() else {}
    try:
        return _render_run(run_dir, config, task, rows, summary)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise UserError(f"{run_dir}: its summary.json or metrics.jsonl is damaged, so the report cannot be drawn "
                        f"({type(e).__name__}: {e})") from None


def _pretrain_section(run_dir: Path) -> str:
    """Stage 1 of a ``--pretrain lm`` run (rnnlab.pretrain): the language model's curves, then how the
    classifier was fine-tuned from it; nothing for other runs."""
    from .pretrain import FACTOR, STAGE

    rows = read_jsonl(run_dir / STAGE / "metrics.jsonl") if (run_dir / STAGE / "metrics.jsonl").is_file() else []
    if not rows:
        return ""
    plot_curves({"": rows}, [("train_perplexity", "train (a sample)"), ("val_perplexity", "validation")],
                "perplexity per token", run_dir / "pretrain.png", "Stage 1: the encoder as a language model")
    keys = ["epoch", "train_loss", "val_loss", "val_perplexity", "lr", "epoch_time"]
    return ("<h2>Stage 1: pretraining the encoder as a language model</h2><p>Each member's embedding and recurrent "
            "layers predicted the training texts (forward direction: the next token; backward: the one before), "
            f"labels unused. Then the classifier was fine-tuned from the best epoch's weights (the curves above) with "
            f"discriminative learning rates (output layer lr, recurrent layers lr/{FACTOR:g}, embedding "
            f"lr/{FACTOR:g}²) and gradual unfreezing (epoch 1: the output layer; 2: also the recurrent layers; 3 "
            "on: everything).</p><img src='pretrain.png' alt='pretraining'>"
            + table(keys, [[r.get(k, "") for k in keys] for r in rows], left=0))


def _task_of(config: dict, where: Path):
    from .tasks import TASKS

    name = config.get("task")
    if not isinstance(name, str) or name not in TASKS:
        raise UserError(f"{where}: unknown task {name!r} (known: {', '.join(TASKS)})")
    return TASKS[name]


def _render_run(run_dir: Path, config: dict, task, rows: list[dict], summary: dict) -> Path:
    runs = {"": rows}
    metric = task.monitor
    plot_curves(runs, [("train_loss", "train"), ("val_loss", "validation")], "cross-entropy", run_dir / "loss.png", "Loss")
    plot_curves(runs, [(f"train_{metric}", "train"), (f"val_{metric}", "validation")], metric,
                run_dir / f"{metric}.png", metric.capitalize())
    parts = []
    test = summary.get("test")
    model_cfg = config.get("model_config") if isinstance(config.get("model_config"), dict) else {}
    train = summary.get("train") if isinstance(summary.get("train"), dict) else {}
    parts.append(table(["", "value"], [
        ["parameters", summary.get("parameters", "")], ["best epoch", train.get("best_epoch", "")],
        ["epochs run", train.get("epochs_run", "")], ["stopped", train.get("stopped", "")],
        ["training time (s)", f"{train.get('train_time', 0):.1f}"],
        ["mean time per epoch (s)", f"{np.mean([r.get('epoch_time', 0) for r in rows]):.2f}" if rows else ""]]))
    if test:
        task.report_figures(test, run_dir)
        parts.append(task.report_section(test))
        parts.append(font_note(test.get("labels") or []))
    if summary.get("baseline"):
        parts.append(baseline_section(summary["baseline"], summary.get("versus", {})))
    parts.append(f"<h2>Curves</h2><img src='loss.png' alt='loss'><img src='{metric}.png' alt='{metric}'>")
    parts.append(_pretrain_section(run_dir))
    if rows:
        keys = [k for k in ("epoch", "train_loss", "val_loss", f"train_{metric}", f"val_{metric}", "val_macro_f1",
                            "lr", "epoch_time") if k in rows[0]]
        parts.append("<h2>Per epoch</h2>" + table(keys, [[r.get(k, "") for k in keys] for r in rows], left=0))
    if summary.get("data"):
        parts.append("<h2>Data</h2><pre>" + html.escape(json.dumps(summary["data"], indent=2, ensure_ascii=False)) + "</pre>")
    model_txt = run_dir / "model.txt"
    if model_txt.is_file():
        parts.append("<h2>Model</h2><pre>" + html.escape(model_txt.read_text(encoding="utf-8")) + "</pre>")
    parts.append("<h2>Configuration</h2><pre>" + html.escape(json.dumps(config, indent=2, ensure_ascii=False)) + "</pre>")
    title = f"rnnlab {config.get('task', '')}: {model_cfg.get('cell', '')} ({model_cfg.get('backend', '')})"
    out = run_dir / "report.html"
    out.write_text(page(title, "".join(parts)), encoding="utf-8")
    return out


def render_compare_report(out_dir: str | Path, run_dirs: dict[str, Path]) -> Path:
    """One side-by-side report for several runs of the same task, split and seed."""
    out_dir = Path(out_dir)
    metrics = {name: read_jsonl(Path(d) / "metrics.jsonl") for name, d in run_dirs.items()}
    summaries = {name: read_json(Path(d) / "summary.json", dict) for name, d in run_dirs.items()}
    first_config = Path(next(iter(run_dirs.values()))) / "config.json"
    first = read_json(first_config, dict)
    task = _task_of(first, first_config)
    for name, d in run_dirs.items():  # one task's runs side by side: a run of another task is not mixed in
        other = read_json(Path(d) / "config.json", dict).get("task")
        if other != first.get("task"):
            raise UserError(f"{Path(d)}: a {other} run in a comparison of {first.get('task')} runs ({name!r}); "
                            "compare runs of one task")
    try:
        return _render_compare(out_dir, run_dirs, metrics, summaries, first, task)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise UserError(f"{out_dir}: a run's summary.json or metrics.jsonl is damaged, so the comparison cannot be "
                        f"drawn ({type(e).__name__}: {e})") from None


def _render_compare(out_dir: Path, run_dirs: dict, metrics: dict, summaries: dict, first: dict, task) -> Path:
    metric = task.monitor
    plot_curves(metrics, [("val_loss", "")], "validation cross-entropy", out_dir / "compare_loss.png", "Validation loss")
    plot_curves(metrics, [(f"val_{metric}", "")], f"validation {metric}", out_dir / f"compare_{metric}.png",
                f"Validation {metric}")
    classify = all("confusion" in s["test"] for s in summaries.values())
    if classify:
        plot_confusions({name: s["test"] for name, s in summaries.items()}, out_dir / "compare_confusion.png")
    header, rows = ["model"], []
    for name, s in summaries.items():
        columns = task.compare_columns(s["test"])
        header = ["model", *columns]
        epochs = metrics[name]
        per_epoch = float(np.mean([r.get("epoch_time", 0) for r in epochs])) if epochs else 0.0
        rows.append([name, *columns.values(), s["parameters"], f"{s['train']['train_time']:.1f}", f"{per_epoch:.2f}",
                     s["train"]["best_epoch"]])
    body = table(header + ["parameters", "training time (s)", "s / epoch", "best epoch"], rows)
    versus = [(name, s["versus"]["text"]) for name, s in summaries.items() if s.get("versus")]
    if versus:
        first_base = next(s["baseline"] for s in summaries.values() if s.get("baseline"))
        body += (f"<h2>Against the classical baseline ({html.escape(first_base['name'])}, same split)</h2><ul>"
                 + "".join(f"<li>{html.escape(name)}: {html.escape(text.replace('model', name, 1))}</li>"
                           for name, text in versus) + "</ul>")
    body += "<ul>" + "".join(f"<li><a href='{Path(d).name}/report.html'>report</a> of {html.escape(name)}</li>"
                             for name, d in run_dirs.items()) + "</ul>"
    body += f"<h2>Curves</h2><img src='compare_loss.png'><img src='compare_{metric}.png'>"
    if classify:
        body += "<h2>Confusion matrices (test, row-normalised)</h2><img src='compare_confusion.png'>"
        body += font_note([label for s in summaries.values() for label in s["test"].get("labels") or []])
    body += "<h2>Shared configuration</h2><pre>" + html.escape(json.dumps(
        {k: first.get(k) for k in ("task_config", "train_config")}, indent=2, ensure_ascii=False)) + "</pre>"
    out = out_dir / "report.html"
    out.write_text(page(f"rnnlab {first['task']}: comparison", body), encoding="utf-8")
    return out


def render_repeats_report(parent: str | Path) -> Path:
    """The report of a --folds / --seeds run: mean ± std of every test figure, model and baseline, the
    count of members where the model beat the baseline, each member's figures and a link to its report."""
    parent = Path(parent)
    summary = read_json(parent / "summary.json", dict)
    plan = read_json(parent / REPEATS_FILE, dict)
    try:
        header, rows = summary_table(summary)
        what = "folds" if summary["kind"] == "folds" else "seeds"
        body = (f"<p>{summary['runs']} {what}: test figures, mean ± sample standard deviation (n-1).</p>"
                + table(header, rows) + f"<p>{html.escape(versus_line(summary))}</p>")
        keys = list(next(iter(summary["per_run"].values()))["test"])
        base_keys = list(next(iter(summary["per_run"].values()))["baseline"])
        member_rows = [[f"{name}", *(r["test"].get(k, "") for k in keys), *(r["baseline"].get(k, "") for k in base_keys),
                        "" if r["difference"] is None else f"{r['difference'] * 100:+.1f}",
                        " / ".join(str(r["data"].get(f"{s}_items", "")) for s in ("train", "val", "test"))]
                       for name, r in summary["per_run"].items()]
        body += ("<h2>Each run</h2>" + table(["run", *keys, *(f"baseline {k}" for k in base_keys), "difference (points)",
                                            "train / val / test items"], member_rows)
                 + "<ul>" + "".join(f"<li><a href='{html.escape(name)}/report.html'>report</a> of {html.escape(name)}</li>"
                                    for name in summary["per_run"]) + "</ul>")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, StopIteration) as e:
        raise UserError(f"{parent}: its summary.json is damaged, so the report cannot be drawn "
                        f"({type(e).__name__}: {e})") from None
    body += "<h2>Configuration</h2><pre>" + html.escape(json.dumps(
        {k: plan.get(k) for k in ("task_config", "model_config", "train_config")}, indent=2, ensure_ascii=False)) + "</pre>"
    out = parent / "report.html"
    out.write_text(page(f"rnnlab {summary.get('task', '')}: {summary.get('runs', '')} {summary.get('kind', '')}", body),
                   encoding="utf-8")
    return out


# --- a --folds / --seeds summary (rnnlab.repeats) in words: the terminal's lines and the report's table
def plus_minus(figure: dict | None, scale: float = 1.0, digits: int = 4) -> str:
    """A ``{"mean", "std"}`` figure as ``mean ± std`` (times ``scale``); "" for none."""
    return f"{figure['mean'] * scale:.{digits}f} ± {figure['std'] * scale:.{digits}f}" if figure else ""


def summary_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the figures' mean ± std, model and baseline side by side."""
    baseline = summary.get("baseline", {})
    keys = list(summary["model"]) + [k for k in baseline if k not in summary["model"]]
    return (["test figure", "model", "baseline"],
            [[k.replace("_", " "), plus_minus(summary["model"].get(k)), plus_minus(baseline.get(k))] for k in keys])


def versus_line(summary: dict) -> str:
    """In how many members the model beat the baseline, and the mean difference."""
    v = summary.get("versus")
    if not v:
        return "no baseline (--no-baseline)"
    what = "folds" if summary["kind"] == "folds" else "seeds"
    d = v["difference"]
    return (f"the model beat the baseline ({summary.get('baseline_name', '')}) in {v['model_better']} of "
            f"{summary['runs']} {what} ({v['model_better_outside_noise']} outside the noise of their test set); "
            f"{v['metric']} difference {plus_minus(d, 100, 1)} points")


def summary_lines(summary: dict) -> list[str]:
    """The summary for the terminal: a title, the table, the line against the baseline."""
    header, rows = summary_table(summary)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    what = f"{summary['runs']} {'folds' if summary['kind'] == 'folds' else 'seeds'}"
    return [f"{summary['task']}, {what}: test figures, mean ± std (sample std, n-1)", fmt(header),
            *(fmt(r) for r in rows), versus_line(summary)]


def baseline_section(baseline: dict, versus: dict) -> str:
    """The run's classical baseline (same split) and the model against it."""
    rows = [[f"{split} {k.replace('_', ' ')}", v] for split in ("val", "test") for k, v in baseline.get(split, {}).items()]
    return ("<h2>Against the classical baseline</h2><p>" + html.escape(versus.get("text", "")) + "</p>"
            + table([f"baseline: {baseline['name']}", "value"], rows + [["seconds to fit", baseline.get("seconds", "")]]))
