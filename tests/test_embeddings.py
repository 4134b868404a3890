"""`distil.embeddings`: the student's initial embeddings from word vectors or the teacher, and bad vector files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel

from distil.embeddings import (
    fit_embedding_size,
    load_word_vectors,
    rescale,
    teacher_embedding_matrix,
    word_vectors_embedding_matrix,
)
from distil.errors import ConfigError, InputError
from distil.tokenization import build_word_tokenizer, load_teacher_tokenizer

from .conftest import error_line, run_script


@pytest.mark.parametrize("header", [True, False], ids=["word2vec-fasttext", "glove"])
def test_load_word_vectors(tmp_path, header):
    lines = ["good 1 2 3", "The 4 5 6", "the 7 8 9", "film 0.5 0.5 0.5", "unused 9 9 9"]
    path = tmp_path / "vectors.txt"
    path.write_text(("5 3\n" if header else "") + "\n".join(lines) + "\n", encoding="utf-8")
    vectors, dim = load_word_vectors(str(path), vocab={"good", "the", "film", "missing"})
    assert dim == 3
    assert set(vectors) == {"good", "the", "film"}
    np.testing.assert_array_equal(vectors["the"], [4, 5, 6])  # first occurrence wins (files are frequency-sorted)


def test_word_vectors_embedding_matrix(tmp_path):
    tok = build_word_tokenizer(["good film", "bad film"])
    path = tmp_path / "vectors.vec"
    path.write_text("2 3\ngood 1 2 3\nfilm 4 5 6\n", encoding="utf-8")
    matrix, found = word_vectors_embedding_matrix(tok, str(path))
    vocab = tok.get_vocab()
    assert matrix.shape == (len(tok), 3) and found == 2
    assert matrix[vocab["good"]].tolist() == [1, 2, 3] and matrix[vocab["film"]].tolist() == [4, 5, 6]
    assert matrix[tok.pad_token_id].abs().sum() == 0
    assert matrix[vocab["bad"]].abs().sum() > 0  # random row for a word without a vector


def test_teacher_embedding_matrix(tiny_bert_dir):
    teacher = AutoModel.from_pretrained(tiny_bert_dir).get_input_embeddings().weight.detach()
    # the teacher's own WordPiece: rows copied
    wordpiece = load_teacher_tokenizer(str(tiny_bert_dir))
    assert len(wordpiece) == teacher.shape[0]
    matrix = teacher_embedding_matrix(wordpiece, str(tiny_bert_dir))
    assert matrix.shape == teacher.shape
    assert torch.equal(matrix[5:], teacher[5:]) and matrix[wordpiece.pad_token_id].abs().sum() == 0
    # a word-level vocabulary: each word's row comes from its WordPieces; specials from the teacher's specials
    words = build_word_tokenizer(["a good movie", "zzz [MASK]"])
    matrix = teacher_embedding_matrix(words, str(tiny_bert_dir))
    teacher_vocab, vocab = wordpiece.get_vocab(), words.get_vocab()
    assert matrix.shape == (len(words), teacher.shape[1])
    assert torch.equal(matrix[vocab["good"]], teacher[teacher_vocab["good"]])
    assert torch.equal(matrix[vocab["[MASK]"]], teacher[teacher_vocab["[MASK]"]])
    assert torch.equal(matrix[vocab["zzz"]], teacher[teacher_vocab["[UNK]"]])
    assert matrix[words.pad_token_id].abs().sum() == 0


def test_teacher_embedding_matrix_averages_wordpieces(tiny_bert_dir, tmp_path):
    import shutil

    from transformers import BertTokenizerFast

    # a teacher whose vocabulary knows `good` and `##ness` but not `goodness`
    shutil.copytree(tiny_bert_dir, tmp_path, dirs_exist_ok=True)
    vocab = (tmp_path / "vocab.txt").read_text().split()
    vocab[-1] = "##ness"
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab=str(tmp_path / "vocab.txt")).save_pretrained(tmp_path)
    teacher = AutoModel.from_pretrained(tmp_path).get_input_embeddings().weight.detach()
    words = build_word_tokenizer(["goodness"])
    matrix = teacher_embedding_matrix(words, str(tmp_path))
    expected = (teacher[vocab.index("good")] + teacher[vocab.index("##ness")]) / 2
    assert torch.allclose(matrix[words.get_vocab()["goodness"]], expected)


def test_fit_embedding_size_and_rescale():
    torch.manual_seed(0)
    matrix = torch.randn(50, 16)
    assert fit_embedding_size(matrix, None) is matrix
    projected = fit_embedding_size(matrix, 4)
    assert projected.shape == (50, 4)
    assert torch.allclose(projected.mean(0), torch.zeros(4), atol=1e-5)
    with pytest.raises(ConfigError, match=r"^embedding_size: 32 is wider than the 16-d initial embeddings"):
        fit_embedding_size(matrix, 32)
    scaled = rescale(matrix * 0.05, 1.0, pad_token_id=0)
    assert scaled[1:].std().item() == pytest.approx(1.0, rel=1e-4)


# --- bad word vectors: one line naming the file and line (or the field), nothing written -------------------------


def run_baseline(data_dir, out, *extra):
    """The student stage without a transfer set (the baseline), as `recipes/train_student.py` calls it."""
    from transformers import TrainingArguments

    from distil.configs import DataArguments, parse_args
    from distil.student import StudentArguments, train_student

    args = ["--data_dir", str(data_dir), "--output_dir", str(out), "--tokenizer", "word", "--hidden_size", "8",
            "--classifier_hidden_size", "12", "--max_steps", "1", "--report_to", "none", *map(str, extra)]  # fmt: skip
    return train_student(*parse_args(StudentArguments, DataArguments, TrainingArguments, args=args))


BAD_VECTORS = [
    pytest.param("2 3\ngood 1 x 3\n", ":2: the vector of 'good' has values that are not numbers", id="not-a-number"),
    pytest.param("good 1 2 3\nfilm 1 2\n", ":2: expected a word and 3 values, found 2 values", id="too-few-values"),
    pytest.param("2 3\ngood 1 2 3 4\n", ":2: expected a word and 3 values, found 4 values", id="header-dim-mismatch"),
    pytest.param("good 1 nan 3\n", ":1: the vector of 'good' has values that are not finite", id="not-finite"),
    pytest.param("good\n", ":1: a word with no vector values", id="no-values"),
    pytest.param("", ": no vectors found", id="empty-file"),
]


@pytest.mark.parametrize("content, message", BAD_VECTORS)
def test_malformed_word_vectors_are_named_and_nothing_is_written(toy_data_dir, tmp_path, content, message):
    path = tmp_path / "vectors.vec"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(InputError) as excinfo:
        run_baseline(toy_data_dir, out, "--word_vectors", path)
    assert str(excinfo.value) == f"{path}{message}"
    assert not out.exists()


def test_word_vectors_narrower_than_embedding_size(toy_data_dir, tmp_path):
    path = tmp_path / "vectors.vec"
    path.write_text("2 3\ngood 1 2 3\nfilm 4 5 6\n", encoding="utf-8")
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as excinfo:
        run_baseline(toy_data_dir, out, "--word_vectors", path, "--embedding_size", "16")
    assert str(excinfo.value) == (
        f"embedding_size: 16 is wider than the 3-d vectors of {path}; set it to at most 3 (narrower: projected onto "
        "principal components) or leave it unset"
    )
    assert not out.exists()
    with pytest.raises(InputError, match=r"vectors\.vec: word-vectors file not found$"):
        run_baseline(toy_data_dir, out, "--word_vectors", tmp_path / "missing" / "vectors.vec")
    assert not out.exists()


def test_script_malformed_word_vectors_exit_with_one_line(toy_data_dir, tmp_path):
    path = tmp_path / "vectors.vec"
    path.write_text("2 3\ngood 1 2 3\nfilm 4 5\n", encoding="utf-8")
    result = run_script(
        "train_student.py", "--data_dir", toy_data_dir, "--output_dir", tmp_path / "out", "--tokenizer", "word",
        "--word_vectors", path, "--max_steps", "1",
    )  # fmt: skip
    assert error_line(result) == f"train_student.py: error: {path}:3: expected a word and 3 values, found 2 values"
    assert not (tmp_path / "out").exists()
