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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..files import default_data_dir
from ..errors import UserError
from ..models import ClassifierConfig, members_of
from ..nn.trace import named, step_through
from ..options import Options, option
from ..train import TrainConfig
from ..verbs import Input, Verb, top_options
from ..vocab import Vocab
from .base import register
from .classify import (SPLITS, SplitOptions, TextClassificationTask, encode_batch, input_vectors, read_label_files,
                       split_items)


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
                                 token_dropout=0.1, ensemble=5)
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


def has_letter(name: str) -> str:
    """A name is written in letters: the content rule of every door's names input."""
    if not any(c.isalpha() for c in name):
        raise ValueError(f"{name[:20]!r} has no letter: a name is written in letters")
    control = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")), None)
    if control is not None:
        raise ValueError(f"{name.strip()[:40]!r} holds the control or unassigned character U+{ord(control):04X}: "
                         "give a name in letters")
    return name.strip()


PredictOptions = top_options("PredictOptions", 3, 1000, "how many languages to show", "显示几种语言")
TraceOptions = top_options("TraceOptions", 5, 100, "how many languages to follow step by step", "逐步显示几种语言")


NAMES = Input("names", "surnames", max_chars=MAX_NAME_CHARS, check=has_letter, zh="姓氏")


@dataclass(frozen=True)
class SaliencyOptions(Options):
    """Saliency has no option: it explains the model's own answer (its likeliest language)."""


class NamesPredictor:
    """A trained names model: top-k languages with probabilities, and a step-by-step trace."""

    verbs = (
        Verb("predict", "the likeliest languages of each name", PredictOptions, NAMES, zh="每个姓氏最可能的语言",
             text="format", example=["Nguyen"], per_item=True),
        Verb("trace", "the answer after each character, and the first layer's gates and states", TraceOptions,
             replace(NAMES, name="name", many=False, help="a surname", zh="一个姓氏"),
             zh="逐字符的答案，以及第一层的门和状态", text="format_trace"),
        Verb("saliency", "how much each character moves the answer: the norm of the gradient of the predicted "
             "language's log-probability with respect to the character's input vector", SaliencyOptions,
             replace(NAMES, name="name", many=False, help="a surname", zh="一个姓氏"),
             zh="每个字符对答案的影响：预测语言的对数概率对该字符输入向量的梯度范数", text="format_saliency"),
    )

    def __init__(self, model, model_cfg: ClassifierConfig, task_cfg: NamesConfig, state: dict, device) -> None:
        self.model, self.model_cfg, self.device = model, model_cfg, device
        self.labels = state["labels"]
        self.vocab = Vocab(state["chars"])

    def context(self) -> dict:
        """What the web API adds to every answer of this model."""
        return {"cell": self.model_cfg.cell}

    def _known(self, names: list[str]) -> list[str]:
        """Names with at least one character of the model's alphabet (else the answer would be the prior's)."""
        for name in names:
            if not any(c in self.vocab for c in name if not c.isspace()):
                raise UserError(f"name {name[:40]!r}: none of its characters is in the model's alphabet "
                                f"(unknown: {''.join(self.vocab.unknown(name))[:40]})")
        return names

    @torch.no_grad()
    def probabilities(self, names: list[str]) -> torch.Tensor:
        """(N, C) class probabilities of the (checked, stripped) names."""
        ids, lengths = encode_batch(self.vocab, names)
        self.model.eval()
        logits, _ = self.model(ids.to(self.device), lengths.to(self.device))
        return logits.float().softmax(-1).cpu()

    def predict(self, names: list[str], opts: PredictOptions) -> list[dict]:
        values, indices = self.probabilities(self._known(names)).topk(min(opts.top, len(self.labels)), dim=-1)
        return [{"name": name, "unknown_characters": self.vocab.unknown(name),
                 "top": [{"label": self.labels[int(i)], "probability": round(float(p), 4)} for p, i in zip(v, ix)]}
                for name, v, ix in zip(names, values, indices)]

    @torch.no_grad()
    def trace(self, name: str, opts: TraceOptions) -> dict:
        """How the answer forms character by character: the class probabilities after each prefix
        (for the ``top`` classes of the whole name), and the first layer's gates and hidden state
        at each step (forward direction; the first member of an ensemble).

            chars          S     a     t     o
            probabilities  (T, top)  -- the model's answer had the name stopped there
            gates[g]       (T, H)    -- LSTM: input, forget, output; GRU: reset, update
            candidate      (T, H)    -- LSTM: g_t; GRU: n_t (what the gates mix in; absent for the RNN)
            hidden         (T, H)
            cell_state     (T, H)    -- the LSTM's c_t

        Every number comes from ``rnnlab.nn.step_through`` (the cells' own ``lstm_gates`` / ``gru_gates``):
        the page shows each step's equations with these values, it computes none of them.
        """
        top = opts.top
        self._known([name])
        prefixes = [name[: i + 1] for i in range(len(name))]
        probs = self.probabilities(prefixes)  # (T, C)
        order = probs[-1].argsort(descending=True)[: min(top, len(self.labels))]
        member = members_of(self.model)[0]
        ids, _ = encode_batch(self.vocab, [name])
        x = member.inputs(ids.to(self.device))[0].float()  # (T, I)
        # the cells' own equations -- a student's own, for a run trained with their lab workspace (--lab)
        steps = step_through(member.cfg.cell, member.rnn, x, member.cfg.nonlinearity,
                             functions=getattr(member.rnn, "lab_functions", None))
        return {"name": name, "chars": list(name), "labels": [self.labels[int(i)] for i in order],
                "probabilities": [[round(float(p), 4) for p in row[order]] for row in probs],
                "cell": self.model_cfg.cell, **named(member.cfg.cell, steps), "nonlinearity": member.cfg.nonlinearity}

    def saliency(self, name: str, opts: SaliencyOptions) -> dict:
        """||d log p(label | name) / d x_t|| for each character t, where label is the model's answer and
        x_t the character's input vector (its embedding): which letters the answer rests on. (With an
        ensemble, the norm over every member's input vectors.)"""
        if not any(isinstance(m, torch.nn.Embedding) for m in self.model.modules()):
            raise UserError("saliency needs a model whose characters are embedded (--input embedding)")
        with input_vectors(self.model) as captured:  # each member's input vectors (1, T, E), as leaves
            ids, lengths = encode_batch(self.vocab, [name])
            self.model.eval()
            logits, _ = self.model(ids.to(self.device), lengths.to(self.device))
            log_probs = logits.float().log_softmax(-1)[0]
            label = int(log_probs.argmax())
            grads = torch.autograd.grad(log_probs[label], captured)
        norms = torch.stack([g[0].float().pow(2).sum(-1) for g in grads]).sum(0).sqrt()  # (T,)
        return {"name": name, "chars": list(name), "label": self.labels[label],
                "probability": round(float(log_probs[label].detach().exp()), 4),
                "saliency": [round(float(v), 6) for v in norms.cpu()]}

    @staticmethod
    def format(r: dict) -> str:
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
        note = f"  (unseen characters: {''.join(r['unknown_characters'])})" if r["unknown_characters"] else ""
        return f"{r['name']}: {tops}{note}"

    @staticmethod
    def format_trace(r: dict) -> str:
        """After each character: the followed languages' probabilities."""
        head = f"{'':<{len(r['name']) + 2}}" + " ".join(f"{label[:10]:>10}" for label in r["labels"])
        rows = [f"{r['name'][: t + 1]:<{len(r['name']) + 2}}" + " ".join(f"{p:>10.3f}" for p in row)
                for t, row in enumerate(r["probabilities"])]
        return "\n".join([head, *rows])

    @staticmethod
    def format_saliency(r: dict) -> str:
        """Each character with its gradient norm (a bar scaled to the largest)."""
        top = max(r["saliency"]) or 1.0
        rows = [f"{c!r:>5} {v:.4f} {'#' * round(20 * v / top)}" for c, v in zip(r["chars"], r["saliency"])]
        return "\n".join([f"{r['name']}: {r['label']} {r['probability']:.3f}", *rows])


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
        if model_cfg.freeze_vectors:
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
