"""The task's data as a `DatasetDict` (`train`, `validation`) of two columns: `sentence` (string) and `label`
(`ClassLabel`, whose names become the teacher's and student's `id2label`).

The data comes from one of three places (`DataArguments`):
- GLUE SST-2 TSVs in `data_dir` (`train.tsv`, `dev.tsv`), validated strictly (one-line errors naming file and line)
  and stored once as Arrow under the datasets cache, keyed by the files' SHA-256;
- local files `train_file`/`validation_file` in CSV, TSV, JSON Lines or Parquet, read by datasets' own builders;
- a Hub dataset `dataset_name` (`dataset_config_name`).
`text_column` and `label_column` name the columns; labels given as names or integers become a `ClassLabel`. Without
a validation split, a seeded (and, where every class allows it, stratified) `validation_split_percentage` of train
becomes one. Every check runs on Arrow columns (`pyarrow.compute`), never row by row in Python.
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import re
import tempfile

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from accelerate import PartialState
from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, Value, load_dataset, load_from_disk
from datasets import config as datasets_config
from datasets.exceptions import DatasetGenerationError
from datasets.table import InMemoryTable

from distil.encoding import arrow_column
from distil.errors import InputError, TSVFormatError
from distil.hub import hub_revision, load_errors
from distil.records import files_fingerprint
from distil.utils import atomic_directory

SST2_LABEL_NAMES = ["negative", "positive"]
SST2_FEATURES = Features({"sentence": Value("string"), "label": ClassLabel(names=SST2_LABEL_NAMES)})
# GLUE layout: split -> file name
TSV_FILES = {"train": "train.tsv", "validation": "dev.tsv"}
# The csv builder's arguments for a TSV: tab-separated, no quoting, text kept as text
TSV_ARGUMENTS = {"sep": "\t", "quoting": csv.QUOTE_NONE, "keep_default_na": False}
# ... and for a GLUE file: both columns read as text, a blank line kept as a row (so row N stays line N + 1)
GLUE_TSV = {**TSV_ARGUMENTS, "skip_blank_lines": False, "converters": {"sentence": str, "label": str}}

logger = logging.getLogger("distil")


def read_glue_tsv(path: str, cache_dir: str | None = None) -> Dataset:
    """A GLUE `sentence<TAB>label` file as `sentence` and `label` (SST-2's `ClassLabel`): read by datasets' csv
    builder (`GLUE_TSV`: columns found by header name, tab only, no quoting, LF or CRLF, a UTF-8 BOM allowed), then
    checked on Arrow columns. A bad file is one `TSVFormatError` naming the file and line."""
    try:
        raw = load_dataset("csv", data_files={"train": path}, split="train", cache_dir=cache_dir, **GLUE_TSV)
    except DatasetGenerationError as e:
        raise tsv_error(path, e.__cause__ or e) from None
    except ValueError as e:  # the split has no rows: `Instruction "train" corresponds to no data!`
        raise TSVFormatError(f"{path}: no rows after the header") from e
    for column in ("sentence", "label"):
        if column not in raw.column_names:
            raise TSVFormatError(f"{path}:1: missing column {column!r} in header {raw.column_names!r}")
    sentences, labels = arrow_column(raw, "sentence"), pc.utf8_trim_whitespace(arrow_column(raw, "label"))
    empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(sentences)), 0)
    row = _first(pc.or_(empty, pc.invert(pc.is_in(labels, value_set=pa.array(["0", "1"])))))
    if row is not None:  # row N of the data is line N + 1 (no quoting: no line breaks inside a field)
        if empty[row].as_py():
            raise TSVFormatError(f"{path}:{row + 2}: empty sentence")
        raise TSVFormatError(
            f"{path}:{row + 2}: label must be 0 or 1 ({', '.join(SST2_LABEL_NAMES)}), got {labels[row].as_py()!r}"
        )
    table = pa.table(
        {"sentence": pc.cast(sentences, pa.string()), "label": pc.cast(pc.equal(labels, "1"), pa.int64())}
    )
    return Dataset(InMemoryTable(table), info=DatasetInfo(features=SST2_FEATURES))


def tsv_error(path: str, error: BaseException) -> TSVFormatError:
    """One line for a TSV the csv builder could not read: an empty file, a line with another number of fields, or
    bytes that are not UTF-8 (located in the file itself: the parser's offset counts from its buffer)."""
    if isinstance(error, UnicodeDecodeError):
        with open(path, "rb") as f:
            raw = f.read()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            return TSVFormatError(f"{path}:{line}: bytes that are not UTF-8 at byte offset {e.start}")
    if isinstance(error, pd.errors.EmptyDataError):
        return TSVFormatError(f"{path}: file is empty")
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if fields:
        expected, line, found = fields.groups()
        return TSVFormatError(f"{path}:{line}: expected {expected} tab-separated fields, found {found}")
    reason = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), type(error).__name__)
    return TSVFormatError(f"{path}: cannot be read as a GLUE TSV: {reason}")


def load_sst2_tsv(data_dir: str, cache_dir: str | None = None) -> DatasetDict:
    """Load `train.tsv` and `dev.tsv` from `data_dir`, stored once as Arrow so later maps can be cached."""
    if not os.path.isdir(data_dir):
        raise InputError(f"data_dir: {data_dir}: no such directory")
    paths = {split: os.path.join(data_dir, name) for split, name in TSV_FILES.items()}
    for path in paths.values():
        if not os.path.isfile(path):
            raise InputError(f"{path}: not found (data_dir needs {', '.join(TSV_FILES.values())})")
    cache_root = cache_dir or datasets_config.HF_DATASETS_CACHE
    target = os.path.join(str(cache_root), "distil_sst2_tsv", tsv_fingerprint(data_dir))
    with PartialState().main_process_first():  # the main process builds the cache; the others wait, then read it
        if not os.path.isdir(target):
            # the csv builder's own cache is temporary: a bad file leaves nothing, a good one is stored once, here
            with tempfile.TemporaryDirectory(prefix="distil-tsv-") as raw_cache, atomic_directory(target) as tmp:
                splits = DatasetDict({split: read_glue_tsv(path, raw_cache) for split, path in paths.items()})
                splits.save_to_disk(tmp)
    return load_from_disk(target)


def tsv_fingerprint(data_dir: str) -> str:
    """SHA-256 (first 16 hex digits) of `data_dir`'s `train.tsv` and `dev.tsv`, memoized on their size and mtime."""
    paths = [os.path.join(data_dir, name) for name in TSV_FILES.values()]
    if not all(os.path.isfile(p) for p in paths):
        return "missing"
    return files_fingerprint(paths)


def data_fingerprint(data_args) -> str:
    """What a stage's data input is: the GLUE TSVs' hash, the local files' hash, or the Hub dataset's name and config
    with the commit it resolves to (a new commit upstream is a new input)."""
    if data_args.data_dir:
        return "tsv:" + tsv_fingerprint(data_args.data_dir)
    files = [f for f in (data_args.train_file, data_args.validation_file) if f]
    if files:
        return "files:" + (files_fingerprint(files) if all(os.path.isfile(p) for p in files) else "missing")
    name = data_args.dataset_name
    return f"hub:{name}:{data_args.dataset_config_name or ''}@{hub_revision(name, repo_type='dataset')}"


# The package's internal columns: every loader returns `TEXT_COLUMN` (string) and `LABEL_COLUMN` (ClassLabel).
TEXT_COLUMN, LABEL_COLUMN = "sentence", "label"
# Hub datasets whose labels may come as plain integers, and the names those integers stand for.
KNOWN_LABEL_NAMES = {"stanfordnlp/sst2": SST2_LABEL_NAMES, "sst2": SST2_LABEL_NAMES, "nyu-mll/glue:sst2": SST2_LABEL_NAMES,
                     "glue:sst2": SST2_LABEL_NAMES}  # fmt: skip
# File extension -> datasets builder and its arguments. TSV follows GLUE: tab-separated, no quoting.
FILE_BUILDERS = {
    ".csv": ("csv", {"keep_default_na": False}),
    ".tsv": ("csv", TSV_ARGUMENTS),
    ".jsonl": ("json", {}),
    ".json": ("json", {}),
    ".parquet": ("parquet", {}),
}


def label_names_of(splits: DatasetDict) -> list[str]:
    """The names of the data's labels, in id order (the `ClassLabel` of `train`)."""
    return list(splits["train"].features[LABEL_COLUMN].names)


def _file_builder(path: str, field: str, text_column: str) -> tuple[str, dict]:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FILE_BUILDERS:
        raise InputError(f"{field}: {path}: unknown file type {ext or '(none)'!r}; use {', '.join(FILE_BUILDERS)}")
    if not os.path.isfile(path):
        raise InputError(f"{field}: {path}: no such file")
    builder, kwargs = FILE_BUILDERS[ext]
    if builder == "csv":  # the text stays text ("007" is not the number 7), labels are read as pandas sees them
        kwargs = {**kwargs, "converters": {text_column: str}}
    return builder, kwargs


def _load_files(data_args, cache_dir: str | None) -> tuple[dict[str, Dataset], dict[str, str]]:
    """`train_file` (and `validation_file`) through datasets' builders; returns the splits and each one's source."""
    files = {"train": ("train_file", data_args.train_file)}
    if data_args.validation_file:
        files["validation"] = ("validation_file", data_args.validation_file)
    out, sources = {}, {}
    for split, (field, path) in files.items():
        builder, kwargs = _file_builder(path, field, data_args.text_column)
        try:
            ds = load_dataset(builder, data_files={split: path}, split=split, cache_dir=cache_dir, **kwargs)
        except Exception as e:  # a parser error from pandas, pyarrow or json: name the file, keep its first line
            reason = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise InputError(f"{path}: cannot be read as {builder}: {reason}") from None
        out[split], sources[split] = ds, path
    return out, sources


def _load_hub(data_args, cache_dir: str | None) -> tuple[dict[str, Dataset], dict[str, str]]:
    name, config = data_args.dataset_name, data_args.dataset_config_name
    hint = "set train_file (CSV, TSV, JSON Lines, Parquet) or data_dir (GLUE TSVs) to use local files instead"
    with load_errors("dataset_name", name, hint=hint):
        raw = load_dataset(name, config, cache_dir=cache_dir)
    if "train" not in raw:
        raise InputError(f"dataset_name: {name}: no 'train' split (found {list(raw)})")
    splits = {split: raw[split] for split in ("train", "validation") if split in raw}
    return splits, {split: f"dataset_name: {name}[{split}]" for split in splits}


def _first(mask: pa.ChunkedArray) -> int | None:
    """The index of the first true value in a boolean column, or None."""
    i = pc.index(pc.fill_null(mask, True), True).as_py()
    return None if i < 0 else i


def _where(source: str, row: int) -> str:
    """`file: row N` or `dataset_name: name[split]: row N`, N counting data rows from 1 (in a CSV or TSV without
    line breaks inside quotes, row N is line N + 1: the header is line 1)."""
    return f"{source}: row {row + 1}"


def _check_columns(ds: Dataset, source: str, text_column: str, label_column: str) -> None:
    for field, column in (("text_column", text_column), ("label_column", label_column)):
        if column not in ds.column_names:
            raise InputError(f"{source}: missing column {column!r} ({field}; found {ds.column_names})")
    if len(ds) == 0:
        raise InputError(f"{source}: no rows")
    text = arrow_column(ds, text_column)
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise InputError(f"{source}: column {text_column!r} (text_column) holds {text.type}, not text")
    row = _first(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(text)), 0))
    if row is not None:
        raise InputError(f"{_where(source, row)}: empty text in column {text_column!r}")


def _labels_of(ds: Dataset, source: str, label_column: str, class_names: list[str] | None, known: list | None):
    """The data's `ClassLabel`, and the raw value each id stands for, from the train split: the data's own
    `ClassLabel` when it has one; names (sorted); integers 0..N-1 named by `class_names` or a known dataset's names;
    other integers (sorted) named by their digits."""
    feature = ds.features[label_column]
    values = arrow_column(ds, label_column)
    row = _first(pc.is_null(values))
    if row is not None:
        raise InputError(f"{_where(source, row)}: no label in column {label_column!r}")
    unique = pc.unique(values).to_pylist()
    if isinstance(feature, ClassLabel) and not class_names:
        labels, raw = feature, list(range(feature.num_classes))
    elif isinstance(feature, ClassLabel):
        names = [feature.int2str(int(v)) for v in unique]
        labels = ClassLabel(names=list(class_names))
        raw = [feature.str2int(n) if n in feature.names else -1 for n in class_names]
        _check_known(names, labels.names, source, label_column)
    elif pa.types.is_integer(values.type):
        names = class_names or known
        if names is not None:
            labels, raw = ClassLabel(names=[str(n) for n in names]), list(range(len(names)))
            bad = sorted(set(unique) - set(raw))
            if bad:
                raise InputError(
                    f"{source}: column {label_column!r} holds {bad[0]}, not an id of the {len(names)} class names "
                    f"({', '.join(map(str, names))})"
                )
        else:
            raw = sorted(unique)
            labels = ClassLabel(names=[str(v) for v in raw])
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        if class_names:
            _check_known(unique, class_names, source, label_column)
        raw = list(class_names) if class_names else sorted(unique)
        labels = ClassLabel(names=raw)
    else:
        raise InputError(f"{source}: column {label_column!r} holds {values.type}; labels must be names or integers")
    present = len(unique) if not isinstance(feature, ClassLabel) else len(set(unique))
    if present < 2:
        only = labels.names[raw.index(unique[0])] if unique and unique[0] in raw else unique[0] if unique else None
        raise InputError(
            f"{source}: column {label_column!r} (label_column) has one class only ({only!r}); a classifier needs 2 "
            "or more"
        )
    return labels, raw


def _check_known(names, class_names, source, label_column) -> None:
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        raise InputError(
            f"{source}: column {label_column!r} holds {unknown[0]!r}, not one of class_names ({', '.join(class_names)})"
        )


def _value_set(feature, labels: ClassLabel, raw: list) -> list:
    """What each id of `labels` looks like in a split whose label feature is `feature`."""
    if isinstance(feature, ClassLabel):  # this split's own ids: map them through the names
        return [feature.str2int(n) if n in feature.names else -1 for n in labels.names]
    return raw


def _label_ids(values: pa.Array | pa.ChunkedArray, value_set: list) -> pa.Array:
    """Each row's id (its position in `value_set`; null where it has none), on the Arrow column."""
    if values.type != pa.string() and (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        values = pc.cast(values, pa.string())
    kind = pa.string() if value_set and isinstance(value_set[0], str) else values.type
    return pc.cast(pc.index_in(values, value_set=pa.array(value_set, kind)), pa.int64())


def _encode(ds: Dataset, source: str, text_column: str, label_column: str, labels: ClassLabel, raw: list) -> Dataset:
    """`ds` as the package's two columns, `sentence` (string) and `label` (ids of `labels`): checked on the whole
    Arrow column, then written by one cached, batched Arrow map."""
    feature = ds.features[label_column]
    value_set = _value_set(feature, labels, raw)
    values = arrow_column(ds, label_column)
    row = _first(pc.is_null(_label_ids(values, value_set)))
    if row is not None:
        bad = values[row].as_py()
        bad = feature.int2str(int(bad)) if isinstance(feature, ClassLabel) else bad
        raise InputError(
            f"{_where(source, row)}: label {bad!r} in column {label_column!r} is not one of the train labels "
            f"({', '.join(labels.names)})"
        )
    features = Features({TEXT_COLUMN: Value("string"), LABEL_COLUMN: labels})
    if ds.column_names == [TEXT_COLUMN, LABEL_COLUMN] and ds.features == features:
        return ds

    def encode(table: pa.Table) -> pa.Table:
        text = pc.cast(table.column(text_column), pa.string())
        return pa.table({TEXT_COLUMN: text, LABEL_COLUMN: _label_ids(table.column(label_column), value_set)})

    out = ds.with_format("arrow").map(
        encode, batched=True, batch_size=10_000, remove_columns=ds.column_names, features=features, desc="Columns"
    )
    return out.with_format(None)


def split_validation(train: Dataset, percentage: float, seed: int) -> tuple[Dataset, Dataset]:
    """`percentage` % of `train` as validation, seeded; stratified by label when every class has 2+ rows and the
    validation split can hold one of each, else a plain random split."""
    if not 0 < percentage < 100:
        raise InputError(f"validation_split_percentage: must be in (0, 100), got {percentage}")
    size = max(1, round(len(train) * percentage / 100))
    if size >= len(train):
        raise InputError(f"validation_split_percentage: {percentage}% of {len(train)} train rows leaves none to train")
    counts = pc.value_counts(arrow_column(train, LABEL_COLUMN)).field("counts")
    stratify = pc.min(counts).as_py() >= 2 and size >= len(counts) and len(train) - size >= len(counts)
    if not stratify:
        logger.warning("Validation split from train: not stratified (a class has fewer than 2 rows)")
    parts = train.train_test_split(
        test_size=size, seed=seed, shuffle=True, stratify_by_column=LABEL_COLUMN if stratify else None
    )
    return parts["train"], parts["test"]


def load_data(
    dataset_name: str | None = "stanfordnlp/sst2",
    dataset_config_name: str | None = None,
    data_dir: str | None = None,
    train_file: str | None = None,
    validation_file: str | None = None,
    text_column: str = TEXT_COLUMN,
    label_column: str = LABEL_COLUMN,
    class_names: list[str] | None = None,
    validation_split_percentage: float = 10.0,
    validation_split_seed: int = 42,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    cache_dir: str | None = None,
) -> DatasetDict:
    """The task's `train` and `validation` splits as `sentence` (string) and `label` (`ClassLabel`) columns.

    From `data_dir` (GLUE SST-2 TSVs) when given, else `train_file`/`validation_file`, else the Hub's `dataset_name`;
    every bad input is a one-line `InputError` naming the file (or dataset) and the field, row or column.
    """
    args = argparse.Namespace(**{k: v for k, v in locals().items() if k != "cache_dir"})
    if data_dir:
        splits = load_sst2_tsv(data_dir, cache_dir=cache_dir)
    else:
        # the main process builds the caches; the others wait, then read them
        with PartialState().main_process_first():
            splits = _load_task(args, cache_dir)
    for split, cap in (("train", max_train_samples), ("validation", max_eval_samples)):
        if cap is not None and cap < len(splits[split]):
            splits[split] = splits[split].select(range(cap))
    return splits


def _load_task(args, cache_dir: str | None) -> DatasetDict:
    if args.train_file:
        raw, sources = _load_files(args, cache_dir)
        known = None
    elif args.validation_file:
        raise InputError("validation_file: given without train_file")
    else:
        raw, sources = _load_hub(args, cache_dir)
        known = KNOWN_LABEL_NAMES.get(args.dataset_name) or KNOWN_LABEL_NAMES.get(
            f"{args.dataset_name}:{args.dataset_config_name}"
        )
    for split, ds in raw.items():
        _check_columns(ds, sources[split], args.text_column, args.label_column)
    labels, values = _labels_of(raw["train"], sources["train"], args.label_column, args.class_names, known)
    splits = {
        split: _encode(ds, sources[split], args.text_column, args.label_column, labels, values)
        for split, ds in raw.items()
    }
    if "validation" not in splits:
        logger.info("No validation split: %s%% of train becomes one", args.validation_split_percentage)
        splits["train"], splits["validation"] = split_validation(
            splits["train"], args.validation_split_percentage, args.validation_split_seed
        )
    return DatasetDict(train=splits["train"], validation=splits["validation"])


def load_data_from_args(data_args, cache_dir: str | None = None) -> DatasetDict:
    """`load_data` driven by a `DataArguments`."""
    return load_data(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        data_dir=data_args.data_dir,
        train_file=data_args.train_file,
        validation_file=data_args.validation_file,
        text_column=data_args.text_column,
        label_column=data_args.label_column,
        class_names=data_args.class_names,
        validation_split_percentage=data_args.validation_split_percentage,
        validation_split_seed=data_args.validation_split_seed,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
        cache_dir=cache_dir,
    )


def load_sst2(
    dataset_name: str = "stanfordnlp/sst2",
    data_dir: str | None = None,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
) -> DatasetDict:
    """SST-2 from `data_dir` (GLUE TSVs) when given, else from the Hub; optionally capped for debugging."""
    return load_data(
        dataset_name=dataset_name,
        dataset_config_name=dataset_config_name,
        data_dir=data_dir,
        cache_dir=cache_dir,
        max_train_samples=max_train_samples,
        max_eval_samples=max_eval_samples,
    )


def tokenize_splits(splits: DatasetDict, tokenizer, max_seq_length: int = 128, text_column: str = "sentence"):
    """Tokenize `text_column` of every split with a batched, cached `map` (padding is left to the collator)."""

    def tokenize(batch):
        return tokenizer(batch[text_column], truncation=True, max_length=max_seq_length)

    return splits.map(tokenize, batched=True, desc="Tokenizing")
