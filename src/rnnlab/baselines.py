"""Classical baselines, trained on a run's own training split, chosen on its validation split and
scored once on its test split -- so every run says where the recurrent model stands (issue: "is 0.89
good?"). Seconds to fit, with scikit-learn; and the noise of the comparison on this test set.

* text classification: TF-IDF n-grams + a linear model (``tfidf_baseline``), several candidate
  featurisations, the best on validation kept;
* language modelling: an interpolated modified Kneser-Ney n-gram (rnnlab.ngram).

``versus`` states the difference with a paired bootstrap over the test items: resample the test set
with replacement, recompute both accuracies, and read the 95 % interval of their difference. When it
contains 0 the difference is within what this test set's size can tell apart.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np


def tfidf_baseline(texts: dict[str, list[str]], labels: dict[str, list[int]],
                   candidates: list[tuple[str, dict, str]]) -> dict:
    """``candidates``: (name, TfidfVectorizer arguments, "logreg" | "svm"). Each is fitted on the
    training split; the best by validation accuracy is scored on the test split.

    One thread: scikit-learn sums the logistic loss's gradient over OpenMP threads, so the solver's
    path, and a few borderline predictions with it, depended on the thread count (names, one fold:
    validation accuracy 0.8364 with 2 threads, 0.8370 with 1). A seeded run's baseline must not
    depend on the machine."""
    import sklearn.linear_model  # noqa: F401  (loads scikit-learn's OpenMP runtime before the limit)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _fit_best(texts, labels, candidates)


def _fit_best(texts: dict[str, list[str]], labels: dict[str, list[int]], candidates: list[tuple[str, dict, str]]) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    from .metrics import classification_metrics

    start, best = time.perf_counter(), None
    for name, vec_args, kind in candidates:
        vec = TfidfVectorizer(sublinear_tf=True, **vec_args)
        clf = LogisticRegression(max_iter=2000, C=10.0) if kind == "logreg" else LinearSVC(C=0.5)
        try:
            clf.fit(vec.fit_transform(texts["train"]), labels["train"])
        except ValueError:  # e.g. an empty vocabulary on odd data: this candidate cannot run
            continue
        val = classification_metrics(labels["val"], clf.predict(vec.transform(texts["val"])))
        if best is None or val["accuracy"] > best["val"]["accuracy"]:
            best = {"name": name, "val": val, "model": (vec, clf)}
    if best is None:
        return {}
    vec, clf = best.pop("model")
    pred = clf.predict(vec.transform(texts["test"]))
    best["test"] = classification_metrics(labels["test"], pred)
    best["test_predictions"] = [int(p) for p in pred]
    best["seconds"] = round(time.perf_counter() - start, 2)
    return best


def ngram_baseline(train: Sequence[Sequence[int]], val, test, vocab_size: int, bos: int, order: int = 5) -> dict:
    from .ngram import KneserNey

    start = time.perf_counter()
    kn = KneserNey(order, vocab_size, bos).fit(train)
    return {"name": f"Kneser-Ney {order}-gram", "val": {"perplexity": kn.perplexity(val)},
            "test": {"perplexity": kn.perplexity(test)}, "seconds": round(time.perf_counter() - start, 2)}


def paired_bootstrap(correct_a: Sequence[bool], correct_b: Sequence[bool], rounds: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Accuracy of a minus accuracy of b on the same items, and its 95 % bootstrap interval."""
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(rounds, len(a)))
    diffs = a[idx].mean(axis=1) - b[idx].mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(a.mean() - b.mean()), float(lo), float(hi)


def versus(model_name: str, model_correct: Sequence[bool], baseline: dict, targets: Sequence[int]) -> dict:
    """The model's test accuracy against the baseline's, with the paired bootstrap interval."""
    base_correct = [p == t for p, t in zip(baseline["test_predictions"], targets)]
    diff, lo, hi = paired_bootstrap(model_correct, base_correct)
    within = lo <= 0 <= hi
    text = (f"{model_name} {np.mean(model_correct):.3f} vs baseline {np.mean(base_correct):.3f} "
            f"({baseline['name']}): {diff * 100:+.1f} points, {'within' if within else 'outside'} the noise of this "
            f"test set (95% interval {lo * 100:+.1f} to {hi * 100:+.1f})")
    return {"metric": "accuracy", "difference": diff, "interval": [lo, hi], "within_noise": within, "text": text}
