"""Names -> language: classify a surname's language from its characters.

Data: any folder of ``<label>.txt`` files (UTF-8, one item per line); the default is the bundled
names set. Cleaning drops empty lines and junk lines (more than ``max_words`` words, or characters
other than letters and the separators ``' - .``), and reports every drop.

Split protocols (both stratified by label and seeded):

* ``grouped`` (default): drop exact duplicate (name, label) pairs, then split by *name string*, so no
  name appears in two splits. A name listed under several languages goes, with all its labels, to
  one split.
* ``random``: a plain row split as course reports do -- duplicates stay, and the same name can be in
  train and test; kept to show how much that flatters the numbers.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..bundle import default_data_dir
from ..errors import UserError
from ..models import ClassifierConfig
from ..options import option
from ..train import TrainConfig
from ..vocab import Vocab
from .base import register
from .classify import SPLITS, SplitOptions, TextClassificationTask, encode_batch, read_label_files, split_items


# The longest name: predict refuses longer ones, and training drops longer lines (counted as too_long).
MAX_NAME_CHARS = 100
_NAME_RE = re.compile(r"[^\W\d_]+(?:[ '\-.\u2019]+[^\W\d_]+)*\.?")


# What `rnnlab train names` uses when no option says otherwise: the best mean validation accuracy over
# 5 folds of the configurations in benchmarks/names.py. One such BiLSTM fell below the character
# n-gram baseline on mean test accuracy; five of them, trained together with their mean probability
# predicting (about 5x one network's training time; 6 minutes on one thread), are ahead of it on
# accuracy and macro-F1, as three are. `--ensemble 1` trains the single network (the bundled names
# models are single networks).
DEFAULT_MODEL = ClassifierConfig(cell="lstm", embed_dim=64, hidden=128, bidirectional=True, dropout=0.3,
                                 token_dropout=0.1, members=5)
DEFAULT_TRAIN = TrainConfig(epochs=15, batch_size=64, lr=3e-3)


@dataclass(frozen=True)
class NamesConfig(SplitOptions):
    """The names task's data options (and the split options every classification task has)."""

    data: str = option("", "folder of <label>.txt files, one name per line (default: the bundled names)",
                       metavar="DIR")
    split: str = option("grouped", "grouped: no name in two splits; random: a plain row split (leaks names)",
                        choices=SPLITS)
    test_fraction: float = option(0.2, "share of the names for the test", above=0, below=1)
    max_words: int = option(3, "lines with more words are junk", min=1, max=100)


def read_label_folder(path: Path, max_words: int = 3) -> tuple[list[str], list[tuple[str, int]], dict]:
    """Read ``<label>.txt`` files -> (label names, [(text, label index)], report of what was dropped).
    Lines longer than ``MAX_NAME_CHARS`` are dropped and counted (``too_long``), as predict refuses them:
    a 100,000-character line would otherwise be padded into every batch it lands in."""
    report = {"lines": 0, "junk": 0, "too_long": 0, "junk_examples": []}

    def clean(line: str, file: str, lineno: int) -> str | None:
        report["lines"] += 1
        if len(line) > MAX_NAME_CHARS:
            report["too_long"] += 1
            example = f"{file}:{lineno}: a line of {len(line):,} characters (the limit is {MAX_NAME_CHARS})"
        elif len(line.split()) > max_words or not _NAME_RE.fullmatch(line):
            report["junk"] += 1
            example = f"{file}:{lineno}: {line!r}"
        else:
            return line
        if len(report["junk_examples"]) < 10:
            report["junk_examples"].append(example)
        return None

    labels, items, read_report = read_label_files(path, clean, "names file")
    return labels, items, {**report, **read_report}


class NamesPredictor:
    """A trained names model: top-k languages with probabilities, and a step-by-step trace."""

    def __init__(self, model, model_cfg: ClassifierConfig, task_cfg: NamesConfig, state: dict, device) -> None:
        self.model, self.model_cfg, self.device = model, model_cfg, device
        self.labels = state["labels"]
        self.vocab = Vocab(state["chars"])

    def _check(self, names: list[str]) -> list[str]:
        if not names:
            raise UserError("no names: give at least one")
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise UserError("empty name: give at least one character")
            if len(name) > MAX_NAME_CHARS:
                raise UserError(f"name of {len(name):,} characters is longer than the limit of {MAX_NAME_CHARS}")
            control = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")), None)
            if control is not None:
                raise UserError(f"name {name.strip()[:40]!r} holds the control or unassigned character "
                                f"U+{ord(control):04X}: give a name in letters")
            if not any(c in self.vocab for c in name if not c.isspace()):  # the answer would be the prior's
                raise UserError(f"name {name.strip()[:40]!r}: none of its characters is in the model's alphabet "
                                f"(unknown: {''.join(self.vocab.unknown(name.strip()))[:40]})")
        return [n.strip() for n in names]

    @torch.no_grad()
    def probabilities(self, names: list[str]) -> torch.Tensor:
        """(N, C) class probabilities of the (checked, stripped) names."""
        ids, lengths = encode_batch(self.vocab, names)
        self.model.eval()
        logits, _ = self.model(ids.to(self.device), lengths.to(self.device))
        return logits.float().softmax(-1).cpu()

    def predict(self, names: list[str], top: int = 3) -> list[dict]:
        if not 1 <= top <= 1000:
            raise UserError(f"--top {top}: give a number from 1 to 1000")
        clean = self._check(names)
        values, indices = self.probabilities(clean).topk(min(top, len(self.labels)), dim=-1)
        return [{"name": name, "unknown_characters": self.vocab.unknown(name),
                 "top": [{"label": self.labels[int(i)], "probability": round(float(p), 4)} for p, i in zip(v, ix)]}
                for name, v, ix in zip(clean, values, indices)]

    @torch.no_grad()
    def trace(self, name: str, top: int = 5) -> dict:
        """How the answer forms character by character: the class probabilities after each prefix
        (for the ``top`` classes of the whole name), and the first layer's gates and hidden state
        at each step (forward direction; the first member of an ensemble).

            chars          S     a     t     o
            probabilities  (T, top)  -- the model's answer had the name stopped there
            gates[g]       (T, H)    -- LSTM: input, forget, output; GRU: reset, update
            hidden         (T, H)
        """
        (name,) = self._check([name])
        prefixes = [name[: i + 1] for i in range(len(name))]
        probs = self.probabilities(prefixes)  # (T, C)
        order = probs[-1].argsort(descending=True)[: min(top, len(self.labels))]
        member = self.model.members[0] if hasattr(self.model, "members") else self.model
        ids, _ = encode_batch(self.vocab, [name])
        x = member.inputs(ids.to(self.device))[0].float()  # (T, I)
        gates, hidden = step_through(member, x)
        return {"name": name, "chars": list(name), "labels": [self.labels[int(i)] for i in order],
                "probabilities": [[round(float(p), 4) for p in row[order]] for row in probs],
                "cell": self.model_cfg.cell, "gates": {k: _rounded(v) for k, v in gates.items()},
                "hidden": _rounded(hidden)}

    @staticmethod
    def format(r: dict) -> str:
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
        note = f"  (unseen characters: {''.join(r['unknown_characters'])})" if r["unknown_characters"] else ""
        return f"{r['name']}: {tops}{note}"


def _rounded(t: torch.Tensor) -> list[list[float]]:
    return [[round(float(v), 4) for v in row] for row in t]


def step_through(classifier, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Run the first recurrent layer of ``classifier`` over ``x`` (T, I) one step at a time, written
    as its equations, and keep what a learner wants to see: each gate's activations (T, H) and the
    hidden state (T, H). Works for rnnlab's and torch's layers alike (same parameter names)."""
    cell, rnn = classifier.cfg.cell, classifier.rnn
    if cell == "tutorial":  # h_t = i2h([x_t, h_{t-1}]): no gates
        h = x.new_zeros(rnn.hidden_size)
        hs = []
        for x_t in x:
            h = rnn.i2h(torch.cat([x_t, h]))
            hs.append(h)
        return {}, torch.stack(hs)
    w_ih, w_hh = rnn.weight_ih_l0.float(), rnn.weight_hh_l0.float()
    b_ih = getattr(rnn, "bias_ih_l0", None)
    b_hh = getattr(rnn, "bias_hh_l0", None)
    xg = x @ w_ih.t() + (b_ih.float() if b_ih is not None else 0)  # (T, G*H): every step's input part
    H = w_hh.size(1)
    h, c = x.new_zeros(H), x.new_zeros(H)
    out: dict[str, list] = {}
    hs = []
    for t in range(x.size(0)):
        hg = w_hh @ h + (b_hh.float() if b_hh is not None else 0)  # (G*H,): the recurrent part
        if cell == "lstm":
            i, f, g, o = (xg[t] + hg).chunk(4)
            i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
            c = f * c + i * g
            h = o * torch.tanh(c)
            step = {"input": i, "forget": f, "output": o}
        elif cell == "gru":
            xr, xz, xn = xg[t].chunk(3)
            hr, hz, hn = hg.chunk(3)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            step = {"reset": r, "update": z}
        else:
            phi = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[classifier.cfg.nonlinearity]
            h = phi(xg[t] + hg)
            step = {}
        for k, v in step.items():
            out.setdefault(k, []).append(v)
        hs.append(h)
    return {k: torch.stack(v) for k, v in out.items()}, torch.stack(hs)


@register
class NamesTask(TextClassificationTask):
    """Names -> language (the contract: rnnlab.tasks.base.Task)."""

    name = "names"
    config_cls = NamesConfig
    default_model = DEFAULT_MODEL
    default_train = DEFAULT_TRAIN
    predictor_cls = NamesPredictor
    baseline_candidates = [("raw: character 1-4-gram TF-IDF + logistic regression",
                            dict(analyzer="char_wb", ngram_range=(1, 4)), "logreg")]

    @classmethod
    def check_options(cls, task_cfg: NamesConfig, model_cfg: ClassifierConfig, given=frozenset()) -> None:
        if model_cfg.freeze_embedding:
            raise UserError("--freeze-vectors: the names task has no pretrained vectors to keep fixed (its "
                             "embedding is learnt with the model)")

    def __init__(self, cfg: NamesConfig, seed: int, state: dict | None = None):
        """``state`` (from a checkpoint) fixes the labels and vocabulary of a resumed run."""
        self.cfg = cfg
        labels = state["labels"] if state else None
        data_dir = Path(cfg.data) if cfg.data else default_data_dir() / "names"
        found_labels, items, self.data_report = read_label_folder(data_dir, cfg.max_words)
        if labels is not None and labels != found_labels:
            raise UserError(f"{data_dir}: the labels differ from the run's ({', '.join(labels)}): now "
                            f"{', '.join(found_labels)}; the data changed since the run began")
        self.labels = found_labels
        self.data_report["data"] = str(data_dir)
        self.data_files = sorted(data_dir.glob("*.txt"))  # what data_fingerprint() hashes
        self.splits, split_report = split_items(items, cfg.split, cfg.val_fraction, cfg.test_fraction, seed,
                                                       cfg.folds, cfg.fold)
        self.data_report.update(split_report)
        self._warn_small_classes()
        if cfg.limit and cfg.limit < len(self.splits["train"]):
            keep = np.random.default_rng(seed).permutation(len(self.splits["train"]))[: cfg.limit]
            self.splits["train"] = [self.splits["train"][i] for i in sorted(keep)]
            self.data_report["train_items_used"] = cfg.limit
        for split in ("train", "val", "test"):
            if not self.splits[split]:
                raise UserError(f"{data_dir}: too little data: the {split} split is empty")
        if len({label for _, label in self.splits["train"]}) < 2:
            raise UserError(f"--limit {cfg.limit}: the training items left hold one label only; give a larger --limit"
                            if cfg.limit else f"{data_dir}: too little data: the training split holds one label only")
        self.tokens = {split: [t for t, _ in rows] for split, rows in self.splits.items()}  # a name's tokens: its letters
        self._index(Vocab(state["chars"]) if state else Vocab.build(self.tokens["train"]))
