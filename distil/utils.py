"""Small helpers shared by the recipes: logging set-up and saving a run's arguments."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys

import datasets
import transformers


def setup_logging(training_args) -> logging.Logger:
    """Log to stdout at the level `TrainingArguments` asks for on this process (quiet on non-main ranks)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    for lib in (datasets.utils.logging, transformers.utils.logging):
        lib.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger = logging.getLogger("distil")
    logger.setLevel(level)
    return logger


def save_run_args(output_dir: str, *arg_objects, filename: str = "run_args.json") -> str:
    """Write every argument dataclass of the run to `output_dir/filename` (write-then-rename)."""
    os.makedirs(output_dir, exist_ok=True)
    payload = {}
    for obj in arg_objects:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        payload[type(obj).__name__] = values
    path = os.path.join(output_dir, filename)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)
    return path


def evaluate_and_save_metrics(trainer, eval_dataset, metrics: dict[str, float]) -> dict[str, float]:
    """Evaluate, add `eval_perplexity` and `eval_samples`, log, and write `all_results.json` with `metrics`."""
    from distil.metrics import add_perplexity

    eval_metrics = add_perplexity(trainer.evaluate(eval_dataset))
    eval_metrics["eval_samples"] = len(eval_dataset)
    metrics.update(eval_metrics)
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("all", metrics)
    return metrics


def run_recipe(main, prog: str) -> None:
    """Run a recipe's `main()` as a script: bad input (config, data file) exits with one line naming it."""
    from distil.configs import ConfigError
    from distil.data import TSVFormatError

    try:
        main()
    except (ConfigError, TSVFormatError, FileNotFoundError) as e:
        sys.exit(f"{prog}: error: {e}")
