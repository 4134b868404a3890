"""Token ids of a whole text column, in Arrow and NumPy: a million sentences tokenize in seconds.

For tokenizers whose ids for a text are the concatenation of their ids for each space-separated word
(`WordCacheEncoder.supports`: BERT's WordPiece, word-level vocabularies), `WordTable` tokenizes each distinct word of
the column once; every row is then an Arrow split, a hash lookup of its words (`pyarrow.compute.index_in`) and a NumPy
gather of their pieces, with the tokenizer's special tokens around them and its truncation. `encode_dataset` adds
`input_ids` (a list<int32> column) and the length column to a `datasets.Dataset` in batched Arrow maps (optionally in
`num_proc` worker processes); any other tokenizer runs as a plain batched map.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distil.tokenization import WordCacheEncoder, flat_token_ids

logger = logging.getLogger(__name__)


def distinct_words(*columns) -> pa.Array:
    """The distinct space-separated words of text columns (Arrow arrays or chunked arrays), in first-seen order."""
    found = [pc.unique(pc.list_flatten(pc.split_pattern(column, " "))) for column in columns if len(column)]
    if not found:
        return pa.array([], pa.string())
    return pc.unique(pa.chunked_array(found, pa.string())).combine_chunks() if len(found) > 1 else found[0]


class WordTable:
    """Every distinct word's token ids, flat, to tokenize whole columns of space-separated text with NumPy.

    Exact for tokenizers that `WordCacheEncoder.supports`: a row's ids are the tokenizer's special tokens around its
    words' ids, the words' ids cut to `max_length` minus the special tokens (the tokenizer's own truncation of one
    text). Words missing from the table are tokenized when first seen.
    """

    def __init__(self, tokenizer, max_length: int, words: pa.Array | None = None):
        encoder = WordCacheEncoder(tokenizer, max_length=max_length)
        self.backend = encoder.backend
        self.prefix = np.asarray(encoder.prefix, dtype=np.int64)
        self.suffix = np.asarray(encoder.suffix, dtype=np.int64)
        self.max_content = encoder.max_content
        self.words = pa.array([], pa.string())
        self.pool = np.zeros(0, dtype=np.int64)
        self.starts = np.zeros(0, dtype=np.int64)
        self.lengths = np.zeros(0, dtype=np.int64)
        if words is not None:
            self.add(words)

    def add(self, words: pa.Array) -> None:
        """Tokenize `words` (distinct, not yet in the table) and append them."""
        if not len(words):
            return
        pieces = flat_token_ids(
            [e.ids for e in self.backend.encode_batch(words.to_pylist(), add_special_tokens=False)]
        )
        self.starts = np.concatenate([self.starts, pieces.starts + len(self.pool)])
        self.pool = np.concatenate([self.pool, pieces.ids])
        self.lengths = np.concatenate([self.lengths, pieces.lengths])
        self.words = pa.concat_arrays([self.words, words.cast(pa.string())])

    def encode(self, texts) -> tuple[pa.Array, np.ndarray]:
        """`(input_ids, lengths)` of a text column: a list<int32> Arrow array and each row's token count (int64)."""
        if texts.null_count:
            raise ValueError("a text to tokenize is missing (null)")
        split = pc.split_pattern(texts, " ")
        if isinstance(split, pa.ChunkedArray):
            split = split.combine_chunks()
        words_per_row = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int64)
        words = pc.list_flatten(split)
        codes = pc.index_in(words, value_set=self.words)
        if codes.null_count:
            self.add(pc.unique(words.filter(pc.is_null(codes))))
            codes = pc.index_in(words, value_set=self.words)
        codes = codes.to_numpy(zero_copy_only=False).astype(np.int64)
        n = len(words_per_row)  # every row has at least one word (`""` splits into `[""]`)
        if n == 0:
            return pa.array([], pa.list_(pa.int32())), np.zeros(0, dtype=np.int64)
        # the pieces of every word, in text order, and each row's piece count
        word_lengths = self.lengths[codes]
        word_ends = np.cumsum(word_lengths)
        total = int(word_ends[-1]) if len(word_ends) else 0
        stream = self.pool[np.repeat(self.starts[codes] - (word_ends - word_lengths), word_lengths) + np.arange(total)]
        row_pieces = np.add.reduceat(word_lengths, np.cumsum(words_per_row) - words_per_row)
        stream_starts = np.cumsum(row_pieces) - row_pieces
        kept = np.minimum(row_pieces, self.max_content)  # truncation keeps each row's first pieces
        n_pre, n_suf = len(self.prefix), len(self.suffix)
        lengths = kept + n_pre + n_suf
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.empty(int(offsets[-1]), dtype=np.int32)
        rows = np.repeat(np.arange(n), kept)
        within = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
        flat[offsets[:-1][rows] + n_pre + within] = stream[stream_starts[rows] + within]
        for j, token_id in enumerate(self.prefix):
            flat[offsets[:-1] + j] = token_id
        for j, token_id in enumerate(self.suffix):
            flat[offsets[:-1] + n_pre + kept + j] = token_id
        input_ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat))
        return input_ids, lengths


def encode_dataset(
    dataset,
    tokenizer,
    max_length: int,
    text_column: str = "sentence",
    length_column: str = "length",
    table: WordTable | None = None,
    num_proc: int | None = None,
    batch_size: int = 50_000,
    desc: str = "Tokenizing",
):
    """`dataset` with `input_ids` and `length_column` (tokens per row) added.

    With a `table` (a `WordTable` of the tokenizer), each batch is encoded in Arrow and NumPy; otherwise (a tokenizer
    that `WordCacheEncoder` does not support) the tokenizer runs on each batch. Both are cached, batched maps.
    """
    if table is not None:

        def encode(batch: pa.Table) -> pa.Table:
            input_ids, lengths = table.encode(batch.column(text_column))
            batch = batch.drop_columns([c for c in ("input_ids", length_column) if c in batch.column_names])
            return batch.append_column("input_ids", input_ids).append_column(length_column, pa.array(lengths))

        return (
            dataset.with_format("arrow")
            .map(encode, batched=True, batch_size=batch_size, num_proc=num_proc, desc=desc)
            .with_format(None)
        )

    def tokenize(batch):
        encoded = tokenizer(batch[text_column], truncation=True, max_length=max_length)
        return {"input_ids": encoded["input_ids"], length_column: [len(ids) for ids in encoded["input_ids"]]}

    return dataset.map(tokenize, batched=True, batch_size=1000, num_proc=num_proc, desc=desc)
