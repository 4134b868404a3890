"""Stage 2: build the transfer set (SST-2 train POS-tagged, augmented and labelled with teacher logits;
`distil.transfer_set`).

    accelerate launch recipes/augment.py --config configs/sst2/augment.yaml
"""

from __future__ import annotations

import os
import sys

# Run as a script, this folder comes first on sys.path, where `recipes/distil.py` would shadow the package.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import datasets

from distil.augment import AugmentationArguments
from distil.configs import DataArguments, parse_args, recipe_command, run_recipe
from distil.push import published
from distil.stage import StageArguments
from distil.transfer_set import TransferSetArguments, build_transfer_set


def main(args: list[str] | None = None) -> datasets.DatasetDict:
    parsed = parse_args(TransferSetArguments, AugmentationArguments, DataArguments, StageArguments, args=args)
    return published(build_transfer_set, parsed, command=recipe_command("recipes/augment.py", args))


if __name__ == "__main__":
    run_recipe(main, "augment.py")
