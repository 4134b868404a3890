"""`distil.tokenization`: the student's tokenizers (word-level, the teacher's, pruned)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from distil.embeddings import teacher_embedding_matrix
from distil.errors import ConfigError
from distil.tokenization import build_word_tokenizer, load_teacher_tokenizer

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

    with pytest.raises(ConfigError, match="prune_vocab: the teacher's tokenizer is WordLevel, and only a fast"):
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
