"""The whole pipeline: teacher -> transfer set -> BiLSTM student, then a teacher-vs-student report
(`distil.pipeline`).

    accelerate launch recipes/distil.py --config configs/sst2/quickstart.yaml

Each stage keeps its own YAML config (`teacher_config`, `augment_config`, `student_config`); the pipeline passes the
shared settings (data, caps, seed, `n_iter`) and per-stage overrides (`student_overrides: {num_train_epochs: 3}`) to
the stage functions. A stage whose output is done is skipped, so a re-run resumes where the last one stopped.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path, where `recipes/distil.py` would shadow the package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from distil.configs import parse_args, recipe_command, run_recipe
from distil.pipeline import PipelineArguments, run_pipeline, stage_plan
from distil.push import create_repos, publish_run


def main(args: list[str] | None = None) -> dict:
    (pipe,) = parse_args(PipelineArguments, args=args)
    plan = stage_plan(pipe)  # every stage's arguments, checked
    create_repos(pipe, teacher_dir=pipe.local_teacher())  # a wrong token or an unreachable Hub fails before any stage
    results = run_pipeline(pipe, command=recipe_command("recipes/distil.py", args), plan=plan)
    publish_run(pipe, results)
    return results


if __name__ == "__main__":
    run_recipe(main, "distil.py")
