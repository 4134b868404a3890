"""What the stages share: skipping, resuming or rebuilding an output from its record, and the trainer tail.

Every stage writes `stage.json` into its output folder (`distil.records`): the stage's settings, the fingerprints of
its inputs (data files, teacher, transfer set) and the package version, hashed into a signature, and its status. A
trainer stage writes it with `status: running` before training, so checkpoints in the folder are known to belong to
that signature, and rewrites it with `status: done` after every other artefact is in place. The transfer set is built in a temporary
folder and swapped in whole, with `stage.json` written last inside it.

A re-run reads the record: the same signature and `done` skips the stage; the same settings with a larger
`max_steps` or `num_train_epochs` continue from the last checkpoint (`Signature.continues`); any other difference
rebuilds it (the default, `on_stale: rebuild`) or stops with one line naming what changed (`on_stale: error`);
`overwrite_output_dir` starts the stage fresh on purpose. A checkpoint the user names (`resume_from_checkpoint`) is
never deleted.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field

from accelerate import PartialState
from accelerate.utils import wait_for_everyone
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, sort_checkpoints

from distil.errors import ConfigError
from distil.hardware import cpu_threads_description
from distil.metrics import add_perplexity
from distil.records import DONE, RUNNING, Signature, read_record, write_record
from distil.utils import save_run_args, write_json

logger = logging.getLogger("distil")

TRAINER_STATE = (
    "trainer_state.json"  # the Trainer writes it last into a checkpoint: a checkpoint without it is partial
)


@dataclass
class StageArguments:
    """What a re-run does with a stage's existing output."""

    on_stale: str = field(
        default="rebuild",
        metadata={
            "help": "When a stage's output was built from other settings or inputs: `rebuild` it (logging what "
            "changed; in the pipeline the stages after it follow), or stop with an `error` naming what changed.",
            "choices": ["rebuild", "error"],
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start fresh: delete the stage's output folder (checkpoints included) first."},
    )


class StageOutput:
    """One stage's output folder, seen through its `stage.json`."""

    def __init__(self, output_dir: str, signature: Signature, args: StageArguments | None = None):
        self.output_dir = output_dir
        self.signature = signature
        self.args = args or StageArguments()

    @property
    def name(self) -> str:
        return self.signature.stage

    def check(self) -> bool:
        """True when the stage is done with this signature (skip it). Otherwise, before any work: a stale output
        raises under `on_stale: error`; `overwrite_output_dir` (on the main process) clears the folder."""
        record = read_record(self.output_dir)
        if self.args.overwrite_output_dir:
            if record is not None or os.path.isdir(self.output_dir):
                logger.info("%s: overwrite_output_dir, starting fresh in %s", self.name, self.output_dir)
            if PartialState().is_main_process:
                clear_stage_dir(self.output_dir)
            wait_for_everyone()
            return False
        if record is None:
            return False
        if record.get("signature") == self.signature.digest:
            if record.get("status") == DONE:
                logger.info("%s: done with the same settings and inputs in %s, skipping", self.name, self.output_dir)
                return True
            return False  # an interrupted run of the same signature: resume it
        changes = "; ".join(self.signature.changes(record))
        checkpoint = self.last_checkpoint()
        if checkpoint is not None:  # a longer run of the same settings
            logger.info("%s: continuing from %s (%s)", self.name, checkpoint, changes)
            return False
        if self.args.on_stale == "error":
            raise ConfigError(
                f"{self.output_dir}: the {self.name} there was built from other settings or inputs ({changes}); "
                "pass --on_stale rebuild to rebuild it, or choose another output_dir"
            )
        logger.warning("%s: %s is stale (%s), rebuilding", self.name, self.output_dir, changes)
        return False

    def start(self, keep: str | None = None) -> None:
        """Record the signature as running (checkpoints written from now on belong to it); drop the checkpoints of an
        earlier run that this one does not continue, never `keep` (the checkpoint it resumes from). Main process only
        writes; everyone waits."""
        if PartialState().is_main_process:
            record = read_record(self.output_dir)
            if record is not None and not self.signature.continues(record):
                kept = os.path.realpath(keep) if keep else None
                for path in checkpoints(self.output_dir):
                    if os.path.realpath(path) != kept:
                        shutil.rmtree(path, ignore_errors=True)
            os.makedirs(self.output_dir, exist_ok=True)
            write_record(self.output_dir, self.signature, RUNNING)
        wait_for_everyone()

    def last_checkpoint(self) -> str | None:
        """The latest complete Trainer checkpoint of a run this one continues (this signature, or the same settings
        with a shorter length), if any."""
        record = read_record(self.output_dir)
        if not record or not self.signature.continues(record):
            return None
        # `transformers.trainer_utils.get_last_checkpoint` would take a checkpoint whose save was cut short
        complete = [path for path in checkpoints(self.output_dir) if os.path.isfile(os.path.join(path, TRAINER_STATE))]
        return complete[-1] if complete else None

    def resume_checkpoint(self, named: str | None) -> str | None:
        """The checkpoint to train from: the one the user named (`resume_from_checkpoint`; it must be a complete
        Trainer checkpoint), else `last_checkpoint()`."""
        if not named:
            return self.last_checkpoint()
        if not os.path.isfile(os.path.join(named, TRAINER_STATE)):
            why = (
                "no such directory"
                if not os.path.exists(named)
                else f"not a complete Trainer checkpoint (no {TRAINER_STATE})"
            )
            raise ConfigError(f"resume_from_checkpoint: {named}: {why}")
        return named

    def mark_done(self, folder: str | None = None, **extra) -> None:
        """Write `stage.json` with `status: done` (into `folder`, default the output folder): the last write."""
        write_record(folder or self.output_dir, self.signature, DONE, **extra)


def checkpoints(output_dir: str) -> list[str]:
    """The Trainer checkpoints in `output_dir`, oldest step first."""
    return sort_checkpoints(output_dir) if os.path.isdir(output_dir) else []


def trained_max_length(model_dir: str) -> int | None:
    """The token length a trainer stage's model trained at: `max_seq_length` of its `run_args.json`, else its
    tokenizer's `model_max_length` when that is a real limit; None where the folder says neither."""
    try:
        with open(os.path.join(model_dir, "run_args.json"), encoding="utf-8") as f:
            length = json.load(f).get("DataArguments", {}).get("max_seq_length")
        if length:
            return int(length)
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(model_dir, "tokenizer_config.json"), encoding="utf-8") as f:
            length = json.load(f).get("model_max_length")
    except (OSError, ValueError):
        return None
    return int(length) if isinstance(length, int) and 0 < length < 1_000_000 else None


def clear_stage_dir(output_dir: str) -> None:
    """Empty a stage's output folder (it must be one: holding `stage.json`, or empty, or absent)."""
    if not os.path.isdir(output_dir):
        return
    if os.listdir(output_dir) and read_record(output_dir) is None:
        raise ConfigError(
            f"{output_dir}: overwrite_output_dir would delete a folder that is not a distil stage output "
            "(no stage.json); remove it yourself or choose another output_dir"
        )
    shutil.rmtree(output_dir)


def move_into(src_dir: str, dst_dir: str) -> None:
    """Rename every file of `src_dir` into `dst_dir` (replacing files of the same name), then remove `src_dir`."""
    os.makedirs(dst_dir, exist_ok=True)
    for name in sorted(os.listdir(src_dir)):
        src, dst = os.path.join(src_dir, name), os.path.join(dst_dir, name)
        if os.path.isdir(src):
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            os.rename(src, dst)
        else:
            os.replace(src, dst)
    os.rmdir(src_dir)


def trainer_arguments(training_args):
    """The `TrainingArguments` a stage's `Trainer` runs with: the same settings, with pushing off. A stage computes
    and saves; publishing (`distil.push.publish`) pushes its output once, after it. The stage records the arguments
    as given (`run_args.json`)."""
    args = copy.copy(training_args)
    args.push_to_hub = False
    return args


def schedule_training(
    training_args, num_rows: int, train_rows: int | None, evaluations: int, min_epochs: float = 0.0
) -> str | None:
    """Set a trainer stage's length from the data's size, on its trainer copy of the arguments (`trainer_arguments`).

    `train_rows`: rows seen in training, so `max_steps` = rows / global batch, whatever the data's size; with
    `min_epochs` it is at least that many passes over the `num_rows` rows. 0, or `max_steps` given: `max_steps` or
    `num_train_epochs` as given. `evaluations` > 0, where no `eval_strategy` is given and checkpoints are not turned off
    (`save_strategy: "no"`): evaluate and checkpoint that many times, evenly over the run, and end with the checkpoint
    of the best validation accuracy (`load_best_model_at_end`). Returns what it set, for the log."""
    if not train_rows and not evaluations:
        return None
    batch = training_args.per_device_train_batch_size * training_args.gradient_accumulation_steps
    batch *= max(training_args.world_size, 1)
    if train_rows and training_args.max_steps <= 0:
        rows = max(train_rows, math.ceil(min_epochs * num_rows))
        training_args.max_steps = max(1, math.ceil(rows / batch))
    steps = (
        training_args.max_steps
        if training_args.max_steps > 0
        else math.ceil(training_args.num_train_epochs * math.ceil(num_rows / batch))
    )
    said = f"{steps} steps ({steps * batch:,} rows, {steps * batch / max(num_rows, 1):.1f} epochs)"
    if evaluations and training_args.eval_strategy == "no" and training_args.save_strategy != "no":
        every = max(1, math.ceil(steps / evaluations))
        training_args.eval_strategy, training_args.eval_steps = IntervalStrategy.STEPS, every
        training_args.save_strategy, training_args.save_steps = SaveStrategy.STEPS, every
        training_args.do_eval = True
        training_args.load_best_model_at_end = True
        training_args.metric_for_best_model, training_args.greater_is_better = "accuracy", True
        said += f", evaluated every {every} steps, the best validation accuracy kept"
    return said


def finish_training(trainer, eval_dataset, metrics: dict[str, float], output: StageOutput, *arg_objects):
    """The tail of a trainer stage: evaluate on `eval_dataset`, then write the weights and tokenizer (saved into a
    temporary sibling and renamed into place), `run_args.json` and `all_results.json`, and `stage.json` as done last.

    Returns `metrics` with `eval_*`, `eval_perplexity` and `eval_samples` added. Every process calls it; the main
    process writes, and everyone leaves together.
    """
    output_dir = trainer.args.output_dir
    eval_metrics = add_perplexity(trainer.evaluate(eval_dataset))
    eval_metrics["eval_samples"] = len(eval_dataset)
    metrics.update(eval_metrics)
    trainer.log_metrics("eval", eval_metrics)

    # Every process takes part in saving (sharded models gather), only the main process writes.
    staging = os.path.join(output_dir, f".final-{output.signature.digest}")
    if trainer.is_world_process_zero() and os.path.isdir(staging):
        shutil.rmtree(staging)
    wait_for_everyone()
    trainer.save_model(staging)
    if trainer.is_world_process_zero():
        move_into(staging, output_dir)
        save_run_args(output_dir, *arg_objects)
        write_json(os.path.join(output_dir, "all_results.json"), metrics, indent=4)
        output.mark_done()
        logger.info("Saved %s to %s", output.name, output_dir)
    wait_for_everyone()
    return metrics


def read_metrics(output_dir: str) -> dict[str, float]:
    """The `all_results.json` of a finished trainer stage."""
    with open(os.path.join(output_dir, "all_results.json"), encoding="utf-8") as f:
        return json.load(f)


def log_precision(stage: str, training_args, lstm: str | None = None) -> str:
    """Log (and return) the precision a trainer stage runs in (`lstm`: what the student's LSTM runs in), and on a
    CPU its torch threads and, where a recipe chose them, why (`distil.hardware.use_launch_cpu_threads`)."""
    if training_args.bf16:
        precision = "bf16 autocast, fp32 master weights"
    elif training_args.fp16:
        precision = "fp16 autocast with loss scaling, fp32 master weights"
    else:
        precision = "fp32"
    if lstm and (training_args.bf16 or training_args.fp16):
        precision += f", {lstm}"
    where = str(training_args.device)
    if training_args.device.type == "cpu":
        where += f" with {cpu_threads_description()}"
    logger.info("%s: precision %s on %s", stage, precision, where)
    return precision
