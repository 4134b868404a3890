"""`distil.transfer_set` end to end on toy data with a tiny teacher: the output contract, cache hits, --no_augment."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
from datasets import ClassLabel, List, Value, load_from_disk

import distil.augment as augment
import distil.labeling as labeling
from distil.augment import AugmentationArguments
from distil.configs import ConfigError, DataArguments, parse_args
from distil.data import LABEL_NAMES, read_glue_tsv
from distil.transfer_set import TransferSetArguments, build_transfer_set, save_atomically

from .conftest import toy_rows, write_tsv


def run_stage(args: list[str]):
    """The stage as `recipes/augment.py` calls it: parse a command line, call `build_transfer_set`."""
    return build_transfer_set(*parse_args(TransferSetArguments, AugmentationArguments, DataArguments, args=args))


def _args(toy_data_dir, tiny_bert_dir, out, *extra):
    return [
        "--teacher_model", str(tiny_bert_dir),
        "--data_dir", str(toy_data_dir),
        "--output_dir", str(out),
        "--n_iter", "5",
        "--max_seq_length", "32",
        "--label_batch_size", "16",
        *extra,
    ]  # fmt: skip


def test_recipe_writes_the_contract(toy_data_dir, tiny_bert_dir, tmp_path):
    out = tmp_path / "transfer"
    tsv = tmp_path / "train.tsv"
    run_stage(_args(toy_data_dir, tiny_bert_dir, out, "--export_tsv", str(tsv), "--seed", "1"))
    splits = load_from_disk(str(out))
    assert set(splits) == {"train", "validation"}
    source = read_glue_tsv(str(toy_data_dir / "train.tsv"))
    train, validation = splits["train"], splits["validation"]
    for ds in (train, validation):
        assert ds.column_names == ["sentence", "idx", "label", "teacher_logits"]
        assert ds.features["idx"] == Value("int64")
        assert ds.features["label"] == ClassLabel(names=LABEL_NAMES)
        assert ds.features["teacher_logits"] == List(Value("float32"), length=2)
    labels, idx = np.array(train["label"]), np.array(train["idx"])
    originals = np.flatnonzero(labels != -1)
    assert len(originals) == len(source["sentence"]) and len(train) > 3 * len(originals)
    assert idx[originals].tolist() == list(range(len(originals)))  # one original per source row, in order
    assert labels[originals].tolist() == source["label"]
    assert [train[int(i)]["sentence"] for i in originals[:5]] == [s.lower() for s in source["sentence"][:5]]
    assert (np.diff(idx) >= 0).all()  # samples follow their source row
    assert any("[MASK]" in s for s in train["sentence"])
    assert all(s.replace("[MASK]", "") == s.replace("[MASK]", "").lower() for s in train["sentence"])
    assert validation["label"] == read_glue_tsv(str(toy_data_dir / "dev.tsv"))["label"]
    assert validation["idx"] == list(range(len(validation)))
    assert len(tsv.read_text().splitlines()) == len(train) + 1
    assert os.path.isfile(out / "run_args.json")
    assert sorted(os.listdir(tmp_path)) == ["train.tsv", "transfer"]  # no temporary leftovers


def _cache_files() -> set[str]:
    return set(glob.glob(os.path.join(os.environ["HF_DATASETS_CACHE"], "**", "cache-*.arrow"), recursive=True))


def test_second_run_hits_the_cache(tiny_bert_dir, tmp_path):
    data_dir = tmp_path / "data"  # data no other test has seen: the first run computes every step
    write_tsv(data_dir / "train.tsv", toy_rows(50, seed=11))
    write_tsv(data_dir / "dev.tsv", toy_rows(10, seed=12))
    args = _args(data_dir, tiny_bert_dir, tmp_path / "out")  # in-process maps: their module caches are visible
    augment._NLP.clear()
    labeling._TEACHERS.clear()
    first = run_stage(args)
    assert augment._NLP and labeling._TEACHERS  # the first run tagged and labelled
    files = _cache_files()
    augment._NLP.clear()
    labeling._TEACHERS.clear()
    second = run_stage(args)
    assert not augment._NLP, "second run loaded spaCy: the tagging map was not a cache hit"
    assert not labeling._TEACHERS, "second run loaded the teacher: the labelling map was not a cache hit"
    assert _cache_files() == files
    assert second["train"]._fingerprint == first["train"]._fingerprint
    assert second["train"]["sentence"] == first["train"]["sentence"]


def test_no_augment_labels_the_original_train_set(toy_data_dir, tiny_bert_dir, tmp_path):
    augment._NLP.clear()
    splits = run_stage(_args(toy_data_dir, tiny_bert_dir, tmp_path / "out", "--no_augment"))
    source = read_glue_tsv(str(toy_data_dir / "train.tsv"))
    train = splits["train"]
    assert not augment._NLP  # no spaCy
    assert train["sentence"] == [" ".join(s.lower().split()) for s in source["sentence"]]
    assert train["label"] == source["label"] and train["idx"] == list(range(len(train)))
    assert np.array(train["teacher_logits"]).shape == (len(train), 2)


def test_bad_inputs_fail_with_one_line_naming_the_field(toy_data_dir, tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="spacy_model: 'nope'"):
        run_stage(_args(toy_data_dir, tiny_bert_dir, tmp_path / "o", "--spacy_model", "nope"))
    with pytest.raises(ConfigError, match="teacher_model: cannot load"):
        run_stage(_args(toy_data_dir, tmp_path / "missing-teacher", tmp_path / "o"))
    with pytest.raises(SystemExit):
        run_stage(_args(toy_data_dir, tiny_bert_dir, tmp_path / "o", "--p_mask", "2"))
    assert not (tmp_path / "o").exists()


def test_output_dir_is_replaced_atomically(tmp_path):
    from datasets import Dataset, DatasetDict

    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    save_atomically(DatasetDict(train=Dataset.from_dict({"a": [1]})), str(out), TransferSetArguments())
    assert not (out / "stale.txt").exists() and load_from_disk(str(out))["train"]["a"] == [1]
    assert sorted(os.listdir(tmp_path)) == ["out"]
