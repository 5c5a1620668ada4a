"""Plots and HTML reports, made from a run folder's files (metrics.jsonl, summary.json, ...).

Plotting is a separate step from training: ``rnnlab report RUN_DIR`` redraws everything from the
files alone, and so do ``rnnlab train`` and ``rnnlab compare`` when they finish.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from .runs import read_json, read_jsonl

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em} .muted{color:#777}
"""


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(rows: list[dict], key: str):
    pts = [(r["epoch"], r[key]) for r in rows if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_curves(runs: dict[str, list[dict]], keys: list[tuple[str, str]], ylabel: str, path: Path, title: str) -> Path:
    """One line per (run, metric key); runs overlay on the same axes."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run_name, rows in runs.items():
        for key, label in keys:
            x, y = _series(rows, key)
            if x:
                name = f"{run_name} {label}".strip()
                ax.plot(x, y, marker="o", markersize=3, linestyle="--" if key.startswith("train") else "-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_confusion(ax, confusion: list[list[int]], labels: list[str], title: str) -> None:
    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)  # row-normalised: recall on the diagonal
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    n = len(labels)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=7 if n > 12 else 9)
    ax.set_yticks(range(n), labels, fontsize=7 if n > 12 else 9)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(n):
        for j in range(n):
            if norm[i, j] >= 0.01:
                ax.text(j, i, f"{norm[i, j]:.2f}".lstrip("0") if norm[i, j] < 1 else "1", ha="center", va="center",
                        fontsize=5.5 if n > 12 else 8, color="white" if norm[i, j] > 0.5 else "black")


def plot_confusions(items: dict[str, dict], path: Path) -> Path:
    """Row-normalised confusion matrices, side by side (one per run)."""
    plt = pyplot()
    n = len(items)
    size = 6.5 if len(next(iter(items.values()))["labels"]) > 12 else 4.5
    fig, axes = plt.subplots(1, n, figsize=(size * n, size), squeeze=False)
    for ax, (name, test) in zip(axes[0], items.items()):
        title = f"test accuracy {test['accuracy']:.3f}"
        _draw_confusion(ax, test["confusion"], test["labels"], f"{name}: {title}" if name else title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(header: list[str], rows: list[list], left: int = 1) -> str:
    th = "".join(f"<th class='{'l' if i < left else ''}'>{html.escape(str(h))}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='{'l' if i < left else ''}'>{html.escape(_fmt(v))}</td>"
                                    for i, v in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def render_run_report(run_dir: str | Path) -> Path:
    """Draw the run's plots and write report.html; returns its path. The task contributes its own
    section and plots (``Task.report_section`` / ``report_figures``)."""
    from .tasks import get_task

    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    task = get_task(config.get("task", ""))
    rows = read_jsonl(run_dir / "metrics.jsonl")
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    runs = {"": rows}
    metric = task.monitor
    plot_curves(runs, [("train_loss", "train"), ("val_loss", "validation")], "cross-entropy", run_dir / "loss.png", "Loss")
    plot_curves(runs, [(f"train_{metric}", "train"), (f"val_{metric}", "validation")], metric,
                run_dir / f"{metric}.png", metric.capitalize())
    parts = []
    test = summary.get("test")
    model_cfg = config.get("model_config", {})
    train = summary.get("train", {})
    parts.append(table(["", "value"], [
        ["parameters", summary.get("parameters", "")], ["best epoch", train.get("best_epoch", "")],
        ["epochs run", train.get("epochs_run", "")], ["stopped", train.get("stopped", "")],
        ["training time (s)", f"{train.get('train_time', 0):.1f}"],
        ["mean time per epoch (s)", f"{np.mean([r['epoch_time'] for r in rows]):.2f}" if rows else ""]]))
    if test:
        task.report_figures(test, run_dir)
        parts.append(task.report_section(test))
    parts.append(f"<h2>Curves</h2><img src='loss.png' alt='loss'><img src='{metric}.png' alt='{metric}'>")
    if rows:
        keys = [k for k in ("epoch", "train_loss", "val_loss", f"train_{metric}", f"val_{metric}", "val_macro_f1",
                            "lr", "epoch_time") if k in rows[0]]
        parts.append("<h2>Per epoch</h2>" + table(keys, [[r.get(k, "") for k in keys] for r in rows], left=0))
    if test and test.get("explained"):
        parts.append(_explained_section(test["explained"]))
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


def _explained_section(items: list[dict]) -> str:
    """Test texts with each word shaded by how much it moved the predicted label's probability
    (green: towards it, red: away from it), misclassified ones included."""
    rows = []
    for item in items:
        scale = max([abs(w["effect"]) for w in item["words"]] + [1e-6])
        spans = []
        for w in item["words"]:
            a = min(abs(w["effect"]) / scale, 1.0) * 0.6
            rgb = "40,160,60" if w["effect"] > 0 else "210,50,50"
            spans.append(f"<span title='{w['effect']:+.3f}' style='background:rgba({rgb},{a:.2f})'>{html.escape(w['word'])}</span>")
        verdict = "right" if item["label"] == item.get("true") else "<b>wrong</b>"
        rows.append(f"<tr><td class='l'>{' '.join(spans)}</td><td>{html.escape(item['label'])} "
                    f"{item['probability']:.2f}</td><td>{html.escape(str(item.get('true', '')))}</td><td>{verdict}</td></tr>")
    return ("<h2>Which words drove the predictions</h2><p>Occlusion: each word's shade is the drop in the predicted "
            "label's probability when it is removed (green: it supported the label; red: it argued against).</p>"
            "<table><tr><th class='l'>test text (tokens)</th><th>predicted</th><th>true</th><th></th></tr>"
            + "".join(rows) + "</table>")


def render_compare_report(out_dir: str | Path, run_dirs: dict[str, Path]) -> Path:
    """One side-by-side report for several runs of the same task, split and seed."""
    from .tasks import get_task

    out_dir = Path(out_dir)
    metrics = {name: read_jsonl(Path(d) / "metrics.jsonl") for name, d in run_dirs.items()}
    summaries = {name: read_json(Path(d) / "summary.json") for name, d in run_dirs.items()}
    first = read_json(Path(next(iter(run_dirs.values()))) / "config.json")
    task = get_task(first["task"])
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
        per_epoch = float(np.mean([r["epoch_time"] for r in epochs])) if epochs else 0.0
        rows.append([name, *columns.values(), s["parameters"], f"{s['train']['train_time']:.1f}", f"{per_epoch:.2f}",
                     s["train"]["best_epoch"]])
    body = table(header + ["parameters", "training time (s)", "s / epoch", "best epoch"], rows)
    body += "<ul>" + "".join(f"<li><a href='{Path(d).name}/report.html'>report</a> of {html.escape(name)}</li>"
                             for name, d in run_dirs.items()) + "</ul>"
    body += f"<h2>Curves</h2><img src='compare_loss.png'><img src='compare_{metric}.png'>"
    if classify:
        body += "<h2>Confusion matrices (test, row-normalised)</h2><img src='compare_confusion.png'>"
    body += "<h2>Shared configuration</h2><pre>" + html.escape(json.dumps(
        {k: first[k] for k in ("task_config", "train_config")}, indent=2, ensure_ascii=False)) + "</pre>"
    out = out_dir / "report.html"
    out.write_text(page(f"rnnlab {first['task']}: comparison", body), encoding="utf-8")
    return out
