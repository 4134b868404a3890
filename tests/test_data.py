import csv
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from datasets import ClassLabel, Features, Value

from distil.data import TSVFormatError, label_names_of, load_data, load_sst2, read_glue_tsv
from distil.errors import InputError

from .conftest import write_tsv


def _write(tmp_path, content: bytes, name="train.tsv"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_real_sst2_counts(sst2_dir, tmp_path):
    splits = load_sst2(data_dir=str(sst2_dir), cache_dir=str(tmp_path))
    assert set(splits) == {"train", "validation"}
    assert len(splits["train"]) == 67_349
    assert len(splits["validation"]) == 872
    assert Counter(splits["train"]["label"]) == {0: 29_780, 1: 37_569}
    assert Counter(splits["validation"]["label"]) == {0: 428, 1: 444}
    assert splits["train"].features["label"] == ClassLabel(names=["negative", "positive"])
    assert splits["train"][0]["sentence"] == "hide new secretions from the parental units"


def test_second_load_reuses_arrow_cache(toy_data_dir, tmp_path):
    first = load_sst2(data_dir=str(toy_data_dir), cache_dir=str(tmp_path))
    second = load_sst2(data_dir=str(toy_data_dir), cache_dir=str(tmp_path))
    assert first["train"]._fingerprint == second["train"]._fingerprint
    assert second["train"].cache_files, "TSV data should be Arrow-backed so later maps are cached"


def test_caps(toy_data_dir, tmp_path):
    splits = load_sst2(data_dir=str(toy_data_dir), cache_dir=str(tmp_path), max_train_samples=5, max_eval_samples=3)
    assert (len(splits["train"]), len(splits["validation"])) == (5, 3)


def test_columns_in_either_order_crlf_and_quotes(tmp_path):
    path = _write(tmp_path, b'label\tsentence\r\n1\t"a quoted" film \'s fine\r\n0\tbad\r\n')
    assert read_glue_tsv(str(path)).to_dict() == {"sentence": ['"a quoted" film \'s fine', "bad"], "label": [1, 0]}


def test_extra_columns_are_ignored(tmp_path):
    path = _write(tmp_path, b"idx\tsentence\tlabel\n0\tgood\t1\n")
    assert read_glue_tsv(str(path)).to_dict() == {"sentence": ["good"], "label": [1]}


def run_teacher_stage(data_dir, out, model_dir):
    """The teacher stage on `data_dir`, as `recipes/train_teacher.py` calls it: the first stage to read the data."""
    from transformers import TrainingArguments

    from distil.configs import DataArguments, parse_args
    from distil.teacher import TeacherArguments, train_teacher

    args = ["--model_name_or_path", str(model_dir), "--data_dir", str(data_dir), "--output_dir", str(out),
            "--max_steps", "1", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]  # fmt: skip
    return train_teacher(*parse_args(TeacherArguments, DataArguments, TrainingArguments, args=args))


BAD_TSV = [
    pytest.param(b"text\tlabel\ngood\t1\n", ":1: missing column 'sentence' in header ['text', 'label']", id="missing-column"),
    pytest.param(b"sentence\tlabel\ngood\t1\nbad\t2\n", ":3: label must be 0 or 1 (negative, positive), got '2'", id="unknown-label"),
    pytest.param(b"sentence\tlabel\ngood\t1\nbad\tnegative\n", ":3: label must be 0 or 1 (negative, positive), got 'negative'", id="label-name"),
    pytest.param(b"sentence\tlabel\ngood\t1\n \t0\n", ":3: empty sentence", id="empty-sentence"),
    pytest.param(b"sentence\tlabel\ngood\t1\nbad\t0\textra\n", ":3: expected 2 tab-separated fields, found 3", id="field-count"),
    pytest.param(b"sentence\tlabel\ngood\t1\ncaf\xe9\t0\n", ":3: bytes that are not UTF-8 at byte offset 25", id="not-utf8"),
    pytest.param(b"", ": file is empty", id="empty-file"),
    pytest.param(b"\xef\xbb\xbf", ": file is empty", id="bom-only"),
    pytest.param(b"sentence\tlabel\r\n", ": no rows after the header", id="header-only"),
]  # fmt: skip


@pytest.mark.parametrize("content, message", BAD_TSV)
def test_bad_tsv_is_one_line_naming_file_and_line_and_writes_nothing(tiny_bert_dir, tmp_path, content, message):
    data_dir = tmp_path / "data"
    write_tsv(data_dir / "dev.tsv", [("good", 1)])
    _write(data_dir, content)
    out = tmp_path / "teacher"
    with pytest.raises(TSVFormatError) as excinfo:
        run_teacher_stage(data_dir, out, tiny_bert_dir)
    assert str(excinfo.value) == f"{data_dir / 'train.tsv'}{message}"
    assert not out.exists()


def test_crlf_quotes_and_either_column_order_load(tmp_path):
    """Valid GLUE variants: CRLF line endings, quote characters kept as text, `label<TAB>sentence`, a UTF-8 BOM."""
    data_dir = tmp_path / "data"
    _write(data_dir, b"\xef\xbb\xbflabel\tsentence\r\n1\t\"a quoted\" film 's fine\r\n0\t''bad'' , \"dull\r\n")
    _write(data_dir, b'sentence\tlabel\n"great"\t1\n', name="dev.tsv")
    splits = load_sst2(data_dir=str(data_dir), cache_dir=str(tmp_path / "cache"))
    assert splits["train"]["sentence"] == ['"a quoted" film \'s fine', "''bad'' , \"dull"]
    assert splits["train"]["label"] == [1, 0]
    assert splits["validation"]["sentence"] == ['"great"'] and splits["validation"]["label"] == [1]


def test_bad_file_writes_nothing(tmp_path):
    data_dir = tmp_path / "data"
    write_tsv(data_dir / "train.tsv", [("good", 1)])
    (data_dir / "dev.tsv").write_bytes(b"sentence\tlabel\nbad\t7\n")
    cache = tmp_path / "cache"
    with pytest.raises(TSVFormatError, match=r"dev\.tsv:2"):
        load_sst2(data_dir=str(data_dir), cache_dir=str(cache))
    leftovers = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert leftovers == []


def test_missing_file_or_directory_is_named(tiny_bert_dir, tmp_path):
    write_tsv(tmp_path / "train.tsv", [("good", 1)])
    out = tmp_path / "teacher"
    with pytest.raises(InputError) as excinfo:
        run_teacher_stage(tmp_path, out, tiny_bert_dir)
    assert str(excinfo.value) == f"{tmp_path / 'dev.tsv'}: not found (data_dir needs train.tsv, dev.tsv)"
    with pytest.raises(InputError) as excinfo:
        run_teacher_stage(tmp_path / "nope", out, tiny_bert_dir)
    assert str(excinfo.value) == f"data_dir: {tmp_path / 'nope'}: no such directory"
    assert not out.exists()


def test_hub_dataset_is_normalised(monkeypatch):
    """`stanfordnlp/sst2` on the Hub has an extra `idx` column and a plain int label; both are normalised."""
    from datasets import Dataset, DatasetDict, Features, Value

    import distil.data

    hub_features = Features({"idx": Value("int32"), "sentence": Value("string"), "label": Value("int64")})
    fake = DatasetDict(
        {
            split: Dataset.from_dict({"idx": [0, 1], "sentence": ["good .", "bad ."], "label": [1, 0]}, hub_features)
            for split in ("train", "validation", "test")
        }
    )
    calls = []
    monkeypatch.setattr(distil.data, "load_dataset", lambda *args, **kwargs: calls.append(args) or fake)
    splits = load_sst2(dataset_name="stanfordnlp/sst2", max_train_samples=1)
    assert calls == [("stanfordnlp/sst2", None)]
    assert set(splits) == {"train", "validation"}
    assert splits["train"].column_names == ["sentence", "label"] and len(splits["train"]) == 1
    assert splits["validation"].features["label"] == ClassLabel(names=["negative", "positive"])


def test_hub_dataset_without_label_column_is_named(monkeypatch):
    from datasets import Dataset, DatasetDict

    import distil.data

    fake = DatasetDict({s: Dataset.from_dict({"text": ["good ."]}) for s in ("train", "validation")})
    monkeypatch.setattr(distil.data, "load_dataset", lambda *args, **kwargs: fake)
    with pytest.raises(InputError, match=r"^dataset_name: some/data\[train\]: missing column 'sentence'"):
        load_sst2(dataset_name="some/data")


TREC = Path(__file__).resolve().parents[2] / "shared" / "data" / "trec" / "train.csv"
TREC_COARSE = {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896}


def load_trec(tmp_path, **kwargs):
    kwargs = {"text_column": "question", "label_column": "coarse_label", **kwargs}
    return load_data(train_file=str(TREC), cache_dir=str(tmp_path), **kwargs)


def test_real_trec_csv_with_a_stratified_validation_split_from_train(tmp_path):
    assert TREC.is_file(), f"real TREC expected at {TREC}"
    splits = load_trec(tmp_path)
    names = label_names_of(splits)
    assert names == sorted(TREC_COARSE)
    assert splits["train"].features == Features({"sentence": Value("string"), "label": ClassLabel(names=names)})
    assert (len(splits["train"]), len(splits["validation"])) == (5452 - 545, 545)
    counts = {split: Counter(names[i] for i in splits[split]["label"]) for split in splits}
    assert counts["train"] + counts["validation"] == TREC_COARSE
    for name, n in TREC_COARSE.items():  # stratified: every class holds ~10% of its rows in validation
        assert abs(counts["validation"][name] - n / 10) <= 1, (name, counts["validation"][name])
    with open(TREC, encoding="utf-8", newline="") as f:  # the split partitions train: every question once
        questions = Counter(row["question"] for row in csv.DictReader(f))
    assert Counter(splits["train"]["sentence"]) + Counter(splits["validation"]["sentence"]) == questions
    again = load_trec(tmp_path)  # seeded: the same split, from the cache
    assert again["validation"]["sentence"] == splits["validation"]["sentence"]
    assert again["train"]._fingerprint == splits["train"]._fingerprint and again["train"].cache_files
    other = load_trec(tmp_path, validation_split_seed=1)
    assert other["validation"]["sentence"] != splits["validation"]["sentence"]


def test_real_trec_fine_labels_and_percentage(tmp_path):
    splits = load_trec(tmp_path, label_column="fine_label", validation_split_percentage=20)
    names = label_names_of(splits)
    assert len(names) == 50 and "NUM:dist" in names and names == sorted(names)
    assert len(splits["validation"]) == round(5452 * 0.2)


def _rows():
    return {"text": ["where is paris", "who wrote it", "how far is it", "what is 007"], "intent": ["LOC", "HUM", "NUM", "ENTY"]}  # fmt: skip


def _write_table(path, columns: dict):
    import pandas as pd

    frame = pd.DataFrame(columns)
    suffix = path.suffix
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_local_files_in_each_format(tmp_path, suffix):
    train = _write_table(tmp_path / f"train{suffix}", _rows())
    dev = _write_table(tmp_path / f"dev{suffix}", {"text": ["who is she", "where is rome"], "intent": ["HUM", "LOC"]})
    splits = load_data(
        train_file=str(train), validation_file=str(dev), text_column="text", label_column="intent",
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert label_names_of(splits) == ["ENTY", "HUM", "LOC", "NUM"]
    assert splits["train"].column_names == ["sentence", "label"]
    assert splits["train"]["sentence"] == _rows()["text"]  # "007" stays text
    assert splits["train"]["label"] == [2, 1, 3, 0]
    assert splits["validation"]["label"] == [1, 2]


def test_integer_labels_named_by_label_names_or_by_their_digits(tmp_path):
    path = _write_table(tmp_path / "train.jsonl", {"text": ["a", "b", "c", "d"], "y": [2, 0, 1, 2]})
    named = load_data(
        train_file=str(path), text_column="text", label_column="y", class_names=["neg", "neu", "pos"],
        validation_split_percentage=25, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert label_names_of(named) == ["neg", "neu", "pos"]
    rows = {row["sentence"]: row["label"] for split in named.values() for row in split}
    assert rows == {"a": 2, "b": 0, "c": 1, "d": 2}
    plain = load_data(train_file=str(path), text_column="text", label_column="y", cache_dir=str(tmp_path / "cache"))
    assert label_names_of(plain) == ["0", "1", "2"]


def test_label_names_fix_the_order_of_named_labels(tmp_path):
    path = _write_table(tmp_path / "train.csv", _rows())
    splits = load_data(
        train_file=str(path), text_column="text", label_column="intent", class_names=["NUM", "LOC", "HUM", "ENTY"],
        validation_file=str(path), cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    assert label_names_of(splits) == ["NUM", "LOC", "HUM", "ENTY"] and splits["train"]["label"] == [1, 2, 0, 3]


def _error(tmp_path, train_columns, validation_columns=None, suffix=".csv", **kwargs) -> tuple[str, str]:
    train = _write_table(tmp_path / f"train{suffix}", train_columns)
    if validation_columns is not None:
        kwargs["validation_file"] = str(_write_table(tmp_path / f"dev{suffix}", validation_columns))
    kwargs = {"text_column": "text", "label_column": "intent", **kwargs}
    with pytest.raises(InputError) as excinfo:
        load_data(train_file=str(train), cache_dir=str(tmp_path / "cache"), **kwargs)
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value), str(train)


def test_csv_without_the_text_column_names_file_and_field(tmp_path):
    message, train = _error(tmp_path, _rows(), text_column="question")
    assert message == f"{train}: missing column 'question' (text_column; found ['text', 'intent'])"


def test_one_class_only_names_file_and_field(tmp_path):
    message, train = _error(tmp_path, {"text": ["a", "b"], "intent": ["LOC", "LOC"]})
    assert (
        message == f"{train}: column 'intent' (label_column) has one class only ('LOC'); a classifier needs 2 or more"
    )


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_empty_text_names_file_and_row(tmp_path, suffix):
    message, train = _error(tmp_path, {"text": ["a", "b", "  "], "intent": ["LOC", "HUM", "LOC"]}, suffix=suffix)
    assert message == f"{train}: row 3: empty text in column 'text'"


def test_missing_text_in_a_csv_is_an_empty_text(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,intent\na,LOC\n,HUM\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: row 2: empty text in column 'text'$"):
        load_data(train_file=str(path), text_column="text", label_column="intent", cache_dir=str(tmp_path / "c"))


def test_validation_label_not_in_train_names_file_and_row(tmp_path):
    message, _ = _error(tmp_path, _rows(), {"text": ["x", "y"], "intent": ["HUM", "DESC"]})
    assert message == (
        f"{tmp_path / 'dev.csv'}: row 2: label 'DESC' in column 'intent' is not one of the train labels "
        "(ENTY, HUM, LOC, NUM)"
    )


def test_missing_label_and_bad_label_ids_are_named(tmp_path):
    message, train = _error(tmp_path, {"text": ["a", "b"], "intent": ["LOC", None]}, suffix=".jsonl")
    assert message == f"{train}: row 2: no label in column 'intent'"
    message, train = _error(tmp_path, {"text": ["a", "b"], "intent": [0, 3]}, suffix=".jsonl", class_names=["x", "y"])
    assert message == f"{train}: column 'intent' holds 3, not an id of the 2 class names (x, y)"


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"^train_file: .*train\.txt: unknown file type '\.txt'; use \.csv, "):
        load_data(train_file=str(tmp_path / "train.txt"))
    with pytest.raises(InputError, match=r"^train_file: .*nope\.csv: no such file$"):
        load_data(train_file=str(tmp_path / "nope.csv"))


def test_load_data_from_default_args_is_sst2(monkeypatch, sst2_dir, tmp_path):
    """The default `DataArguments` read SST-2 exactly as before: same columns, names and cache key."""
    from distil.configs import DataArguments
    from distil.data import data_fingerprint, load_data_from_args, tsv_fingerprint

    args = DataArguments(data_dir=str(sst2_dir))
    assert data_fingerprint(args) == "tsv:" + tsv_fingerprint(str(sst2_dir))
    splits = load_data_from_args(args, cache_dir=str(tmp_path))
    assert label_names_of(splits) == ["negative", "positive"] and len(splits["validation"]) == 872
    assert os.path.dirname(splits["train"].cache_files[0]["filename"]).startswith(
        str(tmp_path / "distil_sst2_tsv" / tsv_fingerprint(str(sst2_dir)))
    )
