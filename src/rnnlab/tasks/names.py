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

import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..bundle import default_data_dir
from ..errors import UserError
from ..metrics import classification_metrics, classification_report
from ..models import ClassifierConfig, build_classifier, predict_batches
from ..train import TrainConfig

PAD, UNK = 0, 1
SPLITS = ("grouped", "random")
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


def split_items(items: list[tuple[str, int]], protocol: str, val_fraction: float, test_fraction: float,
                seed: int) -> tuple[dict[str, list[tuple[str, int]]], dict]:
    """Stratified, seeded train/val/test split under the ``grouped`` or ``random`` protocol."""
    if protocol not in SPLITS:
        raise UserError(f"--split {protocol!r}: choose one of {', '.join(SPLITS)}")
    if not (0 < test_fraction < 1 and 0 < val_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(f"split fractions must be in (0, 1) and sum below 1, got val {val_fraction}, test {test_fraction}")
    rng = np.random.default_rng(seed)
    report: dict = {"protocol": protocol}
    if protocol == "grouped":
        unique = sorted(set(items))
        report["duplicates_dropped"] = len(items) - len(unique)
        by_text: dict[str, list[int]] = {}
        for text, label in unique:
            by_text.setdefault(text, []).append(label)
        report["names_with_several_labels"] = sum(1 for v in by_text.values() if len(v) > 1)
        # Units of the split are names; each is stratified under its first label.
        strata: dict[int, list[list[tuple[str, int]]]] = {}
        for text, group_labels in sorted(by_text.items()):
            strata.setdefault(min(group_labels), []).append([(text, lab) for lab in group_labels])
    else:
        report["duplicates_dropped"] = 0
        strata = {}
        for item in items:
            strata.setdefault(item[1], []).append([item])
    out: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    for label in sorted(strata):
        units = strata[label]
        order = rng.permutation(len(units))
        n_test = int(round(test_fraction * len(units)))
        n_val = int(round(val_fraction * len(units)))
        for rank, i in enumerate(order):
            split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
            out[split].extend(units[i])
    for split in out:
        out[split].sort(key=lambda item: (item[1], item[0]))
    report.update({f"{k}_items": len(v) for k, v in out.items()})
    return out, report


class CharVocab:
    """Characters seen in training -> ids; 0 is padding, 1 stands for any unseen character."""

    def __init__(self, chars: list[str]) -> None:
        self.chars = list(chars)
        self.index = {c: i + 2 for i, c in enumerate(self.chars)}

    @classmethod
    def build(cls, texts) -> "CharVocab":
        return cls(sorted({c for t in texts for c in t}))

    def __len__(self) -> int:
        return len(self.chars) + 2

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, UNK) for c in text]

    def unknown(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.index})


def encode_batch(vocab: CharVocab, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts -> (N, T) padded ids and (N,) lengths."""
    encoded = [vocab.encode(t) for t in texts]
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
    ids = torch.zeros(len(encoded), int(lengths.max()) if encoded else 1, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.tensor(e, dtype=torch.long)
    return ids, lengths


def class_weights(counts: list[int], kind: str) -> torch.Tensor | None:
    if kind == "none":
        return None
    counts_t = torch.tensor(counts, dtype=torch.float).clamp(min=1)
    w = counts_t.sum() / (len(counts) * counts_t)  # "balanced": every class weighs the same in total
    if kind == "sqrt":
        w = w.sqrt()
    elif kind != "balanced":
        raise UserError(f"--class-weights {kind!r}: choose none, balanced or sqrt")
    return w / w.mean()


class NamesTask:
    """The names task for the shared training loop (see rnnlab.train.Task)."""

    name = "names"
    monitor = "accuracy"
    monitor_mode = "max"

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
        self.vocab = CharVocab(state["chars"]) if state else CharVocab.build(t for t, _ in self.splits["train"])
        self.tensors = {}
        for split, rows in self.splits.items():
            ids, lengths = encode_batch(self.vocab, [t for t, _ in rows])
            self.tensors[split] = (ids, lengths, torch.tensor([lab for _, lab in rows], dtype=torch.long))
        counts = Counter(lab for _, lab in self.splits["train"])
        self.train_counts = [counts.get(i, 0) for i in range(len(self.labels))]
        self.data_report["train_counts"] = dict(zip(self.labels, self.train_counts))

    # --- what the model needs ------------------------------------------------------------------
    def model_config(self, model_cfg: ClassifierConfig) -> ClassifierConfig:
        return replace(model_cfg, vocab_size=len(self.vocab), num_classes=len(self.labels))

    def build_model(self, model_cfg: ClassifierConfig):
        return build_classifier(model_cfg, class_weights(self.train_counts, self.cfg.class_weights))

    def state(self) -> dict:
        """What a checkpoint needs besides the weights to use the model on new names."""
        return {"labels": self.labels, "chars": self.vocab.chars}

    # --- the loop's interface ------------------------------------------------------------------
    def num_batches(self, split: str, batch_size: int) -> int:
        return math.ceil(len(self.splits[split]) / batch_size)

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        ids, lengths, targets = self.tensors[split]
        order = torch.randperm(len(ids), generator=generator) if shuffle else torch.arange(len(ids))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = int(lengths[idx].max())  # pad each batch only to its own longest name
            yield {"ids": ids[idx, :width], "lengths": lengths[idx], "targets": targets[idx]}

    def predict_split(self, model, split: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        return predict_batches(model, self.batches(split, 512, shuffle=False), device)

    def evaluate(self, model, split: str, device) -> dict:
        logits, targets = self.predict_split(model, split, device)
        loss = F.cross_entropy(logits, targets).item()  # unweighted, comparable across runs
        return {"loss": loss, **classification_metrics(targets.numpy(), logits.argmax(1).numpy())}

    def final_report(self, model, device) -> dict:
        """Test-set report: accuracy, macro-F1, per class, confusion matrix, some mistakes."""
        logits, targets = self.predict_split(model, "test", device)
        preds = logits.argmax(1)
        report = classification_report(targets.numpy(), preds.numpy(), self.labels)
        report["loss"] = F.cross_entropy(logits, targets).item()
        wrong = (preds != targets).nonzero().flatten()[:30].tolist()
        report["mistakes"] = [{"text": self.splits["test"][i][0], "true": self.labels[int(targets[i])],
                               "predicted": self.labels[int(preds[i])]} for i in wrong]
        return report


class NamesPredictor:
    """A trained names model from its checkpoint alone: top-k labels with probabilities."""

    def __init__(self, checkpoint: dict, device) -> None:
        meta = checkpoint["meta"]
        self.labels = meta["task_state"]["labels"]
        self.vocab = CharVocab(meta["task_state"]["chars"])
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
