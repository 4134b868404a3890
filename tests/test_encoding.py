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


def test_word_level_tokenizers_fall_back_to_the_tokenizer(tiny_bert_dir):
    from distil.tokenization import build_word_tokenizer

    tokenizer = build_word_tokenizer(["a good movie", "a bad movie ."])
    assert not WordCacheEncoder.supports(tokenizer)  # its regex pre-tokenizer is not a plain split
