"""Fine-tune a teacher (any `AutoModelForSequenceClassification`) on SST-2.

accelerate launch recipes/train_teacher.py --config configs/sst2/teacher.yaml
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path, where `recipes/distil.py` would shadow the package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, set_seed

from distil.configs import DataArguments, ModelArguments, apply_lr_schedule, parse_args
from distil.data import LABEL_NAMES, load_sst2_from_args, tokenize_splits
from distil.hub import resolve_model_path
from distil.metrics import compute_classification_metrics
from distil.utils import evaluate_and_save_metrics, run_recipe, save_run_args, setup_logging


def main(args: list[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(ModelArguments, DataArguments, TrainingArguments, args=args)
    apply_lr_schedule(training_args, model_args.lr_schedule, model_args.epochs_per_cycle)

    set_seed(training_args.seed)
    logger = setup_logging(training_args.get_process_log_level())
    logger.info("Training arguments %s", training_args)

    # Data
    raw = load_sst2_from_args(data_args)
    logger.info("SST-2: %s", {split: len(ds) for split, ds in raw.items()})

    # Model
    model_path = resolve_model_path(model_args.model_name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path, cache_dir=model_args.cache_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_path,
        cache_dir=model_args.cache_dir,
        num_labels=len(LABEL_NAMES),
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={name: i for i, name in enumerate(LABEL_NAMES)},
    )
    with training_args.main_process_first(desc="tokenizing"):
        splits = tokenize_splits(raw, tokenizer, data_args.max_seq_length)

    # Train
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

    # Evaluate
    evaluate_and_save_metrics(trainer, splits["validation"], metrics)

    # Save
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        save_run_args(training_args.output_dir, model_args, data_args, training_args)

    # Push
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name="stanfordnlp/sst2", tasks="text-classification")
    return metrics


if __name__ == "__main__":
    run_recipe(main, "train_teacher.py")
