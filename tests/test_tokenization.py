"""The student's tokenizers and embedding initialisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from distil.errors import ConfigError, InputError
from distil.tokenization import (
    build_word_tokenizer,
    fit_embedding_size,
    load_teacher_tokenizer,
    load_word_vectors,
    rescale,
    teacher_embedding_matrix,
    word_vectors_embedding_matrix,
)

from .conftest import error_line, run_script

SENTENCES = [
    "it 's a charming and often affecting journey .",
    "the movie is n't good , it 's bad !",
    "a [MASK] film that ca n't be missed",
    "The FILM was good ... really good",
]


def tokens(tokenizer, text):
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


def test_word_tokenizer_vocabulary_and_specials():
    tok = build_word_tokenizer(SENTENCES)
    vocab = tok.get_vocab()
    assert (vocab["[PAD]"], vocab["[UNK]"], vocab["[MASK]"]) == (0, 1, 2)
    assert tok.pad_token_id == 0 and tok.unk_token_id == 1 and tok.mask_token == "[MASK]"
    # the most frequent word comes first; lowercased
    assert vocab["good"] == 3 and "The" not in vocab and "the" in vocab
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    assert "token_type_ids" not in tok("a film")


def test_word_tokenizer_splits_like_spacy_and_keeps_the_mask_whole():
    tok = build_word_tokenizer(SENTENCES)
    assert tokens(tok, "A [MASK] film , it 's GOOD") == ["a", "[MASK]", "film", ",", "it", "'s", "good"]
    # raw text: clitics and punctuation are split as spaCy does
    assert tokens(tok, "It's good, isn't it...") == ["it", "'s", "good", ",", "is", "n't", "it", "..."]
    assert tokens(tok, "can't") == ["ca", "n't"]
    assert tokens(tok, "zzz") == ["[UNK]"]


def test_word_tokenizer_matches_spacy_on_pretokenized_text():
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    text = ["it 's not a bad film -- just a long one ...", "the actors are n't funny , but the plot is !"]
    tok = build_word_tokenizer(text)
    for sentence in text:
        assert tokens(tok, sentence) == [t.text.lower() for t in nlp(sentence)]


def test_word_tokenizer_is_deterministic_and_capped():
    assert build_word_tokenizer(SENTENCES).get_vocab() == build_word_tokenizer(list(SENTENCES)).get_vocab()
    capped = build_word_tokenizer(SENTENCES, max_vocab_size=6)
    assert len(capped) == 6
    rare = build_word_tokenizer(SENTENCES, min_frequency=2)
    assert "journey" not in rare.get_vocab() and "good" in rare.get_vocab()


def test_word_tokenizer_saves_and_loads_with_auto_tokenizer(tmp_path):
    tok = build_word_tokenizer(SENTENCES)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    batch = ["A [MASK] film", "it 's a charming journey ."]
    assert loaded(batch)["input_ids"] == tok(batch)["input_ids"]
    padded = loaded(batch, padding=True, return_tensors="pt")
    assert padded["input_ids"][0, -1].item() == 0 and padded["attention_mask"][0].tolist() == [1, 1, 1, 0, 0, 0]
    assert loaded.mask_token == "[MASK]" and loaded.model_input_names == ["input_ids", "attention_mask"]


def test_teacher_tokenizer_drops_token_type_ids(tiny_bert_dir, tmp_path):
    tok = load_teacher_tokenizer(str(tiny_bert_dir))
    encoded = tok("a good movie")
    assert set(encoded) == {"input_ids", "attention_mask"}
    tok.save_pretrained(tmp_path)
    assert set(AutoTokenizer.from_pretrained(tmp_path)("a good movie")) == {"input_ids", "attention_mask"}


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


@pytest.fixture
def wordpiece_dir(tmp_path):
    """A small BERT-style WordPiece tokenizer with whole words, continuation pieces and single characters."""
    from transformers import BertTokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "日"]
    vocab += list(letters) + ["##" + c for c in letters]
    vocab += ["film", "films", "movie", "movies", "fun", "funny", "brilliant", "##ly", "bad", "good", "the"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(tmp_path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(tmp_path / "tok")
    return tmp_path / "tok"


PRUNE_TRAIN = ["the films are brilliantly fun .", "a bad movie , a [MASK] film"]


def test_pruned_wordpiece_keeps_the_training_tokens_and_specials(wordpiece_dir):
    from distil.tokenization import prune_tokenizer

    teacher = load_teacher_tokenizer(str(wordpiece_dir))
    pruned = prune_tokenizer(teacher, PRUNE_TRAIN)
    kept = set(pruned.get_vocab())
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} <= kept
    assert {"the", "films", "brilliant", "##ly", "fun", "bad", "movie", "film", ","} <= kept
    assert not {"movies", "funny", "good", "日"} & kept  # never in the training sentences
    assert {"z", "##z"} <= kept  # single ASCII characters stay, so any ASCII word can be spelled
    assert len(pruned) < len(teacher)
    # kept tokens keep the teacher's order: [PAD] stays 0, ids are dense
    assert pruned.pad_token_id == 0 and sorted(pruned.get_vocab().values()) == list(range(len(pruned)))
    order = sorted(kept, key=teacher.get_vocab().get)
    assert [pruned.get_vocab()[t] for t in order] == list(range(len(pruned)))
    # the training sentences split into exactly the same tokens; [CLS]/[SEP] point at their new ids
    for sentence in PRUNE_TRAIN:
        assert tokens(pruned, sentence) == tokens(teacher, sentence)
    assert pruned("fun")["input_ids"] == [pruned.cls_token_id, pruned.get_vocab()["fun"], pruned.sep_token_id]
    assert pruned.convert_ids_to_tokens([pruned.cls_token_id, pruned.sep_token_id]) == ["[CLS]", "[SEP]"]
    assert set(pruned("fun")) == {"input_ids", "attention_mask"}


def test_pruned_wordpiece_falls_back_to_kept_pieces_then_unk(wordpiece_dir):
    from distil.tokenization import prune_tokenizer

    teacher = load_teacher_tokenizer(str(wordpiece_dir))
    pruned = prune_tokenizer(teacher, PRUNE_TRAIN)
    # a word whose own piece was pruned splits into the longest kept pieces (greedy, longest first)
    assert tokens(teacher, "movies")[1:-1] == ["movies"]
    assert tokens(pruned, "movies")[1:-1] == ["movie", "##s"]
    assert tokens(pruned, "funny")[1:-1] == ["fun", "##n", "##y"]
    assert tokens(pruned, "good")[1:-1] == ["g", "##o", "##o", "##d"]
    # a word with a character no kept piece matches becomes [UNK] whole, as WordPiece does
    assert tokens(pruned, "日")[1:-1] == ["[UNK]"]
    assert tokens(pruned, "goodß")[1:-1] == ["[UNK]"]  # (a CJK character would be split off first)
    without_characters = prune_tokenizer(teacher, PRUNE_TRAIN, keep_characters=False)
    assert tokens(without_characters, "good")[1:-1] == ["[UNK]"]
    assert tokens(without_characters, "funly")[1:-1] == ["fun", "##ly"]  # both pieces are in the training set


def test_pruned_tokenizer_saves_and_loads(wordpiece_dir, tmp_path):
    from distil.tokenization import prune_tokenizer

    pruned = prune_tokenizer(load_teacher_tokenizer(str(wordpiece_dir)), PRUNE_TRAIN)
    pruned.save_pretrained(tmp_path / "saved")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert loaded.get_vocab() == pruned.get_vocab()
    for text in ["the movies are good 日 !", "[MASK] fun"]:
        assert loaded(text)["input_ids"] == pruned(text)["input_ids"]
    assert loaded.model_input_names == ["input_ids", "attention_mask"]
    assert (loaded.pad_token, loaded.unk_token, loaded.mask_token) == ("[PAD]", "[UNK]", "[MASK]")


def test_pruning_needs_a_wordpiece_tokenizer():
    from distil.tokenization import prune_tokenizer

    with pytest.raises(ValueError, match="prune_vocab"):
        prune_tokenizer(build_word_tokenizer(SENTENCES), SENTENCES)


def test_teacher_embedding_rows_follow_the_pruned_vocabulary(wordpiece_dir, tmp_path):
    from transformers import BertConfig, BertModel

    from distil.tokenization import prune_tokenizer

    teacher_tokenizer = load_teacher_tokenizer(str(wordpiece_dir))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(teacher_tokenizer), hidden_size=8, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=8)).save_pretrained(tmp_path / "teacher")  # fmt: skip
    teacher_tokenizer.save_pretrained(tmp_path / "teacher")
    weight = AutoModel.from_pretrained(tmp_path / "teacher").get_input_embeddings().weight.detach()
    pruned = prune_tokenizer(teacher_tokenizer, PRUNE_TRAIN)
    matrix = teacher_embedding_matrix(pruned, str(tmp_path / "teacher"))
    assert matrix.shape == (len(pruned), 8)
    teacher_vocab = teacher_tokenizer.get_vocab()
    for token, i in pruned.get_vocab().items():
        expected = torch.zeros(8) if token == "[PAD]" else weight[teacher_vocab[token]]
        torch.testing.assert_close(matrix[i], expected)
