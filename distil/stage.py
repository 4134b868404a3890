"""What the stages share: their record of what they were built from, when they are done, and the trainer tail.

Every stage writes `stage.json` into its output folder: the stage's settings, the fingerprints of its inputs (data
files, teacher, transfer set) and the package version, hashed into a signature, and its status. A trainer stage
writes it with `status: running` before training, so checkpoints in the folder are known to belong to that signature,
and rewrites it with `status: done` after every other artefact is in place. The transfer set is built in a temporary
folder and swapped in whole, with `stage.json` written last inside it.

A re-run reads the record: the same signature and `done` skips the stage; a different signature rebuilds it (the
default, `on_stale: rebuild`) or stops with one line naming what changed (`on_stale: error`);
`overwrite_output_dir` starts the stage fresh on purpose.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from distil.distributed import is_main_process, wait_for_everyone
from distil.errors import ConfigError
from distil.metrics import add_perplexity
from distil.utils import hash_files, save_run_args, write_json

logger = logging.getLogger("distil")

STAGE_FILE = "stage.json"
DONE, RUNNING = "done", "running"
CHECKPOINT_PREFIX = "checkpoint-"

# Settings that change where or how fast a stage runs, or what it logs and pushes, but not what it produces.
IGNORED_SETTINGS = {
    "output_dir", "logging_dir", "report_to", "run_name", "push_to_hub", "resume_from_checkpoint", "disable_tqdm",
    "per_device_eval_batch_size", "use_cpu", "local_rank", "log_level", "log_level_replica", "log_on_each_node",
    "num_proc", "map_batch_size", "tag_batch_size", "label_batch_size", "label_chunk_size", "label_shard_rows",
    "label_num_proc",
    "export_tsv", "cache_dir", "do_eval", "do_predict", "prediction_loss_only", "skip_memory_metrics",
    "on_stale", "overwrite_output_dir", "max_eval_samples", "eval_batch_size",
    # paths: what they point to is compared through the inputs' fingerprints instead
    "data_dir", "model_name_or_path", "teacher_model", "transfer_set", "word_vectors", "tokenizer_name_or_path",
}  # fmt: skip
IGNORED_PREFIXES = ("logging_", "hub_", "save_", "dataloader_", "eval_", "ddp_", "include_", "torch_compile")


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


def package_version() -> str:
    from distil import __version__

    return __version__


def settings_of(*arg_objects) -> dict[str, Any]:
    """The fields of `arg_objects` that decide what a stage produces, as JSON values, by field name."""
    settings: dict[str, Any] = {}
    for obj in arg_objects:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        for name, value in values.items():
            if name in IGNORED_SETTINGS or name.startswith(IGNORED_PREFIXES) or name.startswith("_"):
                continue
            settings[name] = json.loads(json.dumps(value, default=str))
    return settings


@dataclass
class Signature:
    """What a stage was built from: its settings, its inputs' fingerprints and the package version."""

    stage: str
    settings: dict[str, Any]
    inputs: dict[str, str]
    version: str = field(default_factory=package_version)

    @property
    def digest(self) -> str:
        payload = json.dumps([self.stage, self.settings, self.inputs, self.version], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def changes(self, record: dict) -> list[str]:
        """What differs from an earlier record, one phrase each (`n_iter: 4 -> 20`, `input teacher changed`)."""
        out = []
        old_settings = record.get("settings", {})
        for name in sorted(set(self.settings) | set(old_settings)):
            old, new = old_settings.get(name, "<unset>"), self.settings.get(name, "<unset>")
            if old != new:
                out.append(f"{name}: {old!r} -> {new!r}")
        old_inputs = record.get("inputs", {})
        for name in sorted(set(self.inputs) | set(old_inputs)):
            if old_inputs.get(name) != self.inputs.get(name):
                out.append(f"input {name} changed")
        if record.get("version") != self.version:
            out.append(f"distil version: {record.get('version')!r} -> {self.version!r}")
        return out or ["signature changed"]

    def record(self, status: str, **extra) -> dict:
        return {
            "stage": self.stage,
            "status": status,
            "signature": self.digest,
            "settings": self.settings,
            "inputs": self.inputs,
            "version": self.version,
            **extra,
        }


def read_record(output_dir: str) -> dict | None:
    """The `stage.json` of `output_dir`, or None when there is none (or it cannot be read)."""
    path = os.path.join(output_dir, STAGE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def output_fingerprint(path: str) -> str | None:
    """The signature of a finished stage's output folder, or None when `path` is not one."""
    record = read_record(path)
    if record and record.get("status") == DONE:
        return record.get("signature")
    return None


def is_done(output_dir: str, signature: Signature | None = None) -> bool:
    """`output_dir` holds a finished stage (built from `signature`, when given)."""
    finished = output_fingerprint(output_dir)
    return finished is not None and (signature is None or finished == signature.digest)


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
            if is_main_process():
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
        if self.args.on_stale == "error":
            raise ConfigError(
                f"{self.output_dir}: the {self.name} there was built from other settings or inputs ({changes}); "
                "pass --on_stale rebuild to rebuild it, or choose another output_dir"
            )
        logger.warning("%s: %s is stale (%s), rebuilding", self.name, self.output_dir, changes)
        return False

    def start(self) -> None:
        """Record the signature as running (checkpoints written from now on belong to it); drop checkpoints of an
        earlier signature. Main process only writes; everyone waits."""
        if is_main_process():
            record = read_record(self.output_dir)
            if record is not None and record.get("signature") != self.signature.digest:
                for name in checkpoint_names(self.output_dir):
                    shutil.rmtree(os.path.join(self.output_dir, name), ignore_errors=True)
            os.makedirs(self.output_dir, exist_ok=True)
            write_json(os.path.join(self.output_dir, STAGE_FILE), self.signature.record(RUNNING))
        wait_for_everyone()

    def last_checkpoint(self) -> str | None:
        """The latest complete Trainer checkpoint of this signature (one with `trainer_state.json`), if any."""
        record = read_record(self.output_dir)
        if not record or record.get("signature") != self.signature.digest:
            return None
        complete = [
            name
            for name in checkpoint_names(self.output_dir)
            if os.path.isfile(os.path.join(self.output_dir, name, "trainer_state.json"))
        ]
        if not complete:
            return None
        return os.path.join(self.output_dir, max(complete, key=lambda n: int(n[len(CHECKPOINT_PREFIX) :])))

    def mark_done(self, folder: str | None = None, **extra) -> None:
        """Write `stage.json` with `status: done` (into `folder`, default the output folder): the last write."""
        write_json(os.path.join(folder or self.output_dir, STAGE_FILE), self.signature.record(DONE, **extra))


def checkpoint_names(output_dir: str) -> list[str]:
    if not os.path.isdir(output_dir):
        return []
    return [
        name
        for name in os.listdir(output_dir)
        if name.startswith(CHECKPOINT_PREFIX)
        and name[len(CHECKPOINT_PREFIX) :].isdigit()
        and os.path.isdir(os.path.join(output_dir, name))
    ]


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


def finish_training(trainer, eval_dataset, metrics: dict[str, float], output: StageOutput, *arg_objects, hub=None):
    """The tail of a trainer stage: evaluate on `eval_dataset`, then write the weights and tokenizer (saved into a
    temporary sibling and renamed into place), `run_args.json` and `all_results.json`, and `stage.json` as done last;
    then push once, with a card, from the main process (`hub` is what `distil.push.hold_trainer_push` returned).

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
    if hub is not None:
        trainer.args.push_to_hub = True  # held off while the Trainer ran; recorded as the user asked
    if trainer.is_world_process_zero():
        move_into(staging, output_dir)
        save_run_args(output_dir, *arg_objects)
        write_json(os.path.join(output_dir, "all_results.json"), metrics, indent=4)
        output.mark_done()
        logger.info("Saved %s to %s", output.name, output_dir)
    wait_for_everyone()

    if hub is not None and trainer.is_world_process_zero():
        from distil.push import push_model

        push_model(output_dir, hub.hub_model_id, token=hub.hub_token, private=hub.hub_private_repo)
    return metrics


def push_finished(training_args) -> None:
    """A finished trainer stage that is skipped still pushes when asked (a re-run after a failed push retries it)."""
    from distil.push import hold_trainer_push, push_model

    hub = hold_trainer_push(training_args)
    if hub is not None and is_main_process():
        push_model(training_args.output_dir, hub.hub_model_id, token=hub.hub_token, private=hub.hub_private_repo)
    wait_for_everyone()


def read_metrics(output_dir: str) -> dict[str, float]:
    """The `all_results.json` of a finished trainer stage."""
    with open(os.path.join(output_dir, "all_results.json"), encoding="utf-8") as f:
        return json.load(f)


def log_precision(stage: str, training_args, lstm: str | None = None) -> str:
    """Log (and return) the precision a trainer stage runs in (`lstm`: what the student's LSTM runs in)."""
    if training_args.bf16:
        precision = "bf16 autocast, fp32 master weights"
    elif training_args.fp16:
        precision = "fp16 autocast with loss scaling, fp32 master weights"
    else:
        precision = "fp32"
    if lstm and (training_args.bf16 or training_args.fp16):
        precision += f", {lstm}"
    logger.info("%s: precision %s on %s", stage, precision, training_args.device)
    return precision


def model_fingerprint(name_or_path: str | None) -> str | None:
    """What a model input is: a finished stage's signature, the hash of a local folder's files, or a Hub id."""
    if not name_or_path:
        return None
    from distil.hub import resolve_model_path
    from distil.labeling import directory_fingerprint

    try:
        path = resolve_model_path(name_or_path)
    except FileNotFoundError:
        return f"missing:{name_or_path}"
    if os.path.isdir(path):
        return output_fingerprint(path) or directory_fingerprint(path)
    return f"hub:{name_or_path}"


def file_fingerprint(path: str) -> str:
    """SHA-256 (16 hex digits) of a file's bytes, or `missing:<path>`."""
    if not os.path.isfile(path):
        return f"missing:{path}"
    return hash_files([path])


def dataset_dir_fingerprint(path: str) -> str:
    """What a saved `DatasetDict` is: a finished stage's signature, else the hash of its split fingerprints."""
    signature = output_fingerprint(path)
    if signature:
        return signature
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            if name in ("dataset_dict.json", "state.json", "dataset_info.json"):
                with open(os.path.join(root, name), "rb") as f:
                    h.update(os.path.relpath(os.path.join(root, name), path).encode() + f.read())
    return h.hexdigest()[:16]
