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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..bundle import default_data_dir
from ..errors import UserError
from ..models import ClassifierConfig, build_classifier
from ..train import TrainConfig
from ..vocab import Vocab
from .classify import TextClassificationTask, encode_batch, split_items

MAX_NAME_CHARS = 100  # longest name accepted at predict time
_NAME_RE = re.compile(r"[^\W\d_]+(?:[ '\-.\u2019]+[^\W\d_]+)*\.?")


# What `rnnlab train names` uses when no option says otherwise (chosen on the validation split).
DEFAULT_MODEL = ClassifierConfig(cell="lstm", embed_dim=64, hidden=128, bidirectional=True, dropout=0.3,
                                 token_dropout=0.1)
DEFAULT_TRAIN = TrainConfig(epochs=15, batch_size=64, lr=3e-3)


@dataclass(frozen=True)
class NamesConfig:
    data: str = ""  # folder of <label>.txt files; "" = the bundled names
    split: str = "grouped"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    max_words: int = 3
    class_weights: str = "none"  # none | balanced | sqrt: loss weights against class imbalance
    limit: int = 0  # keep only this many training items (0 = all): for quick runs and tests


def read_label_folder(path: Path, max_words: int = 3) -> tuple[list[str], list[tuple[str, int]], dict]:
    """Read ``<label>.txt`` files -> (label names, [(text, label index)], report of what was dropped)."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: data folder not found")
    files = sorted(f for f in path.glob("*.txt") if f.is_file())
    if not files:
        raise UserError(f"{path}: no <label>.txt files in this folder")
    items, labels = [], []
    report = {"lines": 0, "empty": 0, "junk": 0, "junk_examples": []}
    for f in files:
        label_items = []
        for lineno, raw in enumerate(f.read_bytes().split(b"\n"), 1):
            try:
                line = raw.decode("utf-8").strip().lstrip("\ufeff")
            except UnicodeDecodeError as e:
                raise UserError(f"{f}:{lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                                "save the file as UTF-8") from None
            if not line:
                if raw.strip():
                    report["empty"] += 1
                continue
            report["lines"] += 1
            if len(line.split()) > max_words or not _NAME_RE.fullmatch(line):
                report["junk"] += 1
                if len(report["junk_examples"]) < 10:
                    report["junk_examples"].append(f"{f.name}:{lineno}: {line!r}")
                continue
            label_items.append(line)
        if label_items:
            labels.append(f.stem)
            items.extend((text, len(labels) - 1) for text in label_items)
        else:
            report.setdefault("empty_files", []).append(f.name)
    if len(labels) < 2:
        found = ", ".join(labels) or "none"
        raise UserError(f"{path}: need at least 2 labels with items to classify, found {len(labels)} ({found})")
    return labels, items, report


class NamesTask(TextClassificationTask):
    """The names task for the shared training loop (see rnnlab.train.Task)."""

    name = "names"

    def __init__(self, cfg: NamesConfig, seed: int, state: dict | None = None):
        """``state`` (from a checkpoint) fixes the labels and vocabulary of a resumed run."""
        self.cfg = cfg
        labels = state["labels"] if state else None
        data_dir = Path(cfg.data) if cfg.data else default_data_dir() / "names"
        found_labels, items, self.data_report = read_label_folder(data_dir, cfg.max_words)
        if labels is not None and labels != found_labels:
            raise UserError(f"{data_dir}: labels differ from the run's ({', '.join(labels)})")
        self.labels = found_labels
        self.data_report["data"] = str(data_dir)
        self.splits, split_report = split_items(items, cfg.split, cfg.val_fraction, cfg.test_fraction, seed)
        self.data_report.update(split_report)
        if cfg.limit and cfg.limit < len(self.splits["train"]):
            keep = np.random.default_rng(seed).permutation(len(self.splits["train"]))[: cfg.limit]
            self.splits["train"] = [self.splits["train"][i] for i in sorted(keep)]
            self.data_report["train_items_used"] = cfg.limit
        for split in ("train", "val", "test"):
            if not self.splits[split]:
                raise UserError(f"{data_dir}: too little data: the {split} split is empty")
        self.tokens = {split: [t for t, _ in rows] for split, rows in self.splits.items()}  # a name's tokens: its letters
        self._index(Vocab(state["chars"]) if state else Vocab.build(self.tokens["train"]))


class NamesPredictor:
    """A trained names model from its checkpoint alone: top-k labels with probabilities."""

    def __init__(self, checkpoint: dict, device) -> None:
        meta = checkpoint["meta"]
        self.labels = meta["task_state"]["labels"]
        self.vocab = Vocab(meta["task_state"]["chars"])
        self.model = build_classifier(ClassifierConfig(**meta["model_config"])).to(device)
        self.model.load_state_dict(checkpoint["model"])
        self.model.eval()
        self.device = device

    @torch.no_grad()
    def predict(self, names: list[str], top: int = 3) -> list[dict]:
        for name in names:
            if not name.strip():
                raise UserError("empty name: give at least one character")
            if len(name) > MAX_NAME_CHARS:
                raise UserError(f"name of {len(name):,} characters is longer than the limit of {MAX_NAME_CHARS}")
        clean = [n.strip() for n in names]
        ids, lengths = encode_batch(self.vocab, clean)
        logits, _ = self.model(ids.to(self.device), lengths.to(self.device))
        probs = logits.float().softmax(-1).cpu()
        k = min(top, len(self.labels))
        values, indices = probs.topk(k, dim=-1)
        return [{"name": name, "unknown_characters": self.vocab.unknown(name),
                 "top": [{"label": self.labels[int(i)], "probability": round(float(p), 4)} for p, i in zip(v, ix)]}
                for name, v, ix in zip(clean, values, indices)]

    @staticmethod
    def format(r: dict) -> str:
        tops = ", ".join(f"{t['label']} {t['probability']:.3f}" for t in r["top"])
        note = f"  (unseen characters: {''.join(r['unknown_characters'])})" if r["unknown_characters"] else ""
        return f"{r['name']}: {tops}{note}"
