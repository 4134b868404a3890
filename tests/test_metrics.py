import math

import numpy as np
from transformers import EvalPrediction

from distil.metrics import Accuracy, add_perplexity, classification_metrics, compute_classification_metrics


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
