"""`DistillationTrainer`: a `Trainer` whose loss compares the student's logits with the teacher's.

The transfer set's `teacher_logits` column reaches `compute_loss` through the normal column pruning (it is added to
the kept "signature" columns); the kept columns are then held as NumPy (`distil.batching.ColumnRows`), and
`DistillationDataCollator` pads a batch's token ids with one gather, hands the model CPU `lengths` and the teacher's
logits; `_prepare_inputs` copies to the device only what a step uses, without blocking. With `train_sampling_strategy: group_by_length` the order comes from
`distil.sampler` (lengths read from the Arrow column at once, each epoch's order built in NumPy).
Evaluation reports loss, perplexity (`exp(loss)`), accuracy and F1 (macro-F1 beyond two labels) on gold labels and,
when the evaluation set has `teacher_logits`, the agreement of the student's argmax with the teacher's.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np
import torch
from transformers import Trainer

from distil.batching import ColumnRows, RowBatch, pad_rows
from distil.encoding import flat_token_ids
from distil.losses import distillation_loss, gold_cross_entropy
from distil.metrics import add_perplexity, agreement, classification_metrics
from distil.sampler import LengthGroupedSampler, column_lengths

logger = logging.getLogger(__name__)

TEACHER_LOGITS = "teacher_logits"
LOSS_TYPES = ("mse", "kl", "ce")


class DistillationDataCollator:
    """Pad `input_ids` in NumPy, and put `attention_mask`, `lengths`, `labels` and `teacher_logits` beside them.

    Rows are right-padded to the batch's longest (rounded up to `pad_to_multiple_of`). `lengths` (int64) is a CPU
    tensor of each row's token count: a model that takes it (the BiLSTM student) packs its sequences without copying
    lengths back from an accelerator. When the tokenizer emits other inputs (`token_type_ids`), its own `pad` pads
    them all, and there is no `lengths`.
    """

    def __init__(self, tokenizer, pad_to_multiple_of: int | None = None):
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def __call__(self, features: list[dict[str, Any]] | RowBatch) -> dict[str, torch.Tensor]:
        if isinstance(features, RowBatch):
            return self.collate_columns(features)
        first = features[0]
        input_names = [k for k in self.tokenizer.model_input_names if k in first]
        if set(input_names) <= {"input_ids", "attention_mask"} and "input_ids" in first:
            batch = self.pad_input_ids([f["input_ids"] for f in features])
        else:  # other inputs (token_type_ids, ...): the tokenizer pads them
            to_pad = [{k: f[k] for k in input_names} for f in features]
            batch = dict(self.tokenizer.pad(to_pad, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"))
        label_key = next((k for k in ("labels", "label", "label_ids") if k in first), None)
        if label_key is not None:
            batch["labels"] = torch.from_numpy(np.fromiter((f[label_key] for f in features), np.int64, len(features)))
        if TEACHER_LOGITS in first:
            batch[TEACHER_LOGITS] = torch.from_numpy(
                np.asarray([f[TEACHER_LOGITS] for f in features], dtype=np.float32)
            )
        return batch

    def collate_columns(self, batch: RowBatch) -> dict[str, torch.Tensor]:
        """The same batch from a `ColumnRows` batch: NumPy columns, padded by one gather."""
        out = self.padded(batch)
        if "label" in batch.columns:
            out["labels"] = torch.from_numpy(batch.columns["label"])
        if TEACHER_LOGITS in batch.columns:
            out[TEACHER_LOGITS] = torch.from_numpy(batch.columns[TEACHER_LOGITS])
        return out

    def pad_input_ids(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        """`input_ids`, `attention_mask` and `lengths` of token-id rows, right-padded, with NumPy."""
        ids = flat_token_ids(rows)
        return self.padded(RowBatch(ids.ids, ids.starts, ids.lengths, {}))

    def padded(self, batch: RowBatch) -> dict[str, torch.Tensor]:
        """`input_ids`, `attention_mask` and `lengths` of a `RowBatch`, right-padded (`distil.batching.pad_rows`)."""
        input_ids, mask = pad_rows(batch, self.pad_token_id, self.pad_to_multiple_of)
        return {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask.astype(np.int64)),
            "lengths": torch.from_numpy(batch.lengths.copy()),
        }


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


class LengthGroupedTrainer(Trainer):
    """A `Trainer` whose `train_sampling_strategy: group_by_length` order comes from `distil.sampler`: the rows'
    lengths are read from the Arrow column as one array and each epoch's order is built in NumPy (transformers' own
    sampler reads a `datasets` column one row at a time: minutes per epoch on a million rows). The teacher stage
    trains with it, and `DistillationTrainer` builds on it."""

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        length = self.args.length_column_name
        if self.args.train_sampling_strategy in ("group_by_length", "batch_rebalance"):
            if length not in self._signature_columns:
                self._signature_columns.append(length)

    def _row_lengths(self, dataset) -> np.ndarray | None:
        """Every row's length from a `datasets.Dataset`'s Arrow columns, or None for another kind of dataset."""
        if not (hasattr(dataset, "data") and hasattr(dataset, "column_names")):
            return None
        input_name = self.processing_class.model_input_names[0] if self.processing_class is not None else "input_ids"
        return column_lengths(dataset, self.args.length_column_name, input_name)

    def _length_sampler(self, dataset, batch_size: int) -> LengthGroupedSampler | None:
        """A `distil.sampler.LengthGroupedSampler` over the rows' lengths (`_row_lengths`), or None when they are not
        known (transformers' own sampler then)."""
        lengths = self._row_lengths(dataset)
        if lengths is None:
            return None
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return LengthGroupedSampler(lengths, batch_size, seed=seed)

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and dataset is not None:
            batch_size = self.args.train_batch_size * self.args.gradient_accumulation_steps
            sampler = self._length_sampler(dataset, batch_size)
            if sampler is not None:
                return sampler
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.train_sampling_strategy == "group_by_length" and eval_dataset is not None:
            sampler = self._length_sampler(eval_dataset, self.args.eval_batch_size)
            if sampler is not None:
                return sampler
        return super()._get_eval_sampler(eval_dataset)


class DistillationTrainer(LengthGroupedTrainer):
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
        if TEACHER_LOGITS not in self._signature_columns:
            self._signature_columns.append(TEACHER_LOGITS)

    def _row_lengths(self, dataset) -> np.ndarray | None:
        return dataset.lengths if isinstance(dataset, ColumnRows) else super()._row_lengths(dataset)

    def _remove_unused_columns(self, dataset, description: str | None = None):
        """The kept columns as a `ColumnRows` (NumPy columns, a batch gathered at once) when the collator is a
        `DistillationDataCollator` and they are token ids, labels and teacher logits; else the pruned dataset."""
        dataset = super()._remove_unused_columns(dataset, description=description)
        if isinstance(self.data_collator, DistillationDataCollator):
            return ColumnRows.of(dataset) or dataset
        return dataset

    def _get_dataloader(self, *args, **kwargs):
        dataloader = super()._get_dataloader(*args, **kwargs)
        # `_prepare_inputs` places the batch instead of accelerate's loader, so that `lengths` stays on the CPU.
        if getattr(dataloader, "device", None) is not None:
            dataloader.device = None
        return dataloader

    def _prepare_inputs(self, inputs):
        """The batch on the device, only what a step uses: `lengths` stays on the CPU (the LSTM packs by it there);
        a model that takes `lengths` gets no `attention_mask` (the BiLSTM rebuilds any mask it needs from them); the
        other tensors are copied without blocking, which overlaps the host's work where the loader pinned them
        (`dataloader_pin_memory`, on by default)."""
        if not isinstance(inputs, dict) or "lengths" not in inputs or self.is_deepspeed_enabled:
            return super()._prepare_inputs(inputs)
        inputs = dict(inputs)
        lengths = inputs.pop("lengths")
        takes_lengths = self._model_takes_lengths(self.model)
        if takes_lengths:
            inputs.pop("attention_mask", None)
        device = self.args.device
        prepared = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in inputs.items()}
        if takes_lengths:
            prepared["lengths"] = lengths
        return prepared

    def _model_takes_lengths(self, model) -> bool:
        cached = getattr(self, "_takes_lengths", None)
        if cached is None:
            forward = self.accelerator.unwrap_model(model).forward
            cached = self._takes_lengths = "lengths" in inspect.signature(forward).parameters
        return cached

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        inputs = dict(inputs)
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        labels = inputs.pop("labels", None)
        inputs.pop(self.args.length_column_name, None)
        if not self._model_takes_lengths(model):
            inputs.pop("lengths", None)
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
        if "lengths" in inputs and not self._model_takes_lengths(model):
            inputs = {k: v for k, v in inputs.items() if k != "lengths"}
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
