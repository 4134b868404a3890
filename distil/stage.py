"""What the stages share: the tail of a trainer stage (evaluate, save, record, push)."""

from __future__ import annotations

import logging

from distil.metrics import add_perplexity
from distil.utils import save_run_args

logger = logging.getLogger("distil")


def finish_training(trainer, eval_dataset, metrics: dict[str, float], *arg_objects, hub=None):
    """Evaluate on `eval_dataset`, save the model and tokenizer, record the run's arguments, then the metrics, then
    push (once, with a card, on the main process: `hub` is what `distil.push.hold_trainer_push` returned).

    `all_results.json` (the metrics) is written after the weights and `run_args.json`, so a stage whose folder holds it
    has everything. Returns `metrics` with `eval_*`, `eval_perplexity` and `eval_samples` added.
    """
    output_dir = trainer.args.output_dir
    eval_metrics = add_perplexity(trainer.evaluate(eval_dataset))
    eval_metrics["eval_samples"] = len(eval_dataset)
    metrics.update(eval_metrics)
    trainer.log_metrics("eval", eval_metrics)

    trainer.save_model(output_dir)
    if hub is not None:
        trainer.args.push_to_hub = True  # held off while the Trainer ran; recorded as the user asked
    if trainer.is_world_process_zero():
        save_run_args(output_dir, *arg_objects)
    trainer.save_metrics("all", metrics)

    if hub is not None and trainer.is_world_process_zero():
        from distil.push import push_model

        push_model(output_dir, hub.hub_model_id, token=hub.hub_token, private=hub.hub_private_repo)
    return metrics
