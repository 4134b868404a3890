"""Offline `evaluate` metrics.

`evaluate.load("accuracy")` downloads a script from the Hub, which fails offline. These are the same metrics written
as `evaluate.Metric` subclasses that ship inside the package, so `evaluate.combine`, `add_batch` and distributed
evaluation all work without a network.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np

_FEATURES = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})


class Accuracy(evaluate.Metric):
    """Fraction of predictions equal to the references."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Accuracy: the fraction of predictions that equal the references.",
            citation="",
            inputs_description="predictions and references: lists of integer class ids.",
            features=_FEATURES,
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        return {"accuracy": float((predictions == references).mean()) if len(references) else float("nan")}


class F1(evaluate.Metric):
    """Binary F1 of the positive class (`pos_label`, default 1)."""

    def _info(self):
        return evaluate.MetricInfo(
            description="F1: harmonic mean of precision and recall of the positive class.",
            citation="",
            inputs_description="predictions and references: lists of integer class ids.",
            features=_FEATURES,
        )

    def _compute(self, predictions, references, pos_label: int = 1):
        predictions, references = np.asarray(predictions), np.asarray(references)
        tp = int(((predictions == pos_label) & (references == pos_label)).sum())
        fp = int(((predictions == pos_label) & (references != pos_label)).sum())
        fn = int(((predictions != pos_label) & (references == pos_label)).sum())
        return {"f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}


def classification_metrics() -> evaluate.CombinedEvaluations:
    """Accuracy and F1, combined, offline."""
    return evaluate.combine([Accuracy(), F1()])


def compute_classification_metrics(eval_pred) -> dict[str, float]:
    """`Trainer` `compute_metrics`: accuracy and F1 from logits and gold labels."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    predictions = np.asarray(logits).argmax(-1)
    return classification_metrics().compute(predictions=predictions, references=np.asarray(labels))


def add_perplexity(metrics: dict[str, float], prefix: str = "eval") -> dict[str, float]:
    """Add `<prefix>_perplexity = exp(<prefix>_loss)`, as the original scripts print it."""
    loss = metrics.get(f"{prefix}_loss")
    if loss is not None:
        metrics[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
    return metrics
