"""Teacher logits for a text dataset, as a cached batched map: length-sorted, dynamically padded batches.

Each map batch is tokenized at once (a per-word cache for BERT-style tokenizers, `distil.encoding.
WordCacheEncoder`) and padded with NumPy; on CPU, map workers (`num_proc`) split the rows and the torch threads, and
`precision="auto"` uses bf16 only where the CPU has native bf16 (`cpu_has_native_bf16`).

The map's fingerprint is computed from the teacher's files (or weights), the tokenizer and the settings that change
the values, never by hashing a model object in a closure; a teacher given as a path loads lazily, so a cache hit
does not load it at all.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np
import torch
from datasets import Dataset, Features, List, Value, concatenate_datasets

from distil.encoding import TokenIds, WordCacheEncoder, flat_token_ids
from distil.hardware import resolve_autocast
from distil.hub import resolve_model_path
from distil.records import (
    directory_fingerprint,
    map_fingerprint,
    module_fingerprint,
    object_fingerprint,
    source_fingerprint,
)

SOURCE_HASH = source_fingerprint(__file__)

_TEACHERS: dict[tuple, torch.nn.Module] = {}  # per-process cache: (path, seed, device) -> model


def load_teacher(path: str, seed: int = 0, device: str | torch.device = "cpu"):
    """Load (once per process) a sequence classifier in eval mode; a missing head is initialised from `seed`."""
    from transformers import AutoModelForSequenceClassification

    key = (path, seed, str(device))
    if key not in _TEACHERS:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSequenceClassification.from_pretrained(path)
        _TEACHERS[key] = model.to(device).eval()
    return _TEACHERS[key]


class TeacherLabeler:
    """A `Dataset.map(batched=True)` function adding `teacher_logits` (float32, `num_labels` per row).

    Each map batch is tokenized at once (`WordCacheEncoder` where the tokenizer allows it, else the fast
    tokenizer's batch call), sorted by length, padded with NumPy and run in batches of `batch_size`.
    `worker_threads`: torch threads in a map worker process (`num_proc`); the main process keeps its own.
    `label_order`: the teacher's logit columns in the data's label order (`distil.labels.label_order`), or None.
    """

    def __init__(
        self,
        teacher,
        tokenizer,
        device,
        autocast_dtype,
        batch_size,
        max_length,
        text_column,
        seed=0,
        worker_threads=None,
        label_order=None,
    ):
        self.teacher, self.tokenizer, self.device = teacher, tokenizer, device
        self.autocast_dtype, self.batch_size, self.max_length = autocast_dtype, batch_size, max_length
        self.text_column, self.seed, self.worker_threads = text_column, seed, worker_threads
        self.label_order = None if label_order is None else np.asarray(label_order, dtype=np.int64)
        self.main_pid = os.getpid()
        self._encoder = None

    @property
    def model(self):
        if isinstance(self.teacher, str):
            return load_teacher(self.teacher, self.seed, self.device)
        return self.teacher

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
        out = np.empty((len(lengths), model.config.num_labels), dtype=np.float32)
        autocast = (
            torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        was_training = model.training
        model.eval()
        with torch.inference_mode(), autocast:
            for start in range(0, len(lengths), self.batch_size):
                rows = order[start : start + self.batch_size]
                input_ids, attention_mask = encoded.pad(rows, pad_id)
                logits = model(
                    input_ids=torch.from_numpy(input_ids).to(self.device),
                    attention_mask=torch.from_numpy(attention_mask).to(self.device),
                ).logits
                out[rows] = logits.float().cpu().numpy()
        model.train(was_training)
        if self.label_order is not None:
            out = out[:, self.label_order]
        return {"teacher_logits": out}


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
) -> tuple[TeacherLabeler, Features, str, int | None]:
    """The labelling map for `dataset`: its function, output features, fingerprint and worker count (see
    `label_with_teacher`)."""
    from transformers import AutoConfig, AutoTokenizer

    if device is None:
        device = model.device if isinstance(model, torch.nn.Module) else "cuda" if torch.cuda.is_available() else "cpu"
    autocast_dtype = resolve_autocast(device, precision)
    if text_column not in dataset.column_names:
        raise ValueError(f"text_column: {text_column!r} is not a column of the dataset ({dataset.column_names})")

    if isinstance(model, str):
        path = resolve_model_path(model)
        if os.path.isdir(path):
            teacher, teacher_fp = path, directory_fingerprint(path)
            num_labels = AutoConfig.from_pretrained(path).num_labels
        else:  # a Hub id: load it to hash its weights
            teacher = load_teacher(path, seed, device)
            teacher_fp, num_labels = module_fingerprint(teacher), teacher.config.num_labels
    else:
        path, teacher = model.name_or_path, model.to(device)
        teacher_fp, num_labels = module_fingerprint(model), model.config.num_labels

    if tokenizer is None:
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer_fp = "from-teacher" if isinstance(teacher, str) else object_fingerprint(tokenizer)
    else:
        tokenizer_fp = object_fingerprint(tokenizer)

    if num_proc is not None and num_proc < 1:
        raise ValueError(f"num_proc: must be >= 1 or unset, got {num_proc}")
    if torch.device(device).type != "cpu" or len(dataset) < 2 * chunk_size:
        num_proc = None  # one process per accelerator; a few chunks are not worth starting workers
    worker_threads = max(1, torch.get_num_threads() // num_proc) if num_proc and num_proc > 1 else None
    labeler = TeacherLabeler(
        teacher, tokenizer, device, autocast_dtype, batch_size, max_length, text_column, seed, worker_threads,
        label_order,
    )  # fmt: skip
    fingerprint = map_fingerprint(
        dataset, "teacher_logits", SOURCE_HASH, teacher_fp, tokenizer_fp, max_length, text_column, str(autocast_dtype),
        seed, None if label_order is None else list(label_order),
    )  # fmt: skip
    features = Features({**dataset.features, "teacher_logits": List(Value("float32"), length=num_labels)})
    return labeler, features, fingerprint, num_proc if worker_threads else None


def label_with_teacher(
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
) -> Dataset:
    """Add `teacher_logits` to `dataset` with a cached batched map.

    `model` is a sequence classifier or a path (local directory, Hub id or `pkg://...`; a local directory loads only
    on a cache miss). Each map batch of `chunk_size` rows is tokenized, sorted by length and run in batches of
    `batch_size` under `torch.inference_mode`, with autocast per `precision` (`resolve_autocast`). `num_proc` > 1
    (CPU only) splits the rows over that many worker processes, each with its share of the torch threads: for a small
    teacher, two 1-thread workers beat one 2-thread process. The cache is keyed by the dataset,
    the teacher's files or weights, the tokenizer, `max_length`, `text_column`, the autocast dtype and `seed` (which
    initialises a missing classification head), not by `batch_size`. `label_order` puts the teacher's logit columns
    in the data's label order (`logits[:, label_order]`; see `distil.labels.label_order`).
    """
    labeler, features, fingerprint, num_proc = labelling_map(
        dataset, model, tokenizer, batch_size, max_length, text_column, device, precision, seed, chunk_size, num_proc,
        label_order,
    )  # fmt: skip
    return dataset.map(
        labeler,
        batched=True,
        batch_size=chunk_size,
        features=features,
        new_fingerprint=fingerprint,
        load_from_cache_file=load_from_cache_file,
        desc=desc,
        num_proc=num_proc,
    )


def shard_ranges(num_rows: int, shard_rows: int) -> list[range]:
    """Contiguous row ranges of at most `shard_rows` rows covering `range(num_rows)` (one empty range for no rows)."""
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    return [range(start, min(start + shard_rows, num_rows)) for start in range(0, num_rows, shard_rows)] or [range(0)]


def rank_shards(num_shards: int, process_index: int, num_processes: int) -> range:
    """The contiguous block of shard numbers that process `process_index` of `num_processes` labels."""
    return range(num_shards * process_index // num_processes, num_shards * (process_index + 1) // num_processes)


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
    """`label_with_teacher` over contiguous shards of `shard_rows` rows, each a cached map of its own.

    Process `process_index` of `num_processes` labels its own contiguous block of shards; after
    `wait_for_everyone()` every process reads all shards back from the cache (without loading the teacher) and
    concatenates them in row order. A run killed part-way keeps the shards it finished, so the next run labels only
    the rest. Shard boundaries depend on `shard_rows` alone, so the result is the same for any number of processes.
    A dataset held in memory has no cache to share: every process then labels all of it.
    """
    logger = logging.getLogger("distil")
    if not dataset.cache_files:
        return label_with_teacher(dataset, model, desc=desc, **label_kwargs)
    shards = [dataset.select(rows) for rows in shard_ranges(len(dataset), shard_rows)]
    mine = rank_shards(len(shards), process_index, num_processes)
    for i in mine:
        cached = is_labelled(shards[i], model, **label_kwargs)
        logger.info("%s: shard %d/%d (%d rows) %s", desc, i + 1, len(shards), len(shards[i]),
                    "from cache" if cached else "labelling")  # fmt: skip
        label_with_teacher(shards[i], model, desc=f"{desc} {i + 1}/{len(shards)}", **label_kwargs)
    if wait_for_everyone is not None:
        wait_for_everyone()
    labelled = []
    for i, shard in enumerate(shards):
        if i not in mine and not is_labelled(shard, model, **label_kwargs):
            raise RuntimeError(f"{desc}: shard {i + 1}/{len(shards)} was not labelled by its process")
        labelled.append(label_with_teacher(shard, model, desc=f"{desc} {i + 1}/{len(shards)}", **label_kwargs))
    return concatenate_datasets(labelled) if len(labelled) > 1 else labelled[0]


def is_labelled(dataset: Dataset, model, **label_kwargs) -> bool:
    """Whether `label_with_teacher(dataset, model, **label_kwargs)` would be a cache hit."""
    keys = ("tokenizer", "batch_size", "max_length", "text_column", "device", "precision", "seed", "chunk_size",
            "label_order")  # fmt: skip
    _, _, fingerprint, _ = labelling_map(dataset, model, **{k: v for k, v in label_kwargs.items() if k in keys})
    return bool(dataset.cache_files) and os.path.exists(dataset._get_cache_file_path(fingerprint))


def free_teachers() -> None:
    """Drop every teacher this process loaded for labelling (and the GPU memory it held)."""
    _TEACHERS.clear()
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
                    raise ValueError(f"export_tsv: sentence with a tab or newline cannot be written: {sentence!r}")
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
            raise ValueError(f"{path}:1: expected header 'sentence\\tscores', got {header!r}")
        for line in f:
            sentence, _, values = line.rstrip("\n").partition("\t")
            sentences.append(sentence)
            scores.append([float(v) for v in values.split(" ")])
    return sentences, np.array(scores, dtype=np.float32)
