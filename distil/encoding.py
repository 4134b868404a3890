"""Token ids of many texts at once: a per-word cache and flat NumPy arrays, and whole Arrow columns.

`WordCacheEncoder` tokenizes batches of space-separated text for BERT-style tokenizers through a per-word cache, into
flat NumPy arrays (`TokenIds`) that pad without Python loops (labelling a transfer set).

`WordTable` does the same for a whole text column in Arrow: each distinct word is tokenized once, and every row is then
an Arrow split, a hash lookup of its words (`pyarrow.compute.index_in`) and a NumPy gather of their pieces, with the
tokenizer's special tokens around them and its truncation. `encode_dataset` adds `input_ids` (list<int32>) and a length
column to a `datasets.Dataset` in batched Arrow maps (a million sentences in seconds; optionally in `num_proc` worker
processes); a tokenizer that `WordCacheEncoder` does not support runs as a plain batched map.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tokenizers import Tokenizer

# Tokenizers whose ids for a text are the concatenation of their ids for each space-separated word: a normalizer that
# acts on each character alone and a pre-tokenizer that splits on whitespace (BERT's WordPiece, word-level vocabularies).
WORD_SPLIT_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
CHAR_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"}


class TokenIds:
    """Token ids of a batch of texts, flat: text `i` is `ids[starts[i] : starts[i] + lengths[i]]`, wrapped in the
    `prefix` and `suffix` special ids (empty when `ids` already holds them)."""

    def __init__(self, ids, starts, lengths, prefix=(), suffix=()):
        self.ids, self.starts, self.lengths = ids, starts, lengths
        self.prefix = np.asarray(prefix, dtype=np.int64)
        self.suffix = np.asarray(suffix, dtype=np.int64)

    def total_lengths(self) -> np.ndarray:
        return self.lengths + len(self.prefix) + len(self.suffix)

    def pad(self, rows: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
        """`input_ids` and `attention_mask` (int64, right-padded to the longest of `rows`) for the texts `rows`."""
        n_pre, n_suf = len(self.prefix), len(self.suffix)
        lengths = self.lengths[rows]
        width = int(lengths.max(initial=0)) + n_pre + n_suf
        columns = np.arange(width)
        input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
        content = (columns >= n_pre) & (columns < n_pre + lengths[:, None])
        ends = np.cumsum(lengths)
        input_ids[content] = self.ids[np.repeat(self.starts[rows] - (ends - lengths), lengths) + np.arange(ends[-1])]
        if n_pre:
            input_ids[:, :n_pre] = self.prefix
        for j, token_id in enumerate(self.suffix):
            input_ids[np.arange(len(rows)), n_pre + lengths + j] = token_id
        attention_mask = (columns < (lengths + n_pre + n_suf)[:, None]).astype(np.int64)
        return input_ids, attention_mask


def flat_token_ids(ids: list[list[int]]) -> TokenIds:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64, count=int(lengths.sum()))
    return TokenIds(flat, np.cumsum(lengths) - lengths, lengths)


class WordCacheEncoder:
    """Token ids of texts by a per-word cache: the tokenizer runs once per distinct space-separated word.

    Exact for tokenizers that `supports` (BERT's WordPiece and the like): a sentence's ids are the special tokens
    around the concatenated ids of its words, truncated to `max_length` as the tokenizer truncates a single text.
    Everything per row is NumPy; Python touches each distinct word once. Past `max_words` the cache starts over with
    the words of the batch at hand.
    """

    def __init__(self, tokenizer, max_length: int, max_words: int = 1_000_000):
        self.backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.backend.no_padding()
        self.backend.no_truncation()
        probe_with, probe = self.backend.encode("a").ids, self.backend.encode("a", add_special_tokens=False).ids
        self.prefix = probe_with[: probe_with.index(probe[0])]
        self.suffix = probe_with[len(self.prefix) + len(probe) :]
        self.max_content = max(0, max_length - len(self.prefix) - len(self.suffix))
        self.max_words = max_words
        self._reset()

    @staticmethod
    def supports(tokenizer) -> bool:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            return False
        spec = json.loads(backend.to_str())
        normalizer, pre_tokenizer = spec.get("normalizer"), spec.get("pre_tokenizer") or {}
        normalizers = [] if normalizer is None else normalizer.get("normalizers", [normalizer])
        return (
            pre_tokenizer.get("type") in WORD_SPLIT_PRE_TOKENIZERS
            and all(n.get("type") in CHAR_LOCAL_NORMALIZERS for n in normalizers)
            and spec.get("model", {}).get("type") in ("WordPiece", "WordLevel")
        )

    def _reset(self):
        self.index: dict[str, int] = {}
        self.pieces: list[list[int]] = []
        self.pool = np.zeros(0, dtype=np.int64)
        self.pool_starts = np.zeros(0, dtype=np.int64)
        self.pool_lengths = np.zeros(0, dtype=np.int64)

    def _add(self, batch_words: set[str]):
        """Tokenize the batch's words the cache lacks. Past `max_words` the cache starts over with the batch's words
        (every one of them: the batch looks them all up next)."""
        words = batch_words.difference(self.index)
        if len(self.index) + len(words) > self.max_words:
            self._reset()
            words = batch_words
        words = sorted(words)
        for word, encoding in zip(words, self.backend.encode_batch(words, add_special_tokens=False)):
            self.index[word] = len(self.pieces)
            self.pieces.append(encoding.ids)
        packed = flat_token_ids(self.pieces)
        self.pool, self.pool_starts, self.pool_lengths = packed.ids, packed.starts, packed.lengths

    def __call__(self, texts: list[str]) -> TokenIds:
        if not texts:
            return TokenIds(*(np.zeros(0, dtype=np.int64),) * 3, self.prefix, self.suffix)
        words_per_text = np.fromiter(map(str.count, texts, itertools.repeat(" ")), dtype=np.int64, count=len(texts))
        words_per_text += 1
        words = " ".join(texts).split(" ")
        try:  # the words seen before: every word, once the cache is warm
            codes = np.fromiter(map(self.index.__getitem__, words), dtype=np.int64, count=len(words))
        except KeyError:
            self._add(set(words))
            codes = np.fromiter(map(self.index.__getitem__, words), dtype=np.int64, count=len(words))
        word_lengths = self.pool_lengths[codes]
        word_ends = np.cumsum(word_lengths)
        # every word's pieces, in text order
        gather = np.repeat(self.pool_starts[codes] - (word_ends - word_lengths), word_lengths)
        stream = self.pool[gather + np.arange(word_ends[-1])]
        lengths = np.add.reduceat(word_lengths, np.cumsum(words_per_text) - words_per_text)
        starts = np.cumsum(lengths) - lengths
        return TokenIds(stream, starts, np.minimum(lengths, self.max_content), self.prefix, self.suffix)


def arrow_column(dataset, name: str) -> pa.ChunkedArray:
    """A `datasets.Dataset`'s column as Arrow, in the dataset's row order (through its indices mapping, if any).

    `dataset.with_format("arrow")[name]` gives the same column, but through an indices mapping (set by `select`,
    `shuffle`, `train_test_split`) datasets gathers it one row at a time (`Table.fast_gather`, a Python loop over
    rows); `take` on the column is one Arrow call, hence datasets' private `_indices` here."""
    column = dataset.data.column(name)
    indices = getattr(dataset, "_indices", None)
    return column.take(indices.column(0)) if indices is not None else column


def one_array(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """An Arrow column as one contiguous array (a chunked array's chunks combined)."""
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def iter_texts(column, chunk_size: int = 50_000):
    """The Python strings of an Arrow text column, converted a chunk at a time."""
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        for start in range(0, len(chunk), chunk_size):
            yield from chunk.slice(start, chunk_size).to_pylist()


def distinct_words(*columns) -> pa.Array:
    """The distinct space-separated words of text columns (Arrow arrays or chunked arrays), in first-seen order."""
    found = [pc.unique(pc.list_flatten(pc.split_pattern(column, " "))) for column in columns if len(column)]
    if not found:
        return pa.array([], pa.string())
    return pc.unique(pa.chunked_array(found, pa.string())) if len(found) > 1 else found[0]


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
        split = one_array(pc.split_pattern(texts, " "))
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
