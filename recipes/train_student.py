"""Stage 3: train the BiLSTM student (`distil.student`): distil from a transfer set, or the cross-entropy baseline.

# distil: MSE on the teacher's logits of a transfer set (written by recipes/augment.py)
accelerate launch recipes/train_student.py --config configs/sst2/student.yaml
# baseline: the same student trained with cross-entropy on train.tsv, no teacher
accelerate launch recipes/train_student.py --config configs/sst2/baseline.yaml
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
from distil.student import StudentArguments, train_student


def main(args: list[str] | None = None) -> dict[str, float]:
    return published(
        train_student, parse_args(StudentArguments, DataArguments, TrainingArguments, StageArguments, args=args)
    )


if __name__ == "__main__":
    run_recipe(main, "train_student.py")
