"""A long-dependency experiment: "recall the first symbol" after T steps.

Each input is one of ``symbols`` key symbols followed by T - 1 distractors drawn from a separate set
of ``distractors`` symbols (all one-hot); the answer is the key, so the net must carry one piece of
information across T - 1 steps. Chance accuracy is 1 / symbols. Keys and distractors are told
apart by their input alone -- a gate can learn "write on a key, keep otherwise" -- so what remains
hard is the distance, which is the lesson. Every cell is trained with the shared training loop (``rnnlab.train.fit``) on fresh
random sequences each step (nothing to memorise), selected on a validation set and scored on a
test set, for each T. The vanilla RNN's gradient vanishes with distance (see ``rnnlab gradients``),
so it falls to chance as T grows, while LSTM and GRU, with their additive paths, keep learning.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .options import Options, option, parse_list, parse_names
from .gradflow import CELL_SPECS, add_keep_gate_bias
from .models import ClassifierConfig, SequenceClassifier, predict_batches
from .train import TrainConfig, fit
from .vocab import CLASSIFIER_SPECIALS


@dataclass(frozen=True)
class LongRangeConfig(Options):
    cells: tuple[str, ...] = option(("rnn-tanh", "lstm", "lstm-chrono", "gru-chrono"), "cells, comma-separated",
                                    choices=tuple(CELL_SPECS), parse=parse_names(tuple(CELL_SPECS)), metavar="CELLS")
    lengths: tuple[int, ...] = option((10, 25, 50, 100, 200), "values of T", min=2, max=100_000,
                                      parse=parse_list(int), metavar="T")
    symbols: int = option(8, "key symbols (chance is 1/symbols)", min=2, max=1000)
    distractors: int = option(8, "distractor symbols", min=1, max=1000)
    hidden: int = option(64, "hidden size", min=1, max=4096)
    batch_size: int = option(64, "sequences per step", min=1, max=100_000)
    steps_per_epoch: int = option(100, "training steps per epoch", min=1, max=1_000_000)
    epochs: int = option(8, "epochs per model", min=1, max=10_000)
    lr: float = option(3e-3, "learning rate", above=0, max=10)
    eval_size: int = option(1000, "validation and test sequences", min=1, max=1_000_000)
    seed: int = option(0, "random seed", min=0, max=2**32 - 1)


# `rnnlab longrange --quick`: a small configuration that finishes in seconds (the tests use it).
QUICK = dict(lengths=(5, 30), hidden=16, steps_per_epoch=20, epochs=2, eval_size=200)


class RecallTask:
    """'Recall the first symbol' for the shared training loop."""

    name = "longrange"
    monitor = "accuracy"
    monitor_mode = "max"

    def __init__(self, length: int, symbols: int, distractors: int, steps_per_epoch: int, eval_size: int,
                 seed: int) -> None:
        self.cfg = {"length": length, "symbols": symbols, "distractors": distractors}
        self.length, self.symbols, self.distractors = length, symbols, distractors
        self.steps_per_epoch = steps_per_epoch
        gen = torch.Generator().manual_seed(seed)
        self.fixed = {split: self._draw(eval_size, gen) for split in ("val", "test")}

    def _draw(self, n: int, gen: torch.Generator) -> dict:
        key = torch.randint(0, self.symbols, (n, 1), generator=gen)
        noise = torch.randint(0, self.distractors, (n, self.length - 1), generator=gen) + self.symbols
        # The shared classifier reserves its first ids (padding, unknown); the symbols follow them.
        return {"ids": torch.cat([key, noise], dim=1) + len(CLASSIFIER_SPECIALS), "lengths": torch.full((n,), self.length),
                "targets": key[:, 0].clone()}

    def state(self) -> dict:
        return {}

    def num_batches(self, split: str, batch_size: int) -> int:
        return self.steps_per_epoch if split == "train" else -(-len(self.fixed[split]["ids"]) // batch_size)

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        if split == "train":  # fresh sequences every step, reproducible from the loop's generator
            for _ in range(self.steps_per_epoch):
                yield self._draw(batch_size, generator)
            return
        data = self.fixed[split]
        for start in range(0, len(data["ids"]), batch_size):
            yield {k: v[start : start + batch_size] for k, v in data.items()}

    def evaluate(self, model, split: str, device) -> dict:
        if split == "train":
            return {}  # the training stream is endless; validation and test are the measures
        logits, targets = predict_batches(model, self.batches(split, 500, shuffle=False), device)
        return {"loss": F.cross_entropy(logits, targets).item(),
                "accuracy": (logits.argmax(1) == targets).float().mean().item()}


def run(cfg: LongRangeConfig, out: Path, device, log=print) -> dict:
    rows = []
    for name in cfg.cells:
        kind, phi, gate_bias = CELL_SPECS[name]
        for length in cfg.lengths:
            task = RecallTask(length, cfg.symbols, cfg.distractors, cfg.steps_per_epoch, cfg.eval_size, cfg.seed)
            torch.manual_seed(cfg.seed)
            model_cfg = ClassifierConfig(vocab_size=len(CLASSIFIER_SPECIALS) + cfg.symbols + cfg.distractors, num_classes=cfg.symbols, cell=kind, backend="scratch",
                                         nonlinearity=phi or "tanh", input="onehot", hidden=cfg.hidden)
            model = SequenceClassifier(model_cfg)
            add_keep_gate_bias(model.rnn.bias_ih_l0, cfg.hidden, gate_bias, length, kind)
            train_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, schedule="none",
                                    patience=0, seed=cfg.seed, progress=False)
            run_dir = out / f"{name}-T{length}"
            run_dir.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            summary = fit(task, model, train_cfg, run_dir, device, {"task": "longrange", "model_config": asdict(model_cfg)},
                          log=lambda *a: None)
            test = task.evaluate(model, "test", device)
            rows.append({"cell": name, "length": length, "test_accuracy": test["accuracy"],
                         "val_accuracy": summary["best_val_accuracy"], "seconds": round(time.perf_counter() - start, 1)})
            log(f"{name:<12} T={length:<4} test accuracy {test['accuracy']:.3f}  (chance {1 / cfg.symbols:.3f}, "
                f"{rows[-1]['seconds']:.0f} s)")
    return {"config": asdict(cfg), "rows": rows, "findings": findings(rows, cfg.symbols)}


def findings(rows: list[dict], symbols: int) -> list[str]:
    chance = 1 / symbols
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        mine = [r for r in rows if r["cell"] == cell]
        solved = [r["length"] for r in mine if r["test_accuracy"] >= 0.9]
        failed = [r["length"] for r in mine if r["test_accuracy"] < chance + 0.1]
        text = f"{cell}: solves (>= 0.9 test accuracy) T = {', '.join(map(str, solved)) or 'none'}"
        text += f"; at chance (< {chance + 0.1:.2f}) for T = {', '.join(map(str, failed))}" if failed else "; never at chance"
        out.append(text + ".")
    return out


def write_report(results: dict, out: Path) -> Path:
    import html

    from .report import page, pyplot, table as html_table
    from .runs import write_json

    write_json(out / "longrange.json", results)
    cfg = results["config"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for cell in cfg["cells"]:
        pts = [(r["length"], r["test_accuracy"]) for r in results["rows"] if r["cell"] == cell]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=cell)
    ax.axhline(1 / cfg["symbols"], color="gray", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xticks(cfg["lengths"], [str(t) for t in cfg["lengths"]])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("T: steps between the symbol and the answer")
    ax.set_ylabel("test accuracy")
    ax.set_title("Recall the first symbol")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "longrange.png", dpi=110)
    plt.close(fig)
    rows_html = html_table(["cell", "T", "test accuracy", "best val accuracy", "seconds"],
                   [[r["cell"], r["length"], f"{r['test_accuracy']:.3f}", f"{r['val_accuracy']:.3f}", r["seconds"]]
                    for r in results["rows"]])
    body = ("<p>" + "</p><p>".join(html.escape(f) for f in results["findings"]) + "</p><img src='longrange.png'>"
            + rows_html + "<h2>Configuration</h2><pre>" + html.escape(json.dumps(cfg, indent=2)) + "</pre>")
    path = out / "report.html"
    path.write_text(page("rnnlab longrange: why LSTM and GRU beat the vanilla RNN", body), encoding="utf-8")
    return path

