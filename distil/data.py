"""SST-2 as a `DatasetDict` (`train`, `validation`; `sentence` string, `label` ClassLabel), from the Hub or GLUE TSVs.

Local TSVs are validated strictly (one-line errors naming file and line) and then stored once as Arrow under the
datasets cache, keyed by the files' SHA-256, so every later `Dataset.map` over them is a cache hit.
"""

from __future__ import annotations

import os

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value, load_dataset, load_from_disk
from datasets import config as datasets_config

from distil.distributed import main_process_first
from distil.errors import InputError, TSVFormatError
from distil.hub import load_errors
from distil.records import files_fingerprint
from distil.utils import atomic_directory

LABEL_NAMES = ["negative", "positive"]
FEATURES = Features({"sentence": Value("string"), "label": ClassLabel(names=LABEL_NAMES)})
# GLUE layout: split -> file name
TSV_FILES = {"train": "train.tsv", "validation": "dev.tsv"}


def read_glue_tsv(path: str) -> dict[str, list]:
    """Read a `sentence<TAB>label` file (columns found by header name, tab only, no quoting, LF or CRLF)."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise TSVFormatError(f"{path}: file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_no = raw[: e.start].count(b"\n") + 1
        raise TSVFormatError(f"{path}:{line_no}: bytes that are not UTF-8 at byte offset {e.start}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if not lines:
        raise TSVFormatError(f"{path}: file is empty")

    header = lines[0].split("\t")
    for column in ("sentence", "label"):
        if column not in header:
            raise TSVFormatError(f"{path}:1: missing column {column!r} in header {header!r}")
    n_fields = len(header)
    s_idx, l_idx = header.index("sentence"), header.index("label")

    sentences, labels = [], []
    for line_no, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != n_fields:
            raise TSVFormatError(f"{path}:{line_no}: expected {n_fields} tab-separated fields, found {len(fields)}")
        sentence, label = fields[s_idx], fields[l_idx].strip()
        if not sentence.strip():
            raise TSVFormatError(f"{path}:{line_no}: empty sentence")
        if label not in ("0", "1"):
            raise TSVFormatError(f"{path}:{line_no}: label must be 0 or 1 ({', '.join(LABEL_NAMES)}), got {label!r}")
        sentences.append(sentence)
        labels.append(int(label))
    if not sentences:
        raise TSVFormatError(f"{path}: no rows after the header")
    return {"sentence": sentences, "label": labels}


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
    with main_process_first():  # the main process builds the cache; the others wait, then read it
        if not os.path.isdir(target):
            splits = DatasetDict(
                {split: Dataset.from_dict(read_glue_tsv(path), features=FEATURES) for split, path in paths.items()}
            )
            with atomic_directory(target) as tmp:  # an interrupted run never leaves a half-written cache
                splits.save_to_disk(tmp)
    return load_from_disk(target)


def tsv_fingerprint(data_dir: str) -> str:
    """SHA-256 (first 16 hex digits) of `data_dir`'s `train.tsv` and `dev.tsv`, memoized on their size and mtime."""
    paths = [os.path.join(data_dir, name) for name in TSV_FILES.values()]
    if not all(os.path.isfile(p) for p in paths):
        return "missing"
    return files_fingerprint(paths)


def data_fingerprint(data_args) -> str:
    """What a stage's SST-2 input is: the TSVs' hash, or the Hub dataset's name (and config)."""
    if data_args.data_dir:
        return "tsv:" + tsv_fingerprint(data_args.data_dir)
    return f"hub:{data_args.dataset_name}:{data_args.dataset_config_name or ''}"


def load_sst2_hub(
    dataset_name: str = "stanfordnlp/sst2", dataset_config_name: str | None = None, cache_dir: str | None = None
) -> DatasetDict:
    """Load SST-2 from the Hub (`stanfordnlp/sst2`, or `nyu-mll/glue` with config `sst2`)."""
    hint = "set data_dir to a directory of GLUE TSVs (train.tsv, dev.tsv) instead"
    with load_errors("dataset_name", dataset_name, hint=hint):
        raw = load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    out = {}
    for split in ("train", "validation"):
        if split not in raw:
            raise InputError(f"dataset_name: {dataset_name}: no {split!r} split (found {list(raw)})")
        ds = raw[split]
        for column in ("sentence", "label"):
            if column not in ds.column_names:
                raise InputError(
                    f"dataset_name: {dataset_name}[{split}]: missing column {column!r} (found {ds.column_names})"
                )
        ds = ds.select_columns(["sentence", "label"])
        out[split] = ds.cast(FEATURES) if ds.features != FEATURES else ds
    return DatasetDict(out)


def load_sst2(
    dataset_name: str = "stanfordnlp/sst2",
    data_dir: str | None = None,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
) -> DatasetDict:
    """SST-2 from `data_dir` (GLUE TSVs) when given, else from the Hub; optionally capped for debugging."""
    if data_dir:
        splits = load_sst2_tsv(data_dir, cache_dir=cache_dir)
    else:
        splits = load_sst2_hub(dataset_name, dataset_config_name, cache_dir=cache_dir)
    for split, cap in (("train", max_train_samples), ("validation", max_eval_samples)):
        if cap is not None and cap < len(splits[split]):
            splits[split] = splits[split].select(range(cap))
    return splits


def load_sst2_from_args(data_args, cache_dir: str | None = None) -> DatasetDict:
    """`load_sst2` driven by a `DataArguments`."""
    return load_sst2(
        dataset_name=data_args.dataset_name,
        data_dir=data_args.data_dir,
        dataset_config_name=data_args.dataset_config_name,
        cache_dir=cache_dir,
        max_train_samples=data_args.max_train_samples,
        max_eval_samples=data_args.max_eval_samples,
    )


def tokenize_splits(splits: DatasetDict, tokenizer, max_seq_length: int = 128, text_column: str = "sentence"):
    """Tokenize `text_column` of every split with a batched, cached `map` (padding is left to the collator)."""

    def tokenize(batch):
        return tokenizer(batch[text_column], truncation=True, max_length=max_seq_length)

    return splits.map(tokenize, batched=True, desc="Tokenizing")
