"""The whole pipeline: teacher -> transfer set -> BiLSTM student, then a teacher-vs-student report.

    accelerate launch recipes/distil.py --config configs/sst2/quickstart.yaml

Each stage is its own recipe (`train_teacher.py`, `augment.py`, `train_student.py`) with its own YAML config; this
recipe runs every stage whose output does not exist yet, passing the shared settings (data, caps, seed) down, so a
re-run resumes where the last one stopped.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where this very file would shadow the `distil` package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from transformers import set_seed

from distil.configs import parse_args
from distil.pipeline import PipelineArguments, evaluate_models, push_student, stage_args, stage_done, write_report
from distil.utils import run_recipe

RECIPES = Path(__file__).resolve().parent


def _recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"distil_recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the recipe is imported
    spec.loader.exec_module(module)
    return module


def main(args: list[str] | None = None) -> dict:
    (pipe,) = parse_args(PipelineArguments, args=args)
    set_seed(pipe.seed)
    dirs = pipe.stage_dirs()

    # Teacher
    if pipe.train_teacher and not stage_done(dirs["teacher"]):
        _recipe("train_teacher").main(stage_args(pipe, "teacher", dirs["teacher"]))
    teacher = dirs["teacher"] if pipe.train_teacher else pipe.teacher_model

    # Transfer set
    if not stage_done(dirs["transfer_set"]):
        _recipe("augment").main(stage_args(pipe, "augment", dirs["transfer_set"], teacher_model=teacher))

    # Student
    if not stage_done(dirs["student"]):
        _recipe("train_student").main(
            stage_args(pipe, "student", dirs["student"], transfer_set=dirs["transfer_set"], teacher_model=teacher)
        )

    # Evaluate and report
    results = evaluate_models(pipe, {"teacher": teacher, "student": dirs["student"]})
    write_report(pipe.output_dir, results)

    # Push
    if pipe.push_to_hub:
        push_student(dirs["student"], pipe.hub_model_id, pipe.output_dir)
    return results


if __name__ == "__main__":
    run_recipe(main, "distil.py")
