"""`distil.encoding`: the per-word cache gives the tokenizer's own ids, padded with NumPy."""

from __future__ import annotations

import numpy as np

from distil.encoding import WordCacheEncoder

from .conftest import toy_rows


def _sentences(n: int) -> list[str]:
    rows = toy_rows(n, seed=4)
    return [s if i % 3 else s + " " + s for i, (s, _) in enumerate(rows)]


def test_word_cache_encoder_matches_the_tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert WordCacheEncoder.supports(tokenizer)
    sentences = _sentences(60) + [
        "",
        "  two  spaces ",
        "The MOVIE, it's [MASK]good[MASK] !",
        "cafe\u0301 naïve 日本語 tab\there",
        "unknownword brilliantly " * 40,  # truncated
        "\u00a0nbsp\u2028line x\x0by",
    ]
    encoder = WordCacheEncoder(tokenizer, max_length=32)
    for _ in range(2):  # cold, then from the cache
        encoded = encoder(sentences)
        order = np.argsort(-encoded.total_lengths(), kind="stable")
        input_ids, attention_mask = encoded.pad(order, tokenizer.pad_token_id)
        expected = tokenizer([sentences[i] for i in order], truncation=True, max_length=32, padding=True)
        assert input_ids.tolist() == expected["input_ids"]
        assert attention_mask.tolist() == expected["attention_mask"]


def test_a_full_word_cache_keeps_the_words_of_the_batch_at_hand(tiny_bert_dir):
    """Past `max_words` the cache starts over; words the batch already found in it must survive that."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    encoder = WordCacheEncoder(tokenizer, max_length=32, max_words=6)
    batches = [["good film", "bad plot"], ["good film story", "very bad actors", "not funny"], ["dull good"]]
    for batch in batches:  # the second batch overflows the cache while "good", "film", "bad" are in it
        encoded = encoder(batch)
        input_ids, _ = encoded.pad(np.arange(len(batch)), tokenizer.pad_token_id)
        assert input_ids.tolist() == tokenizer(batch, padding=True)["input_ids"]
    assert len(encoder.index) <= len(set(" ".join(batches[1]).split())) + 2


def test_word_level_tokenizers_fall_back_to_the_tokenizer(tiny_bert_dir):
    from distil.tokenization import build_word_tokenizer

    tokenizer = build_word_tokenizer(["a good movie", "a bad movie ."])
    assert not WordCacheEncoder.supports(tokenizer)  # its regex pre-tokenizer is not a plain split


def test_word_table_encodes_a_column_as_the_tokenizer_does(tiny_bert_dir):
    import pyarrow as pa
    from transformers import AutoTokenizer

    from distil.encoding import WordTable, distinct_words

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    sentences = _sentences(80) + ["", "  two  spaces ", "The MOVIE, it's [MASK] good !", "brilliant fun " * 40]
    column = pa.chunked_array([pa.array(sentences[:50]), pa.array(sentences[50:])])
    table = WordTable(tokenizer, max_length=16, words=distinct_words(column[:60]))  # the rest: words seen later
    input_ids, lengths = table.encode(column)
    expected = tokenizer(sentences, truncation=True, max_length=16)["input_ids"]
    assert input_ids.type == pa.list_(pa.int32())
    assert input_ids.to_pylist() == expected
    assert lengths.tolist() == [len(ids) for ids in expected]
    assert distinct_words(pa.array(["a b", "b c a"])).to_pylist() == ["a", "b", "c"]


def test_encode_dataset_adds_ids_and_lengths_and_keeps_every_column(tiny_bert_dir):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from distil.encoding import WordTable, arrow_column, distinct_words, encode_dataset, iter_texts

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    sentences = _sentences(40)
    data = Dataset.from_dict({"sentence": sentences, "label": list(range(40))}).select(range(39, -1, -2))
    assert arrow_column(data, "label").to_pylist() == list(range(39, -1, -2))
    assert list(iter_texts(arrow_column(data, "sentence"), chunk_size=3)) == sentences[39::-2]
    table = WordTable(tokenizer, 12, distinct_words(arrow_column(data, "sentence")))
    expected = tokenizer(sentences[39::-2], truncation=True, max_length=12)["input_ids"]
    for encoded in (
        encode_dataset(data, tokenizer, 12, table=table, batch_size=7),
        encode_dataset(data, tokenizer, 12, table=None),  # the tokenizer's own batched map
    ):
        assert set(encoded.column_names) == {"sentence", "label", "input_ids", "length"}
        assert encoded["input_ids"] == expected
        assert encoded["length"] == [len(ids) for ids in expected]
        assert encoded["label"] == list(range(39, -1, -2))
