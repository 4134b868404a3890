"""Distillation losses, as plain functions of logits (the trainer and the tests call them directly).

Tang et al. (2019) train the student on the mean squared error between its logits and the teacher's, optionally mixed
with cross-entropy on gold labels: `alpha * CE + (1 - alpha) * MSE`. With a `temperature` the soft term is Hinton et
al.'s `KL(softmax(teacher / T) || softmax(student / T)) * T**2` instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NO_LABEL = -1  # synthetic (augmented) rows of a transfer set have no gold label


def gold_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over rows with a gold label (`label >= 0`); zero (still in the graph) when there are none.

    `F.cross_entropy` skips the rows without one (`ignore_index`); its own mean over no rows is NaN, hence the sum
    divided by the count of labelled rows (at least 1), all on the device: no host sync per step."""
    labels = labels.view(-1).long().clamp(min=NO_LABEL)  # any negative label (-1, or -100) marks "no gold label"
    total = F.cross_entropy(logits.float(), labels, ignore_index=NO_LABEL, reduction="sum")
    return total / (labels != NO_LABEL).sum().clamp(min=1)


def soft_target_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float | None = None
) -> torch.Tensor:
    """MSE between logits (mean over all entries), or with `temperature` the KL divergence of the softened
    distributions, `KL(p_teacher || p_student) * T**2`, averaged over rows."""
    student_logits = student_logits.float()
    teacher_logits = teacher_logits.to(student_logits.device, torch.float32)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} != teacher logits {tuple(teacher_logits.shape)}"
        )
    if temperature is None:
        return F.mse_loss(student_logits, teacher_logits)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * temperature**2


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    alpha: float = 0.0,
    temperature: float | None = None,
) -> torch.Tensor:
    """`alpha * CE(student, gold) + (1 - alpha) * soft_target_loss(student, teacher, temperature)`.

    The cross-entropy only counts rows whose label is >= 0 (label -1 marks a row without gold label); with
    `alpha == 0` (the paper's setting) labels are ignored.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    loss = soft_target_loss(student_logits, teacher_logits, temperature) if alpha < 1 else None
    if alpha > 0:
        if labels is None:
            raise ValueError("alpha > 0 mixes in cross-entropy on gold labels, but no labels were given")
        ce = gold_cross_entropy(student_logits, labels)
        loss = alpha * ce if loss is None else alpha * ce + (1 - alpha) * loss
    return loss
