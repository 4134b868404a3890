"""The student's tokenizer and the initialisation of its embeddings.

Two kinds of tokenizer, both saved beside the student and loaded with `AutoTokenizer`:

- `build_word_tokenizer`: a word-level `tokenizers` tokenizer built from a dataset's vocabulary. It lowercases, splits
  words as spaCy's English tokenizer does (`ca n't`, `it 's`, punctuation apart), and keeps the mask token
  (`[MASK]`) of the masking augmentation whole.
- `load_teacher_tokenizer`: the teacher's own (WordPiece) tokenizer, emitting only what the student reads.

Embedding rows come from a word-vectors text file (`load_word_vectors`: word2vec, GloVe or fastText text format), from
the teacher's input embeddings (`teacher_embedding_matrix`: copied row by row for the teacher's WordPiece, averaged over
each word's WordPieces for a word-level vocabulary), or stay random.
"""

from __future__ import annotations

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
    if vocab == teacher_tokenizer.get_vocab():
        matrix = weight[: len(tokenizer)].clone()
    else:
        teacher_vocab = teacher_tokenizer.get_vocab()
        unk = weight[teacher_tokenizer.unk_token_id] if teacher_tokenizer.unk_token_id is not None else weight.mean(0)
        matrix = unk.expand(len(tokenizer), -1).clone()
        words = sorted(vocab, key=vocab.get)
        specials = set(tokenizer.all_special_tokens)
        plain = [w for w in words if w not in specials]
        encoded = teacher_tokenizer(plain, add_special_tokens=False)["input_ids"] if plain else []
        for word, ids in zip(plain, encoded):
            if ids:
                matrix[vocab[word]] = weight[ids].mean(0)
        for token in specials:
            if token in teacher_vocab and token in vocab:
                matrix[vocab[token]] = weight[teacher_vocab[token]]
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
