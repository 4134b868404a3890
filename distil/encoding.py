"""Token ids of many texts at once, for labelling a transfer set: a per-word cache and flat NumPy arrays.

`WordCacheEncoder` tokenizes batches of space-separated text for BERT-style tokenizers through a per-word cache, into
flat NumPy arrays (`TokenIds`) that pad without Python loops.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
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
    Everything per row is NumPy; Python touches each distinct word once. The cache is cleared past `max_words`.
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

    def _add(self, words: set[str]):
        if len(self.index) + len(words) > self.max_words:
            self._reset()
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
            self._add(set(words).difference(self.index))
            codes = np.fromiter(map(self.index.__getitem__, words), dtype=np.int64, count=len(words))
        word_lengths = self.pool_lengths[codes]
        word_ends = np.cumsum(word_lengths)
        # every word's pieces, in text order
        gather = np.repeat(self.pool_starts[codes] - (word_ends - word_lengths), word_lengths)
        stream = self.pool[gather + np.arange(word_ends[-1])]
        lengths = np.add.reduceat(word_lengths, np.cumsum(words_per_text) - words_per_text)
        starts = np.cumsum(lengths) - lengths
        return TokenIds(stream, starts, np.minimum(lengths, self.max_content), self.prefix, self.suffix)
