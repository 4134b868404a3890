"""The student's initial embeddings: rows from a word-vectors file or from the teacher's input embeddings, fitted to
the student's width and scale.

Embedding rows come from a word-vectors text file (`load_word_vectors`: word2vec, GloVe or fastText text format), from
the teacher's input embeddings (`teacher_embedding_matrix`: copied row by row for the teacher's WordPiece, averaged over
each word's WordPieces for a word-level vocabulary), or stay random. `initial_embeddings` picks one, projects it to
`embedding_size` (`fit_embedding_size`) and rescales it (`rescale`); `set_input_embeddings` copies it into a model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import numpy as np
import torch
from transformers import AutoTokenizer

from distil.errors import ConfigError, InputError
from distil.hub import load_errors, resolve_model_path

logger = logging.getLogger("distil")

# The offline initialisation used when `embedding_init=auto` and no word-vectors file is given (the comparison is in
# results/README.md).
AUTO_EMBEDDING_INIT = "teacher"
EMBEDDING_INIT_METHODS = ("auto", "word_vectors", "teacher", "random")


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


def initial_embeddings(
    tokenizer,
    method: str = "auto",
    *,
    word_vectors: str | None = None,
    teacher_model: str | None = None,
    embedding_size: int | None = None,
    std: float | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor | None, str]:
    """The initial embedding matrix for `tokenizer` (None for random) and the method used, sized to
    `embedding_size` and rescaled to `std`. `auto`: `word_vectors` when a file is given, else `AUTO_EMBEDDING_INIT`."""
    if method == "auto":
        method = "word_vectors" if word_vectors else AUTO_EMBEDDING_INIT
    if method == "word_vectors":
        if not word_vectors:
            raise ConfigError("word_vectors: required by embedding_init=word_vectors")
        matrix, found = word_vectors_embedding_matrix(tokenizer, word_vectors, seed=seed)
        logger.info("Word vectors for %d of %d vocabulary entries", found, len(tokenizer))
        source = f"vectors of {word_vectors}"
    elif method == "teacher":
        if not teacher_model:
            raise ConfigError("teacher_model: required by embedding_init=teacher")
        with load_errors("teacher_model", teacher_model):
            matrix = teacher_embedding_matrix(tokenizer, resolve_model_path(teacher_model))
        source = f"input embeddings of {teacher_model}"
    else:
        return None, method
    matrix = fit_embedding_size(matrix, embedding_size, source)
    matrix = rescale(matrix, std, tokenizer.pad_token_id)
    return matrix, method
