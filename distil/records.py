"""A stage's record of what it was built from, and the fingerprints of everything a stage or a cached map reads.

Every stage writes `stage.json` into its output folder: the stage's settings, the fingerprints of its inputs (data
files, teacher, transfer set) and the package version, hashed into a signature, and its status (`running` while a
trainer stage trains, `done` once every other artefact is in place). A folder whose record says `done` is a finished
stage; its signature is then its fingerprint as an input of a later stage.

Fingerprints, one function per kind of thing, each a SHA-256 cut to 16 hex digits:
- `files_fingerprint`: the bytes of files, one after the other; `file_fingerprint`: one file, or `missing:<path>`;
- `source_fingerprint`: a module's source file (part of its cached maps' keys, so editing it invalidates them);
- `directory_fingerprint`: the names and bytes of the files directly in a folder (memoized on size and mtime);
- `model_fingerprint`: a model named by Hub id, folder or `pkg://` (a finished stage's signature, a folder's files,
  or the Hub id at the commit its main branch is at);
- `module_fingerprint`: an in-memory model (its class, config and weights);
- `dataset_dir_fingerprint`: a saved `DatasetDict` (a finished stage's signature, or its split metadata);
- `array_fingerprint`: arrays or tensors; `json_fingerprint`: a JSON value (a signature, a vocabulary);
- `object_fingerprint`: a picklable object (datasets' `Hasher`); `map_fingerprint`: a `Dataset.map` step (the input's
  fingerprint and the step's settings).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from distil.hub import hub_revision, resolve_model_path
from distil.utils import write_json

STAGE_FILE = "stage.json"
DONE, RUNNING = "done", "running"

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
# The length of a training run: a longer run of otherwise the same settings continues from a shorter one's checkpoints.
LENGTH_SETTINGS = ("max_steps", "num_train_epochs")


# ---------------------------------------------------------------- fingerprints


def digest(h) -> str:
    """The first 16 hex digits of a `hashlib` hash: the length of every fingerprint here."""
    return h.hexdigest()[:16]


def files_fingerprint(paths) -> str:
    """The files' bytes, one after the other (memoized on their size and mtime)."""
    stats = tuple((path, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in paths)
    return _files_fingerprint(stats)


@functools.lru_cache(maxsize=32)
def _files_fingerprint(stats: tuple) -> str:
    h = hashlib.sha256()
    for path, _, _ in stats:
        _update_with_file(h, path)
    return digest(h)


def _update_with_file(h, path: str) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)


def file_fingerprint(path: str) -> str:
    """One file's bytes, or `missing:<path>`."""
    if not os.path.isfile(path):
        return f"missing:{path}"
    return files_fingerprint([path])


def source_fingerprint(module_file: str) -> str:
    """A module's source (pass its `__file__`): part of the key of every map it caches."""
    return files_fingerprint([module_file])


def directory_fingerprint(path: str) -> str:
    """The names and contents of the files directly in `path` (config, weights, tokenizer; not subfolders)."""
    files = sorted(
        (name, os.stat(os.path.join(path, name)))
        for name in os.listdir(path)
        if not name.startswith(".") and os.path.isfile(os.path.join(path, name))
    )
    return _named_files_fingerprint(path, tuple((name, st.st_size, st.st_mtime_ns) for name, st in files))


@functools.lru_cache(maxsize=16)
def _named_files_fingerprint(path: str, files: tuple) -> str:  # memoized on (name, size, mtime) of every file
    h = hashlib.sha256()
    for name, _, _ in files:
        h.update(name.encode() + b"\0")
        _update_with_file(h, os.path.join(path, name))
    return digest(h)


def stage_fingerprint(path: str) -> str | None:
    """The signature of a finished stage's output folder, or None when `path` is not one."""
    record = read_record(path)
    if record and record.get("status") == DONE:
        return record.get("signature")
    return None


def model_fingerprint(name_or_path: str | None) -> str | None:
    """What a model input is: a finished stage's signature, the hash of a local folder's files, or a Hub id with the
    commit it resolves to (`hub:<id>@<sha>`: a new commit upstream is a new input)."""
    if not name_or_path:
        return None
    try:
        path = resolve_model_path(name_or_path)
    except FileNotFoundError:
        return f"missing:{name_or_path}"
    if os.path.isdir(path):
        return stage_fingerprint(path) or directory_fingerprint(path)
    return f"hub:{name_or_path}@{hub_revision(name_or_path)}"


def module_fingerprint(model) -> str:
    """An in-memory model: its class, config and weights."""
    import torch

    h = hashlib.sha256(type(model).__name__.encode())
    h.update(model.config.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest(h)


def dataset_dir_fingerprint(path: str) -> str:
    """What a saved `DatasetDict` is: a finished stage's signature, else the hash of its split fingerprints."""
    signature = stage_fingerprint(path)
    if signature:
        return signature
    h = hashlib.sha256()
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            if name in ("dataset_dict.json", "state.json", "dataset_info.json"):
                with open(os.path.join(root, name), "rb") as f:
                    h.update(os.path.relpath(os.path.join(root, name), path).encode() + f.read())
    return digest(h)


def array_fingerprint(*arrays) -> str:
    """Arrays (or tensors): equal starting points have equal fingerprints."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a).tobytes())
    return digest(h)


def json_fingerprint(value) -> str:
    """A JSON value, keys sorted (a signature's parts, a vocabulary's `(token, id)` pairs)."""
    return digest(hashlib.sha256(json.dumps(value, sort_keys=True).encode()))


def object_fingerprint(obj) -> str:
    """A picklable object (a tokenizer, a list of settings), as datasets' `Hasher` hashes it."""
    from datasets.fingerprint import Hasher

    return Hasher.hash(obj)


def map_fingerprint(dataset, step: str, *parts) -> str:
    """The `new_fingerprint` of a `Dataset.map` step over `dataset`: its input's fingerprint, the step's name and
    whatever else decides the output (a module's `source_fingerprint`, a teacher's fingerprint, settings)."""
    return object_fingerprint([dataset._fingerprint, step, *parts])


# ---------------------------------------------------------------- the stage record


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


def without_length(settings: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in settings.items() if name not in LENGTH_SETTINGS}


@dataclass
class Signature:
    """What a stage was built from: its settings, its inputs' fingerprints and the package version."""

    stage: str
    settings: dict[str, Any]
    inputs: dict[str, str]
    version: str = field(default_factory=package_version)

    @property
    def digest(self) -> str:
        return json_fingerprint([self.stage, self.settings, self.inputs, self.version])

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

    def continues(self, record: dict) -> bool:
        """Whether a run of this signature may continue from the checkpoints of the run `record` describes: the same
        stage, inputs, version and settings but for the length (`LENGTH_SETTINGS`), in the same unit and no shorter
        (the Trainer resumes a checkpoint under a larger `max_steps` or `num_train_epochs`)."""
        if self.digest == record.get("signature"):
            return True
        old = record.get("settings", {})
        same = [record.get(key) == getattr(self, key) for key in ("stage", "inputs", "version")]
        if not all(same) or without_length(old) != without_length(self.settings):
            return False
        old_steps, new_steps = old.get("max_steps", -1), self.settings.get("max_steps", -1)
        if old_steps > 0 or new_steps > 0:
            return 0 < old_steps <= new_steps
        return old.get("num_train_epochs", 0) <= self.settings.get("num_train_epochs", 0)

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


def write_record(output_dir: str, signature: Signature, status: str, **extra) -> None:
    """Write `stage.json` into `output_dir` (write-then-rename)."""
    write_json(os.path.join(output_dir, STAGE_FILE), signature.record(status, **extra))


def is_done(output_dir: str, signature: Signature | None = None) -> bool:
    """`output_dir` holds a finished stage (built from `signature`, when given)."""
    finished = stage_fingerprint(output_dir)
    return finished is not None and (signature is None or finished == signature.digest)
