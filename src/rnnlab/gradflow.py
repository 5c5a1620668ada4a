"""Gradient flow through time, measured: how ||dL_T/dh_k|| changes with the distance T - k.

For each cell (vanilla RNN with tanh / sigmoid / ReLU, LSTM, GRU) and each recurrent weight scale
(every H x H block of W_hh rescaled to that spectral radius: below, at and above 1), the cell is
unrolled over ``steps`` random inputs in float64 (so tiny gradients do not underflow), the loss is
read from the last state only, and autograd gives dL_T/dh_k (and dL_T/dC_k for the LSTM's cell)
for every k. Norms are averaged over the batch and over seeds. The per-step rate is exp(slope) of a
least-squares line through log ||dL_T/dh_k|| against T - k: below 1 the gradient vanishes, above 1
it explodes.

The same is measured again after a little training on "recall the first symbol" (the answer is
the first of ``steps`` symbols), to show what learning does to the flow.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import rnnlab.nn as scratch

from .options import Options, option, parse_list, parse_names

# name -> (family, nonlinearity, gate bias). The gate bias is added to the pre-activation of the gate
# that keeps the past -- the LSTM's forget gate, the GRU's update gate -- through bias_ih: +2 makes it
# start near sigmoid(2) = 0.88 instead of 0.5 (the usual "forget bias" initialisation). "chrono" is
# the chrono initialisation (Tallec & Ollivier, 2018): keep-gate biases log(U(1, T - 1)), so the units'
# memory spans are spread up to the horizon T (and the LSTM's input gate bias is the negative).
CELL_SPECS = {"rnn-tanh": ("rnn", "tanh", 0.0), "rnn-sigmoid": ("rnn", "sigmoid", 0.0), "rnn-relu": ("rnn", "relu", 0.0),
              "lstm": ("lstm", None, 0.0), "gru": ("gru", None, 0.0), "lstm-f2": ("lstm", None, 2.0),
              "gru-z2": ("gru", None, 2.0), "lstm-chrono": ("lstm", None, "chrono"), "gru-chrono": ("gru", None, "chrono")}


@dataclass(frozen=True)
class GradFlowConfig(Options):
    cells: tuple[str, ...] = option(("rnn-tanh", "rnn-sigmoid", "rnn-relu", "lstm", "gru", "lstm-f2", "gru-z2"),
                                    "cells, comma-separated (-f2/-z2: forget/update gate bias +2; -chrono: chrono init)",
                                    choices=tuple(CELL_SPECS), parse=parse_names(tuple(CELL_SPECS)), metavar="CELLS")
    steps: int = option(100, "sequence length T", min=2, max=100_000)
    hidden: int = option(64, "hidden size", min=1, max=4096)
    symbols: int = option(8, "input alphabet (one-hot) and classes of the recall task", min=2, max=1000)
    batch: int = option(32, "sequences per measurement", min=1, max=100_000)
    scales: tuple[float, ...] = option((0.5, 1.0, 1.5), "spectral radii of the recurrent weights", above=0, max=100,
                                       parse=parse_list(float), metavar="RADII")
    seeds: int = option(3, "seeds averaged", min=1, max=100)
    train_steps: int = option(150, "training steps before the second measurement", min=0, max=1_000_000)
    lr: float = option(3e-3, "learning rate of those steps", above=0, max=10)
    seed: int = option(0, "random seed", min=0, max=2**32 - 1)


# `rnnlab gradients --quick`: a small configuration that finishes in seconds (the tests use it).
QUICK = dict(steps=30, hidden=16, batch=8, seeds=1, train_steps=10, scales=(0.5, 1.5))


@torch.no_grad()
def add_keep_gate_bias(bias_ih: torch.Tensor, hidden: int, amount: float | str, horizon: int = 100,
                       kind: str = "lstm") -> None:
    """Add ``amount`` to the gate that keeps the past: the second block in both gate orders
    (LSTM i, f, g, o: the forget gate; GRU r, z, n: the update gate). ``"chrono"`` sets that block
    to log(U(1, horizon - 1)) instead, and an LSTM's input gate to its negative."""
    if amount == "chrono":
        keep = torch.log(torch.empty(hidden, dtype=bias_ih.dtype).uniform_(1, max(horizon - 1, 2)))
        bias_ih[hidden : 2 * hidden] = keep
        if kind == "lstm":
            bias_ih[:hidden] = -keep
        return
    bias_ih[hidden : 2 * hidden] += amount


def make_cell(name: str, input_size: int, hidden: int, horizon: int = 100) -> nn.Module:
    kind, phi, gate_bias = CELL_SPECS[name]
    if kind == "rnn":
        return scratch.RNNCell(input_size, hidden, nonlinearity=phi)
    cell = scratch.LSTMCell(input_size, hidden) if kind == "lstm" else scratch.GRUCell(input_size, hidden)
    add_keep_gate_bias(cell.bias_ih, hidden, gate_bias, horizon, kind)
    return cell


@torch.no_grad()
def set_spectral_radius(cell: nn.Module, radius: float) -> None:
    """Rescale every H x H block of weight_hh (one per gate) to the given spectral radius."""
    H = cell.hidden_size
    for g in range(cell.weight_hh.size(0) // H):
        block = cell.weight_hh[g * H : (g + 1) * H]
        rho = torch.linalg.eigvals(block).abs().max().real
        block.mul_(radius / rho)


def unroll(cell: nn.Module, x: torch.Tensor):
    """x (T, B, I) -> list of h_k (k = 0..T) and, for the LSTM, of C_k; all retain their grads."""
    batch = x.size(1)
    h = x.new_zeros(batch, cell.hidden_size, requires_grad=True)
    is_lstm = isinstance(cell, scratch.LSTMCell)
    c = x.new_zeros(batch, cell.hidden_size, requires_grad=True) if is_lstm else None
    hs, cs = [h], [c] if is_lstm else []
    for t in range(x.size(0)):
        if is_lstm:
            h, c = cell(x[t], (h, c))
            c.retain_grad()
            cs.append(c)
        else:
            h = cell(x[t], h)
        h.retain_grad()
        hs.append(h)
    return hs, cs


def gradient_norms(cell: nn.Module, head: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """Mean over the batch of ||dL_T/dh_k|| (and ||dL_T/dC_k||) for k = 0..T; L_T reads h_T only."""
    hs, cs = unroll(cell, x)
    loss = F.cross_entropy(head(hs[-1]), y, reduction="sum")  # per-example losses: gradients stay separate
    loss.backward()
    out = {"h": np.array([v.grad.norm(dim=1).mean().item() for v in hs])}
    if cs:
        out["C"] = np.array([v.grad.norm(dim=1).mean().item() for v in cs])
    return out


def recall_batch(cfg: GradFlowConfig, gen: torch.Generator, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """'Recall the first symbol': T one-hot symbols, the target is the first."""
    sym = torch.randint(0, cfg.symbols, (cfg.steps, cfg.batch), generator=gen)
    return F.one_hot(sym, cfg.symbols).to(dtype), sym[0]


def fitted_rate(norms: np.ndarray) -> float:
    """exp(slope) of log ||g_k|| against the distance T - k (per-step growth factor)."""
    distance = np.arange(len(norms))[::-1]  # norms[k] is at distance T - k
    keep = norms > 1e-280
    if keep.sum() < 2:
        return 0.0
    slope = np.polyfit(distance[keep], np.log(norms[keep]), 1)[0]
    return float(math.exp(slope))


def verdict(rate: float) -> str:
    return "vanishes" if rate < 0.97 else "explodes" if rate > 1.03 else "keeps"


def train_briefly(cell, head, cfg: GradFlowConfig, gen: torch.Generator) -> float:
    opt = torch.optim.Adam(list(cell.parameters()) + list(head.parameters()), lr=cfg.lr)
    acc = 0.0
    for _ in range(cfg.train_steps):
        x, y = recall_batch(cfg, gen, torch.float64)
        hs, _ = unroll(cell, x)
        logits = head(hs[-1])
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(list(cell.parameters()) + list(head.parameters()), 1.0)
        opt.step()
        acc = (logits.argmax(1) == y).double().mean().item()
    return acc


def run(cfg: GradFlowConfig, progress=print) -> dict:
    """Measure every (cell, scale, phase); returns rows and mean norm curves."""
    results: dict = {"config": asdict(cfg), "rows": [], "curves": {}}
    for name in cfg.cells:
        for scale in cfg.scales:
            per_phase: dict[str, list] = {"init": [], "trained": []}
            per_phase_c: dict[str, list] = {"init": [], "trained": []}
            for s in range(cfg.seeds):
                torch.manual_seed(cfg.seed * 1000 + s)
                gen = torch.Generator().manual_seed(cfg.seed * 1000 + s)
                cell = make_cell(name, cfg.symbols, cfg.hidden, cfg.steps).double()
                head = nn.Linear(cfg.hidden, cfg.symbols).double()
                set_spectral_radius(cell, scale)
                x, y = recall_batch(cfg, gen, torch.float64)
                for phase in ("init", "trained"):
                    if phase == "trained":
                        train_briefly(cell, head, cfg, gen)
                    norms = gradient_norms(cell, head, x, y)
                    per_phase[phase].append(norms["h"])
                    if "C" in norms:
                        per_phase_c[phase].append(norms["C"])
            for phase in ("init", "trained"):
                curve = np.mean(per_phase[phase], axis=0)
                key = f"{name}|{scale}|{phase}"
                results["curves"][key] = curve.tolist()
                row = {"cell": name, "scale": scale, "phase": phase, "rate_h": fitted_rate(curve),
                       "ratio_h": float(curve[0] / curve[-1]) if curve[-1] > 0 else 0.0}
                if per_phase_c[phase]:
                    c_curve = np.mean(per_phase_c[phase], axis=0)
                    results["curves"][key + "|C"] = c_curve.tolist()
                    row["rate_C"] = fitted_rate(c_curve)
                row["verdict"] = verdict(row["rate_h"])
                results["rows"].append(row)
            progress(f"{name:<12} spectral radius {scale:<4}: per-step rate "
                     + ", ".join(f"{r['phase']} {r['rate_h']:.3f}" for r in results["rows"][-2:]))
    results["findings"] = findings(results["rows"], cfg.steps)
    return results


def findings(rows: list[dict], steps: int) -> list[str]:
    """What the table says, in words."""
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        init = [r for r in rows if r["cell"] == cell and r["phase"] == "init"]
        parts = [f"radius {r['scale']:g}: {r['verdict']} (x{r['rate_h']:.3f} per step, "
                 f"dL/dh_0 is {r['ratio_h']:.1e} of dL/dh_T after {steps} steps)" for r in init]
        text = f"{cell} at initialisation -- " + "; ".join(parts)
        lstm_c = [r for r in init if "rate_C" in r]
        if lstm_c:
            text += ". Along the cell path dL/dC_k: " + ", ".join(f"x{r['rate_C']:.3f} at radius {r['scale']:g}" for r in lstm_c)
        out.append(text + ".")
    return out


def plot(results: dict, phase: str, path: Path) -> Path:
    from .report import pyplot

    plt = pyplot()
    cfg = results["config"]
    scales = cfg["scales"]
    fig, axes = plt.subplots(1, len(scales), figsize=(5.2 * len(scales), 4.2), squeeze=False, sharey=True)
    for ax, scale in zip(axes[0], scales):
        for name in cfg["cells"]:
            curve = np.array(results["curves"][f"{name}|{scale}|{phase}"])
            distance = np.arange(len(curve))[::-1]
            ax.semilogy(distance, np.maximum(curve, 1e-300), label=name)
            c_key = f"{name}|{scale}|{phase}|C"
            if c_key in results["curves"]:
                ax.semilogy(distance, np.maximum(np.array(results["curves"][c_key]), 1e-300), "--", label=f"{name} (cell C)")
        ax.set_title(f"spectral radius {scale:g}, {'at initialisation' if phase == 'init' else 'after training'}", fontsize=10)
        ax.set_xlabel("distance T - k (steps back)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("||dL_T / dh_k||")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: dict, out: Path, seconds: float) -> Path:
    import html
    import json

    from .report import page, table
    from .runs import write_json

    write_json(out / "gradients.json", results)
    plot(results, "init", out / "gradients_init.png")
    plot(results, "trained", out / "gradients_trained.png")
    rows = [[r["cell"], r["scale"], r["phase"], f"{r['rate_h']:.4f}", f"{r.get('rate_C', float('nan')):.4f}"
             if "rate_C" in r else "-", f"{r['ratio_h']:.2e}", r["verdict"]] for r in results["rows"]]
    body = ("<p>" + "</p><p>".join(html.escape(f) for f in results["findings"]) + "</p>"
            + table(["cell", "spectral radius", "phase", "rate dL/dh per step", "rate dL/dC per step",
                      "|dL/dh_0| / |dL/dh_T|", "verdict"], rows, left=1)
            + "<h2>At initialisation</h2><img src='gradients_init.png'>"
            + "<h2>After training on recall-the-first-symbol</h2><img src='gradients_trained.png'>"
            + "<h2>Configuration</h2><pre>" + html.escape(json.dumps(results["config"], indent=2)) + "</pre>"
            + f"<p class='muted'>{seconds:.0f} s</p>")
    path = out / "report.html"
    path.write_text(page("rnnlab gradients: vanishing and exploding gradients, measured", body), encoding="utf-8")
    return path


def main(cfg: GradFlowConfig, out: Path, log=print) -> Path:
    start = time.perf_counter()
    results = run(cfg, progress=log)
    for f in results["findings"]:
        log(f)
    return write_report(results, out, time.perf_counter() - start)
