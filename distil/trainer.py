"""`DistillationTrainer`: a `Trainer` whose loss compares the student's logits with the teacher's.

The transfer set's `teacher_logits` column reaches `compute_loss` through the normal column pruning (it is added to
the kept "signature" columns), and `DistillationDataCollator` pads the token ids and stacks the teacher's logits.
Evaluation reports loss, perplexity (`exp(loss)`), accuracy and F1 (macro-F1 beyond two labels) on gold labels and, when the evaluation set has
`teacher_logits`, the agreement of the student's argmax with the teacher's.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from transformers import Trainer

from distil.losses import distillation_loss, gold_cross_entropy
from distil.metrics import add_perplexity, agreement, classification_metrics

logger = logging.getLogger(__name__)

TEACHER_LOGITS = "teacher_logits"
LOSS_TYPES = ("mse", "kl", "ce")


class DistillationDataCollator:
    """Pad the tokenizer's inputs, and put `labels` (long) and `teacher_logits` (float32) beside them."""

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        input_names = self.tokenizer.model_input_names
        to_pad = [{k: f[k] for k in input_names if k in f} for f in features]
        batch = dict(self.tokenizer.pad(to_pad, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"))
        first = features[0]
        label_key = next((k for k in ("labels", "label", "label_ids") if k in first), None)
        if label_key is not None:
            batch["labels"] = torch.tensor([int(f[label_key]) for f in features], dtype=torch.long)
        if TEACHER_LOGITS in first:
            batch[TEACHER_LOGITS] = torch.tensor(
                np.asarray([f[TEACHER_LOGITS] for f in features]), dtype=torch.float32
            )
        return batch


def compute_distillation_metrics(eval_pred) -> dict[str, float]:
    """Accuracy and F1 (binary for two labels, macro for more) on gold labels (rows with label >= 0) and, with teacher
    logits, the agreement of the argmaxes."""
    logits = eval_pred.predictions
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    logits = np.asarray(logits)
    predictions = logits.argmax(-1)
    label_ids, teacher_logits = eval_pred.label_ids, None
    if isinstance(label_ids, (tuple, list)):
        label_ids, teacher_logits = label_ids
    metrics: dict[str, float] = {}
    if label_ids is not None:
        labels = np.asarray(label_ids).reshape(-1)
        gold = labels >= 0
        if gold.any():
            metrics.update(
                classification_metrics(logits.shape[-1]).compute(
                    predictions=predictions[gold], references=labels[gold]
                )
            )
    if teacher_logits is not None:
        metrics["agreement"] = agreement(predictions, np.asarray(teacher_logits).argmax(-1))
    return metrics


class DistillationTrainer(Trainer):
    """A `Trainer` for the student.

    Args:
        alpha: weight of the cross-entropy on gold labels (rows with label -1 have none); `1 - alpha` goes to the
            soft-target loss. 0 in the paper.
        temperature: when set, the soft-target loss is `KL(softmax(t/T) || softmax(s/T)) * T**2` instead of MSE.
        loss_type: `mse` (the paper), `kl` (temperature 1 unless `temperature` is set), or `ce` (cross-entropy on gold
            labels only: the no-teacher baseline).
        Everything else goes to `Trainer`. Without a `data_collator`, a `DistillationDataCollator` over
        `processing_class` is used; without `compute_metrics`, `compute_distillation_metrics`.
    """

    def __init__(
        self,
        *args,
        alpha: float = 0.0,
        temperature: float | None = None,
        loss_type: str = "mse",
        **kwargs,
    ):
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}; got {loss_type!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if loss_type == "kl" and temperature is None:
            temperature = 1.0
        self.alpha, self.temperature, self.loss_type = alpha, temperature, loss_type
        if kwargs.get("data_collator") is None and kwargs.get("processing_class") is not None:
            kwargs["data_collator"] = DistillationDataCollator(kwargs["processing_class"])
        if kwargs.get("compute_metrics") is None:
            kwargs["compute_metrics"] = compute_distillation_metrics
        super().__init__(*args, **kwargs)
        # compute_loss returns a per-batch mean: the Trainer divides it by the accumulation steps, and the model
        # never sees `num_items_in_batch`.
        self.model_accepts_loss_kwargs = False
        self.loss_is_scaled_for_ga = False
        self._warned_no_teacher = False

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        keep = [TEACHER_LOGITS]
        if self.args.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
            keep.append(self.args.length_column_name)
        self._signature_columns += [c for c in keep if c not in self._signature_columns]

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        inputs = dict(inputs)
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        labels = inputs.pop("labels", None)
        inputs.pop(self.args.length_column_name, None)
        outputs = model(**inputs)
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]

        if self.loss_type != "ce" and teacher_logits is None and not self._warned_no_teacher:
            logger.warning("Batch without teacher_logits: using cross-entropy on gold labels for it.")
            self._warned_no_teacher = True
        if self.loss_type == "ce" or teacher_logits is None:
            if labels is None:
                raise ValueError("cross-entropy needs gold labels, and the batch has none")
            loss = gold_cross_entropy(logits, labels)
        else:
            loss = distillation_loss(logits, teacher_logits, labels, alpha=self.alpha, temperature=self.temperature)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only: bool, ignore_keys: list[str] | None = None):
        teacher_logits = inputs.get(TEACHER_LOGITS)
        loss, logits, labels = super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        if prediction_loss_only or teacher_logits is None or labels is None:
            return loss, logits, labels
        return loss, logits, (labels, teacher_logits.detach())

    def evaluation_loop(
        self,
        dataloader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ):
        output = super().evaluation_loop(
            dataloader,
            description,
            prediction_loss_only=prediction_loss_only,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        add_perplexity(output.metrics, prefix=metric_key_prefix)
        return output
