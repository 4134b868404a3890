"""Chaining the three stages: where each writes, when it is done, what it is passed, and the final report.

`run_pipeline` builds each stage's argument dataclasses from the stage's YAML config, the pipeline's shared settings
and the stage's overrides (`stage_arguments`), then calls the stage functions (`distil.teacher.train_teacher`,
`distil.transfer_set.build_transfer_set`, `distil.student.train_student`) with them.
"""

from __future__ import annotations

import dataclasses
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


def stage_arguments(pipe: PipelineArguments, stage: str, output_dir: str, **extra) -> tuple:
    """One stage's argument dataclasses: its YAML config, then the pipeline's shared settings, then `extra`, then the
    stage's overrides (each later layer wins). A key no dataclass of the stage knows is an error naming its source."""
    from distil.configs import load_yaml_config, parse_mapping

    config_path = getattr(pipe, STAGE_CONFIG_FIELDS[stage])
    dataclass_types = stage_dataclasses(stage)
    shared = {
        "dataset_name": pipe.dataset_name,
        "data_dir": pipe.data_dir,
        "max_train_samples": pipe.max_train_samples,
        "max_eval_samples": pipe.max_eval_samples,
        "seed": pipe.seed,
        "n_iter": pipe.n_iter,
        "use_cpu": pipe.use_cpu or None,
    }
    known = {f.name for dtype in dataclass_types for f in dataclasses.fields(dtype)}
    shared = {k: v for k, v in shared.items() if v is not None and k in known}
    return parse_mapping(
        dataclass_types,
        (config_path, load_yaml_config(config_path)),
        ("pipeline", {**shared, "output_dir": output_dir, **extra}),
        (f"{stage}_overrides", getattr(pipe, f"{stage}_overrides")),
    )


def stage_dataclasses(stage: str) -> tuple:
    """The argument dataclasses of `stage` (`teacher`, `augment`, `student`), in the order its entry function takes."""
    from transformers import TrainingArguments

    from distil.augment import AugmentationArguments
    from distil.configs import DataArguments
    from distil.student import StudentArguments
    from distil.teacher import TeacherArguments
    from distil.transfer_set import TransferSetArguments

    return {
        "teacher": (TeacherArguments, DataArguments, TrainingArguments),
        "augment": (TransferSetArguments, AugmentationArguments, DataArguments),
        "student": (StudentArguments, DataArguments, TrainingArguments),
    }[stage]


def run_pipeline(pipe: PipelineArguments, command: str | None = None) -> dict[str, dict[str, float]]:
    """Teacher -> transfer set -> student (each stage skipped when its output is done), then the teacher-vs-student
    report and the push. Every stage's arguments are built and checked before any stage runs."""
    from transformers import set_seed

    from distil.student import train_student
    from distil.teacher import train_teacher
    from distil.transfer_set import build_transfer_set

    set_seed(pipe.seed)
    dirs = pipe.stage_dirs()
    teacher = dirs["teacher"] if pipe.train_teacher else pipe.teacher_model
    teacher_args = stage_arguments(pipe, "teacher", dirs["teacher"]) if pipe.train_teacher else None
    transfer_args = stage_arguments(pipe, "augment", dirs["transfer_set"], teacher_model=teacher)
    student_args = stage_arguments(
        pipe, "student", dirs["student"], transfer_set=dirs["transfer_set"], teacher_model=teacher
    )

    # Teacher
    if teacher_args is not None and not stage_done(dirs["teacher"]):
        train_teacher(*teacher_args)

    # Transfer set
    if not stage_done(dirs["transfer_set"]):
        build_transfer_set(*transfer_args, command=command)

    # Student
    if not stage_done(dirs["student"]):
        train_student(*student_args)

    # Evaluate and report
    results = evaluate_models(pipe, transfer_args[2], {"teacher": teacher, "student": dirs["student"]})
    write_report(pipe.output_dir, results)

    # Push
    if pipe.push_to_hub:
        push_student(dirs["student"], pipe.hub_model_id, pipe.output_dir)
    return results


def evaluate_models(pipe: PipelineArguments, data_args, models: dict[str, str]) -> dict[str, dict[str, float]]:
    """Accuracy and F1 of each model on SST-2 validation (as `data_args` loads it), and its agreement with the first
    model (the teacher)."""
    import numpy as np

    from distil.data import load_sst2_from_args
    from distil.labeling import label_with_teacher
    from distil.metrics import classification_metrics

    validation = load_sst2_from_args(data_args)["validation"]
    references = np.asarray(validation["label"])
    results, reference_predictions = {}, None
    for name, path in models.items():
        logits = np.asarray(
            label_with_teacher(
                validation, path, batch_size=pipe.eval_batch_size, precision="fp32", desc=f"Evaluating {name}"
            )["teacher_logits"]
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
