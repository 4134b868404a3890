"""A teacher's classification head and label names, checked against the data's before any work starts.

- `has_classification_head`: whether a checkpoint is a trained sequence classifier (its config names a
  `...ForSequenceClassification` architecture, or its weights hold the head's tensors), read from the config and the
  weight files' key lists: no model is built and no random head is initialised.
- `check_head`: the one check of a model's head against the data, for the teacher stage (a classifier with another
  number of labels is refused, or its head replaced on request) and the transfer set (a trained head is required).
- `label_order`: the teacher's logit columns in the data's label order, matched by name; the same names in another
  order are remapped, different names stop with one line listing both sets.
"""

from __future__ import annotations

import json
import logging
import os

import torch
from safetensors import safe_open
from transformers import AutoModelForSequenceClassification

from distil.errors import ConfigError

logger = logging.getLogger("distil")

SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
TORCH_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def checkpoint_keys(path: str) -> set[str] | None:
    """The tensor names in a local checkpoint folder (safetensors or torch, single file or sharded), read from the
    files' headers and indices; None where the folder holds no weights this can read."""
    for name in SAFETENSORS_FILES + TORCH_FILES:
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            continue
        if name.endswith(".index.json"):
            with open(file, encoding="utf-8") as f:
                return set(json.load(f).get("weight_map", {}))
        if name.endswith(".safetensors"):
            with safe_open(file, framework="pt") as f:
                return set(f.keys())
        return set(torch.load(file, map_location="meta", weights_only=True, mmap=True))
    return None


def head_keys(config) -> set[str]:
    """The tensor names of the sequence-classification head that `config`'s model class adds to its base model,
    read from a model built on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    prefix = f"{model.base_model_prefix}."
    return {key for key in model.state_dict() if not key.startswith(prefix)}


def has_classification_head(path: str, config) -> bool:
    """Whether the checkpoint at `path` is a trained sequence classifier: a config naming a
    `...ForSequenceClassification` architecture whose weights (when readable here) hold the head's tensors."""
    architectures = config.architectures or []
    if architectures and not any(arch.endswith("ForSequenceClassification") for arch in architectures):
        return False
    keys = checkpoint_keys(path) if os.path.isdir(path) else None
    if keys is None:
        return bool(architectures)  # a Hub checkpoint: its config decides
    head = head_keys(config)
    return bool(head) and head <= keys


def check_head(
    field: str,
    name: str,
    config,
    label_names: list[str],
    *,
    trained_at: str | None = None,
    replace_mismatched: bool = False,
    hint: str = "give a teacher fine-tuned on it",
) -> None:
    """Stop with one line when a model's head does not fit the data, before any work.

    With `trained_at` (the checkpoint's folder or Hub id) the model must be a trained sequence classifier: a random
    head would label the transfer set with noise. A classifier whose number of labels is not the data's is refused
    (`hint` says what to do), or with `replace_mismatched` its head is replaced (logged) and trained from scratch; a
    base model without a head always passes (a new head is trained).
    """
    if trained_at is not None and not has_classification_head(trained_at, config):
        architectures = ", ".join(config.architectures or []) or "no architecture in its config"
        raise ConfigError(
            f"{field}: {name!r} has no trained sequence-classification head ({architectures}); fine-tune it with "
            "the teacher stage first, or give a teacher fine-tuned on the data"
        )
    is_classifier = trained_at is not None or any(
        arch.endswith("ForSequenceClassification") for arch in config.architectures or []
    )
    if not is_classifier or config.num_labels == len(label_names):
        return
    if not replace_mismatched:
        raise ConfigError(
            f"{field}: {name!r} is a classifier with num_labels={config.num_labels}, the data has {len(label_names)} "
            f"labels ({', '.join(label_names)}); {hint}"
        )
    logger.warning("Replacing the %d-label head of %s with a new %d-label one", config.num_labels, name,
                   len(label_names))  # fmt: skip


def teacher_label_names(config) -> list[str]:
    """The teacher's label names in id order."""
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def label_order(field: str, name: str, config, data_names: list[str]) -> list[int] | None:
    """The teacher's logit columns in the order of `data_names` (`logits[:, order]`), or None when the orders agree.

    Labels are matched by name: the same names in another order are remapped (and logged); any other difference
    stops with one line listing both sets.
    """
    teacher_names = teacher_label_names(config)
    if teacher_names == list(data_names):
        return None
    if sorted(teacher_names) != sorted(data_names) or len(set(teacher_names)) != len(teacher_names):
        raise ConfigError(
            f"{field}: the labels of {name!r} ({', '.join(teacher_names)}) are not the data's "
            f"({', '.join(data_names)}); give a teacher fine-tuned on this data, or name its labels in its config's "
            "id2label"
        )
    order = [teacher_names.index(n) for n in data_names]
    logger.info("Teacher %s lists the data's labels in another order: its logits are reordered by %s", name, order)
    return order
