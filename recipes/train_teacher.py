"""Stage 1: fine-tune a teacher (any `AutoModelForSequenceClassification`) on SST-2 (`distil.teacher`).

accelerate launch recipes/train_teacher.py --config configs/sst2/teacher.yaml
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path, where `recipes/distil.py` would shadow the package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from transformers import TrainingArguments

from distil.configs import DataArguments, parse_args, run_recipe
from distil.push import published
from distil.stage import StageArguments
from distil.teacher import TeacherArguments, train_teacher


def main(args: list[str] | None = None) -> dict[str, float]:
    return published(
        train_teacher, parse_args(TeacherArguments, DataArguments, TrainingArguments, StageArguments, args=args)
    )


if __name__ == "__main__":
    run_recipe(main, "train_teacher.py")
