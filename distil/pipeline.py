"""Chaining the stages of a run, and the final report.

`run_pipeline` takes a run (`distil.run_config.parse_run`: one file, its sections, the command line) and its stage
arguments (`stage_plan`), then calls the stage functions (`distil.teacher.train_teacher`,
`distil.transfer_set.build_transfer_set`, `distil.student.train_student`, and the student's again for the baseline)
with them. It pushes nothing: publishing (`distil.push`) runs after it, with the Hub settings of `PipelineArguments`
(`recipes/distil.py`).
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np
from accelerate import PartialState
from accelerate.utils import wait_for_everyone
from transformers import AutoConfig, set_seed

from distil.data import LABEL_COLUMN, load_data_from_args
from distil.hub import resolve_model_path
from distil.labeling import add_classifier_logits
from distil.labels import label_order
from distil.metrics import agreement, classification_metrics
from distil.records import read_record
from distil.run_config import PipelineArguments, RunConfig, stage_plan
from distil.stage import trained_max_length
from distil.student import train_student
from distil.teacher import train_teacher
from distil.transfer_set import build_transfer_set
from distil.utils import atomic_write


def run_pipeline(
    run: RunConfig, command: str | None = None, plan: dict[str, tuple | None] | None = None
) -> dict[str, dict[str, float]]:
    """Teacher -> transfer set -> student, then the teacher-vs-student report.

    Every stage's arguments are built and checked before any stage runs (`plan`: from `stage_plan`, when the caller
    built them already). Each stage skips itself when its output was built from the same settings and inputs, and
    rebuilds it (or stops, `on_stale: error`) when not; a rebuilt stage changes the inputs of the stages after it, so
    they are rebuilt too. The main process writes the report; the others wait and return the same results.
    """
    pipe = run.pipe
    set_seed(pipe.seed)
    dirs, teacher = pipe.stage_dirs(), pipe.teacher()
    plan = plan or stage_plan(run)
    teacher_args, transfer_args, student_args = plan["teacher"], plan["transfer_set"], plan["student"]
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
    if PartialState().is_main_process:
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
