"""The distillation losses, on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from distil.losses import distillation_loss, gold_cross_entropy, soft_target_loss


def test_zero_for_identical_logits():
    logits = torch.tensor([[1.5, -0.5], [0.2, 0.3]])
    assert distillation_loss(logits, logits.clone()).item() == 0.0
    assert distillation_loss(logits, logits.clone(), temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)


def test_mse_hand_computed():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    # squared errors 1, 4, 0, 4 -> mean 9 / 4
    assert distillation_loss(student, teacher).item() == pytest.approx(2.25)


def test_kl_with_temperature_hand_computed():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[2.0, 0.0]])
    t = 2.0
    p = [math.exp(1.0) / (math.exp(1.0) + 1.0), 1.0 / (math.exp(1.0) + 1.0)]  # softmax(teacher / T)
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    expected = kl * t**2
    assert distillation_loss(student, teacher, temperature=t).item() == pytest.approx(expected, rel=1e-5)
    # KL, not MSE, once a temperature is set
    assert distillation_loss(student, teacher, temperature=t).item() != pytest.approx(
        distillation_loss(student, teacher).item()
    )


def test_alpha_mixes_cross_entropy_on_gold_rows_only():
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0]])
    teacher = torch.zeros(3, 2)
    labels = torch.tensor([0, 1, -1])  # the last row is synthetic: no gold label
    ce = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    mse = soft_target_loss(student, teacher).item()
    assert distillation_loss(student, teacher, labels, alpha=1.0).item() == pytest.approx(ce, rel=1e-5)
    assert distillation_loss(student, teacher, labels, alpha=0.0).item() == pytest.approx(mse)
    mixed = distillation_loss(student, teacher, labels, alpha=0.25).item()
    assert mixed == pytest.approx(0.25 * ce + 0.75 * mse, rel=1e-5)
    # labels are ignored when alpha is 0
    assert distillation_loss(student, teacher, torch.tensor([1, 0, 1]), alpha=0.0).item() == pytest.approx(mse)


def test_no_gold_rows_gives_zero_cross_entropy_with_gradient():
    student = torch.tensor([[1.0, 0.0]], requires_grad=True)
    loss = gold_cross_entropy(student, torch.tensor([-1]))
    assert loss.item() == 0.0
    loss.backward()
    assert student.grad is not None


def test_gold_cross_entropy_is_the_mean_over_labelled_rows_without_a_host_sync():
    logits = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, -1] * 4)
    gold = labels >= 0
    assert torch.equal(gold_cross_entropy(logits, labels), F.cross_entropy(logits[gold], labels[gold]))
    assert torch.equal(gold_cross_entropy(logits, labels.masked_fill(~gold, -100)), gold_cross_entropy(logits, labels))
    # tensors on the meta device hold no values: any read of a value on the host (`bool(...)`, `.item()`) fails
    meta = gold_cross_entropy(logits.to("meta"), labels.to("meta"))
    assert meta.device.type == "meta" and meta.shape == ()


def test_temperature_scaling_keeps_gradient_magnitude():
    # T**2 compensates the 1/T**2 shrinking of the softened gradients: at high T the gradient approaches the
    # MSE gradient of the (centred) logits divided by the number of classes.
    student = torch.tensor([[0.3, -0.2]], requires_grad=True)
    teacher = torch.tensor([[1.0, -1.0]])
    distillation_loss(student, teacher, temperature=100.0).backward()
    grad = student.grad.clone()
    expected = (student.detach() - teacher) / 2  # centred logits, 2 classes
    assert torch.allclose(grad, expected - expected.mean(), atol=1e-3)


def test_bad_arguments():
    logits = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits, logits, alpha=1.5)
    with pytest.raises(ValueError, match="labels"):
        distillation_loss(logits, logits, alpha=0.5)
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(logits, logits, temperature=0.0)
    with pytest.raises(ValueError, match="teacher logits"):
        distillation_loss(logits, torch.zeros(2, 3))
