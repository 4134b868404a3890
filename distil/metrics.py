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
    """Binary F1 of the positive class (`pos_label`, default 1): the F1 of a two-label task."""

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


class MacroF1(evaluate.Metric):
    """Macro-averaged F1: the mean of each class's F1, over the classes in the references or the predictions (a class
    in neither has no F1 and does not count): the F1 of a task with more than two labels."""

    def _info(self):
        return evaluate.MetricInfo(
            description="Macro F1: the unweighted mean of the per-class F1 scores.",
            citation="",
            inputs_description="predictions and references: lists of integer class ids.",
            features=_FEATURES,
        )

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        return {"macro_f1": macro_f1(predictions, references)}


def macro_f1(predictions: np.ndarray, references: np.ndarray) -> float:
    """The mean per-class F1 over the classes in `references` or `predictions`, from one confusion count."""
    if not len(references):
        return float("nan")
    classes, inverse = np.unique(np.concatenate([references, predictions]), return_inverse=True)
    ref, pred = inverse[: len(references)], inverse[len(references) :]
    k = len(classes)
    tp = np.bincount(ref[ref == pred], minlength=k)
    support, predicted = np.bincount(ref, minlength=k), np.bincount(pred, minlength=k)
    return float(
        np.mean(2 * tp / (support + predicted))
    )  # 2tp / (2tp + fp + fn); every class has support or predictions


def agreement(predictions, teacher_predictions) -> float:
    """The fraction of rows on which the student's predicted class is the teacher's."""
    predictions, teacher_predictions = np.asarray(predictions), np.asarray(teacher_predictions)
    return float((predictions == teacher_predictions).mean()) if len(predictions) else float("nan")


def classification_metrics(num_labels: int = 2) -> evaluate.CombinedEvaluations:
    """Accuracy and F1, combined, offline: binary F1 (`f1`, class 1 positive) for two labels, macro-F1 (`macro_f1`)
    for more."""
    return evaluate.combine([Accuracy(), F1() if num_labels <= 2 else MacroF1()])


def compute_classification_metrics(eval_pred) -> dict[str, float]:
    """`Trainer` `compute_metrics`: accuracy and F1 (binary or macro, by the logits' width) from logits and gold
    labels."""
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    logits = np.asarray(logits)
    predictions = logits.argmax(-1)
    return classification_metrics(logits.shape[-1]).compute(predictions=predictions, references=np.asarray(labels))


def add_perplexity(metrics: dict[str, float], prefix: str = "eval") -> dict[str, float]:
    """Add `<prefix>_perplexity = exp(<prefix>_loss)`, as the original scripts print it."""
    loss = metrics.get(f"{prefix}_loss")
    if loss is not None:
        metrics[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
    return metrics
