"""Stage 2: build the transfer set: the run's train split POS-tagged, augmented and labelled with teacher logits
(`distil.transfer_set`).

    accelerate launch --cpu recipes/augment.py --config configs/sst2.yaml

With a run file it builds exactly the pipeline's transfer set (the file's data and `transfer_set:` section, the run's
teacher, into `output_dir/transfer_set`); its own flags (`--n_iter`, `--teacher_model`, `--output_dir`, ...) or the
dotted ones (`--transfer_set.n_iter`) come after. Without a file: the package defaults and the flags.
"""

from __future__ import annotations

import _recipes  # noqa: F401  (first: recipes/distil.py must not shadow the package)
import datasets

from distil.configs import recipe_command, run_recipe
from distil.push import published
from distil.run_config import parse_stage
from distil.transfer_set import build_transfer_set


def main(args: list[str] | None = None) -> datasets.DatasetDict:
    parsed = parse_stage(["transfer_set"], args)
    return published(build_transfer_set, parsed, command=recipe_command("recipes/augment.py", args))


if __name__ == "__main__":
    run_recipe(main, "augment.py")
