"""Teacher logits: shape, dtype and values (un-sorted correctly), caching without loading the teacher, TSV export."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from datasets import Dataset, List, Value, load_from_disk

import distil.labeling as labeling
from distil.errors import InputError
from distil.labeling import add_classifier_logits, export_tsv, read_tsv

from .conftest import toy_rows


def _sentences(n: int = 50) -> Dataset:
    rows = toy_rows(n, seed=4)
    # mixed lengths, so the length-sorted batches reorder rows
    return Dataset.from_dict({"sentence": [s if i % 3 else s + " " + s for i, (s, _) in enumerate(rows)]})


def _reference_logits(model_dir, sentences) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return np.concatenate(
            [model(**tokenizer([s], return_tensors="pt")).logits.numpy() for s in sentences]  # one row at a time
        )


def test_teacher_logits_shape_dtype_and_values(tiny_bert_dir):
    ds = _sentences()
    out = add_classifier_logits(ds, str(tiny_bert_dir), batch_size=8, chunk_size=20, precision="fp32")
    assert out.features["teacher_logits"] == List(Value("float32"), length=2)
    logits = out.with_format("numpy")[:]["teacher_logits"]
    assert logits.shape == (len(ds), 2) and logits.dtype == np.float32
    assert out["sentence"] == ds["sentence"]
    np.testing.assert_allclose(logits, _reference_logits(tiny_bert_dir, ds["sentence"]), atol=1e-5)


def test_model_object_gives_the_same_logits(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    model.train()
    ds = _sentences(20)
    by_object = add_classifier_logits(ds, model, batch_size=4, precision="fp32")
    by_path = add_classifier_logits(ds, str(tiny_bert_dir), batch_size=16, precision="fp32")
    np.testing.assert_allclose(by_object["teacher_logits"], by_path["teacher_logits"], atol=1e-5)
    assert model.training  # the caller's mode is restored


def test_cache_hit_does_not_load_the_teacher(tiny_bert_dir, tmp_path):
    _sentences(30).save_to_disk(tmp_path / "ds")
    ds = load_from_disk(tmp_path / "ds")  # on disk, so map caches
    labeling._CLASSIFIERS.clear()
    first = add_classifier_logits(ds, str(tiny_bert_dir), batch_size=8)
    assert labeling._CLASSIFIERS  # computed: the teacher was loaded
    labeling._CLASSIFIERS.clear()
    second = add_classifier_logits(ds, str(tiny_bert_dir), batch_size=32)  # batch size is not part of the key
    assert not labeling._CLASSIFIERS
    assert second._fingerprint == first._fingerprint
    assert second["teacher_logits"] == first["teacher_logits"]


def test_fingerprint_follows_the_teacher_weights(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        model.classifier.bias += 1.0
    model.save_pretrained(tmp_path / "other")
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path / "other")
    ds = _sentences(10)
    a = add_classifier_logits(ds, str(tiny_bert_dir), precision="fp32")
    b = add_classifier_logits(ds, str(tmp_path / "other"), precision="fp32")
    assert a._fingerprint != b._fingerprint
    np.testing.assert_allclose(np.array(b["teacher_logits"]) - np.array(a["teacher_logits"]), 1.0, atol=1e-5)


def test_a_folder_rewritten_within_the_process_is_loaded_again(tiny_bert_dir, tmp_path):
    """Models are kept by what the folder holds, not by its path: a model retrained into the same folder (as
    `benchmarks/gpu.py` retrains the student) is scored as it is now, and its logits are cached under its own
    fingerprint, never the old model's."""
    import shutil

    from transformers import AutoModelForSequenceClassification

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert_dir, folder)
    _sentences(12).save_to_disk(tmp_path / "ds")
    ds = load_from_disk(tmp_path / "ds")  # on disk, so the map caches
    before = np.array(add_classifier_logits(ds, str(folder), precision="fp32")["teacher_logits"])
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.bias += 1.0
    model.save_pretrained(folder)  # the same path, other weights, in the same process
    after = np.array(add_classifier_logits(ds, str(folder), precision="fp32")["teacher_logits"])
    np.testing.assert_allclose(after - before, 1.0, atol=1e-5)
    np.testing.assert_allclose(after, _reference_logits(folder, ds["sentence"]), atol=1e-5)
    labeling._CLASSIFIERS.clear()  # a fresh process: the cache of the rewritten folder holds its own logits
    again = np.array(add_classifier_logits(ds, str(folder), precision="fp32")["teacher_logits"])
    assert not labeling._CLASSIFIERS and np.array_equal(again, after)


def test_tsv_round_trip(tiny_bert_dir, tmp_path):
    out = add_classifier_logits(_sentences(40), str(tiny_bert_dir))
    path = tmp_path / "sub" / "train.tsv"
    assert export_tsv(out, str(path)) == 40
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "sentence\tscores"
    assert all(re.fullmatch(r"[^\t]+\t-?\d+\.\d{6} -?\d+\.\d{6}", line) for line in lines[1:])
    sentences, scores = read_tsv(str(path))
    assert sentences == out["sentence"]
    np.testing.assert_allclose(scores, np.array(out["teacher_logits"]), atol=1e-6)


def test_worker_processes_give_the_same_logits(tiny_bert_dir):
    ds = _sentences(48)
    one = add_classifier_logits(ds, str(tiny_bert_dir), batch_size=4, chunk_size=8, precision="fp32")
    two = add_classifier_logits(ds, str(tiny_bert_dir), batch_size=4, chunk_size=8, precision="fp32", num_proc=2)
    np.testing.assert_allclose(two["teacher_logits"], one["teacher_logits"], atol=1e-5)
    assert two["sentence"] == ds["sentence"]


def test_missing_text_column_names_it(tiny_bert_dir):
    with pytest.raises(InputError, match="text_column: 'text' is not a column"):
        add_classifier_logits(_sentences(4), str(tiny_bert_dir), text_column="text")


def test_export_tsv_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "transfer.tsv"
    path.write_text("sentence\tscores\nold\t0.000000 1.000000\n")
    bad = Dataset.from_dict({"sentence": ["fine", "a\ttab"], "teacher_logits": [[0.0, 1.0], [1.0, 0.0]]})
    with pytest.raises(InputError, match="export_tsv: .*transfer.tsv: a sentence with a tab or newline"):
        export_tsv(bad, str(path))
    assert path.read_text() == "sentence\tscores\nold\t0.000000 1.000000\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transfer.tsv"]
