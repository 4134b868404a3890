"""Build the transfer set: SST-2 train POS-tagged, augmented (Tang et al., 2019) and labelled with teacher logits.

    accelerate launch recipes/augment.py --config configs/sst2/augment.yaml

Writes a DatasetDict to `output_dir`: `train` (`sentence`, `idx`, `label` = gold for original rows and -1 for
augmented ones, `teacher_logits`) and `validation` (the same columns, gold labels). Every step is a cached
`Dataset.map`, so a re-run with the same inputs only loads the cache.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path, where `recipes/distil.py` would shadow the package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import logging
import shlex
import time

import datasets
from accelerate import PartialState
from transformers import AutoTokenizer, set_seed

from distil.augment import AugmentArguments, build_transfer_set, check_spacy_model, normalize_dataset
from distil.configs import ConfigError, DataArguments, parse_args
from distil.data import load_sst2_from_args
from distil.hub import resolve_model_path
from distil.labeling import export_tsv, label_with_teacher
from distil.utils import atomic_directory, run_recipe, save_run_args, setup_logging

logger = logging.getLogger("distil")


def main(args: list[str] | None = None) -> datasets.DatasetDict:
    aug_args, data_args = parse_args(AugmentArguments, DataArguments, args=args)
    command = shlex.join(["accelerate", "launch", "recipes/augment.py", *(sys.argv[1:] if args is None else args)])

    set_seed(aug_args.seed)
    setup_logging(logging.INFO, library_level=logging.WARNING)
    state = PartialState()
    logger.info("Augment arguments %s", aug_args)

    # Inputs: fail before any work, with one line naming the field
    teacher_path, mask_token = check_teacher(aug_args.teacher_model, need_mask=not aug_args.no_augment)
    if not aug_args.no_augment:
        check_spacy_model(aug_args.spacy_model)

    # Data
    raw = load_sst2_from_args(data_args, cache_dir=aug_args.cache_dir)
    logger.info("SST-2: %s", {split: len(ds) for split, ds in raw.items()})

    # Transfer set, then teacher logits (other ranks wait and then load the cache)
    start = time.perf_counter()
    with state.main_process_first():
        train = build_transfer_set(raw["train"], aug_args, mask_token)
        logger.info(
            "Transfer set: %d rows from %d (%.1fs)", len(train), len(raw["train"]), time.perf_counter() - start
        )
        label_kwargs = dict(
            model=teacher_path,
            batch_size=aug_args.label_batch_size,
            max_length=data_args.max_seq_length,
            chunk_size=aug_args.label_chunk_size,
            device=state.device,
            precision=aug_args.precision,
            seed=aug_args.seed,
        )
        splits = datasets.DatasetDict(
            train=label_with_teacher(train, **label_kwargs),
            validation=label_with_teacher(normalize_dataset(raw["validation"]), **label_kwargs),
        )
    logger.info("Labelled %s (%.1fs)", {s: len(ds) for s, ds in splits.items()}, time.perf_counter() - start)

    # Save
    if state.is_main_process:
        save_atomically(splits, aug_args.output_dir, aug_args, data_args)
        logger.info("Saved to %s", aug_args.output_dir)
        if aug_args.export_tsv:
            n = export_tsv(splits["train"], aug_args.export_tsv)
            logger.info("Wrote %d rows to %s", n, aug_args.export_tsv)

    # Push
    if aug_args.push_to_hub and state.is_main_process:
        push_with_card(splits, aug_args, data_args, command)
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


def dataset_card(splits: datasets.DatasetDict, aug_args: AugmentArguments, data_args: DataArguments, command: str):
    """The dataset card's Markdown: what this transfer set is, its parameters, teacher, row counts and command."""
    rows = "\n".join(f"| {split} | {len(ds):,} |" for split, ds in splits.items())
    source = data_args.data_dir or data_args.dataset_name
    params = "\n".join(
        f"| `{k}` | `{getattr(aug_args, k)}` |"
        for k in ("p_mask", "p_pos", "p_ng", "max_ng", "n_iter", "seed", "spacy_model", "no_augment")
    )
    return f"""# Transfer set for distilling `{aug_args.teacher_model}` into a BiLSTM

SST-2 ({source}) augmented as in Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural
Networks", and labelled with the teacher's logits.

Columns: `sentence` (lowercased tokens joined by spaces, masks written as the teacher's mask token), `idx` (source row
in SST-2 train), `label` (gold for original sentences, -1 for augmented ones), `teacher_logits` (float32).

Teacher: `{aug_args.teacher_model}` (max_seq_length {data_args.max_seq_length}, precision `{aug_args.precision}`).

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


def push_with_card(splits, aug_args: AugmentArguments, data_args: DataArguments, command: str) -> None:
    """Push the DatasetDict, then replace the card's text (keeping the metadata `push_to_hub` wrote)."""
    from huggingface_hub import DatasetCard

    splits.push_to_hub(aug_args.hub_dataset_id, private=aug_args.hub_private)
    card = DatasetCard.load(aug_args.hub_dataset_id, repo_type="dataset")
    card.text = dataset_card(splits, aug_args, data_args, command)
    card.push_to_hub(aug_args.hub_dataset_id, repo_type="dataset", commit_message="Add dataset card")
    logger.info("Pushed to https://huggingface.co/datasets/%s", aug_args.hub_dataset_id)


if __name__ == "__main__":
    run_recipe(main, "augment.py")
