"""Stage 3: train the BiLSTM student (`distil.student`): distilled from a transfer set, or the cross-entropy baseline.

    # distil: MSE on the teacher's logits of the run's transfer set (written by recipes/augment.py)
    accelerate launch --cpu recipes/train_student.py --config configs/sst2.yaml
    # the baseline: the same student trained with cross-entropy on the gold labels (the `baseline:` section)
    accelerate launch --cpu recipes/train_student.py --config configs/trec.yaml --stage baseline

With a run file it trains exactly the pipeline's student (or baseline); its own flags (`--hidden_size`,
`--transfer_set`, `--output_dir`, ...) or the dotted ones (`--student.hidden_size`) come after. Without a file: the
package defaults and the flags (no `--transfer_set`: the baseline).
"""

from __future__ import annotations

import _recipes  # noqa: F401  (first: recipes/distil.py must not shadow the package)

from distil.configs import run_recipe
from distil.push import published
from distil.run_config import parse_stage
from distil.student import train_student


def main(args: list[str] | None = None) -> dict[str, float]:
    return published(train_student, parse_stage(["student", "baseline"], args))


if __name__ == "__main__":
    run_recipe(main, "train_student.py")
