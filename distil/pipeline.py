"""Chaining the three stages: where each writes, when it is done, what it is passed, and the final report."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import yaml

STAGE_CONFIG_FIELDS = {"teacher": "teacher_config", "augment": "augment_config", "student": "student_config"}


@dataclass
class PipelineArguments:
    """`recipes/distil.py`: which stage configs to chain, and the settings shared by all stages."""

    output_dir: str = field(
        default="outputs/distil",
        metadata={"help": "Root of the run: `teacher/`, `transfer_set/`, `student/` and the report go under it."},
    )
    teacher_config: str = field(
        default="configs/sst2/teacher.yaml", metadata={"help": "YAML config of the teacher stage."}
    )
    augment_config: str = field(
        default="configs/sst2/augment.yaml", metadata={"help": "YAML config of the transfer-set stage."}
    )
    student_config: str = field(
        default="configs/sst2/student.yaml", metadata={"help": "YAML config of the student stage."}
    )
    train_teacher: bool = field(
        default=True,
        metadata={"help": "Fine-tune a teacher first (into `output_dir/teacher`). False: use `teacher_model` as is."},
    )
    teacher_model: str | None = field(
        default=None,
        metadata={"help": "An already fine-tuned teacher (directory or Hub id), used when `train_teacher` is false."},
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Overrides every stage's `dataset_name`."})
    data_dir: str | None = field(default=None, metadata={"help": "Overrides every stage's `data_dir` (GLUE TSVs)."})
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Debug cap on SST-2 train rows, passed to every stage."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Debug cap on SST-2 validation rows, passed to every stage."}
    )
    n_iter: int | None = field(default=None, metadata={"help": "Overrides the augment stage's samples per sentence."})
    seed: int = field(default=42, metadata={"help": "Seed passed to every stage."})
    use_cpu: bool = field(default=False, metadata={"help": "Train teacher and student on CPU even if a GPU exists."})
    teacher_overrides: dict | str | None = field(
        default=None, metadata={"help": "Extra `key: value` arguments for the teacher stage (YAML mapping or JSON)."}
    )
    augment_overrides: dict | str | None = field(
        default=None, metadata={"help": "Extra `key: value` arguments for the augment stage (YAML mapping or JSON)."}
    )
    student_overrides: dict | str | None = field(
        default=None, metadata={"help": "Extra `key: value` arguments for the student stage (YAML mapping or JSON)."}
    )
    eval_batch_size: int = field(default=128, metadata={"help": "Batch size of the final teacher/student evaluation."})
    push_to_hub: bool = field(default=False, metadata={"help": "Push the student (and its card) to the Hub."})
    hub_model_id: str | None = field(
        default=None, metadata={"help": "Hub repo of the student, e.g. `me/sst2-bilstm`."}
    )

    def __post_init__(self):
        for name in ("teacher_overrides", "augment_overrides", "student_overrides"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping of argument names to values, got {value!r}")
            setattr(self, name, value or {})
        if not self.train_teacher and not self.teacher_model:
            raise ValueError("teacher_model is required when train_teacher is false")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("hub_model_id is required with push_to_hub")

    def stage_dirs(self) -> dict[str, str]:
        return {name: os.path.join(self.output_dir, name) for name in ("teacher", "transfer_set", "student")}


def stage_done(path: str) -> bool:
    """A stage is done when its output holds what it writes last (trainer stages: `all_results.json`; the transfer
    set: `dataset_dict.json`, swapped in whole)."""
    return os.path.isfile(os.path.join(path, "all_results.json")) or os.path.isfile(
        os.path.join(path, "dataset_dict.json")
    )


def _flag(key: str, value) -> list[str]:
    if isinstance(value, bool):
        value = str(value).lower()
    elif isinstance(value, (dict, list)):
        value = json.dumps(value)
    return [f"--{key}", str(value)]


def stage_args(pipe: PipelineArguments, stage: str, output_dir: str, **extra) -> list[str]:
    """Command line for one stage: its config, the shared settings, `extra`, then the stage's overrides."""
    args = ["--config", getattr(pipe, STAGE_CONFIG_FIELDS[stage]), "--output_dir", output_dir]
    shared = {
        "dataset_name": pipe.dataset_name,
        "data_dir": pipe.data_dir,
        "max_train_samples": pipe.max_train_samples,
        "max_eval_samples": pipe.max_eval_samples,
        "seed": pipe.seed,
    }
    if stage == "augment":
        shared["n_iter"] = pipe.n_iter
    else:
        shared["use_cpu"] = pipe.use_cpu or None
    overrides = getattr(pipe, f"{stage}_overrides")
    for key, value in {**shared, **extra, **overrides}.items():
        if value is not None:
            args += _flag(key, value)
    return args


def evaluate_models(pipe: PipelineArguments, models: dict[str, str]) -> dict[str, dict[str, float]]:
    """Accuracy and F1 of each model on SST-2 validation, and its agreement with the first model (the teacher)."""
    import numpy as np

    from distil.data import load_sst2
    from distil.labeling import label_with_teacher
    from distil.metrics import classification_metrics

    validation = load_sst2(
        dataset_name=pipe.dataset_name or "stanfordnlp/sst2",
        data_dir=pipe.data_dir or _stage_config_value(pipe.teacher_config, "data_dir"),
        max_eval_samples=pipe.max_eval_samples,
    )["validation"]
    references = np.asarray(validation["label"])
    results, reference_predictions = {}, None
    for name, path in models.items():
        logits = np.asarray(
            label_with_teacher(validation, path, batch_size=pipe.eval_batch_size, desc=f"Evaluating {name}")[
                "teacher_logits"
            ]
        )
        predictions = logits.argmax(-1)
        metrics = classification_metrics().compute(predictions=predictions, references=references)
        if reference_predictions is None:
            reference_predictions = predictions
        metrics["agreement_with_teacher"] = float((predictions == reference_predictions).mean())
        metrics["model"] = str(path)
        metrics["eval_samples"] = len(validation)
        results[name] = metrics
    return results


def _stage_config_value(config_path: str, key: str):
    from distil.configs import load_yaml_config

    return load_yaml_config(config_path).get(key) if os.path.isfile(config_path) else None


def results_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table of `evaluate_models` results."""
    lines = [
        "| model | path | accuracy | F1 | agreement with teacher |",
        "|---|---|---|---|---|",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | `{m['model']}` | {m['accuracy']:.4f} | {m['f1']:.4f} | {m['agreement_with_teacher']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(output_dir: str, results: dict[str, dict[str, float]]) -> None:
    """`all_results.json` and `results.md` under `output_dir` (each written to a temp file, then renamed)."""
    from distil.utils import atomic_write

    for name, text in (
        ("all_results.json", json.dumps(results, indent=2, sort_keys=True)),
        ("results.md", results_table(results)),
    ):
        with atomic_write(os.path.join(output_dir, name)) as f:
            f.write(text)


def push_student(student_dir: str, repo_id: str, output_dir: str) -> str:
    """Upload the student folder (model, tokenizer, code) and the run's teacher-vs-student table to the Hub."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(folder_path=student_dir, repo_id=repo_id, ignore_patterns=["checkpoint-*", "*.tmp"])
    report = os.path.join(output_dir, "results.md")
    if os.path.isfile(report):
        api.upload_file(path_or_fileobj=report, path_in_repo="results.md", repo_id=repo_id)
    return repo_id
