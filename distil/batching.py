"""A tokenized dataset's columns held as NumPy arrays, so that a batch is gathered by indexing, not row by row.

`datasets.Dataset.__getitems__` converts each batch's Arrow rows to Python lists and then to one dict per row, and a
collator walks them again: a few milliseconds per batch, several percent of a small student's step. `ColumnRows`
reads the columns a collator needs from Arrow once (token ids as one flat array with row offsets, teacher logits as a
`(rows, num_labels)` matrix, labels and lengths as vectors) and hands the dataloader a `RowBatch` of NumPy arrays
for each list of indices; `DistillationDataCollator` pads it with one vectorised gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from torch.utils.data import Dataset as TorchDataset

from distil.encoding import arrow_column, one_array

INPUT_IDS = "input_ids"
OPTIONAL_COLUMNS = ("label", "teacher_logits")  # kept as NumPy when present
DROPPABLE_COLUMNS = ("attention_mask", "length")  # rebuilt from the offsets by the collator


@dataclass
class RowBatch:
    """Rows of a `ColumnRows`, as NumPy: each row's token ids are `values[starts[i] : starts[i] + lengths[i]]`."""

    values: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.lengths)


class ColumnRows(TorchDataset):
    """A map-style torch dataset over a tokenized `datasets.Dataset`'s `input_ids`, `label` and `teacher_logits`.

    `__getitems__` (what a `DataLoader` calls with a batch's indices) returns one `RowBatch`; `__getitem__` one row
    as a dict, as the `datasets.Dataset` would. `lengths` is every row's token count (for a length-grouped sampler).
    Build it with `ColumnRows.of(dataset)`, which says None for a dataset with other columns (`token_type_ids`, ...).
    """

    def __init__(self, dataset):
        ids = one_array(arrow_column(dataset, INPUT_IDS))
        if ids.null_count:
            raise ValueError(f"{INPUT_IDS}: a row has no token ids")
        offsets = ids.offsets.to_numpy().astype(np.int64)
        self.starts = offsets[:-1] - offsets[0]
        self.lengths = np.diff(offsets)
        self.values = pc.list_flatten(ids).to_numpy(zero_copy_only=False)
        self.columns: dict[str, np.ndarray] = {}
        for name in OPTIONAL_COLUMNS:
            if name not in dataset.column_names:
                continue
            column = one_array(arrow_column(dataset, name))
            if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
                width = int(pc.max(pc.list_value_length(column)).as_py() or 0)
                values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32)
                self.columns[name] = values.reshape(len(column), width)
            elif pa.types.is_fixed_size_list(column.type):
                values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
                self.columns[name] = values.reshape(len(column), column.type.list_size)
            else:
                self.columns[name] = column.to_numpy(zero_copy_only=False).astype(np.int64)

    @classmethod
    def of(cls, dataset) -> ColumnRows | None:
        """A `ColumnRows` over `dataset` when its columns are token ids plus any of label, teacher_logits,
        attention_mask and length; else None (the dataset's own rows are then used)."""
        names = set(getattr(dataset, "column_names", None) or ())
        if INPUT_IDS not in names or names - {INPUT_IDS, *OPTIONAL_COLUMNS, *DROPPABLE_COLUMNS}:
            return None
        return cls(dataset)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitems__(self, indices) -> RowBatch:
        indices = np.asarray(indices, dtype=np.int64)
        return RowBatch(
            self.values,
            self.starts[indices],
            self.lengths[indices],
            {name: column[indices] for name, column in self.columns.items()},
        )

    def __getitem__(self, index: int) -> dict:
        start, length = int(self.starts[index]), int(self.lengths[index])
        row = {INPUT_IDS: self.values[start : start + length].tolist()}
        for name, column in self.columns.items():
            row[name] = column[index].tolist()
        return row


def pad_rows(
    batch: RowBatch, pad_token_id: int, pad_to_multiple_of: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`(input_ids, mask)`: the batch's token ids right-padded to its longest row (rounded up to
    `pad_to_multiple_of`) as int64, and the boolean mask of real tokens."""
    width = int(batch.lengths.max(initial=0))
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    positions = np.arange(width)
    mask = positions < batch.lengths[:, None]
    input_ids = np.full((len(batch), width), pad_token_id, dtype=np.int64)
    input_ids[mask] = batch.values[(batch.starts[:, None] + positions)[mask]]
    return input_ids, mask
