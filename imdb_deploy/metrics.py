"""Classification metrics (scikit-learn) and the numeric helpers every stage shares: softmax, cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, for stable probability comparisons."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, labels) -> float:
    """Mean cross-entropy of logits against labels."""
    probs = softmax(logits)
    picked = probs[np.arange(len(probs)), np.asarray(labels, dtype=np.int64)]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def metrics_from_logits(logits: np.ndarray, labels) -> dict:
    """Classification metrics plus loss from logits."""
    return classification_metrics(labels, logits.argmax(axis=1), loss=cross_entropy(logits, labels))


def classification_metrics(labels: Sequence[int], predictions: Sequence[int], loss: float | None = None) -> dict:
    """Accuracy, F1, precision and recall of the positive class, and the confusion matrix.

    Args:
        labels: true labels, 0 = negative, 1 = positive.
        predictions: predicted labels.
        loss: mean cross-entropy, reported as `loss` when given.

    Returns:
        A JSON-ready dict; `confusion_matrix` is [[TN, FP], [FN, TP]].
    """

    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predictions, average="binary", pos_label=1, zero_division=0
    )
    result = {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=[0, 1]).tolist(),
        "samples": int(len(labels)),
    }
    if loss is not None:
        result["loss"] = float(loss)
    return result


def format_metrics_table(metrics: dict, title: str = "") -> str:
    """A small human-readable table of `classification_metrics` output."""
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    lines = [title] if title else []
    lines += [
        f"  accuracy   {metrics['accuracy']:.4f}   ({metrics['samples']} reviews)",
        f"  f1         {metrics['f1']:.4f}",
        f"  precision  {metrics['precision']:.4f}",
        f"  recall     {metrics['recall']:.4f}",
    ]
    if "loss" in metrics:
        lines.append(f"  loss       {metrics['loss']:.4f}")
    lines += [
        "  confusion     pred neg  pred pos",
        f"    true neg    {tn:8d}  {fp:8d}",
        f"    true pos    {fn:8d}  {tp:8d}",
    ]
    return "\n".join(lines)
