"""Reading a transfer set back for the student: a saved `DatasetDict` whose splits, columns and teacher logits are
checked on the Arrow columns (no Python loop over rows), with the debug caps applied."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from datasets import ClassLabel, Dataset, DatasetDict, load_from_disk

from distil.data import LABEL_COLUMN, TEXT_COLUMN
from distil.errors import ConfigError
from distil.trainer import TEACHER_LOGITS


def check_teacher_logits(dataset: Dataset, where: str, num_labels: int, label_names: list[str] | None = None) -> None:
    """Raise a one-line `ConfigError` unless every row of `dataset` has `num_labels` finite `teacher_logits`.

    Checked on the Arrow column with pyarrow and numpy, with no Python loop over rows.
    """
    column = dataset.data.table.column(TEACHER_LOGITS)
    kind = column.type
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)) or not (
        pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)
    ):
        raise ConfigError(f"transfer_set: {where}: teacher_logits must hold a list of floats per row, found {kind}")
    labels = f"{num_labels} labels" + (f" ({', '.join(label_names)})" if label_names else "")
    start = 0
    for chunk in column.chunks:
        if chunk.null_count:
            row = start + int(np.flatnonzero(chunk.is_null().to_numpy(zero_copy_only=False))[0])
            raise ConfigError(f"transfer_set: {where}: row {row}: teacher_logits is missing")
        widths = pc.list_value_length(chunk).to_numpy()
        wrong = np.flatnonzero(widths != num_labels)
        if len(wrong):
            row = start + int(wrong[0])
            raise ConfigError(
                f"transfer_set: {where}: row {row}: {widths[wrong[0]]} teacher_logits, the student has {labels}"
            )
        values = chunk.flatten().to_numpy(zero_copy_only=False)  # a null value inside a list becomes NaN
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = start + int(bad[0]) // num_labels
            raise ConfigError(f"transfer_set: {where}: row {row}: teacher_logits {values[bad[0]]} is not finite")
        start += len(chunk)


def load_transfer_set(
    path: str,
    num_labels: int | None = None,
    *,
    max_train_samples: int | None = None,
    max_transfer_samples: int | None = None,
    max_eval_samples: int | None = None,
) -> DatasetDict:
    """The transfer set saved at `path`, checked (splits, columns, a `ClassLabel` label, as many finite teacher logits
    per row as it has labels, or `num_labels` when given), with the caps applied.

    `max_train_samples` means source sentences: it keeps the rows built from the first N source sentences (`idx < N`),
    which is every row of a transfer set built with the same cap. `max_transfer_samples` then keeps the first N
    transfer-set rows; `max_eval_samples` the first N validation rows.
    """
    try:
        splits = load_from_disk(path)
    except FileNotFoundError as e:
        if "://" in path:  # a remote filesystem: datasets' own reason
            reason = (str(e).splitlines() or [type(e).__name__])[0]
        else:
            reason = "no dataset_dict.json in it" if os.path.isdir(path) else "no such directory"
        raise ConfigError(f"transfer_set: {path}: not a saved DatasetDict ({reason})") from None
    if not isinstance(splits, DatasetDict) or not {"train", "validation"} <= set(splits):
        raise ConfigError(f"transfer_set: {path}: expected a DatasetDict with train and validation splits")
    for split in ("train", "validation"):
        missing = {TEXT_COLUMN, LABEL_COLUMN, TEACHER_LOGITS} - set(splits[split].column_names)
        if missing:
            raise ConfigError(f"transfer_set: {path}[{split}]: missing column(s) {', '.join(sorted(missing))}")
        feature = splits[split].features[LABEL_COLUMN]
        if not isinstance(feature, ClassLabel):
            raise ConfigError(
                f"transfer_set: {path}[{split}]: `label` is {feature}, not a ClassLabel naming the labels"
            )
        names = list(feature.names)
        check_teacher_logits(splits[split], f"{path}[{split}]", num_labels or len(names), names)
    train = splits["train"]
    if max_train_samples is not None:
        if "idx" not in train.column_names:
            raise ConfigError(f"transfer_set: {path}[train] has no `idx` column to apply max_train_samples to")
        idx = np.asarray(train.with_format("numpy")["idx"])
        if (idx >= max_train_samples).any():
            train = train.select(np.flatnonzero(idx < max_train_samples))
    cap = max_transfer_samples
    if cap is not None and cap < len(train):
        train = train.select(range(cap))
    splits["train"] = train
    if max_eval_samples is not None and max_eval_samples < len(splits["validation"]):
        splits["validation"] = splits["validation"].select(range(max_eval_samples))
    return splits
