"""Benchmark the paper's recipe end to end on one GPU: per-stage times, rows/s, accuracy, and the GPU model.

    accelerate launch --config_file configs/accelerate/single_gpu.yaml benchmarks/gpu.py \
        --config configs/sst2_paper_minilm_gpu.yaml

Runs the pipeline of `--config` (any further arguments go to it, e.g. `--max_train_samples 2000`) with each stage
timed, then trains the student a second time with the other LSTM precision (`lstm_dtype` float32 vs bfloat16, the
teacher and transfer set reused) and evaluates it. Writes `results/gpu/<name>.{md,json}`: the device (GPU model or,
without one, the CPU), each stage's wall time and rows/s, and teacher and student accuracy on SST-2 dev. On a machine
without a GPU it runs the same on the CPU (the test suite does so with tiny settings).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LSTM_DTYPES = ("float32", "bfloat16")


def device_info() -> dict:
    import torch

    from distil.hardware import cpu_model

    info = {"torch": torch.__version__, "cpu_cores": os.cpu_count(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info.update(
            device="cuda",
            gpu_model=torch.cuda.get_device_name(0),
            gpu_count=torch.cuda.device_count(),
            bf16_supported=torch.cuda.is_bf16_supported(),
        )
    else:
        info.update(device="cpu", gpu_model=None)
    info["cpu_model"] = cpu_model()
    return info


class StageTimer:
    """Wraps the pipeline's stage functions (looked up from their modules at each run) to time each call."""

    def __init__(self):
        import distil.student
        import distil.teacher
        import distil.transfer_set

        self.times: dict[str, float] = {}
        self.outputs: dict[str, object] = {}
        for module, name, stage in (
            (distil.teacher, "train_teacher", "teacher"),
            (distil.transfer_set, "build_transfer_set", "transfer_set"),
            (distil.student, "train_student", "student"),
        ):
            setattr(module, name, self.wrap(getattr(module, name), stage))

    def wrap(self, function, stage):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            self.times[stage] = time.perf_counter() - start
            self.outputs[stage] = result
            return result

        timed.__wrapped__ = function
        return timed


def run(pipeline_args: list[str], timer: StageTimer) -> tuple[dict, dict, object]:
    from distil.configs import recipe_command
    from distil.pipeline import run_pipeline
    from distil.run_config import parse_run

    run_ = parse_run(pipeline_args)
    timer.times.clear()
    start = time.perf_counter()
    results = run_pipeline(run_, command=recipe_command("benchmarks/gpu.py", pipeline_args))
    return results, {**timer.times, "end_to_end": time.perf_counter() - start}, run_.pipe


def stage_rates(times: dict, outputs: dict) -> dict:
    """Rows/s of each stage: sentences trained (teacher, student) or transfer-set rows built."""
    rates = {}
    teacher = outputs.get("teacher")
    if isinstance(teacher, dict) and teacher.get("train_samples_per_second"):
        rates["teacher"] = teacher["train_samples_per_second"]
    splits = outputs.get("transfer_set")
    if splits is not None and "transfer_set" in times:
        rates["transfer_set"] = len(splits["train"]) / times["transfer_set"]
    student = outputs.get("student")
    if isinstance(student, dict) and student.get("train_samples_per_second"):
        rates["student"] = student["train_samples_per_second"]
    return rates


def markdown(payload: dict) -> str:
    d = payload["device"]
    where = f"{d['gpu_model']} (torch {d['torch']})" if d["gpu_model"] else f"CPU only: {d['cpu_model']}"
    lines = [
        f"# {payload['name']}: the pipeline end to end",
        "",
        f"Device: {where}; {d['cpu_cores']} CPU cores.",
        "",
        "```bash",
        payload["command"],
        "```",
        "",
        "| run | LSTM | teacher s | transfer set s | student s | end to end s | teacher rows/s | transfer rows/s "
        "| student rows/s | teacher acc | student acc | gap (points) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run_ in payload["runs"]:
        t, r, acc = run_["seconds"], run_["rows_per_s"], run_["accuracy"]

        def fmt(value, spec):
            return format(value, spec) if value is not None else "skipped"

        lines.append(
            f"| {run_['run']} | {run_['lstm_dtype']} | {fmt(t.get('teacher'), '.1f')} | "
            f"{fmt(t.get('transfer_set'), '.1f')} | {fmt(t.get('student'), '.1f')} | {t['end_to_end']:.1f} | "
            f"{fmt(r.get('teacher'), '.0f')} | {fmt(r.get('transfer_set'), '.0f')} | {fmt(r.get('student'), '.0f')} | "
            f"{acc['teacher']:.4f} | {acc['student']:.4f} | {100 * (acc['teacher'] - acc['student']):.2f} |"
        )
    lines += [
        "",
        "The second run trains only the student again with the other LSTM precision: its teacher and transfer set "
        "are the first run's (the pipeline skips finished stages), so their times there are the skip's.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/sst2_paper_minilm_gpu.yaml", help="The run file.")
    parser.add_argument("--name", default=None, help="Results file name (default: the config's name).")
    parser.add_argument("--results_dir", default=str(ROOT / "results" / "gpu"))
    parser.add_argument("--lstm_dtypes", default=",".join(LSTM_DTYPES), help="Student LSTM precisions to run.")
    args, pipeline_args = parser.parse_known_args(argv)
    name = args.name or Path(args.config).stem
    command = "python benchmarks/gpu.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    timer = StageTimer()
    base = ["--config", args.config, *pipeline_args]
    runs = []
    for i, lstm_dtype in enumerate(filter(None, args.lstm_dtypes.split(","))):
        results, seconds, pipe = run(base + ["--student.lstm_dtype", lstm_dtype], timer)
        runs.append(
            {
                "run": "full" if i == 0 else "student again",
                "lstm_dtype": lstm_dtype,
                "seconds": seconds,
                "rows_per_s": stage_rates(seconds, timer.outputs),
                "accuracy": {model: metrics["accuracy"] for model, metrics in results.items()},
                "results": results,
            }
        )
        student_dir = pipe.stage_dirs()["student"]
        kept = f"{student_dir}-{lstm_dtype}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(student_dir, kept)
        timer.outputs.clear()
    payload = {"name": name, "command": command, "device": device_info(), "runs": runs}
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    text = markdown(payload)
    (out / f"{name}.md").write_text(text)
    print(text)
    return payload


if __name__ == "__main__":
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
    main()
