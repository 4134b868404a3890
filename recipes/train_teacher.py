"""Stage 1: fine-tune a teacher (any `AutoModelForSequenceClassification`) on the run's data (`distil.teacher`).

    accelerate launch --cpu recipes/train_teacher.py --config configs/sst2.yaml

With a run file it trains exactly the pipeline's teacher (the file's data and `teacher:` section, into
`output_dir/teacher`); its own flags (`--learning_rate`, `--output_dir`, ...) or the dotted ones
(`--teacher.learning_rate`) come after. Without a file: the package defaults and the flags.
"""

from __future__ import annotations

import _recipes  # noqa: F401  (first: recipes/distil.py must not shadow the package)

from distil.configs import run_recipe
from distil.push import published
from distil.run_config import parse_stage
from distil.teacher import train_teacher


def main(args: list[str] | None = None) -> dict[str, float]:
    return published(train_teacher, parse_stage(["teacher"], args))


if __name__ == "__main__":
    run_recipe(main, "train_teacher.py")
