"""The whole pipeline: teacher -> transfer set -> BiLSTM student (and a cross-entropy baseline), then a
teacher-vs-student report (`distil.pipeline`).

    accelerate launch --cpu recipes/distil.py --config configs/sst2.yaml
    accelerate launch --cpu recipes/distil.py --train_file my.csv --text_column text --label_column label

One YAML file per run (`distil.run_config`): the data and the run's settings at the top, a section per stage
(`teacher:`, `transfer_set:`, `student:`, `baseline:`) holding what differs from the package defaults; on the command
line, `--output_dir ...` sets a top-level key and `--student.num_train_epochs 3` a section's. A stage whose output is
done is skipped, so a re-run resumes where the last one stopped.
"""

from __future__ import annotations

import _recipes  # noqa: F401  (first: this file must not shadow the package)

from distil.configs import recipe_command, run_recipe
from distil.pipeline import run_pipeline
from distil.push import create_repos, publish_run
from distil.run_config import parse_run, stage_plan


def main(args: list[str] | None = None) -> dict:
    run = parse_run(args)
    plan = stage_plan(run)  # every stage's arguments, checked
    create_repos(run.pipe, teacher_dir=run.pipe.local_teacher())  # a wrong token or an unreachable Hub fails first
    results = run_pipeline(run, command=recipe_command("recipes/distil.py", args), plan=plan)
    publish_run(run.pipe, results)
    return results


if __name__ == "__main__":
    run_recipe(main, "distil.py")
