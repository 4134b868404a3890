from collections import Counter

import pytest
from datasets import ClassLabel

from distil.data import TSVFormatError, load_sst2, read_glue_tsv
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
    assert read_glue_tsv(str(path)) == {"sentence": ['"a quoted" film \'s fine', "bad"], "label": [1, 0]}


def test_extra_columns_are_ignored(tmp_path):
    path = _write(tmp_path, b"idx\tsentence\tlabel\n0\tgood\t1\n")
    assert read_glue_tsv(str(path)) == {"sentence": ["good"], "label": [1]}


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
