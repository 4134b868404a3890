"""The quality study: the student's gap to its teacher by transfer rows (`n_iter`), by student training length
(`train_rows`) and by seed, with the wall time of each stage, on one task config.

    python benchmarks/quality.py --config configs/trec.yaml --output_dir outputs/quality-trec \
        --n_iter 4 16 auto --train_rows 200000 600000 --seeds 1 2 3 --baseline --out results/quality-trec

The teacher is trained once (the config's seed); each `n_iter` gets its own transfer set from it; each
(`n_iter`, `train_rows`) pair trains one student per seed. With `--baseline`, the cross-entropy baseline trains from
the first student's start for each seed and `train_rows`. Prints a Markdown table (mean and standard deviation over
the seeds) and writes it, with every run's figures, to `--out`.md and `--out`.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from distil.hardware import cpu_model, use_launch_cpu_threads
from distil.records import read_record
from distil.run_config import parse_run, stage_arguments
from distil.student import train_student
from distil.teacher import train_teacher
from distil.transfer_set import build_transfer_set


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="The task's run file.")
    parser.add_argument(
        "--output_dir", required=True, help="Where the study's teacher, transfer sets and students go."
    )
    parser.add_argument("--n_iter", nargs="+", default=["auto"], help="Transfer-set sizes: numbers or `auto`.")
    parser.add_argument("--train_rows", nargs="+", type=int, default=[600_000], help="Student training lengths.")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3], help="Student seeds.")
    parser.add_argument("--baseline", action="store_true", help="Also train the cross-entropy baseline per seed.")
    parser.add_argument("--student_override", nargs="*", default=[], help="Extra student `key=value` settings.")
    parser.add_argument("--out", required=True, help="Path stem of the Markdown and JSON results.")
    parser.add_argument("pipeline_args", nargs=argparse.REMAINDER, help="More pipeline flags, after `--`.")
    args = parser.parse_args(argv)
    use_launch_cpu_threads()

    extra = [a for a in args.pipeline_args if a != "--"]
    base = ["--config", args.config, *extra]
    overrides = [f"--student.{item.replace('=', ' ', 1)}".split(" ", 1) for item in args.student_override]
    overrides = [part for pair in overrides for part in pair]
    runs: list[dict] = []

    run = parse_run([*base, "--output_dir", args.output_dir])
    teacher_dir = run.pipe.stage_dir("teacher")
    teacher_metrics, seconds = timed(train_teacher, *stage_arguments(run, "teacher"))
    teacher = {"accuracy": teacher_metrics["eval_accuracy"], "seconds": round(seconds, 1)}
    print(f"teacher: {teacher}", flush=True)

    def variant(n_iter, *flags):
        """The run of one transfer-set size, with the study's teacher."""
        out = os.path.join(args.output_dir, f"n{n_iter}")
        return parse_run([*base, "--output_dir", out, "--teacher_model", teacher_dir,
                          "--transfer_set.n_iter", str(n_iter), *overrides, *flags])  # fmt: skip

    first_student = None
    for n_iter in args.n_iter:
        run = variant(n_iter)
        _, transfer_seconds = timed(build_transfer_set, *stage_arguments(run, "transfer_set"))
        counts = read_record(run.pipe.stage_dir("transfer_set")).get("counts", {})
        for rows in args.train_rows:
            for seed in args.seeds:
                run = variant(n_iter, "--student.train_rows", str(rows))
                student_args, data_args, training_args, stage_args = stage_arguments(run, "student")
                training_args.seed = training_args.data_seed = seed  # the seed is the run's: one student's here
                training_args.output_dir = os.path.join(args.output_dir, f"student-n{n_iter}-r{rows}-s{seed}")
                first_student = first_student or training_args.output_dir
                metrics, seconds = timed(train_student, student_args, data_args, training_args, stage_args)
                runs.append({
                    "model": "student", "n_iter": n_iter, "train_rows": rows, "seed": seed,
                    "transfer_rows": counts.get("rows"), "transfer_seconds": round(transfer_seconds, 1),
                    "accuracy": metrics["eval_accuracy"], "macro_f1": metrics.get("eval_macro_f1"),
                    "agreement": metrics.get("eval_agreement"), "seconds": round(seconds, 1),
                })  # fmt: skip
                print(runs[-1], flush=True)
    if args.baseline:
        for rows in args.train_rows:
            for seed in args.seeds:
                run = variant(args.n_iter[0], "--baseline.train_rows", str(rows))
                student_args, data_args, training_args, stage_args = stage_arguments(run, "baseline")
                training_args.seed = training_args.data_seed = seed
                student_args.tokenizer_name_or_path = first_student  # the first student's start
                training_args.output_dir = os.path.join(args.output_dir, f"baseline-r{rows}-s{seed}")
                metrics, seconds = timed(train_student, student_args, data_args, training_args, stage_args)
                runs.append({
                    "model": "baseline", "n_iter": None, "train_rows": rows, "seed": seed,
                    "accuracy": metrics["eval_accuracy"], "macro_f1": metrics.get("eval_macro_f1"),
                    "seconds": round(seconds, 1),
                })  # fmt: skip
                print(runs[-1], flush=True)

    table = results_table(teacher, runs)
    header = (
        f"`python benchmarks/quality.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n"
        f"CPU: {cpu_model()}\n\nTeacher validation accuracy {teacher['accuracy']:.4f} ({teacher['seconds']:.0f} s).\n\n"
    )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(f"{args.out}.md", "w", encoding="utf-8") as f:
        f.write(header + table)
    with open(f"{args.out}.json", "w", encoding="utf-8") as f:
        json.dump({"teacher": teacher, "runs": runs, "cpu": cpu_model()}, f, indent=2)
    print(header + table)
    return {"teacher": teacher, "runs": runs}


def results_table(teacher: dict, runs: list[dict]) -> str:
    """Mean (± standard deviation over seeds) accuracy, gap to the teacher, agreement and time per setting."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault((run["model"], run["n_iter"], run["train_rows"]), []).append(run)
    lines = [
        "| model | n_iter | transfer rows | train rows | seeds | accuracy | gap to teacher | macro-F1 | agreement "
        "| transfer set s | training s (mean) |",
        "|---|---|---:|---:|---:|---|---:|---|---|---:|---:|",
    ]
    for (model, n_iter, rows), group in groups.items():
        accuracy = [r["accuracy"] for r in group]
        f1 = [r["macro_f1"] for r in group if r.get("macro_f1") is not None]
        agreement = [r["agreement"] for r in group if r.get("agreement") is not None]
        lines.append(
            f"| {model} | {n_iter or '-'} | {group[0].get('transfer_rows') or '-'} | {rows:,} | {len(group)} "
            f"| {mean_std(accuracy)} | {100 * (teacher['accuracy'] - statistics.mean(accuracy)):.2f} "
            f"| {mean_std(f1) if f1 else '-'} | {mean_std(agreement) if agreement else '-'} "
            f"| {group[0].get('transfer_seconds', '-')} | {statistics.mean(r['seconds'] for r in group):.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
