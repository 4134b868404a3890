"""Length-grouped training order from an Arrow column, in NumPy: a million rows order in milliseconds.

The order follows transformers' `get_length_grouped_indices`: shuffle the rows, cut the permutation into megabatches
of `mega_batch_mult * batch_size` rows, sort each megabatch by decreasing length, and put the longest megabatch first
(so that a batch that does not fit shows up at the first step). It is built by one permutation and one sort of
integer keys over the whole length array, never by Python over rows, and reseeded each epoch by `seed + epoch`.

Every process builds the same order (it depends only on the lengths, the seed and the epoch); the dataloader that
accelerate prepares gives each process its own batches of it.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
from torch.utils.data import Sampler

from distil.encoding import arrow_column, one_array


def column_lengths(dataset, length_column: str = "length", input_column: str = "input_ids") -> np.ndarray:
    """The rows' lengths of a `datasets.Dataset` as one int64 NumPy array, in the dataset's row order.

    Read from the Arrow table: the `length_column` when the dataset has one, else the list lengths of
    `input_column`; a dataset with an indices mapping (after `select` or `shuffle`) is taken through it.
    """
    if length_column in dataset.column_names:
        column = arrow_column(dataset, length_column)
    elif input_column in dataset.column_names:
        column = pc.list_value_length(arrow_column(dataset, input_column))
    else:
        raise ValueError(f"no `{length_column}` or `{input_column}` column to group rows by length")
    return one_array(column).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def length_grouped_order(
    lengths: np.ndarray, batch_size: int, seed: int, mega_batch_mult: int | None = None
) -> np.ndarray:
    """Row indices in which each run of `batch_size` consecutive rows has similar lengths.

    Randomly permuted (NumPy generator seeded by `seed`), cut into megabatches of `mega_batch_mult * batch_size`
    rows, each sorted by decreasing length (ties keep their random order); the megabatch that holds the longest row
    comes first, its longest row first of all. `mega_batch_mult` defaults as in transformers: 50, or fewer so that
    there are at least 4 megabatches.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if mega_batch_mult is None:
        mega_batch_mult = max(1, min(n // (batch_size * 4), 50))
    megabatch = mega_batch_mult * batch_size
    permutation = np.random.default_rng(seed).permutation(n)
    permuted = lengths[permutation]
    # one stable sort on (megabatch, decreasing length), packed into one int64 key
    span = int(permuted.max()) - int(permuted.min()) + 1
    key = (np.arange(n, dtype=np.int64) // megabatch) * span + (int(permuted.max()) - permuted)
    order = permutation[np.argsort(key, kind="stable")]
    # the longest row of all to the very front: swap the first row of its megabatch with the first row overall
    firsts = np.arange(0, n, megabatch)
    longest = firsts[int(np.argmax(lengths[order[firsts]]))]
    order[0], order[longest] = order[longest], order[0]
    return order


class LengthGroupedSampler(Sampler[int]):
    """Samples rows grouped by length (`length_grouped_order`), a new order each epoch (`set_epoch`).

    Args:
        lengths: every row's length (a NumPy array; `column_lengths` reads one from a dataset).
        batch_size: rows per optimizer step (per-device batch size times gradient accumulation steps).
        seed: the order of epoch `e` is seeded by `seed + e`.
        mega_batch_mult: megabatch size in batches (default: as transformers).
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, mega_batch_mult: int | None = None):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.mega_batch_mult = mega_batch_mult
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        return length_grouped_order(self.lengths, self.batch_size, self.seed + self.epoch, self.mega_batch_mult)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(self.order().tolist())
