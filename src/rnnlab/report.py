"""The building blocks of reports: curves, confusion matrices, HTML tables and pages (matplotlib, no
task inside). The tasks use them for their own report sections; rnnlab.runreport puts a run's
report together from its files."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em} h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0} td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em} .muted{color:#777}
"""


# Fonts with CJK glyphs, by family name as matplotlib reads it, the project's own first (`make install`
# puts fonts-noto-cjk on a machine with apt); matplotlib's own DejaVu Sans has none, and draws boxes.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Serif CJK SC", "Source Han Sans SC",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback", "AR PL UMing CN", "SimHei",
                "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC")
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts", "/Library/Fonts",
             "/System/Library/Fonts", "C:/Windows/Fonts")
_CJK_FILE = re.compile(r"(cjk|wqy|wenquanyi|sourcehan|droidsansfallback|uming|ukai|simhei|msyh|pingfang|hiragino)",
                       re.IGNORECASE)
_CJK_TEXT = re.compile(r"[\u2e80-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003134f]")
_font: list = []  # [family or None] once looked up


def cjk_font() -> str | None:
    """The family name of a font with CJK glyphs that matplotlib can use, else None. Fonts installed
    after matplotlib built its font cache (fonts-noto-cjk from `make install`) are registered here."""
    if _font:
        return _font[0]
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((f for f in CJK_FAMILIES if f in names), None)

    found = known()
    if found is None:
        for folder in FONT_DIRS:
            root = Path(folder).expanduser()
            if not root.is_dir():
                continue
            for f in root.rglob("*"):
                if f.suffix.lower() in (".ttc", ".otf", ".ttf") and _CJK_FILE.search(f.name):
                    try:
                        font_manager.fontManager.addfont(str(f))
                    except (OSError, RuntimeError, ValueError):
                        continue  # a damaged font file: the next one may do
        found = known()
    _font.append(found)
    return found


def has_cjk(texts) -> bool:
    return any(_CJK_TEXT.search(str(t)) for t in texts)


def font_note(texts) -> str:
    """The report's one note when labels in CJK script were drawn without a font for them."""
    if not has_cjk(texts) or cjk_font() is not None:
        return ""
    return ("<p class='muted'>Note: no font with Chinese, Japanese or Korean glyphs was found on this machine, so the "
            "plots show such labels as empty boxes (the tables above have them in full). Install one "
            "(<code>sudo apt-get install fonts-noto-cjk</code>, which <code>make install</code> does where apt is "
            "available) and redraw with <code>rnnlab report RUN</code>.</p>")


def pyplot():
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # DejaVu Sans for Latin text, then a CJK font for what it lacks (matplotlib's font fallback).
    cjk = cjk_font()
    matplotlib.rcParams["font.family"] = ["DejaVu Sans", cjk] if cjk else ["DejaVu Sans"]
    # Without a CJK font the boxes are said once in the report (font_note), not once per glyph on stderr.
    warnings.filterwarnings("ignore", message="Glyph .* missing from font")
    return plt


def _series(rows: list[dict], key: str):
    pts = [(r["epoch"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and isinstance(r.get("epoch"), int)]
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
    if ax.get_legend_handles_labels()[0]:  # no epoch yet: an empty plot, without matplotlib's warning
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
