"""The student's tokenizer and the initialisation of its embeddings.

Two kinds of tokenizer, both saved beside the student and loaded with `AutoTokenizer`:

- `build_word_tokenizer`: a word-level `tokenizers` tokenizer built from a dataset's vocabulary. It lowercases, splits
  words as spaCy's English tokenizer does (`ca n't`, `it 's`, punctuation apart), and keeps the mask token
  (`[MASK]`) of the masking augmentation whole.
- `load_teacher_tokenizer`: the teacher's own (WordPiece) tokenizer, emitting only what the student reads;
  `prune_tokenizer` cuts its vocabulary to the WordPieces of the training sentences (plus specials and characters).

`WordCacheEncoder` tokenizes batches of space-separated text for BERT-style tokenizers through a per-word cache, into
flat NumPy arrays (`TokenIds`) that pad without Python loops (used to label the transfer set).

Embedding rows come from a word-vectors text file (`load_word_vectors`: word2vec, GloVe or fastText text format), from
the teacher's input embeddings (`teacher_embedding_matrix`: copied row by row for the teacher's WordPiece, averaged over
each word's WordPieces for a word-level vocabulary), or stay random.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable

import numpy as np
import torch
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from distil.errors import ConfigError, InputError

logger = logging.getLogger(__name__)

PAD_TOKEN, UNK_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[MASK]"
STUDENT_INPUT_NAMES = ["input_ids", "attention_mask"]
# spaCy-compatible word splitting: English clitics apart (`do n't`, `ca n't`, `it 's`), decimals whole, ellipses,
# dashes and closing TeX quotes (`...`, `--`, `''`) whole, any other punctuation character on its own. It equals
# spaCy's English tokenizer on 96% of SST-2 sentences; the rest are fractions (`1/2`) and a detached `'m`/`'ve`,
# which spaCy splits into `'` + `m`.
WORD_PATTERN = r"n't|'(?:s|re|ve|ll|d|m|em)\b|\w+(?=n't\b)|\d+(?:[.,]\d+)+|\w+|\.{2,}|-{2,}|''|[^\w\s]"


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


def word_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Keep the matches of `WORD_PATTERN`, drop the whitespace between them."""
    return pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)


def _split_words(backend: Tokenizer, sentence: str, mask_token: str | None) -> list[str]:
    """Normalize and pre-tokenize `sentence` exactly as `backend` will, keeping `mask_token` whole."""
    pieces = sentence.split(mask_token) if mask_token else [sentence]
    words = []
    for i, piece in enumerate(pieces):
        if i:
            words.append(mask_token)
        normalized = backend.normalizer.normalize_str(piece) if backend.normalizer else piece
        words.extend(w for w, _ in backend.pre_tokenizer.pre_tokenize_str(normalized))
    return words


def build_word_tokenizer(
    sentences: Iterable[str],
    mask_token: str | None = MASK_TOKEN,
    min_frequency: int = 1,
    max_vocab_size: int | None = None,
    model_max_length: int = 128,
) -> PreTrainedTokenizerFast:
    """A lowercased word-level tokenizer over the words of `sentences` (`[PAD]`=0, `[UNK]`=1, then the mask token).

    Words are ordered by decreasing count, ties alphabetically, so the same data always gives the same ids.
    `max_vocab_size` counts the special tokens.
    """
    specials = [PAD_TOKEN, UNK_TOKEN] + ([mask_token] if mask_token else [])
    backend = Tokenizer(WordLevel({t: i for i, t in enumerate(specials)}, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = word_pre_tokenizer()

    counts = Counter()
    for sentence in sentences:
        counts.update(_split_words(backend, sentence, mask_token))
    for token in specials:
        counts.pop(token, None)
    words = sorted((w for w, c in counts.items() if c >= min_frequency), key=lambda w: (-counts[w], w))
    if max_vocab_size is not None:
        words = words[: max(0, max_vocab_size - len(specials))]
    vocab = {token: i for i, token in enumerate(specials + words)}

    backend = Tokenizer(WordLevel(vocab, unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = word_pre_tokenizer()
    # Special tokens are matched on the raw text, before lowercasing and splitting: `[MASK]` stays one token.
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        mask_token=mask_token,
        model_input_names=list(STUDENT_INPUT_NAMES),
        model_max_length=model_max_length,
    )


def load_teacher_tokenizer(name_or_path: str, **kwargs) -> PreTrainedTokenizerBase:
    """The teacher's tokenizer, set to emit only `input_ids` and `attention_mask` (no `token_type_ids`)."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    tokenizer.model_input_names = list(STUDENT_INPUT_NAMES)
    tokenizer.init_kwargs["model_input_names"] = list(STUDENT_INPUT_NAMES)
    return tokenizer


def sentence_token_ids(tokenizer, sentences: Iterable[str], chunk_size: int = 50_000) -> set[int]:
    """The ids `tokenizer` gives to `sentences` (without the special tokens it adds around each)."""
    sentences = iter(sentences)
    found: set[int] = set()
    if WordCacheEncoder.supports(tokenizer):  # the pieces of each distinct word
        words: set[str] = set()
        while chunk := list(itertools.islice(sentences, chunk_size)):
            words.update(" ".join(chunk).split(" "))
        backend = WordCacheEncoder(tokenizer, max_length=0).backend
        for encoding in backend.encode_batch(sorted(words), add_special_tokens=False):
            found.update(encoding.ids)
        return found
    while chunk := list(itertools.islice(sentences, chunk_size)):
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            found.update(ids)
    return found


def prune_tokenizer(
    tokenizer: PreTrainedTokenizerBase, sentences: Iterable[str], keep_characters: bool = True
) -> PreTrainedTokenizerFast:
    """A copy of a WordPiece `tokenizer` whose vocabulary keeps only the tokens it gives `sentences`, plus its
    special tokens and (`keep_characters`) its single-character ASCII pieces (`a`, `##a`, `!`, ...).

    Kept tokens keep the teacher's relative order (so `[PAD]` stays 0). WordPiece matches each word greedily, longest
    piece first, and a word with a position that no piece matches becomes `[UNK]` whole. So every word of `sentences`
    splits exactly as before (its longest pieces are all kept); an unseen word splits into the longest kept pieces,
    down to single characters, and only a word with a character outside the kept ones becomes `[UNK]`.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    if spec.get("model", {}).get("type") != "WordPiece":
        raise ValueError("prune_vocab: needs a fast WordPiece tokenizer (the teacher's); a word-level one is pruned")
    vocab = spec["model"]["vocab"]
    keep = sentence_token_ids(tokenizer, sentences)
    keep.update(tokenizer.all_special_ids)
    keep.update(token["id"] for token in spec.get("added_tokens", []))
    if keep_characters:
        prefix = spec["model"].get("continuing_subword_prefix") or "##"
        for token, i in vocab.items():
            bare = token[len(prefix) :] if token.startswith(prefix) else token
            if len(bare) == 1 and bare.isascii():
                keep.add(i)
    by_id = {i: token for token, i in vocab.items()}
    new_vocab = {by_id[i]: new_id for new_id, i in enumerate(sorted(keep))}

    spec["model"]["vocab"] = new_vocab
    for token in spec.get("added_tokens", []):
        token["id"] = new_vocab[token["content"]]
    _remap_post_processor(spec.get("post_processor"), new_vocab)
    spec["truncation"] = spec["padding"] = None  # set per call by the wrapper
    pruned = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        model_input_names=list(STUDENT_INPUT_NAMES),
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        **{name: getattr(tokenizer, name) for name in SPECIAL_TOKEN_NAMES if getattr(tokenizer, name, None)},
    )
    logger.info("Pruned the vocabulary from %d to %d tokens", len(tokenizer), len(pruned))
    return pruned


SPECIAL_TOKEN_NAMES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token")


def _remap_post_processor(processor: dict | None, vocab: dict[str, int]) -> None:
    """Point a post-processor's special tokens (`[CLS]`, `[SEP]`) at their ids in `vocab`, in place."""
    if not processor:
        return
    for inner in processor.get("processors", []):  # Sequence
        _remap_post_processor(inner, vocab)
    for special in processor.get("special_tokens", {}).values():  # TemplateProcessing
        special["ids"] = [vocab[token] for token in special["tokens"]]
    for key in ("cls", "sep"):  # BertProcessing, RobertaProcessing
        if isinstance(processor.get(key), list):
            processor[key][1] = vocab[processor[key][0]]


def load_word_vectors(
    path: str, vocab: Iterable[str] | None = None, lowercase: bool = True
) -> tuple[dict[str, np.ndarray], int]:
    """Read a word-vectors text file: word2vec/fastText `.vec` (a `count dim` header line) or GloVe (no header).

    Only words in `vocab` are kept (matched lowercased when `lowercase`; the first occurrence wins, so a file sorted
    by frequency maps `the` before `The`). Returns the vectors and their dimension. Every line's field count is
    checked; the values of the lines kept are checked to be finite numbers (a malformed file is an `InputError`
    naming the file and line).
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: word-vectors file not found")
    wanted = None if vocab is None else set(vocab)
    vectors: dict[str, np.ndarray] = {}
    dim, header = None, False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if line_no == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim, header = int(parts[1]), True
                continue
            if parts == [""]:
                continue
            if dim is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise InputError(f"{path}:{line_no}: a word with no vector values")
            if len(parts) != dim + 1:
                # GloVe 840B has a few words containing spaces: the vector is always the last `dim` fields.
                # word2vec/fastText files (with a header) split words on spaces, so there the count must match.
                if header or len(parts) < dim + 1:
                    raise InputError(
                        f"{path}:{line_no}: expected a word and {dim} values, found {len(parts) - 1} values"
                    )
                parts = [" ".join(parts[: len(parts) - dim])] + parts[len(parts) - dim :]
            word = parts[0].lower() if lowercase else parts[0]
            if word in vectors or (wanted is not None and word not in wanted):
                continue
            try:
                vector = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise InputError(
                    f"{path}:{line_no}: the vector of {parts[0]!r} has values that are not numbers"
                ) from None
            if not np.isfinite(vector).all():
                raise InputError(f"{path}:{line_no}: the vector of {parts[0]!r} has values that are not finite")
            vectors[word] = vector
    if dim is None:
        raise InputError(f"{path}: no vectors found")
    return vectors, dim


def word_vectors_embedding_matrix(tokenizer, path: str, seed: int = 0) -> tuple[torch.Tensor, int]:
    """An embedding matrix for `tokenizer`'s vocabulary from a word-vectors file.

    Words without a vector get random rows with the vectors' own mean and standard deviation; the pad row is zero.
    Returns the matrix and how many vocabulary entries had a vector.
    """
    vocab = tokenizer.get_vocab()
    vectors, dim = load_word_vectors(path, vocab=vocab.keys())
    found = np.stack(list(vectors.values())) if vectors else np.zeros((1, dim), dtype=np.float32)
    generator = torch.Generator().manual_seed(seed)
    matrix = torch.randn(len(tokenizer), dim, generator=generator) * float(found.std()) + float(found.mean())
    for word, i in vocab.items():
        if word in vectors:
            matrix[i] = torch.from_numpy(vectors[word])
    if tokenizer.pad_token_id is not None:
        matrix[tokenizer.pad_token_id] = 0.0
    return matrix, len(vectors)


def teacher_embedding_matrix(tokenizer, teacher_name_or_path: str, teacher_tokenizer=None) -> torch.Tensor:
    """An embedding matrix for `tokenizer` from the teacher's input (word) embeddings.

    When `tokenizer` has the teacher's vocabulary, rows are copied as they are. Otherwise (a word-level vocabulary)
    each word's row is the mean of the teacher's rows for the word's WordPieces; special tokens take the teacher's row
    for the same token when it has one. The pad row is zero.
    """
    from transformers import AutoModel

    teacher = AutoModel.from_pretrained(teacher_name_or_path)
    weight = teacher.get_input_embeddings().weight.detach().float().clone()
    del teacher
    if teacher_tokenizer is None:
        teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_name_or_path)
    vocab = tokenizer.get_vocab()
    teacher_vocab = teacher_tokenizer.get_vocab()
    if vocab == teacher_vocab:
        matrix = weight[: len(tokenizer)].clone()
    else:
        unk = weight[teacher_tokenizer.unk_token_id] if teacher_tokenizer.unk_token_id is not None else weight.mean(0)
        matrix = unk.expand(len(tokenizer), -1).clone()
        # a token of the teacher's own vocabulary (a pruned WordPiece vocabulary, a word that is one WordPiece)
        # takes its row; any other word the mean of its WordPieces' rows
        own = [(i, teacher_vocab[token]) for token, i in vocab.items() if token in teacher_vocab]
        if own:
            rows, teacher_rows = zip(*own)
            matrix[list(rows)] = weight[list(teacher_rows)]
        specials = set(tokenizer.all_special_tokens)
        plain = sorted((w for w in vocab if w not in specials and w not in teacher_vocab), key=vocab.get)
        encoded = teacher_tokenizer(plain, add_special_tokens=False)["input_ids"] if plain else []
        for word, ids in zip(plain, encoded):
            if ids:
                matrix[vocab[word]] = weight[ids].mean(0)
    if tokenizer.pad_token_id is not None:
        matrix[tokenizer.pad_token_id] = 0.0
    return matrix


def fit_embedding_size(matrix: torch.Tensor, size: int | None, source: str = "initial embeddings") -> torch.Tensor:
    """Project `matrix` onto its top `size` principal components when it is wider than `size`.

    `size=None` (or the matrix's own width) keeps it as it is; a narrower matrix (`source` names it) is an error.
    """
    if size is None or size == matrix.size(1):
        return matrix
    if size > matrix.size(1):
        raise ConfigError(
            f"embedding_size: {size} is wider than the {matrix.size(1)}-d {source}; set it to at most "
            f"{matrix.size(1)} (narrower: projected onto principal components) or leave it unset"
        )
    mean = matrix.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(matrix - mean, full_matrices=False)
    return (matrix - mean) @ v[:size].T


def rescale(matrix: torch.Tensor, std: float | None, pad_token_id: int | None = None) -> torch.Tensor:
    """Scale `matrix` so that its entries have standard deviation `std` (`None`: unchanged)."""
    if std is None:
        return matrix
    rows = torch.ones(matrix.size(0), dtype=torch.bool)
    if pad_token_id is not None:
        rows[pad_token_id] = False
    matrix = matrix * (std / matrix[rows].std().clamp(min=1e-12))
    return matrix


def set_input_embeddings(model, matrix: torch.Tensor) -> None:
    """Copy `matrix` into `model`'s input embedding (same shape)."""
    embedding = model.get_input_embeddings()
    if tuple(embedding.weight.shape) != tuple(matrix.shape):
        raise ValueError(f"embedding is {tuple(embedding.weight.shape)}, initial matrix is {tuple(matrix.shape)}")
    with torch.no_grad():
        embedding.weight.copy_(matrix.to(embedding.weight.dtype))
