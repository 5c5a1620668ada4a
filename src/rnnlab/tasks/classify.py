"""What every text-classification task shares: a token vocabulary, padded batches, evaluation,
the test report. A task subclass reads its data into ``labels``, ``splits`` (``[(text, label)]``
per split), ``tokens`` (the token list of each text) and calls ``_index()``."""

from __future__ import annotations

import math
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..datafiles import decode_data, read_bytes
from ..errors import UserError
from ..options import Options, option
from .base import Task
from ..metrics import classification_metrics, classification_report
from ..models import ClassifierConfig, build_classifier, predict_batches
from ..vocab import UNK, Vocab

def encode_batch(vocab: Vocab, texts) -> tuple[torch.Tensor, torch.Tensor]:
    """Texts (strings or token lists) -> (N, T) padded ids and (N,) lengths (at least 1: an empty
    text reads as one unknown token)."""
    encoded = [vocab.encode(t) or [UNK] for t in texts]
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
    ids = torch.zeros(len(encoded), int(lengths.max()) if encoded else 1, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.tensor(e, dtype=torch.long)
    return ids, lengths


_INPUTS = threading.local()  # the input vectors this thread's forward passes record (inside input_vectors())


def _record_input(module, args, out):
    """A forward hook on an embedding layer: inside ``input_vectors()`` (this thread only), the output
    as a new leaf that asks for its gradient; elsewhere nothing."""
    kept = getattr(_INPUTS, "kept", None)
    if kept is None:
        return None
    x = out.detach().float().requires_grad_()
    kept.append(x)
    return x.to(out.dtype)


@contextmanager
def input_vectors(model):
    """``with input_vectors(model) as kept:`` -- the input vectors (embedding outputs) of the model's
    forward passes in this block, in the order computed, each a leaf whose gradient can be asked for
    (``torch.autograd.grad(y, kept)``); grad mode on, even under the server's inference mode.

    One permanent hook per embedding layer, acting only in a thread inside this block: a hook added
    and removed per request would race with the other threads running the same model."""
    for layer in model.modules():
        if isinstance(layer, torch.nn.Embedding) and not getattr(layer, "_records_inputs", False):
            layer.register_forward_hook(_record_input)
            layer._records_inputs = True
    _INPUTS.kept = []
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield _INPUTS.kept
    finally:
        _INPUTS.kept = None


def slice_inputs(tensors: dict[str, torch.Tensor], idx: torch.Tensor, trim: bool = True) -> dict[str, torch.Tensor]:
    """Rows ``idx`` of every input; with ``trim`` each ``*ids`` tensor padded only to the longest of
    its own ``*lengths`` in these rows."""
    out = {}
    for key, t in tensors.items():
        if trim and key.endswith("ids"):
            t = t[idx, : int(tensors[key[:-3] + "lengths"][idx].max())]
        else:
            t = t[idx]
        out[key] = t
    return out


def read_label_files(path: Path, clean: Callable[[str, str, int], str | None], what: str = "data file",
                      order: Callable[[str], object] = str) -> tuple[list[str], list[tuple[str, int]], dict]:
    """A folder of ``<label>.txt`` files (UTF-8, or UTF-16/32 with a byte-order mark, noted under
    ``encodings``; one item per line) -> (label names in ``order`` of
    the file names' stems, [(item, label index)], report). ``clean(line, file name, line number)``
    -> the item, or None to drop the line (the caller counts its own drops); a line is given stripped
    of surrounding white space and a byte-order mark; blank lines are skipped, and lines of white
    space that bytes do not call blank (U+3000 ...) counted as ``empty``. Every problem is one line
    naming the folder, or the file and line (a file, not a folder; no .txt files; not UTF-8; fewer
    than two labels with items); a file with no items is listed under ``empty_files``."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: a file, not a folder of <label>.txt files" if path.is_file()
                        else f"{path}: data folder not found")
    files = sorted(path.glob("*.txt"), key=lambda f: order(f.stem))
    if not files:
        raise UserError(f"{path}: no <label>.txt files in this folder")
    labels: list[str] = []
    items: list[tuple[str, int]] = []
    report: dict = {"empty": 0}
    for f in files:
        label_items = []
        text, encoding = decode_data(read_bytes(f, what), f)  # UTF-8, or UTF-16/32 with a byte-order mark
        if encoding != "utf-8":
            report.setdefault("encodings", {})[f.name] = encoding
        for lineno, raw in enumerate(text.split("\n"), 1):
            line = raw.strip().lstrip("\ufeff")
            if not line:
                report["empty"] += bool(raw.strip(" \t\r\n\x0b\x0c"))
                continue
            item = clean(line, f.name, lineno)
            if item is not None:
                label_items.append(item)
        if label_items:
            labels.append(f.stem)
            items.extend((text, len(labels) - 1) for text in label_items)
        else:
            report.setdefault("empty_files", []).append(f.name)
    if len(labels) < 2:
        found = ", ".join(labels) or "none"
        raise UserError(f"{path}: need at least 2 labels with items to classify, found {len(labels)} ({found})")
    return labels, items, report


CLASS_WEIGHTS = ("none", "balanced", "sqrt")
# A class with fewer units (distinct texts) than this cannot have one in each of train, validation and test.
MIN_CLASS_ITEMS = 3
SPLITS = ("grouped", "random")


def class_weights(counts: list[int], kind: str) -> torch.Tensor | None:
    """Loss weights per class: "balanced" makes every class weigh the same in total, "sqrt" halfway."""
    if kind == "none":
        return None
    counts_t = torch.tensor(counts, dtype=torch.float).clamp(min=1)
    w = counts_t.sum() / (len(counts) * counts_t)
    if kind == "sqrt":
        w = w.sqrt()
    return w / w.mean()


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"--val-fraction {val_fraction:g} and --test-fraction {test_fraction:g} leave nothing to "
                         "train on: their sum must be below 1")


# The most runs --folds and --seeds may ask for.
MAX_REPEATS = 20


@dataclass(frozen=True)
class SplitOptions(Options):
    """The data options every classification task has: its split, loss weights, a training subset, and
    repeated runs (K-fold cross-validation or several seeds: see rnnlab.repeats)."""

    val_fraction: float = option(0.1, "share of the items for validation", above=0, below=1)
    test_fraction: float = option(0.1, "share of the items for the test", above=0, below=1)
    class_weights: str = option("none", "loss weights against class imbalance", choices=CLASS_WEIGHTS)
    limit: int = option(0, "use only this many training items (0 = all): quick runs and tests", min=0)
    folds: int = option(0, "K-fold cross-validation: K runs (fold-1 ... fold-K in the run folder), each testing on "
                        "another K-th of the items, with --val-fraction of the items from the rest for validation; a "
                        "summary with mean and std of every test figure, model and baseline (0 = off, else 2 or "
                        "more; not with --seeds, nor --test-fraction)", min=0, max=MAX_REPEATS)
    seeds: int = option(1, "repeat the run with seeds --seed, --seed+1, ... (seed-0 ... in the run folder: other "
                        "splits and initial weights); a summary with mean and std of every test figure, model and "
                        "baseline (1 = one run; not with --folds)", min=1, max=MAX_REPEATS)
    # Which fold a member run of --folds K tests on (1..K); 0: not a member. Set by rnnlab.repeats.
    fold: int = option(0, "the fold this run tests on", min=0, max=MAX_REPEATS, cli=False)

    def check(self) -> None:
        if self.folds == 1:
            raise ValueError(f"--folds 1: give 0 (off) or 2 to {MAX_REPEATS} folds")
        if self.folds and self.seeds > 1:
            raise ValueError(f"--folds {self.folds} and --seeds {self.seeds}: choose one (K folds are K runs already)")
        if self.fold > self.folds:
            raise ValueError(f"fold {self.fold} of --folds {self.folds}: no such fold")
        if self.folds and self.val_fraction + 1 / self.folds >= 1:
            raise ValueError(f"--folds {self.folds} and --val-fraction {self.val_fraction:g} leave nothing to train "
                             f"on: each fold tests on 1/{self.folds} of the items")
        if not self.folds:
            check_fractions(self.val_fraction, self.test_fraction)

    def implied(self, given: set[str]):
        if self.folds and "test_fraction" in given:
            raise ValueError(f"--test-fraction: --folds {self.folds} tests on each 1/{self.folds} of the items in turn")
        return self

    @property
    def repeats(self) -> int:
        """How many member runs these options ask for: K folds, N seeds, or 0 for one ordinary run (a
        member run itself, with its ``fold`` set, is an ordinary run)."""
        if self.folds and not self.fold:
            return self.folds
        return self.seeds if self.seeds > 1 else 0


def split_items(items: list[tuple[str, int]], protocol: str, val_fraction: float, test_fraction: float,
                seed: int, folds: int = 0, fold: int = 0,
                drop_several_labels: bool = False) -> tuple[dict[str, list[tuple[str, int]]], dict]:
    """Stratified, seeded train/val/test split under the ``grouped`` or ``random`` protocol.

    With ``folds`` K and ``fold`` k (1..K), the test split is the k-th of K stratified folds (the
    same permutation for every k, so the K test splits cover every unit once) and validation is
    ``val_fraction`` of each stratum's units, taken from the other folds. ``drop_several_labels``
    (grouped): a text under more than one label is dropped (counted as texts_with_several_labels)
    rather than kept with all its labels in one split."""
    if protocol not in SPLITS:
        raise ValueError(f"--split {protocol!r}: choose one of {', '.join(SPLITS)}")
    if folds:
        check_fractions(val_fraction, 1 / folds)
        if not 1 <= fold <= folds:
            raise ValueError(f"fold {fold} of --folds {folds}: no such fold")
    else:
        check_fractions(val_fraction, test_fraction)
    rng = np.random.default_rng(seed)
    report: dict = {"protocol": protocol}
    if protocol == "grouped":
        unique = sorted(set(items))
        report["duplicates_dropped"] = len(items) - len(unique)
        by_text: dict[str, list[int]] = {}
        for text, label in unique:
            by_text.setdefault(text, []).append(label)
        several = sum(1 for v in by_text.values() if len(v) > 1)
        if drop_several_labels:
            report["texts_with_several_labels"] = several
            by_text = {text: labels for text, labels in by_text.items() if len(labels) == 1}
        else:
            report["names_with_several_labels"] = several
        # Units of the split are names; each is stratified under its first label.
        strata: dict[int, list[list[tuple[str, int]]]] = {}
        for text, group_labels in sorted(by_text.items()):
            strata.setdefault(min(group_labels), []).append([(text, lab) for lab in group_labels])
    else:
        report["duplicates_dropped"] = 0
        strata = {}
        for item in items:
            strata.setdefault(item[1], []).append([item])
    # Examples per label (a name under several labels counts for each; strata count it once, under its first).
    per_label = Counter(label for units in strata.values() for unit in units for _, label in unit)
    report["small_classes"] = {label: n for label, n in sorted(per_label.items()) if n < MIN_CLASS_ITEMS}
    out: dict[str, list[tuple[str, int]]] = {"train": [], "val": [], "test": []}
    offset = 0  # folds: each stratum's first unit goes to the fold after the last one's of the stratum before
    for label in sorted(strata):
        units = strata[label]
        order = rng.permutation(len(units))
        n_val = int(round(val_fraction * len(units)))
        if folds:
            tested = [(offset + rank) % folds == fold - 1 for rank in range(len(units))]
            offset += len(units)
            rest = [rank for rank in range(len(units)) if not tested[rank]]
            val = set(rest[:n_val])
            splits = ["test" if tested[rank] else "val" if rank in val else "train" for rank in range(len(units))]
        else:
            n_test = int(round(test_fraction * len(units)))
            splits = ["test" if rank < n_test else "val" if rank < n_test + n_val else "train"
                      for rank in range(len(units))]
        for rank, i in enumerate(order):
            out[splits[rank]].extend(units[i])
    for split in out:
        out[split].sort(key=lambda item: (item[1], item[0]))
    report.update({f"{k}_items": len(v) for k, v in out.items()})
    if folds:
        report["fold"] = f"{fold} of {folds}"
    return out, report


class TextClassificationTask(Task):
    """What names and sentiment share (the contract: rnnlab.tasks.base.Task): labelled texts, a
    vocabulary, padded batches, accuracy-monitored training, the classification test report."""

    monitor = "accuracy"
    monitor_mode = "max"
    model_config_cls = ClassifierConfig
    pretrainable = True  # --pretrain lm: the encoder first learns the texts as a language model (rnnlab.pretrain)

    def _index(self, vocab: Vocab) -> None:
        """Tensors of every split, and the training label counts."""
        self.vocab = vocab
        self.tensors = {}
        for split, rows in self.splits.items():
            self.tensors[split] = {**self.encode(self.tokens[split]),
                                   "targets": torch.tensor([lab for _, lab in rows], dtype=torch.long)}
        # Training metrics each epoch are re-scored on a fixed sample of training items (at least as
        # large as the validation split): the full split can cost as much as a training epoch.
        n_train, n_sample = len(self.splits["train"]), max(len(self.splits["val"]), 1000)
        if n_train > n_sample:
            pick = torch.randperm(n_train, generator=torch.Generator().manual_seed(1))[:n_sample].sort().values
            self.tensors["train_sample"] = slice_inputs(self.tensors["train"], pick, trim=False)
        else:
            self.tensors["train_sample"] = self.tensors["train"]
        counts = Counter(lab for _, lab in self.splits["train"])
        self.train_counts = [counts.get(i, 0) for i in range(len(self.labels))]
        self.data_report["train_counts"] = dict(zip(self.labels, self.train_counts))

    def encode(self, token_lists) -> dict[str, torch.Tensor]:
        """Token lists -> the model's inputs: ``ids`` (N, T) and ``lengths`` (N,). A task whose model
        reads more than one view of a text adds them here (see the sentiment task's characters)."""
        ids, lengths = encode_batch(self.vocab, token_lists)
        return {"ids": ids, "lengths": lengths}

    # --- what the model needs ------------------------------------------------------------------
    def model_config(self, model_cfg: ClassifierConfig) -> ClassifierConfig:
        return replace(model_cfg, vocab_size=len(self.vocab), num_classes=len(self.labels))

    def build_model(self, model_cfg: ClassifierConfig, fresh: bool = True):
        # The loss weights are a training choice, not part of the weights: a resumed run needs them too.
        return self.rebuild_model(model_cfg, class_weights(self.train_counts, self.cfg.class_weights))

    @classmethod
    def rebuild_model(cls, model_cfg: ClassifierConfig, class_weights=None):
        return build_classifier(model_cfg, class_weights)

    def state(self) -> dict:
        """What a checkpoint needs besides the weights to use the model on new texts."""
        return {"labels": self.labels, "chars": self.vocab.tokens}

    # --- the loop's interface ------------------------------------------------------------------
    def num_batches(self, split: str, batch_size: int) -> int:
        return math.ceil(len(self.splits[split]) / batch_size)

    def batches(self, split: str, batch_size: int, shuffle: bool, generator: torch.Generator | None = None):
        tensors = self.tensors[split]
        n = len(tensors["targets"])
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for start in range(0, n, batch_size):
            yield slice_inputs(tensors, order[start : start + batch_size])

    def loss_weight(self, batch: dict) -> float:
        """Items; with class weights the sum of the targets' weights (cross-entropy's weighted mean)."""
        if not hasattr(self, "_loss_weights"):
            self._loss_weights = class_weights(self.train_counts, getattr(self.cfg, "class_weights", "none"))
        targets = batch["targets"]
        if self._loss_weights is None:
            return float(len(targets))
        return float(self._loss_weights[targets.cpu()].sum())

    def predict_split(self, model, split: str, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and targets of a split, in the split's order."""
        tensors = self.tensors[split]
        # Batches of similar lengths: little padding to run through (texts run 1 to 400 tokens).
        order = tensors["lengths"].argsort(descending=True, stable=True)
        batches = (slice_inputs(tensors, order[s : s + 512]) for s in range(0, len(order), 512))
        logits, targets = predict_batches(model, batches, device)
        back = torch.empty_like(order)
        back[order] = torch.arange(len(order))
        return logits[back], targets[back]

    def evaluate(self, model, split: str, device) -> dict:
        logits, targets = self.predict_split(model, "train_sample" if split == "train" else split, device)
        loss = F.cross_entropy(logits, targets).item()  # unweighted, comparable across runs
        return {"loss": loss, **classification_metrics(targets.numpy(), logits.argmax(1).numpy())}

    def final_report(self, model, device) -> dict:
        """Test-set report: accuracy, macro-F1, per class, confusion matrix, some mistakes."""
        return self.test_report(*self.predict_split(model, "test", device))

    def test_report(self, logits: torch.Tensor, targets: torch.Tensor) -> dict:
        """``final_report`` from the test split's logits (N, C) and targets (N,): a task that adds
        figures of its own predicts once and builds on this."""
        preds = logits.argmax(1)
        report = classification_report(targets.numpy(), preds.numpy(), self.labels)
        report["loss"] = F.cross_entropy(logits, targets).item()
        report["predictions"] = preds.tolist()  # for the paired comparison with the baseline
        wrong = (preds != targets).nonzero().flatten()[:30].tolist()
        report["mistakes"] = [{"text": self.splits["test"][i][0], "true": self.labels[int(targets[i])],
                               "predicted": self.labels[int(preds[i])]} for i in wrong]
        return report

    # --- the baseline ----------------------------------------------------------------------------
    # ("FEATURES: name", TfidfVectorizer arguments, "logreg" | "svm"), per task; FEATURES names the texts of
    # baseline_texts() it reads.
    baseline_candidates: list = []

    def baseline_texts(self) -> dict[str, dict[str, list[str]]]:
        """Featurisation name -> split -> texts the baseline reads (default: the raw texts)."""
        return {"raw": {split: [t for t, _ in rows] for split, rows in self.splits.items()}}

    def baseline(self) -> dict:
        from ..baselines import tfidf_baseline

        labels = {split: [y for _, y in rows] for split, rows in self.splits.items()}
        best = {}
        for feature, texts in self.baseline_texts().items():
            found = tfidf_baseline(texts, labels, [c for c in self.baseline_candidates if c[0].startswith(feature)])
            if found and (not best or found["val"]["accuracy"] > best["val"]["accuracy"]):
                best = found
        if best:
            best["name"] = best["name"].split(": ", 1)[1]  # "raw: character 1-4-gram ..." -> its own name
        return best

    def versus_baseline(self, test: dict, baseline: dict) -> dict:
        from ..baselines import versus

        targets = [y for _, y in self.splits["test"]]
        correct = [p == t for p, t in zip(test["predictions"], targets)]
        return versus("model", correct, baseline, targets)

    def data_line(self) -> str:
        r = self.data_report
        counts = [f"{r.get('train_items_used', r.get('train_items', 0))} train", f"{r.get('val_items', 0)} val",
                  f"{r.get('test_items', 0)} test"]
        dropped = [f"{r.get(k, 0)} {k.replace('_', ' ')}" for k in ("duplicates_dropped", "junk", "empty")]
        dropped += [f"{r[k]} {k.replace('_', ' ')}" for k in ("too_long",) if r.get(k)]
        dropped += [f"{r[k]} {k.replace('_', ' ')}" for k in ("texts_with_several_labels",) if k in r]
        fold = f", fold {r['fold']}" if r.get("fold") else ""
        line = f"data: {', '.join(counts)} ({r['protocol']} split{fold}); dropped: {', '.join(dropped)}"
        notes = [f"{r['texts_cut']} texts cut to {r['max_text_chars']:,} characters"] if r.get("texts_cut") else []
        if r.get("labels_normalised"):
            notes.append(f"{r['labels_normalised']} numeric labels normalised (e.g. 1.0 -> 1)")
        if r.get("encoding", "utf-8") != "utf-8":
            notes.append(f"read as {r['encoding']} (its byte-order mark)")
        elif r.get("encodings"):
            notes.append("read by their byte-order marks: " + ", ".join(f"{f} {e}" for f, e in r["encodings"].items()))
        return line + "".join(f"; {n}" for n in notes) + "".join(f"; warning: {w}" for w in r.get("warnings", []))

    def _warn_small_classes(self) -> None:
        """A class with too few examples to appear in every split: a warning in the data report (and
        so in the log line), named by label."""
        small = self.data_report.pop("small_classes", {})
        if small:
            shown = ", ".join(f"{self.labels[k]!r} ({n})" for k, n in list(small.items())[:5])
            more = f" and {len(small) - 5} more" if len(small) > 5 else ""
            self.data_report.setdefault("warnings", []).append(
                f"{len(small)} class{'es' if len(small) > 1 else ''} with fewer than {MIN_CLASS_ITEMS} examples, too "
                f"few to appear in every split: {shown}{more}")

    @staticmethod
    def headline(test: dict) -> str:
        return f"test accuracy {test['accuracy']:.4f}  macro-F1 {test['macro_f1']:.4f}"

    @classmethod
    def compare_columns(cls, test: dict) -> dict:
        return {"test accuracy": test["accuracy"], "test macro-F1": test["macro_f1"]}

    @classmethod
    def report_section(cls, test: dict) -> str:
        """Headline figures, the confusion matrix (drawn by the report as confusion.png), per-class
        scores and some mistakes."""
        from ..report import table

        parts = [table(["", "value"], [["test accuracy", test["accuracy"]], ["test macro-F1", test["macro_f1"]],
                                       ["test loss", test["loss"]]]
                       + ([["test ROC-AUC", test["roc_auc"]]] if "roc_auc" in test else [])),
                 "<h2>Test set</h2><p>Confusion matrix, each row normalised by its true class "
                 "(the diagonal is each class's recall).</p><img src='confusion.png' alt='confusion matrix'>",
                 table(["class", "precision", "recall", "F1", "support"],
                       [[c["label"], c["precision"], c["recall"], c["f1"], c["support"]] for c in test["per_class"]])]
        if test.get("mistakes"):
            parts.append("<h2>Some mistakes</h2>" + table(["text", "true", "predicted"],
                         [[m["text"], m["true"], m["predicted"]] for m in test["mistakes"][:20]], left=3))
        return "".join(parts)

    @staticmethod
    def report_figures(test: dict, run_dir) -> None:
        """The task's own plots beside report.html."""
        from ..report import plot_confusions

        plot_confusions({"": test}, run_dir / "confusion.png")
