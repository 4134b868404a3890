"""Small helpers shared by the stages: logging set-up, write-then-rename output, and saving a run's arguments."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import sys
import uuid

import datasets
import transformers


def setup_logging(level: int = logging.INFO, library_level: int | None = None) -> logging.Logger:
    """Log to stdout: the `distil` logger at `level`, datasets and transformers at `library_level` (default: `level`;
    a negative level, `TrainingArguments`' "passive", leaves the libraries' own default)."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    library_level = level if library_level is None else library_level
    if library_level >= 0:
        for lib in (datasets.utils.logging, transformers.utils.logging):
            lib.set_verbosity(library_level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    logger = logging.getLogger("distil")
    logger.setLevel(level)
    return logger


def setup_training_logging(training_args) -> logging.Logger:
    """`setup_logging` for a trainer stage: `distil` at INFO on the process that logs (WARNING on the others), the
    libraries at `training_args.get_process_log_level()`."""
    level = logging.INFO if training_args.should_log else logging.WARNING
    return setup_logging(level, library_level=training_args.get_process_log_level())


def unique_suffix() -> str:
    """A suffix for temporary names that no other process or call uses: pid and random bits."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def write_json(path: str, payload, **kwargs) -> None:
    """`json.dump` to `path`, write-then-rename."""
    with atomic_write(path) as f:
        json.dump(payload, f, **{"indent": 2, "sort_keys": True, "default": str, **kwargs})


@contextlib.contextmanager
def atomic_write(path: str):
    """Open a temporary sibling of `path` for writing and rename it over `path` on success; on error remove it and
    leave `path` as it was. The temporary name is unique to the process and call, so ranks never collide."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{unique_suffix()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(output_dir: str):
    """Yield a temporary sibling of `output_dir` to fill; on success it replaces `output_dir`, on error it is removed.

    An interrupted run never leaves a half-written `output_dir`, and an earlier one stays until the swap.
    """
    output_dir = os.path.abspath(output_dir)
    parent, name = os.path.split(output_dir)
    os.makedirs(parent, exist_ok=True)
    suffix = unique_suffix()
    tmp, old = os.path.join(parent, f".{name}.tmp-{suffix}"), os.path.join(parent, f".{name}.old-{suffix}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
        if os.path.exists(output_dir):
            os.rename(output_dir, old)
        os.rename(tmp, output_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def record_name(obj) -> str:
    """The name an argument object is recorded under: its class, or for a class that only changes defaults (the same
    fields, e.g. `TeacherTrainingArguments`) the class it specialises, so `run_args.json` always has `TrainingArguments`
    and `DataArguments` for the cards to read."""
    cls = type(obj)
    while dataclasses.is_dataclass(cls.__base__) and {f.name for f in dataclasses.fields(cls.__base__)} == {
        f.name for f in dataclasses.fields(cls)
    }:
        cls = cls.__base__
    return cls.__name__


def save_run_args(
    output_dir: str, *arg_objects, filename: str = "run_args.json", command: str | None = None, help_of=()
) -> str:
    """Write every argument dataclass of the run (and the command that ran it, when given) to `output_dir/filename`
    (write-then-rename). A `hub_token` is recorded as `<HUB_TOKEN>`, as `TrainingArguments.to_dict` does. `help_of`:
    dataclasses whose fields' help texts are recorded too (under `help`, by class name), for cards to quote."""
    os.makedirs(output_dir, exist_ok=True)
    payload = {}
    for obj in arg_objects:
        values = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        if values.get("hub_token") is not None:
            values["hub_token"] = "<HUB_TOKEN>"
        payload[record_name(obj)] = values
    if help_of:
        payload["help"] = {
            record_name(obj): {f.name: f.metadata.get("help", "") for f in dataclasses.fields(obj)} for obj in help_of
        }
    if command is not None:
        payload["command"] = re.sub(r"(--hub_token[= ])\S+", r"\1<HUB_TOKEN>", command)
    path = os.path.join(output_dir, filename)
    write_json(path, payload)
    return path
