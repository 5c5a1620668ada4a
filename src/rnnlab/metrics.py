"""Classification metrics, computed with scikit-learn."""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def classification_report(y_true, y_pred, label_names: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (counts)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(label_names)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = [{"label": name, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, name in enumerate(label_names)]
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return {**classification_metrics(y_true, y_pred), "per_class": per_class,
            "confusion": np.asarray(cm).tolist(), "labels": list(label_names)}


def binary_auc(y_true, scores) -> float:
    """ROC-AUC of the second class's scores (NaN when the test set holds one class only)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y_true, scores)) if len(set(np.asarray(y_true).tolist())) == 2 else float("nan")
