"""Chaining the three stages: where each writes, when it is done, what it is passed, and the final report.

`run_pipeline` builds each stage's argument dataclasses from the stage's YAML config, the pipeline's shared settings
and the stage's overrides (`stage_arguments`), then calls the stage functions (`distil.teacher.train_teacher`,
`distil.transfer_set.build_transfer_set`, `distil.student.train_student`) with them. It pushes nothing: publishing
(`distil.push`) runs after it, with the Hub settings of `PipelineArguments` (`recipes/distil.py`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field

import numpy as np
import yaml
from transformers import AutoConfig, TrainingArguments, set_seed

from distil.augment import AugmentationArguments
from distil.configs import DataArguments, load_yaml_config, parse_mapping, yaml_error
from distil.data import LABEL_COLUMN, load_data_from_args
from distil.distributed import is_main_process, wait_for_everyone
from distil.hub import HubArguments, resolve_model_path
from distil.labeling import add_classifier_logits
from distil.labels import label_order
from distil.metrics import agreement, classification_metrics
from distil.records import read_record
from distil.stage import StageArguments, trained_max_length
from distil.student import StudentArguments, train_student
from distil.teacher import TeacherArguments, train_teacher
from distil.transfer_set import TransferSetArguments, build_transfer_set
from distil.utils import atomic_write

STAGE_CONFIG_FIELDS = {
    "teacher": "teacher_config",
    "augment": "augment_config",
    "student": "student_config",
    "baseline": "baseline_config",
}
# The data settings the pipeline passes to every stage when set.
SHARED_DATA_FIELDS = (
    "dataset_name",
    "dataset_config_name",
    "data_dir",
    "train_file",
    "validation_file",
    "text_column",
    "label_column",
    "validation_split_percentage",
    "max_train_samples",
    "max_eval_samples",
)


@dataclass
class PipelineArguments(HubArguments, StageArguments):
    """`recipes/distil.py`: which stage configs to chain, the settings shared by all stages, and where to push
    (`HubArguments`: `push_to_hub`, `hub_model_id`, `hub_dataset_id`, `hub_teacher_id`, ...)."""

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
    baseline_config: str | None = field(
        default=None,
        metadata={
            "help": "YAML config of a cross-entropy baseline trained after the student (into `output_dir/baseline`) "
            "from the student's tokenizer and initial embeddings, on the data's gold labels; evaluated beside them. "
            "Unset: no baseline."
        },
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
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "Overrides every stage's `dataset_config_name`."}
    )
    data_dir: str | None = field(default=None, metadata={"help": "Overrides every stage's `data_dir` (GLUE TSVs)."})
    train_file: str | None = field(
        default=None, metadata={"help": "Overrides every stage's `train_file` (CSV, TSV, JSON Lines, Parquet)."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Overrides every stage's `validation_file`."})
    text_column: str | None = field(default=None, metadata={"help": "Overrides every stage's `text_column`."})
    label_column: str | None = field(default=None, metadata={"help": "Overrides every stage's `label_column`."})
    validation_split_percentage: float | None = field(
        default=None, metadata={"help": "Overrides every stage's `validation_split_percentage`."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Debug cap on train sentences, passed to every stage."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Debug cap on validation rows, passed to every stage."}
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
    baseline_overrides: dict | str | None = field(
        default=None, metadata={"help": "Extra `key: value` arguments for the baseline (YAML mapping or JSON)."}
    )
    eval_batch_size: int = field(default=128, metadata={"help": "Batch size of the final teacher/student evaluation."})

    def __post_init__(self):
        for name in ("teacher_overrides", "augment_overrides", "student_overrides", "baseline_overrides"):
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    value = yaml.safe_load(value)
                except yaml.YAMLError as e:
                    raise yaml_error(name, e) from None
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name} must be a mapping of argument names to values, got {value!r}")
            setattr(self, name, value or {})
        if not self.train_teacher and not self.teacher_model:
            raise ValueError("teacher_model is required when train_teacher is false")
        self.require("hub_model_id", "hub_dataset_id")  # with push_to_hub

    def stage_dirs(self) -> dict[str, str]:
        names = ("teacher", "transfer_set", "student") + (("baseline",) if self.baseline_config else ())
        return {name: os.path.join(self.output_dir, name) for name in names}

    def teacher(self) -> str:
        """The teacher the transfer set is labelled with: the one trained here, or `teacher_model`."""
        return self.stage_dirs()["teacher"] if self.train_teacher else self.teacher_model

    def local_teacher(self) -> str | None:
        """The teacher's local folder (trained here, or a folder given), or None (a Hub id or `pkg://`)."""
        return self.teacher() if self.train_teacher or os.path.isdir(self.teacher()) else None


def stage_arguments(pipe: PipelineArguments, stage: str, output_dir: str, **extra) -> tuple:
    """One stage's argument dataclasses: its YAML config, then the pipeline's shared settings, then `extra`, then the
    stage's overrides (each later layer wins). A key no dataclass of the stage knows is an error naming its source."""
    config_path = getattr(pipe, STAGE_CONFIG_FIELDS[stage])
    dataclass_types = stage_dataclasses(stage)
    shared = {
        **{name: getattr(pipe, name) for name in SHARED_DATA_FIELDS},
        "seed": pipe.seed,
        "n_iter": pipe.n_iter,
        "use_cpu": pipe.use_cpu or None,
        "on_stale": pipe.on_stale,
        "overwrite_output_dir": pipe.overwrite_output_dir or None,
        "push_to_hub": False,  # the stages' own push settings are off: publishing pushes the run once
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
    return {
        "teacher": (TeacherArguments, DataArguments, TrainingArguments, StageArguments),
        "augment": (TransferSetArguments, AugmentationArguments, DataArguments, StageArguments),
        "student": (StudentArguments, DataArguments, TrainingArguments, StageArguments),
        "baseline": (StudentArguments, DataArguments, TrainingArguments, StageArguments),
    }[stage]


def stage_plan(pipe: PipelineArguments) -> dict[str, tuple | None]:
    """Every stage's arguments (`teacher` is None when the teacher is given), built and checked: a bad config or
    override fails here, before any stage runs."""
    dirs, teacher = pipe.stage_dirs(), pipe.teacher()
    return {
        "teacher": stage_arguments(pipe, "teacher", dirs["teacher"]) if pipe.train_teacher else None,
        "augment": stage_arguments(pipe, "augment", dirs["transfer_set"], teacher_model=teacher),
        "student": stage_arguments(
            pipe, "student", dirs["student"], transfer_set=dirs["transfer_set"], teacher_model=teacher
        ),
        # the student's start (tokenizer, embeddings from the teacher), gold labels only
        "baseline": stage_arguments(
            pipe, "baseline", dirs["baseline"], transfer_set=None, loss="ce", teacher_model=teacher,
            tokenizer_name_or_path=dirs["student"],
        ) if pipe.baseline_config else None,
    }  # fmt: skip


def run_pipeline(
    pipe: PipelineArguments, command: str | None = None, plan: dict[str, tuple | None] | None = None
) -> dict[str, dict[str, float]]:
    """Teacher -> transfer set -> student, then the teacher-vs-student report.

    Every stage's arguments are built and checked before any stage runs (`plan`: from `stage_plan`, when the caller
    built them already). Each stage skips itself when its output was built from the same settings and inputs, and
    rebuilds it (or stops, `on_stale: error`) when not; a rebuilt stage changes the inputs of the stages after it, so
    they are rebuilt too. The main process writes the report; the others wait and return the same results.
    """
    set_seed(pipe.seed)
    dirs, teacher = pipe.stage_dirs(), pipe.teacher()
    plan = plan or stage_plan(pipe)
    teacher_args, transfer_args, student_args = plan["teacher"], plan["augment"], plan["student"]
    baseline_args = plan.get("baseline")

    # Teacher
    if teacher_args is not None:
        train_teacher(*teacher_args)

    # Transfer set
    build_transfer_set(*transfer_args, command=command)

    # Student, then its baseline
    train_student(*student_args)
    if baseline_args is not None:
        train_student(*baseline_args)

    # Evaluate and report (main process), then everyone reads the report. Data is loaded by every process: its
    # cache is built under a barrier, which the main process alone must not enter.
    validation = load_data_from_args(transfer_args[2])["validation"]
    report = os.path.join(pipe.output_dir, "all_results.json")
    if is_main_process():
        models = {name: dirs[name] for name in ("student", "baseline") if name in dirs}
        labelled = read_record(dirs["transfer_set"]) or {}
        results = evaluate_models(
            pipe,
            validation,
            {"teacher": teacher, **models},
            teacher_precision=labelled.get("labelling_precision", "fp32"),
            teacher_max_length=transfer_args[2].max_seq_length,
        )
        write_report(pipe.output_dir, results)
    wait_for_everyone()
    with open(report, encoding="utf-8") as f:
        return json.load(f)


def evaluate_models(
    pipe: PipelineArguments,
    validation,
    models: dict[str, str],
    teacher_precision: str = "fp32",
    teacher_max_length: int = 128,
) -> dict[str, dict[str, float]]:
    """Accuracy, F1 (binary for two labels, macro for more) of each model on `validation`, and its agreement with
    the first model (the teacher). Each model's logits are put in the data's label order, matched by name.

    The teacher runs as it labelled the transfer set: at `teacher_max_length` and in `teacher_precision` (recorded
    in the transfer set's `stage.json`), so the report scores the model that made the labels. Each student reads the
    texts at the token length it trained at (`distil.stage.trained_max_length`), in fp32. Both are recorded per model
    (`max_length`, `precision`)."""
    names = list(validation.features[LABEL_COLUMN].names)
    references = np.asarray(validation[LABEL_COLUMN])
    results, reference_predictions = {}, None
    for name, path in models.items():
        resolved = resolve_model_path(path)
        config = AutoConfig.from_pretrained(resolved)
        order = label_order(name, str(path), config, names)
        if reference_predictions is None:
            max_length, precision = teacher_max_length, teacher_precision
        else:
            max_length, precision = trained_max_length(resolved) or teacher_max_length, "fp32"
        logits = np.asarray(
            add_classifier_logits(
                validation, path, batch_size=pipe.eval_batch_size, max_length=max_length, precision=precision,
                desc=f"Evaluating {name}", column="logits",
            )["logits"]
        )  # fmt: skip
        predictions = (logits if order is None else logits[:, order]).argmax(-1)
        metrics = classification_metrics(len(names)).compute(predictions=predictions, references=references)
        if reference_predictions is None:
            reference_predictions = predictions
        metrics["agreement_with_teacher"] = agreement(predictions, reference_predictions)
        metrics.update(model=str(path), eval_samples=len(validation), max_length=max_length, precision=precision)
        results[name] = metrics
    return results


def results_table(results: dict[str, dict[str, float]]) -> str:
    """Markdown table of `evaluate_models` results: accuracy, F1 (binary) or macro-F1, agreement with the teacher."""
    f1 = "macro_f1" if any("macro_f1" in m for m in results.values()) else "f1"
    lines = [
        f"| model | path | accuracy | {'macro-F1' if f1 == 'macro_f1' else 'F1'} | agreement with teacher |",
        "|---|---|---|---|---|",
    ]
    for name, m in results.items():
        lines.append(
            f"| {name} | `{m['model']}` | {m['accuracy']:.4f} | {m[f1]:.4f} | {m['agreement_with_teacher']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(output_dir: str, results: dict[str, dict[str, float]]) -> None:
    """`results.md`, then `all_results.json` under `output_dir` (each written to a temp file, then renamed)."""
    for name, text in (
        ("results.md", results_table(results)),
        ("all_results.json", json.dumps(results, indent=2, sort_keys=True)),
    ):
        with atomic_write(os.path.join(output_dir, name)) as f:
            f.write(text)
    logging.getLogger("distil").info("Wrote the report to %s", output_dir)
