"""Logits of a sequence classifier for a text dataset, as a cached batched map: length-sorted, dynamically padded
batches. The transfer set's teacher logits come from here, and so do the pipeline's final evaluations.

Each map batch is tokenized at once (a per-word cache for BERT-style tokenizers, `distil.encoding.
WordCacheEncoder`) and padded with NumPy; on CPU, map workers (`num_proc`) split the rows and the torch threads, and
`precision="auto"` uses bf16 only where the CPU has native bf16 (`cpu_has_native_bf16`). On a GPU the padded batches
go from pinned memory with non-blocking copies and the logits stay on the device until the map batch is done, so the
host pads the next batch while the device runs the last one.

The map's fingerprint is computed from what the classifier is (`Classifier`: a folder's files, or a Hub id's commit),
the tokenizer and the settings that change the values, never by hashing a model object in a closure; a classifier
given as a path loads lazily, so a cache hit does not load it at all, and loaded models are kept per process under
that same fingerprint, so a folder rewritten within a process is loaded again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset, Features, List, Value, concatenate_datasets

from distil.encoding import TokenIds, WordCacheEncoder, flat_token_ids
from distil.errors import InputError
from distil.hardware import resolve_autocast
from distil.hub import UNKNOWN_REVISION, hub_revision, resolve_model_path
from distil.records import (
    directory_fingerprint,
    map_fingerprint,
    module_fingerprint,
    object_fingerprint,
    source_fingerprint,
)

SOURCE_HASH = source_fingerprint(__file__)
LOGITS_COLUMN = "teacher_logits"

_CLASSIFIERS: dict[tuple, torch.nn.Module] = {}  # per process: (fingerprint, seed, device) -> model


@dataclass(frozen=True)
class Classifier:
    """A sequence classifier named by a local folder or a Hub id, pinned to what it is: `fingerprint` (the folder's
    files, or `hub:<id>@<commit>`) keys the labelling cache and the models loaded in this process, and a Hub id loads
    at that `revision`. `Classifier.of(name)` resolves a name once; pass the result on to fingerprint it once."""

    path: str
    fingerprint: str
    revision: str | None = None

    @classmethod
    def of(cls, name: str) -> Classifier:
        path = resolve_model_path(name)
        if os.path.isdir(path):
            return cls(path, directory_fingerprint(path))
        revision = hub_revision(path)
        return cls(path, f"hub:{path}@{revision}", None if revision == UNKNOWN_REVISION else revision)


def load_classifier(classifier: Classifier, seed: int = 0, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Load (once per process and fingerprint) a sequence classifier in eval mode; a missing head is initialised from
    `seed`."""
    from transformers import AutoModelForSequenceClassification

    key = (classifier.fingerprint, seed, str(device))
    if key not in _CLASSIFIERS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(classifier.path, revision=classifier.revision)
        _CLASSIFIERS[key] = model.to(device).eval()
    return _CLASSIFIERS[key]


class LogitsMap:
    """A `Dataset.map(batched=True)` function adding a classifier's logits (float32, `num_labels` per row) as
    `column`.

    Each map batch is tokenized at once (`WordCacheEncoder` where the tokenizer allows it, else the fast
    tokenizer's batch call), sorted by length, padded with NumPy and run in batches of `batch_size`.
    `worker_threads`: torch threads in a map worker process (`num_proc`); the main process keeps its own.
    `label_order`: the classifier's logit columns in the data's label order (`distil.labels.label_order`), or None.
    """

    def __init__(
        self,
        classifier,
        tokenizer,
        device,
        autocast_dtype,
        batch_size,
        max_length,
        text_column,
        seed=0,
        worker_threads=None,
        label_order=None,
        column=LOGITS_COLUMN,
    ):
        self.classifier, self.tokenizer, self.device = classifier, tokenizer, device
        self.autocast_dtype, self.batch_size, self.max_length = autocast_dtype, batch_size, max_length
        self.text_column, self.seed, self.worker_threads = text_column, seed, worker_threads
        self.label_order = None if label_order is None else np.asarray(label_order, dtype=np.int64)
        self.column = column
        self.main_pid = os.getpid()
        self._encoder = None

    @property
    def model(self):
        if isinstance(self.classifier, Classifier):
            return load_classifier(self.classifier, self.seed, self.device)
        return self.classifier

    def __getstate__(self):  # the word cache stays in its process
        return {**self.__dict__, "_encoder": None}

    def encode(self, texts: list[str]) -> TokenIds:
        if self._encoder is None:
            supported = WordCacheEncoder.supports(self.tokenizer)
            self._encoder = WordCacheEncoder(self.tokenizer, self.max_length) if supported else False
        if self._encoder:
            return self._encoder(texts)
        ids = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return flat_token_ids(ids)

    def __call__(self, batch: dict) -> dict:
        if self.worker_threads and os.getpid() != self.main_pid and torch.get_num_threads() != self.worker_threads:
            torch.set_num_threads(self.worker_threads)
        model = self.model
        encoded = self.encode(batch[self.text_column])
        lengths = encoded.total_lengths()
        order = np.argsort(-lengths, kind="stable")  # longest first: a batch that does not fit fails early
        pad_id = self.tokenizer.pad_token_id or 0
        device = torch.device(self.device)
        on_gpu = device.type == "cuda"
        autocast = (
            torch.autocast(device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        was_training = model.training
        model.eval()
        outputs = []
        with torch.inference_mode(), autocast:
            for start in range(0, len(lengths), self.batch_size):
                rows = order[start : start + self.batch_size]
                host = [torch.from_numpy(array) for array in encoded.pad(rows, pad_id)]
                if on_gpu:  # pinned, so that the copies run beside the host padding the next batch
                    host = [tensor.pin_memory() for tensor in host]
                input_ids, attention_mask = (tensor.to(device, non_blocking=True) for tensor in host)
                outputs.append(model(input_ids=input_ids, attention_mask=attention_mask).logits.float())
        model.train(was_training)
        out = np.empty((len(lengths), model.config.num_labels), dtype=np.float32)
        if outputs:
            out[order] = torch.cat(outputs).cpu().numpy()  # the one wait for the device per map batch
        if self.label_order is not None:
            out = out[:, self.label_order]
        return {self.column: out}


def labelling_map(
    dataset: Dataset,
    model,
    tokenizer=None,
    batch_size: int = 256,
    max_length: int = 128,
    text_column: str = "sentence",
    device: str | torch.device | None = None,
    precision: str = "auto",
    seed: int = 0,
    chunk_size: int = 8192,
    num_proc: int | None = None,
    label_order: list[int] | None = None,
    column: str = LOGITS_COLUMN,
) -> tuple[LogitsMap, Features, str, int | None]:
    """The logits map for `dataset`: its function, output features, fingerprint and worker count (see
    `add_classifier_logits`)."""
    from transformers import AutoConfig, AutoTokenizer

    if device is None:
        device = model.device if isinstance(model, torch.nn.Module) else "cuda" if torch.cuda.is_available() else "cpu"
    autocast_dtype = resolve_autocast(device, precision)
    if text_column not in dataset.column_names:
        raise InputError(f"text_column: {text_column!r} is not a column of the dataset ({dataset.column_names})")

    if isinstance(model, str):
        model = Classifier.of(model)
    if isinstance(model, Classifier):
        classifier, path, classifier_fp = model, model.path, model.fingerprint
        num_labels = AutoConfig.from_pretrained(path, revision=model.revision).num_labels
    else:
        path, classifier = model.name_or_path, model.to(device)
        classifier_fp, num_labels = module_fingerprint(model), model.config.num_labels

    if tokenizer is None:
        revision = classifier.revision if isinstance(classifier, Classifier) else None
        tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
        tokenizer_fp = "from-teacher" if isinstance(classifier, Classifier) else object_fingerprint(tokenizer)
    else:
        tokenizer_fp = object_fingerprint(tokenizer)

    if num_proc is not None and num_proc < 1:
        raise ValueError(f"num_proc: must be >= 1 or unset, got {num_proc}")
    if torch.device(device).type != "cpu" or len(dataset) < 2 * chunk_size:
        num_proc = None  # one process per accelerator; a few chunks are not worth starting workers
    worker_threads = max(1, torch.get_num_threads() // num_proc) if num_proc and num_proc > 1 else None
    logits_map = LogitsMap(
        classifier, tokenizer, device, autocast_dtype, batch_size, max_length, text_column, seed, worker_threads,
        label_order, column,
    )  # fmt: skip
    fingerprint = map_fingerprint(
        dataset, column, SOURCE_HASH, classifier_fp, tokenizer_fp, max_length, text_column, str(autocast_dtype),
        seed, None if label_order is None else list(label_order),
    )  # fmt: skip
    features = Features({**dataset.features, column: List(Value("float32"), length=num_labels)})
    return logits_map, features, fingerprint, num_proc if worker_threads else None


def add_classifier_logits(
    dataset: Dataset,
    model,
    tokenizer=None,
    batch_size: int = 256,
    max_length: int = 128,
    text_column: str = "sentence",
    chunk_size: int = 8192,
    device: str | torch.device | None = None,
    precision: str = "auto",
    seed: int = 0,
    load_from_cache_file: bool | None = None,
    desc: str = "Teacher logits",
    num_proc: int | None = None,
    label_order: list[int] | None = None,
    column: str = LOGITS_COLUMN,
) -> Dataset:
    """Add any sequence classifier's logits to `dataset` as `column` (default `teacher_logits`), with a cached
    batched map.

    `model` is a sequence classifier, a path (local directory, Hub id or `pkg://...`; a local directory loads only on
    a cache miss) or a `Classifier` (a path resolved and fingerprinted once). Each map batch of `chunk_size` rows is
    tokenized, sorted by length and run in batches of `batch_size` under `torch.inference_mode`, with autocast per
    `precision` (`resolve_autocast`). `num_proc` > 1 (CPU only) splits the rows over that many worker processes, each
    with its share of the torch threads: for a small teacher, two 1-thread workers beat one 2-thread process. The
    cache is keyed by the dataset, what the classifier is (its files, its Hub commit or its weights), the tokenizer,
    `max_length`, `text_column`, the autocast dtype and `seed` (which initialises a missing classification head), not
    by `batch_size`. `label_order` puts the logit columns in the data's label order (`logits[:, label_order]`; see
    `distil.labels.label_order`).
    """
    logits_map, features, fingerprint, num_proc = labelling_map(
        dataset, model, tokenizer, batch_size, max_length, text_column, device, precision, seed, chunk_size, num_proc,
        label_order, column,
    )  # fmt: skip
    return dataset.map(
        logits_map,
        batched=True,
        batch_size=chunk_size,
        features=features,
        new_fingerprint=fingerprint,
        load_from_cache_file=load_from_cache_file,
        desc=desc,
        num_proc=num_proc,
    )


def labelling_shards(dataset: Dataset, shard_rows: int) -> list[Dataset]:
    """`dataset` cut into contiguous shards of at most `shard_rows` rows (`Dataset.shard(contiguous=True)`): the
    boundaries depend on the row count and `shard_rows` alone, never on the number of processes."""
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    num_shards = max(1, -(-len(dataset) // shard_rows))
    return [dataset.shard(num_shards, i, contiguous=True) for i in range(num_shards)]


def label_in_shards(
    dataset: Dataset,
    model,
    shard_rows: int = 50_000,
    process_index: int = 0,
    num_processes: int = 1,
    wait_for_everyone=None,
    desc: str = "Teacher logits",
    **label_kwargs,
) -> Dataset:
    """`add_classifier_logits` over contiguous shards of at most `shard_rows` rows, each a cached map of its own.

    Process `process_index` of `num_processes` labels its own contiguous block of shards; after
    `wait_for_everyone()` every process reads all shards back from the cache (without loading the teacher) and
    concatenates them in row order. A run killed part-way keeps the shards it finished, so the next run labels only
    the rest. Shard boundaries depend on `shard_rows` alone, so the result is the same for any number of processes.
    A dataset held in memory has no cache to share: every process then labels all of it. `model` is resolved and
    fingerprinted once here (`Classifier.of`), not once per shard.
    """
    logger = logging.getLogger("distil")
    if isinstance(model, str):
        model = Classifier.of(model)
    if not dataset.cache_files:
        return add_classifier_logits(dataset, model, desc=desc, **label_kwargs)
    shards = labelling_shards(dataset, shard_rows)
    # the block of shards of this process: NumPy's contiguous split, as `PartialState.split_between_processes`
    # splits a list (that one needs the live process group; the ranks are plain arguments here)
    mine = np.array_split(np.arange(len(shards)), num_processes)[process_index].tolist()
    for i in mine:
        cached = is_labelled(shards[i], model, **label_kwargs)
        logger.info("%s: shard %d/%d (%d rows) %s", desc, i + 1, len(shards), len(shards[i]),
                    "from cache" if cached else "labelling")  # fmt: skip
        add_classifier_logits(shards[i], model, desc=f"{desc} {i + 1}/{len(shards)}", **label_kwargs)
    if wait_for_everyone is not None:
        wait_for_everyone()
    labelled = []
    for i, shard in enumerate(shards):
        if i not in mine and not is_labelled(shard, model, **label_kwargs):
            raise RuntimeError(f"{desc}: shard {i + 1}/{len(shards)} was not labelled by its process")
        labelled.append(add_classifier_logits(shard, model, desc=f"{desc} {i + 1}/{len(shards)}", **label_kwargs))
    return concatenate_datasets(labelled) if len(labelled) > 1 else labelled[0]


def is_labelled(dataset: Dataset, model, **label_kwargs) -> bool:
    """Whether `add_classifier_logits(dataset, model, **label_kwargs)` would be a cache hit."""
    keys = ("tokenizer", "batch_size", "max_length", "text_column", "device", "precision", "seed", "chunk_size",
            "label_order", "column")  # fmt: skip
    _, _, fingerprint, _ = labelling_map(dataset, model, **{k: v for k, v in label_kwargs.items() if k in keys})
    return bool(dataset.cache_files) and os.path.exists(dataset._get_cache_file_path(fingerprint))


def free_classifiers() -> None:
    """Drop every classifier this process loaded for labelling (and the GPU memory it held)."""
    _CLASSIFIERS.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def export_tsv(dataset: Dataset, path: str, text_column: str = "sentence", logits_column: str = "teacher_logits"):
    """Write the original `sentence<TAB>scores` file (`%s\\t%.6f %.6f`), write-then-rename; returns the row count."""
    from distil.utils import atomic_write

    n = 0
    with atomic_write(path) as f:
        f.write("sentence\tscores\n")
        for batch in dataset.select_columns([text_column, logits_column]).iter(batch_size=10_000):
            lines = []
            for sentence, scores in zip(batch[text_column], batch[logits_column]):
                if "\t" in sentence or "\n" in sentence:
                    raise InputError(
                        f"export_tsv: {path}: a sentence with a tab or newline cannot be written: {sentence!r}"
                    )
                lines.append(sentence + "\t" + " ".join(f"{s:.6f}" for s in scores) + "\n")
            f.writelines(lines)
            n += len(lines)
    return n


def read_tsv(path: str) -> tuple[list[str], np.ndarray]:
    """Read a `sentence<TAB>scores` file back: sentences and a float32 [rows, num_labels] array."""
    sentences, scores = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n")
        if header != "sentence\tscores":
            raise InputError(f"{path}:1: expected header 'sentence\\tscores', got {header!r}")
        for line in f:
            sentence, _, values = line.rstrip("\n").partition("\t")
            sentences.append(sentence)
            scores.append([float(v) for v in values.split(" ")])
    return sentences, np.array(scores, dtype=np.float32)
