"""The quality study: the student's gap to its teacher by transfer rows (`n_iter`), by student training length
(`train_rows`) and by seed, with the wall time of each stage, on one task config.

    python benchmarks/quality.py --config configs/trec/quickstart.yaml --output_dir outputs/quality-trec \
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

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from distil.configs import parse_args  # noqa: E402
from distil.hardware import cpu_model, use_launch_cpu_threads  # noqa: E402
from distil.pipeline import PipelineArguments, stage_arguments  # noqa: E402
from distil.records import read_record  # noqa: E402
from distil.student import train_student  # noqa: E402
from distil.teacher import train_teacher  # noqa: E402
from distil.transfer_set import build_transfer_set  # noqa: E402


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
    parser.add_argument("--config", required=True, help="The task's pipeline config.")
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
    pipe = parse_args(PipelineArguments, args=["--config", args.config, "--output_dir", args.output_dir, *extra])[0]
    dirs = pipe.stage_dirs()
    overrides = dict(item.split("=", 1) for item in args.student_override)
    runs: list[dict] = []

    teacher_metrics, seconds = timed(train_teacher, *stage_arguments(pipe, "teacher", dirs["teacher"]))
    teacher = {"accuracy": teacher_metrics["eval_accuracy"], "seconds": round(seconds, 1)}
    print(f"teacher: {teacher}", flush=True)

    for n_iter in args.n_iter:
        transfer_dir = os.path.join(args.output_dir, f"transfer-n{n_iter}")
        transfer_args = stage_arguments(pipe, "augment", transfer_dir, teacher_model=dirs["teacher"], n_iter=n_iter)
        _, transfer_seconds = timed(build_transfer_set, *transfer_args)
        counts = read_record(transfer_dir).get("counts", {})
        for rows in args.train_rows:
            for seed in args.seeds:
                student_dir = os.path.join(args.output_dir, f"student-n{n_iter}-r{rows}-s{seed}")
                student_args = stage_arguments(
                    pipe, "student", student_dir, transfer_set=transfer_dir, teacher_model=dirs["teacher"],
                    seed=seed, train_rows=rows, **overrides,
                )  # fmt: skip
                metrics, seconds = timed(train_student, *student_args)
                run = {
                    "model": "student", "n_iter": n_iter, "train_rows": rows, "seed": seed,
                    "transfer_rows": counts.get("rows"), "transfer_seconds": round(transfer_seconds, 1),
                    "accuracy": metrics["eval_accuracy"], "macro_f1": metrics.get("eval_macro_f1"),
                    "agreement": metrics.get("eval_agreement"), "seconds": round(seconds, 1),
                }  # fmt: skip
                runs.append(run)
                print(run, flush=True)
    if args.baseline:
        start = os.path.join(args.output_dir, f"student-n{args.n_iter[0]}-r{args.train_rows[0]}-s{args.seeds[0]}")
        for rows in args.train_rows:
            for seed in args.seeds:
                baseline_dir = os.path.join(args.output_dir, f"baseline-r{rows}-s{seed}")
                baseline_args = stage_arguments(
                    pipe, "baseline", baseline_dir, transfer_set=None, loss="ce", teacher_model=dirs["teacher"],
                    tokenizer_name_or_path=start, seed=seed, train_rows=rows, **overrides,
                )  # fmt: skip
                metrics, seconds = timed(train_student, *baseline_args)
                run = {
                    "model": "baseline", "n_iter": None, "train_rows": rows, "seed": seed,
                    "accuracy": metrics["eval_accuracy"], "macro_f1": metrics.get("eval_macro_f1"),
                    "seconds": round(seconds, 1),
                }  # fmt: skip
                runs.append(run)
                print(run, flush=True)

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
