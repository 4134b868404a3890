import math

import numpy as np
from transformers import EvalPrediction

from distil.metrics import (
    Accuracy,
    add_perplexity,
    agreement,
    classification_metrics,
    compute_classification_metrics,
    macro_f1,
)


def test_accuracy_and_f1_offline():
    # tp=2, fp=1, fn=1 -> f1 = 4 / 6
    result = classification_metrics().compute(predictions=[1, 1, 0, 1, 0], references=[1, 0, 0, 1, 1])
    assert result["accuracy"] == 0.6
    assert math.isclose(result["f1"], 2 * 2 / (2 * 2 + 1 + 1))


def test_add_batch_accumulates():
    metric = Accuracy()
    metric.add_batch(predictions=[1, 0], references=[1, 1])
    metric.add_batch(predictions=[0, 0], references=[0, 0])
    assert metric.compute()["accuracy"] == 0.75


def test_compute_metrics_from_logits():
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [0.0, 1.0]])
    out = compute_classification_metrics(EvalPrediction(predictions=logits, label_ids=np.array([0, 1, 0])))
    assert math.isclose(out["accuracy"], 2 / 3)


def test_perplexity_is_exp_loss():
    metrics = add_perplexity({"eval_loss": 0.5})
    assert math.isclose(metrics["eval_perplexity"], math.exp(0.5))


def test_macro_f1_for_more_than_two_labels():
    # class 0: tp=1 fp=0 fn=1 -> 2/3; class 1: tp=1 fp=1 fn=0 -> 2/3; class 2: tp=1 fp=0 fn=0 -> 1
    result = classification_metrics(3).compute(predictions=[0, 1, 1, 2], references=[0, 0, 1, 2])
    assert set(result) == {"accuracy", "macro_f1"}
    assert result["accuracy"] == 0.75
    assert math.isclose(result["macro_f1"], (2 / 3 + 2 / 3 + 1) / 3)


def test_macro_f1_counts_only_classes_seen_in_references_or_predictions():
    # 5 labels, only 0 and 3 appear: a class absent from both has no F1
    assert math.isclose(macro_f1(np.array([0, 3, 3]), np.array([0, 3, 0])), (2 / 3 + 2 / 3) / 2)
    assert macro_f1(np.array([4, 4]), np.array([1, 1])) == 0.0


def test_two_labels_keep_binary_f1():
    assert set(classification_metrics(2).compute(predictions=[1, 0], references=[1, 1])) == {"accuracy", "f1"}


def test_compute_metrics_takes_the_number_of_labels_from_the_logits():
    logits = np.eye(6)[[0, 5, 3, 3]]  # argmax 0, 5, 3, 3
    out = compute_classification_metrics(EvalPrediction(predictions=logits, label_ids=np.array([0, 5, 3, 2])))
    assert out["accuracy"] == 0.75
    # classes 0 and 5: F1 1; class 3: tp=1 fp=1 -> 2/3; class 2: 0
    assert math.isclose(out["macro_f1"], (1 + 1 + 2 / 3 + 0) / 4)


def test_agreement():
    assert agreement([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5


def test_distillation_metrics_for_six_labels_report_macro_f1_and_agreement():
    from distil.trainer import compute_distillation_metrics

    student = np.eye(6)[[0, 1, 2, 3]]
    teacher = np.eye(6)[[0, 1, 5, 5]]
    labels = np.array([0, 1, 2, -1])  # the last row has no gold label
    out = compute_distillation_metrics(EvalPrediction(predictions=student, label_ids=(labels, teacher)))
    assert out == {"accuracy": 1.0, "macro_f1": 1.0, "agreement": 0.5}
