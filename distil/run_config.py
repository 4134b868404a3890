"""One YAML file per run: the data at the top, one section per stage, dotted overrides on the command line; and the
argument dataclasses it gives each stage, in the pipeline and in the stage recipes alike.

    output_dir: outputs/trec
    train_file: ../shared/data/trec/train.csv     # the top level: the run's settings and its data
    text_column: question
    label_column: coarse_label
    teacher:                                      # a section per stage: what differs from the package defaults
      max_seq_length: 64
    student:
      num_train_epochs: 3

The top level holds `PipelineArguments` (output folder, teacher, seed, Hub) and the data (`DataArguments` but
`max_seq_length`, which each stage sets for itself). Each section holds its stage's own settings (`RUN_SECTIONS`):
every field of the stage's dataclasses except the run-wide ones (the top level's) and those the run decides for the
stage (`SET_BY_RUN`: its output folder, the teacher it reads, its transfer set). The defaults are the dataclasses'
(`TeacherTrainingArguments`, `StudentArguments`, ...), so a file holds little beyond its data.

On the command line, `--student.num_train_epochs 3` sets a section's key after the file, and `--data_dir ...` a top
level one. A key in the wrong place stops the run with one line saying where it belongs, an unknown key with one line
naming the section and the key, and a file in the old layout (stage config files, `*_overrides`) with one line saying
what to change.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from distil.augment import AugmentationArguments
from distil.configs import DataArguments, DistilArgumentParser, check_lr_schedule, load_yaml_config, pop_config_arg
from distil.errors import ConfigError
from distil.hub import HubArguments
from distil.stage import StageArguments
from distil.student import BaselineTrainingArguments, StudentArguments, StudentDataArguments, StudentTrainingArguments
from distil.teacher import TeacherArguments, TeacherTrainingArguments
from distil.transfer_set import TransferSetArguments

# Each section: the argument dataclasses of its stage, in the order its entry function takes them.
RUN_SECTIONS = {
    "teacher": (TeacherArguments, DataArguments, TeacherTrainingArguments, StageArguments),
    "transfer_set": (TransferSetArguments, AugmentationArguments, DataArguments, StageArguments),
    "student": (StudentArguments, StudentDataArguments, StudentTrainingArguments, StageArguments),
    "baseline": (StudentArguments, StudentDataArguments, BaselineTrainingArguments, StageArguments),
}
# What the run decides for a stage (never in a section), and from what.
SET_BY_RUN = {
    "output_dir": "output_dir/<stage> of the run",
    "teacher_model": "the run's teacher: output_dir/teacher, or teacher_model at the top level",
    "transfer_set": "output_dir/transfer_set of the run",
    "tokenizer_name_or_path": "output_dir/student of the run: the baseline starts from the student's tokenizer",
    "loss": "ce: the baseline learns from the gold labels",
    "prune_vocab": "false: the baseline reads the student's tokenizer, pruned already",
}
SET_BY_RUN_IN = {
    "teacher": {"output_dir"},
    "transfer_set": {"output_dir", "teacher_model"},
    "student": {"output_dir", "teacher_model", "transfer_set"},
    "baseline": {"output_dir", "teacher_model", "transfer_set", "tokenizer_name_or_path", "loss", "prune_vocab"},
}
# The data, shared by every stage: `DataArguments` but `max_seq_length`, a stage's own setting.
DATA_KEYS = tuple(f.name for f in dataclasses.fields(DataArguments) if f.name != "max_seq_length")
# Keys of the layout before one file per run, and what replaced them.
OLD_LAYOUT = {
    **{f"{stage}_config": stage for stage in ("teacher", "augment", "student", "baseline")},
    **{f"{stage}_overrides": stage for stage in ("teacher", "augment", "student", "baseline")},
    "augment": "transfer_set",
}
DOCS = "docs/configs.md"

logger = logging.getLogger("distil")


@dataclass
class PipelineArguments(HubArguments, StageArguments):
    """The top level of a run file (beside the data): where the run goes, which stages it trains, its seed, and where
    it pushes (`HubArguments`: `push_to_hub`, `hub_model_id`, `hub_dataset_id`, `hub_teacher_id`, ...)."""

    output_dir: str = field(
        default="outputs/distil",
        metadata={"help": "Root of the run: `teacher/`, `transfer_set/`, `student/` and the report go under it."},
    )
    train_teacher: bool | None = field(
        default=None,
        metadata={
            "help": "Fine-tune a teacher first (into `output_dir/teacher`, its settings: the `teacher:` section). "
            "False: use `teacher_model` as is. Unset: true unless `teacher_model` is given."
        },
    )
    teacher_model: str | None = field(
        default=None,
        metadata={"help": "An already fine-tuned teacher (directory or Hub id), used when `train_teacher` is false."},
    )
    train_baseline: bool | None = field(
        default=None,
        metadata={
            "help": "Also train a cross-entropy baseline after the student (into `output_dir/baseline`), from the "
            "student's tokenizer and initial embeddings, on the gold labels; evaluated beside them. Unset: when "
            "the run has `baseline` settings (a `baseline:` section or `--baseline.KEY`)."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of every stage."})
    use_cpu: bool = field(default=False, metadata={"help": "Train teacher and student on CPU even if a GPU exists."})
    eval_batch_size: int = field(default=128, metadata={"help": "Batch size of the final teacher/student evaluation."})

    def __post_init__(self):
        if self.train_teacher is None:
            self.train_teacher = not self.teacher_model
        if not self.train_teacher and not self.teacher_model:
            raise ValueError("teacher_model is required when train_teacher is false")
        if self.train_teacher and self.teacher_model:
            raise ValueError(
                "teacher_model: given, but train_teacher is true (a teacher is trained instead); drop one"
            )
        self.require("hub_model_id", "hub_dataset_id")  # with push_to_hub

    def stage_dir(self, stage: str) -> str:
        return os.path.join(self.output_dir, stage)

    def stage_dirs(self) -> dict[str, str]:
        names = ("teacher", "transfer_set", "student") + (("baseline",) if self.train_baseline else ())
        return {name: self.stage_dir(name) for name in names}

    def teacher(self) -> str:
        """The teacher the transfer set is labelled with: the one trained here, or `teacher_model`."""
        return self.stage_dir("teacher") if self.train_teacher else self.teacher_model

    def local_teacher(self) -> str | None:
        """The teacher's local folder (trained here, or a folder given), or None (a Hub id or `pkg://`)."""
        return self.teacher() if self.train_teacher or os.path.isdir(self.teacher()) else None


RUN_KEYS = frozenset(f.name for f in dataclasses.fields(PipelineArguments)) | frozenset(DATA_KEYS)


def is_hub_key(key: str) -> bool:
    return key == "push_to_hub" or key.startswith("hub_")


def section_keys(stage: str) -> frozenset[str]:
    """The keys a section may hold: its stage's fields but the run-wide ones, those the run sets and the Hub's."""
    names = {f.name for dtype in RUN_SECTIONS[stage] for f in dataclasses.fields(dtype) if f.init}
    return frozenset(n for n in names - RUN_KEYS - SET_BY_RUN_IN[stage] if not is_hub_key(n))


def sections_with(key: str) -> list[str]:
    return [stage for stage in RUN_SECTIONS if key in section_keys(stage)]


def suggestion(key: str, candidates) -> str:
    close = difflib.get_close_matches(key, sorted(candidates), n=1)
    return f"; did you mean {close[0]}?" if close else ""


def check_section_key(stage: str, key: str, source: str) -> None:
    """One line for a key that `stage`'s section cannot hold: where it belongs, or that it is unknown."""
    if key in section_keys(stage):
        return
    where = f"{source}: {stage}.{key}"
    if key in SET_BY_RUN_IN[stage]:
        raise ConfigError(f"{where}: set by the run ({SET_BY_RUN[key]}), not in a section")
    if is_hub_key(key):
        raise ConfigError(f"{where}: the stages never push; the run's Hub settings are at the top level")
    if key in RUN_KEYS:
        raise ConfigError(f"{where}: a setting of the whole run; set it at the top level, not under {stage}:")
    others = sections_with(key)
    if others:
        raise ConfigError(f"{where}: a setting of {', '.join(others)}, not of {stage}; move it under {others[0]}:")
    raise ConfigError(f"{where}: unknown key, not a setting of {stage}{suggestion(key, section_keys(stage))}")


def check_top_key(key: str, source: str, flag: bool = False) -> None:
    """One line for a top-level key (or flag) that is not a run setting: the old layout, a stage's, or unknown."""
    if key in RUN_KEYS:
        return
    name = f"--{key}" if flag else key
    if key in OLD_LAYOUT:
        new = OLD_LAYOUT[key]
        change = f"--{new}.KEY VALUE" if flag else f"the {new}: section of this file"
        raise ConfigError(
            f"{source}: {name} is the old layout (a file per stage and *_overrides): a run is one file now, each "
            f"stage's settings in its section; use {change} ({DOCS})"
        )
    stages = sections_with(key)
    if stages:
        change = f"--{stages[0]}.{key}" if flag else f"put it under {stages[0]}:"
        raise ConfigError(f"{source}: {name}: a setting of {', '.join(stages)}, not of the whole run; {change}")
    every_key = RUN_KEYS.union(RUN_SECTIONS, *map(section_keys, RUN_SECTIONS))
    raise ConfigError(f"{source}: {name}: unknown key{suggestion(key, every_key)}")


def flag_groups(args: Sequence[str]) -> list[list[str]]:
    """`args` as groups of one flag and the values after it (`--a 1 2`, `--b`), in order."""
    groups: list[list[str]] = []
    for token in args:
        if token.startswith("--") or not groups:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def split_sections(args: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Command-line arguments split into the top level's and each section's (`--student.lr 1` -> `--lr 1`)."""
    top: list[str] = []
    sections: dict[str, list[str]] = {}
    for flag, *values in flag_groups(args):
        name = flag[2:].split("=", 1)[0] if flag.startswith("--") else ""
        stage, dot, key = name.partition(".")
        if not dot:
            top += [flag, *values]
        elif stage in RUN_SECTIONS:
            sections.setdefault(stage, []).extend(["--" + flag[len(stage) + 3 :], *values])
        else:
            hint = f"--{OLD_LAYOUT[stage]}.{key}" if stage in OLD_LAYOUT else f"one of {', '.join(RUN_SECTIONS)}"
            raise ConfigError(f"command line: --{name}: no section {stage}; use {hint}")
    return top, sections


def split_flags(args: Sequence[str], keys) -> tuple[list[str], list[str]]:
    """`args` split into the flags (with their values) whose key is in `keys`, and the others."""
    chosen: list[str] = []
    others: list[str] = []
    for group in flag_groups(args):
        (chosen if flag_names(group) and flag_names(group)[0] in keys else others).extend(group)
    return chosen, others


def flag_names(args: Sequence[str]) -> list[str]:
    """The keys of the `--key` flags in `args` (`--num-train-epochs` is `num_train_epochs`, as argparse takes it)."""
    return [token[2:].split("=", 1)[0].replace("-", "_") for token in args if token.startswith("--")]


@dataclass
class RunConfig:
    """A parsed run: its top level (`pipe`, `data`), each section's settings from the file (`sections`) and from the
    command line (`overrides`, as `--key value` arguments)."""

    pipe: PipelineArguments
    data: DataArguments
    sections: dict[str, dict[str, Any]]
    overrides: dict[str, list[str]]
    source: str | None = None


def read_run_file(path: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A run file's top-level mapping and its sections, every key checked (one line for the first wrong one)."""
    config = load_yaml_config(path)
    for key in config:
        if key in OLD_LAYOUT:  # a pipeline file of the old layout
            check_top_key(key, path)
    sections = {k: v or {} for k, v in config.items() if k in RUN_SECTIONS and isinstance(v, (dict, type(None)))}
    top = {k: v for k, v in config.items() if k not in sections}
    stage_keys = sorted(k for k in top if k not in RUN_KEYS and (k in RUN_SECTIONS or sections_with(k)))
    if stage_keys and not sections:  # a stage file of the old layout (`transfer_set: path` is the student's)
        raise ConfigError(
            f"{path}: a stage config of the old layout ({', '.join(stage_keys[:4])} at the top level): a run is one "
            f"file now; put stage settings under its teacher:, transfer_set:, student: or baseline: section ({DOCS})"
        )
    for key, value in top.items():
        if key in RUN_SECTIONS:
            raise ConfigError(f"{path}: {key}: must be a mapping of {key} settings, got {value!r}")
        check_top_key(key, path)
    for stage, section in sections.items():
        for key in section:
            check_section_key(stage, key, path)
    return top, sections


def parse_run(args: Sequence[str] | None = None) -> RunConfig:
    """The run of `--config file.yaml` (optional) and the command line (default `sys.argv[1:]`): the top level from
    the file, then the top-level flags; each section from the file, then its `--stage.key` flags. Every key is checked
    first; a wrong one is a `ConfigError` of one line."""
    run, _ = read_run(args, stage_recipe=False)
    return run


def read_run(args: Sequence[str] | None, stage_recipe: bool) -> tuple[RunConfig, list[str]]:
    """`parse_run`, and the flags left for a stage recipe's own parser (`stage_recipe`): with a file, the run's
    top-level flags (`--output_dir`, `--max_train_samples`, ...) mean what they mean to the pipeline and the others are
    the stage's own; without one, every undotted flag is the stage's own."""
    config_path, args = pop_config_arg(sys.argv[1:] if args is None else args)
    top, sections = read_run_file(config_path) if config_path else ({}, {})
    flat, overrides = split_sections(args)
    for stage, stage_args in overrides.items():
        for key in flag_names(stage_args):
            check_section_key(stage, key, "command line")
    run_args, own = flat, []
    if stage_recipe:
        run_args, own = split_flags(flat, RUN_KEYS) if config_path else ([], flat)
    for key in flag_names(run_args):
        if key not in ("help", "h"):
            check_top_key(key, "command line", flag=True)
    parser = DistilArgumentParser(
        (PipelineArguments, DataArguments),
        raise_errors=True,
        epilog="Stage settings: --teacher.KEY, --transfer_set.KEY, --student.KEY, --baseline.KEY VALUE (the keys: "
        "--help of recipes/train_teacher.py, augment.py, train_student.py).",
    )
    for action in parser._actions:  # each stage has its own max_seq_length: not a top-level flag
        if action.dest == "max_seq_length":
            action.help = argparse.SUPPRESS
    parser.set_mapping_defaults(top)
    try:
        pipe, data, remaining = parser.parse_args_into_dataclasses(args=run_args, return_remaining_strings=True)
    except ValueError as e:  # ConfigError, or a dataclass's own __post_init__ check
        raise ConfigError(f"{config_path or 'command line'}: {e}") from None
    if remaining:
        raise ConfigError(f"command line: unknown argument(s) {' '.join(remaining)}")
    if pipe.train_baseline is None:
        pipe.train_baseline = "baseline" in sections or "baseline" in overrides
    for stage, trained in (("teacher", pipe.train_teacher), ("baseline", pipe.train_baseline)):
        if not trained and (sections.get(stage) or overrides.get(stage)):
            logger.warning("%s: settings given but train_%s is false: they are not used", stage, stage)
    return RunConfig(pipe, data, sections, overrides, config_path), own


def run_settings(run: RunConfig, stage: str, publish: bool = False) -> dict[str, Any]:
    """What the run gives `stage` besides its section: the data, the run-wide settings, its output folder and inputs,
    and (`publish`, a stage recipe) its Hub settings; pushing is off in the pipeline, which publishes once."""
    pipe = run.pipe
    settings = {name: getattr(run.data, name) for name in DATA_KEYS}
    settings.update(
        seed=pipe.seed,
        use_cpu=pipe.use_cpu,
        on_stale=pipe.on_stale,
        overwrite_output_dir=pipe.overwrite_output_dir,
        output_dir=pipe.stage_dir(stage),
        push_to_hub=False,
    )
    if stage != "teacher":
        settings["teacher_model"] = pipe.teacher()
    if stage == "student":
        settings["transfer_set"] = pipe.stage_dir("transfer_set")
    if stage == "baseline":
        settings.update(
            transfer_set=None, loss="ce", tokenizer_name_or_path=pipe.stage_dir("student"), prune_vocab=False
        )
    repo = {"teacher": pipe.hub_teacher_id, "transfer_set": pipe.hub_dataset_id, "student": pipe.hub_model_id}
    if publish and pipe.push_to_hub and repo.get(stage):
        settings.update(push_to_hub=True, hub_private_repo=pipe.hub_private_repo, hub_token=pipe.hub_token)
        settings["hub_dataset_id" if stage == "transfer_set" else "hub_model_id"] = repo[stage]
    return settings


def stage_arguments(
    run: RunConfig, stage: str, args: Sequence[str] = (), *, from_run: bool = True, publish: bool = False
) -> tuple:
    """`stage`'s argument dataclasses: the package defaults, then what the run gives it (`run_settings`, unless not
    `from_run`: a stage recipe without a file) and its section of the file, then its `--stage.key` flags, then
    `args` (a stage recipe's own flags)."""
    parser = DistilArgumentParser(RUN_SECTIONS[stage], raise_errors=True)
    known = parser.known_keys()
    settings = run_settings(run, stage, publish) if from_run else {}
    mapping = {k: v for k, v in settings.items() if k in known}
    parser.set_mapping_defaults({**mapping, **run.sections.get(stage, {})})
    try:
        *parsed, remaining = parser.parse_args_into_dataclasses(
            args=[*run.overrides.get(stage, []), *args], return_remaining_strings=True
        )
        if stage in ("teacher", "student", "baseline"):
            check_lr_schedule(parsed[2], parsed[0].lr_schedule)
    except ValueError as e:  # ConfigError: argparse's `argument --key: ...`, or a dataclass's check `key: ...`
        message = re.sub(r"^argument --(\w+)(/--[\w-]+)*: ", r"\1: ", str(e))
        key = message.split(":", 1)[0]
        raise ConfigError(f"{stage}.{message}" if key in known else f"{stage}: {message}") from None
    if remaining:
        raise ConfigError(f"{stage}: unknown argument(s) {' '.join(remaining)}; not an argument of this stage")
    return tuple(parsed)


def stage_plan(run: RunConfig) -> dict[str, tuple | None]:
    """Every stage's arguments (`teacher` None when the teacher is given, `baseline` None without one), built and
    checked: a bad setting fails here, before any stage runs."""
    return {
        "teacher": stage_arguments(run, "teacher") if run.pipe.train_teacher else None,
        "transfer_set": stage_arguments(run, "transfer_set"),
        "student": stage_arguments(run, "student"),
        "baseline": stage_arguments(run, "baseline") if run.pipe.train_baseline else None,
    }


def parse_stage(stages: Sequence[str], args: Sequence[str] | None = None) -> tuple:
    """A stage recipe's arguments. With `--config run.yaml`: the stage's part of the run, exactly as the pipeline
    builds it from the same file and command line (its section, the data, its output folder under the run's, the
    teacher and transfer set of the run, its Hub settings), then the flags that are not the run's: its own
    (`--learning_rate`, `--transfer_set`, ...). Without a file: the package defaults and every flag as its own. `stages`: the sections the recipe trains, the first by
    default, another with `--stage NAME` (`train_student.py --stage baseline`)."""
    args = list(sys.argv[1:] if args is None else args)
    stage = stages[0]
    if "--stage" in args:
        i = args.index("--stage")
        stage = args[i + 1] if i + 1 < len(args) else ""
        if stage not in stages:
            raise ConfigError(f"--stage: must be one of {', '.join(stages)}, got {stage!r}")
        del args[i : i + 2]
    run, flags = read_run(args, stage_recipe=True)
    from_file = run.source is not None
    return stage_arguments(run, stage, flags, from_run=from_file, publish=from_file)
