"""What task a run is about, in words and tags, read from its data arguments and label names: the text of cards.

SST-2 (GLUE TSVs in `data_dir`, or `stanfordnlp/sst2` / GLUE `sst2` on the Hub) is named as before ("SST-2 sentiment
classification"); any other data is described by its source (a Hub id or a local file) and its labels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

SST2_HUB_ID = "stanfordnlp/sst2"
SST2_IDS = {SST2_HUB_ID, "sst2", "glue/sst2", "nyu-mll/glue/sst2"}


@dataclass
class Task:
    """A task's names for cards: `name` (SST-2, TREC, `org/dataset`), `description` ("sentiment classification",
    "text classification into 6 classes"), `hub_id` (a Hub dataset id, or None for local files), `tags`, and the
    dataset card's `task_id`."""

    name: str
    description: str
    label_names: list[str]
    hub_id: str | None = None
    tags: list[str] = field(default_factory=list)
    task_id: str = "multi-class-classification"
    source: str | None = None  # a local file or directory the data came from

    @property
    def is_sst2(self) -> bool:
        return self.name == "SST-2"

    @property
    def labels_text(self) -> str:
        return ", ".join(self.label_names)


def _is_sst2(data_args: dict) -> bool:
    if data_args.get("data_dir"):
        return True
    if data_args.get("train_file"):
        return False
    name = data_args.get("dataset_name") or SST2_HUB_ID
    config = data_args.get("dataset_config_name")
    return name in SST2_IDS or f"{name}/{config}" in SST2_IDS


def _file_task_name(path: str) -> str:
    """A local file's task name: its stem, or its folder's name for a generic stem (`trec/train.csv` -> `trec`)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.lower() in ("train", "training", "data", "dataset", "all"):
        stem = os.path.basename(os.path.dirname(os.path.abspath(path))) or stem
    return stem.upper() if len(stem) <= 5 else stem


def task_of(data_args: dict | None, label_names: list[str]) -> Task:
    """The task of a run whose `DataArguments` are `data_args` (as saved in `run_args.json`) and whose labels are
    `label_names` (the model's `id2label`, the transfer set's `ClassLabel`)."""
    data_args = data_args or {}
    label_names = [str(n) for n in label_names]
    if _is_sst2(data_args):
        hub_id = SST2_HUB_ID if data_args.get("data_dir") else data_args.get("dataset_name") or SST2_HUB_ID
        return Task(
            "SST-2",
            "sentiment classification",
            label_names,
            hub_id=hub_id,
            tags=["sentiment-analysis", "sst2"],
            task_id="sentiment-classification",
            source=data_args.get("data_dir"),
        )
    n = len(label_names)
    description = (
        f"text classification into {n} classes ({', '.join(label_names)})"
        if n <= 12
        else (f"text classification into {n} classes")
    )
    if data_args.get("train_file"):
        name = _file_task_name(data_args["train_file"])
        tag = name.lower().replace(" ", "-")
        return Task(name, description, label_names, tags=[tag], source=data_args["train_file"])
    hub_id = data_args.get("dataset_name")
    config = data_args.get("dataset_config_name")
    name = f"{hub_id} ({config})" if config else hub_id
    return Task(name, description, label_names, hub_id=hub_id, tags=[hub_id.split("/")[-1].lower()])
