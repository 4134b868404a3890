"""The YAML-aware `HfArgumentParser` behind every recipe, and the data arguments all stages share.

`DistilArgumentParser` takes defaults from a mapping (a run file's section: `distil.run_config`) or from `--config
file.yaml` (`parse_args`, for flat argument sets such as `python -m distil.push`), then command-line flags; values are
converted as argparse converts them, so a value means the same in a YAML file and on the command line, and a key that
no dataclass knows fails with a message naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import sys
import typing
from dataclasses import dataclass, field
from typing import Any

import torch
import yaml
from accelerate import PartialState
from transformers import HfArgumentParser, SchedulerType, TrainingArguments

from distil.errors import ConfigError, InputError
from distil.hardware import use_launch_cpu_threads

__all__ = ["ConfigError", "DataArguments", "DistilArgumentParser", "parse_args", "recipe_default", "run_recipe"]


@dataclass
class DataArguments:
    """Where the task's data comes from (GLUE TSVs, local files or the Hub), its columns and labels, and debug caps."""

    dataset_name: str = field(
        default="stanfordnlp/sst2",
        metadata={"help": "Hub dataset id. Ignored when `data_dir` or `train_file` is set."},
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset config, e.g. `sst2` for `nyu-mll/glue`."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Local directory of GLUE SST-2 TSV files (`train.tsv`, `dev.tsv`: `sentence<TAB>label`)."},
    )
    train_file: str | None = field(
        default=None,
        metadata={
            "help": "Local train file: CSV (`.csv`), TSV (`.tsv`, no quoting), JSON Lines (`.jsonl`, `.json`) or "
            "Parquet (`.parquet`), with columns `text_column` and `label_column`. Ignored when `data_dir` is set."
        },
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "Local validation file, same format. Unset: `validation_split_percentage` of train."},
    )
    text_column: str = field(default="sentence", metadata={"help": "Column holding the text to classify."})
    label_column: str = field(
        default="label", metadata={"help": "Column holding the label: a name (`LOC`) or an integer id."}
    )
    class_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Label names in id order: names integer labels 0..N-1, or fixes the id order of named labels. "
            "Unset: the data's own `ClassLabel`, else the names sorted, else integers named by their digits."
        },
    )
    validation_split_percentage: float = field(
        default=10.0,
        metadata={
            "help": "Without a validation split: this percentage of train becomes one (seeded; stratified by label "
            "when every class has 2+ rows)."
        },
    )
    validation_split_seed: int = field(default=42, metadata={"help": "Seed of the validation split made from train."})
    max_train_samples: int | None = field(
        default=None,
        metadata={
            "help": "Debug cap on train *sentences*, in every stage: the teacher trains on the first N, the "
            "transfer set augments the first N, and the student keeps the transfer-set rows built from them "
            "(`max_transfer_samples` caps transfer-set rows instead)."
        },
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Debug cap: keep only the first N validation rows."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Truncate tokenized sentences to this many tokens."})


def recipe_default(dataclass_type, name: str, default):
    """The field `name` of `dataclass_type` with another default, its help and choices kept: how a stage's argument
    class (`TeacherTrainingArguments(TrainingArguments)`) carries its recipe, as trl's configs do."""
    (parent,) = (f for f in dataclasses.fields(dataclass_type) if f.name == name)
    return field(default=default, metadata=parent.metadata)


LR_SCHEDULES = {
    "constant": SchedulerType.CONSTANT,
    "warmup": SchedulerType.LINEAR,
    "cyclic": SchedulerType.COSINE_WITH_RESTARTS,
}


def check_lr_schedule(training_args: TrainingArguments, lr_schedule: str | None) -> None:
    """A schedule name beside another `lr_scheduler_type` than the default (linear) is refused: one of them would be
    ignored."""
    scheduler = SchedulerType(training_args.lr_scheduler_type)
    if lr_schedule in LR_SCHEDULES and scheduler not in (SchedulerType.LINEAR, LR_SCHEDULES[lr_schedule]):
        raise ConfigError(
            f"lr_schedule: {lr_schedule} sets lr_scheduler_type {LR_SCHEDULES[lr_schedule].value}, but it is set to "
            f"{scheduler.value}; set lr_schedule to null to use lr_scheduler_type"
        )


def apply_lr_schedule(training_args: TrainingArguments, lr_schedule: str | None, epochs_per_cycle: float = 1.0):
    """Map the original script's schedule names onto `TrainingArguments.lr_scheduler_type` (`check_lr_schedule`
    first)."""
    if lr_schedule is None:
        return training_args
    check_lr_schedule(training_args, lr_schedule)
    if lr_schedule == "constant":
        training_args.lr_scheduler_type = SchedulerType.CONSTANT
        training_args.warmup_steps = 0
    elif lr_schedule == "warmup":
        training_args.lr_scheduler_type = SchedulerType.LINEAR
    elif lr_schedule == "cyclic":
        if epochs_per_cycle <= 0:
            raise ConfigError(f"epochs_per_cycle: must be > 0, got {epochs_per_cycle}")
        training_args.lr_scheduler_type = SchedulerType.COSINE_WITH_RESTARTS
        kwargs = dict(training_args.lr_scheduler_kwargs or {})
        kwargs["num_cycles"] = max(1, math.ceil(training_args.num_train_epochs / epochs_per_cycle))
        training_args.lr_scheduler_kwargs = kwargs
    else:
        raise ConfigError(f"lr_schedule: must be one of constant, warmup, cyclic; got {lr_schedule!r}")
    return training_args


def yaml_error(source: str, error: yaml.YAMLError) -> ConfigError:
    """One line for a YAML syntax error: `source:line:column: not valid YAML: problem`."""
    mark = getattr(error, "problem_mark", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    problem = getattr(error, "problem", None) or (str(error).splitlines() or [type(error).__name__])[0]
    return ConfigError(f"{where}: not valid YAML: {problem}")


def load_yaml_config(path: str) -> dict[str, Any]:
    """A YAML config file as a mapping; a missing file, bad bytes or a syntax error is a `ConfigError` naming the file
    (and the line)."""
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            config = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise yaml_error(path, e) from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: bytes that are not UTF-8 at byte offset {e.start}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of argument names to values, got {type(config).__name__}")
    return config


def null_or(convert):
    """An argparse type: `null` (or `None`) is None, anything else `convert(text)`."""

    def null_or_value(text: str):
        return None if text in ("null", "None") else convert(text)

    null_or_value.__name__ = getattr(convert, "__name__", "value")  # argparse names it in `invalid int value`
    return null_or_value


class DistilArgumentParser(HfArgumentParser):
    """`HfArgumentParser` that reads `--config file.yaml` first, then lets command-line flags override it."""

    def __init__(self, dataclass_types, raise_errors: bool = False, **kwargs):
        super().__init__(dataclass_types, **kwargs)
        self.raise_errors = raise_errors  # raise a ConfigError instead of printing the usage and exiting
        # `--key null` unsets a field that may be None, as `key: null` does in YAML (`--student.embedding_size null`)
        nullable = {
            name
            for dtype in self.dataclass_types
            for name, hint in typing.get_type_hints(dtype).items()
            if type(None) in typing.get_args(hint)
        }
        for action in self._actions:
            if action.dest in nullable and action.nargs is None and action.type not in (None, bool):
                action.type = null_or(action.type)
                if action.choices is not None:
                    action.choices = [*action.choices, None]
        # Without an accelerator the CPU is the only device: saying so up front lets several processes launched
        # together form a gloo group (`TrainingArguments` creates the run's `PartialState` when it is built).
        if "use_cpu" in self.known_keys() and not torch.accelerator.is_available():
            self.set_defaults(use_cpu=True)

    def error(self, message: str):
        if self.raise_errors:
            raise ConfigError(message)
        super().error(message)

    def known_keys(self) -> set[str]:
        return {f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init}

    def check_keys(self, mapping: dict[str, Any], source: str) -> None:
        unknown = sorted(set(mapping) - self.known_keys())
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; not an argument of this recipe")

    def set_mapping_defaults(self, mapping: dict[str, Any]) -> None:
        """Make `mapping` the parser's defaults: argparse converts string values as if they came from the command
        line (so YAML's `1e-3`, a string, becomes a float), and keys given here are no longer required."""
        self.set_defaults(**mapping)
        for action in self._actions:
            if action.dest in mapping:
                action.required = False

    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        config_path, args = pop_config_arg(sys.argv[1:] if args is None else args)
        if config_path is not None:
            config = load_yaml_config(config_path)
            self.check_keys(config, config_path)
            self.set_mapping_defaults(config)
        *parsed, remaining = self.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
        if remaining:
            raise ConfigError(f"unknown argument(s) {' '.join(remaining)}; not an argument of this recipe")
        return tuple(parsed)


def pop_config_arg(args: list[str]) -> tuple[str | None, list[str]]:
    """`--config PATH` (or `--config=PATH`) taken out of `args`: the path (None without one) and the other arguments."""
    args = list(args)
    for i, a in enumerate(args):
        if a == "--config":
            if i + 1 >= len(args):
                raise ConfigError("--config needs a path to a YAML file")
            return args[i + 1], args[:i] + args[i + 2 :]
        if a.startswith("--config="):
            return a.split("=", 1)[1], args[:i] + args[i + 1 :]
    return None, args


def parse_args(*dataclass_types, args: list[str] | None = None) -> tuple:
    """Parse `dataclass_types` from `--config` YAML plus command-line overrides; bad arguments exit with one line."""
    parser = DistilArgumentParser(dataclass_types)
    try:
        return parser.parse_args_and_config(args)
    except ValueError as e:  # ConfigError, or a dataclass's own __post_init__ check
        parser.error(str(e))


def recipe_command(script: str, args: list[str] | None = None) -> str:
    """The command line that ran a recipe, for cards and run records."""
    return shlex.join(["accelerate", "launch", script, *(sys.argv[1:] if args is None else args)])


def run_recipe(main, prog: str) -> None:
    """Run a recipe's `main()` as a script, on the CPU threads `distil.hardware.launch_cpu_threads` picks: bad input
    (config, data file, model) exits with one line naming it."""
    try:
        use_launch_cpu_threads()
        # accelerate forms a group of CPU processes (gloo) only when told `cpu=True`; without an accelerator the CPU
        # is the only device, so the run's state is created here before any stage asks for it
        PartialState(cpu=not torch.accelerator.is_available())
        main()
    except (InputError, FileNotFoundError) as e:
        sys.exit(f"{prog}: error: {e}")
