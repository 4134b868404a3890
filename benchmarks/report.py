"""Benchmark report: teacher vs distilled student (vs baseline) on SST-2 validation.

Per model: accuracy and F1; parameters with and without the input-embedding matrix; safetensors size on disk;
single-sentence latency (median, p95) and batch throughput on CPU with a fixed thread count, and on GPU when one is
present; every figure as a ratio against the teacher. Writes a markdown table to stdout and `report.md`,
`report.json` and `report.png` (accuracy against latency) to `--output_dir`.

    python benchmarks/report.py --teacher outputs/teacher-minilm --student outputs/student \\
        --baseline outputs/baseline --data_dir ../shared/data/sst2 --output_dir results

Any model that `AutoModelForSequenceClassification` and `AutoTokenizer` load works; `import distil` registers the
BiLSTM student with the auto classes.
"""

from __future__ import annotations

import datetime
import importlib
import inspect
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import distil
from distil.configs import parse_args
from distil.data import LABEL_NAMES, load_sst2
from distil.hub import resolve_model_path
from distil.metrics import classification_metrics

try:  # register the BiLSTM student with the auto classes, in case `import distil` has not already
    _bilstm = importlib.import_module("distil.modeling_bilstm")
except ModuleNotFoundError as e:
    if e.name != "distil.modeling_bilstm":
        raise
else:
    if hasattr(_bilstm, "register"):
        _bilstm.register()

ROLES = ("teacher", "student", "baseline")
TIMING_NOTE = (
    "Latency and throughput time what a user waits for: tokenization of the raw sentence(s) plus the forward pass "
    "(`torch.inference_mode`, float32); the order of the throughput batches (sorted by token length) is computed "
    "outside the timed region. `forward` latency is the forward pass alone."
)

# Tang et al. (2019), "Distilling Task-Specific Knowledge from BERT into Simple Neural Networks", arXiv:1903.12136.
# Accuracy: Table 1, SST-2 (GLUE test set). Size/speed: the paper's single-sentence size and inference-time table
# (BERT-large 335M params; BiLSTM_SOFT 0.96M, i.e. 349x fewer, and 434x faster). The abstract's "roughly 100 times
# fewer parameters and 15 times less inference time" is the same table against ELMo (93.6M params).
PAPER_ROWS = [
    {"model": "BERT-large (teacher)", "accuracy": 94.9, "params": 335e6, "speedup": 1.0},
    {"model": "BiLSTM (from scratch, no distillation)", "accuracy": 86.7, "params": None, "speedup": None},
    {"model": "BiLSTM_SOFT (distilled)", "accuracy": 90.7, "params": 0.96e6, "speedup": 434.0},
]


@dataclass
class ReportArguments:
    """Arguments of `benchmarks/report.py`."""

    teacher: str = field(metadata={"help": "Teacher model directory (or `pkg://` path); ratios are against it."})
    student: str = field(metadata={"help": "Distilled student model directory."})
    baseline: str | None = field(
        default=None, metadata={"help": "Optional baseline directory (e.g. the BiLSTM trained without a teacher)."}
    )
    teacher_name: str | None = field(default=None, metadata={"help": "Display name (default: the directory name)."})
    student_name: str | None = field(default=None, metadata={"help": "Display name (default: the directory name)."})
    baseline_name: str | None = field(default=None, metadata={"help": "Display name (default: the directory name)."})
    dataset_name: str = field(
        default="stanfordnlp/sst2", metadata={"help": "Hub dataset id, used only when `data_dir` is not set."}
    )
    data_dir: str | None = field(
        default=None, metadata={"help": "Directory of GLUE TSVs (`train.tsv`, `dev.tsv`); the report uses `dev.tsv`."}
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Debug cap: first N validation rows only."})
    max_seq_length: int = field(default=128, metadata={"help": "Truncate sentences to this many tokens."})
    output_dir: str = field(default="results", metadata={"help": "Where report.json, report.md, report.png go."})
    num_threads: int = field(default=2, metadata={"help": "`torch.set_num_threads` for every CPU measurement."})
    latency_samples: int = field(
        default=200, metadata={"help": "Sentences timed one at a time (batch size 1) for the latency figures."}
    )
    warmup: int = field(default=10, metadata={"help": "Untimed single-sentence calls before the latency run."})
    batch_size: int = field(default=256, metadata={"help": "Batch size for accuracy and throughput (length-sorted)."})
    gpu: bool = field(default=True, metadata={"help": "Also measure on GPU when `torch.cuda.is_available()`."})
    plot: bool = field(
        default=True, metadata={"help": "Write report.png (needs matplotlib: `pip install '.[plot]'`)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed for choosing the latency sentences."})


# ---------------------------------------------------------------- machine


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else `platform.processor()`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_device() -> torch.device | None:
    """The GPU to measure on, or None."""
    return torch.device("cuda") if torch.cuda.is_available() else None


def gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def machine_info(num_threads: int) -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_num_threads": num_threads,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "distil": distil.__version__,
        # other work on the machine skews the timings: recorded so a noisy run can be told apart
        "load_average_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


# ---------------------------------------------------------------- size


def count_params(model) -> dict:
    """Parameters in total and without the input-embedding matrix (`model.get_input_embeddings()`)."""
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings()
    emb = embeddings.weight.numel() if embeddings is not None else 0
    return {"params": total, "embedding_params": emb, "params_without_embeddings": total - emb}


def safetensors_bytes(model_dir: str) -> int | None:
    """Total size of the `*.safetensors` files in `model_dir` (shards included); None if there are none."""
    if not os.path.isdir(model_dir):
        return None
    sizes = [
        os.path.getsize(os.path.join(model_dir, name))
        for name in os.listdir(model_dir)
        if name.endswith(".safetensors")
    ]
    return sum(sizes) if sizes else None


# ---------------------------------------------------------------- inference


class Runner:
    """Tokenize raw sentences and run the model on `device`, as a user of the saved model would."""

    def __init__(self, model, tokenizer, max_seq_length: int, device: torch.device):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.device = device
        params = inspect.signature(model.forward).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self.forward_keys = None if takes_any else set(params)
        # map the model's class ids onto the dataset's (0 negative, 1 positive) when the config names them
        id2label = {int(i): str(name).lower() for i, name in (model.config.id2label or {}).items()}
        self.id_map = None
        if sorted(id2label.values()) == sorted(LABEL_NAMES):
            self.id_map = np.array([LABEL_NAMES.index(id2label[i]) for i in range(len(id2label))])

    def encode(self, sentences: list[str]) -> dict:
        enc = self.tokenizer(
            sentences, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="pt"
        )
        return {
            k: v.to(self.device)
            for k, v in enc.items()
            if isinstance(v, torch.Tensor) and (self.forward_keys is None or k in self.forward_keys)
        }

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def logits(self, inputs: dict) -> torch.Tensor:
        out = self.model(**inputs)
        return out.logits if hasattr(out, "logits") else out[0]

    def predictions(self, logits: torch.Tensor) -> np.ndarray:
        ids = logits.argmax(-1).cpu().numpy()
        return self.id_map[ids] if self.id_map is not None else ids

    def token_lengths(self, sentences: list[str]) -> list[int]:
        enc = self.tokenizer(sentences, truncation=True, max_length=self.max_seq_length)
        return [len(ids) for ids in enc["input_ids"]]


def measure_latency(runner: Runner, sentences: list[str], warmup: int, desc: str) -> dict:
    """Batch-size-1 latency in ms (tokenization + forward, and forward alone): median, p95, mean."""
    for sentence in sentences[:warmup]:
        runner.logits(runner.encode([sentence]))
    runner.sync()
    total, forward = [], []
    for sentence in tqdm(sentences, desc=desc, unit="sent", leave=False):
        t0 = time.perf_counter()
        inputs = runner.encode([sentence])
        t1 = time.perf_counter()
        runner.logits(inputs)
        runner.sync()
        t2 = time.perf_counter()
        total.append((t2 - t0) * 1e3)
        forward.append((t2 - t1) * 1e3)
    return {
        "median": float(np.median(total)),
        "p95": float(np.percentile(total, 95)),
        "mean": float(np.mean(total)),
        "forward_median": float(np.median(forward)),
        "forward_p95": float(np.percentile(forward, 95)),
        "n": len(total),
    }


def measure_batches(runner: Runner, sentences: list[str], batch_size: int, desc: str) -> tuple[np.ndarray, dict]:
    """Predictions for every sentence and throughput in rows/s over length-sorted batches of `batch_size`."""
    lengths = runner.token_lengths(sentences)
    order = sorted(range(len(sentences)), key=lambda i: (-lengths[i], i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    runner.logits(runner.encode([sentences[i] for i in batches[0]]))  # warm-up on the longest batch
    runner.sync()
    predictions = np.empty(len(sentences), dtype=np.int64)
    elapsed = 0.0
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False):
        t0 = time.perf_counter()
        logits = runner.logits(runner.encode([sentences[i] for i in batch]))
        runner.sync()
        elapsed += time.perf_counter() - t0
        predictions[batch] = runner.predictions(logits)
    speed = {"throughput_rows_per_s": len(sentences) / elapsed, "batch_size": batch_size, "rows": len(sentences)}
    return predictions, speed


def latency_sentences(sentences: list[str], n: int, seed: int) -> list[str]:
    """`n` sentences in a seeded random order (cycling when the split has fewer), the same for every model."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[order[i % len(order)]] for i in range(n)]


def benchmark_model(role: str, path: str, name: str | None, data, args: ReportArguments) -> dict:
    """Every figure for one model."""
    local = resolve_model_path(path)
    model = AutoModelForSequenceClassification.from_pretrained(local)
    tokenizer = AutoTokenizer.from_pretrained(local)
    sentences, labels = list(data["sentence"]), np.asarray(data["label"])
    timed = latency_sentences(sentences, args.latency_samples, args.seed)
    result = {
        "role": role,
        "name": name or os.path.basename(os.path.normpath(path)),
        "path": path,
        "model_type": model.config.model_type,
        "architecture": type(model).__name__,
        **count_params(model),
        "disk_bytes": safetensors_bytes(local),
    }
    cpu = torch.device("cpu")
    runner = Runner(model, tokenizer, args.max_seq_length, cpu)
    predictions, cpu_speed = measure_batches(runner, sentences, args.batch_size, f"{role}: CPU throughput")
    metrics = classification_metrics().compute(predictions=predictions, references=labels)
    result["accuracy"], result["f1"] = float(metrics["accuracy"]), float(metrics["f1"])
    result["cpu"] = {"latency_ms": measure_latency(runner, timed, args.warmup, f"{role}: CPU latency"), **cpu_speed}
    result["gpu"] = None
    device = gpu_device() if args.gpu else None
    if device is not None:
        runner = Runner(model, tokenizer, args.max_seq_length, device)
        _, gpu_speed = measure_batches(runner, sentences, args.batch_size, f"{role}: GPU throughput")
        latency = measure_latency(runner, timed, args.warmup, f"{role}: GPU latency")
        result["gpu"] = {"device": gpu_name(device), "latency_ms": latency, **gpu_speed}
    del runner, model
    return result


# ---------------------------------------------------------------- ratios, tables, plot


def flat_figures(result: dict) -> dict:
    """The numeric figures of one model, flattened (`cpu_latency_median_ms`, ...)."""
    figures = {k: result[k] for k in ("accuracy", "f1", "params", "params_without_embeddings", "disk_bytes")}
    for dev in ("cpu", "gpu"):
        speed = result.get(dev)
        if speed:
            figures[f"{dev}_latency_median_ms"] = speed["latency_ms"]["median"]
            figures[f"{dev}_latency_p95_ms"] = speed["latency_ms"]["p95"]
            figures[f"{dev}_throughput_rows_per_s"] = speed["throughput_rows_per_s"]
    return figures


def add_ratios(models: dict) -> None:
    """`ratios[k] = figure / teacher's figure` for every figure (so latency < 1 and throughput > 1 mean faster)."""
    teacher = flat_figures(models["teacher"])
    for result in models.values():
        result["ratios"] = {
            k: (v / teacher[k] if v is not None and teacher.get(k) else None) for k, v in flat_figures(result).items()
        }


RATIO_TITLES = {
    "f1": "F1",
    "params_without_embeddings": "params w/o emb.",
    "disk_bytes": "disk",
    "cpu_latency_median_ms": "CPU latency p50",
    "cpu_latency_p95_ms": "CPU latency p95",
    "cpu_throughput_rows_per_s": "CPU throughput",
    "gpu_latency_median_ms": "GPU latency p50",
    "gpu_latency_p95_ms": "GPU latency p95",
    "gpu_throughput_rows_per_s": "GPU throughput",
}


def _num(x, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _count(n) -> str:
    """22.7M, 96.1k, 512."""
    if n is None:
        return "n/a"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def _ratio(x) -> str:
    return "n/a" if x is None else f"{x:.3g}×"


def markdown_tables(report: dict) -> str:
    """The absolute figures and the ratios against the teacher, as markdown tables."""
    models = report["models"]
    threads = report["settings"]["num_threads"]
    header = (
        "| model | role | accuracy | F1 | params | params w/o emb. | disk (MB) | CPU latency p50 (ms) "
        "| CPU latency p95 (ms) | CPU throughput (rows/s) |"
    )
    lines = [header, "|" + "---|" * 2 + "---:|" * 8]
    for r in models.values():
        cpu = r["cpu"]
        lines.append(
            f"| {r['name']} | {r['role']} | {r['accuracy'] * 100:.2f} | {r['f1'] * 100:.2f} | {_count(r['params'])} "
            f"| {_count(r['params_without_embeddings'])} "
            f"| {_num(None if r['disk_bytes'] is None else r['disk_bytes'] / 1e6, '.3g')} "
            f"| {cpu['latency_ms']['median']:.2f} | {cpu['latency_ms']['p95']:.2f} "
            f"| {cpu['throughput_rows_per_s']:.1f} |"
        )
    if any(r["gpu"] for r in models.values()):
        lines += [
            "",
            "| model | GPU | latency p50 (ms) | latency p95 (ms) | throughput (rows/s) |",
            "|---|---|---:|---:|---:|",
        ]
        for r in models.values():
            g = r["gpu"]
            lines.append(
                f"| {r['name']} | {g['device']} | {g['latency_ms']['median']:.2f} | {g['latency_ms']['p95']:.2f} "
                f"| {g['throughput_rows_per_s']:.1f} |"
            )
    keys = list(next(iter(models.values()))["ratios"])
    titles = [RATIO_TITLES.get(k, k) for k in keys]
    lines += ["", "Ratios against the teacher (model / teacher):", "", "| model | " + " | ".join(titles) + " |"]
    lines.append("|---|" + "---:|" * len(keys))
    for r in models.values():
        lines.append(f"| {r['name']} | " + " | ".join(_ratio(r["ratios"].get(k)) for k in keys) + " |")
    lines += [
        "",
        f"SST-2 validation, {report['data']['rows']} sentences. Accuracy and F1 in %, F1 of the positive class. "
        f"`torch.set_num_threads({threads})`. Latency: batch size 1, median and p95 over "
        f"{report['settings']['latency_samples']} sentences. "
        f"Throughput: batches of {report['settings']['batch_size']} "
        f"sentences sorted by token length. {TIMING_NOTE} Params w/o emb.: without `get_input_embeddings()`. "
        "Disk: the safetensors files.",
    ]
    return "\n".join(lines)


def render_paper_comparison(report: dict) -> str:
    """A "paper vs ours" markdown section: Tang et al. (2019) SST-2 figures beside the rows measured here."""
    models = report["models"]
    teacher = models["teacher"]
    lines = [
        "## Paper vs ours",
        "",
        "| source | model | SST-2 accuracy | params | speed-up vs teacher |",
        "|---|---|---:|---:|---:|",
    ]
    for row in PAPER_ROWS:
        speedup = "n/a" if row["speedup"] is None else f"{row['speedup']:g}×"
        lines.append(
            f"| Tang et al. 2019 (test) | {row['model']} | {row['accuracy']:.1f} | {_count(row['params'])} "
            f"| {speedup} |"
        )
    for r in models.values():
        label = {"teacher": "teacher", "student": "distilled student", "baseline": "baseline, no distillation"}
        speedup = teacher["cpu"]["latency_ms"]["median"] / r["cpu"]["latency_ms"]["median"]
        batch_speedup = r["cpu"]["throughput_rows_per_s"] / teacher["cpu"]["throughput_rows_per_s"]
        lines.append(
            f"| ours (validation) | {r['name']} ({label[r['role']]}, {r['model_type']}) | {r['accuracy'] * 100:.1f} "
            f"| {_count(r['params'])} | {speedup:.3g}× (batch 1), {batch_speedup:.3g}× (batch) |"
        )
    lines += [
        "",
        "Paper: Tang et al., *Distilling Task-Specific Knowledge from BERT into Simple Neural Networks* (2019, "
        "arXiv:1903.12136); accuracy from their Table 1 (GLUE SST-2 **test** set), parameters and the 434× "
        "inference speed-up of BiLSTM_SOFT over BERT-large from their model-size and inference-time table (their "
        "hardware and batching). Ours: every number measured by this report on the SST-2 **validation** set, "
        f"teacher `{teacher['name']}` ({teacher['model_type']}, {_count(teacher['params'])} params), on "
        f"{report['machine']['cpu_model']} with {report['settings']['num_threads']} threads; speed-up is the "
        "teacher's CPU median latency over the model's (batch 1) and the model's CPU throughput over the teacher's "
        "(batch). Test and validation accuracies are not directly comparable.",
    ]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    """The whole report as markdown: set-up, tables, paper comparison."""
    m, s = report["machine"], report["settings"]
    gpu = ", GPU: " + report["gpu"] if report["gpu"] else ", no GPU"
    lines = [
        "# Benchmark report",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu_model']}, {m['cpu_cores']} cores{gpu}; torch {m['torch']}, transformers "
        f"{m['transformers']}, Python {m['python']}; "
        f"load average at start {_num(m['load_average_1m_at_start'], '.2f')}",
        f"- `torch.set_num_threads({s['num_threads']})`",
        "",
        markdown_tables(report),
        "",
        render_paper_comparison(report),
        "",
    ]
    return "\n".join(lines)


def plot_report(report: dict, path: str) -> str:
    """Accuracy against CPU median latency (log x axis), one labelled point per model, saved to `path`."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "report.png needs matplotlib: pip install -e '.[plot]' (or pass --no_plot to skip the figure)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, r in enumerate(report["models"].values()):
        x, y = r["cpu"]["latency_ms"]["median"], r["accuracy"] * 100
        ax.scatter([x], [y], s=60, zorder=3)
        offset = (8, 4) if i % 2 == 0 else (8, -22)  # alternate so that points close together stay readable
        ax.annotate(f"{r['name']}\n({r['role']})", (x, y), textcoords="offset points", xytext=offset, fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(  # label 2, 3 and 5 of each decade
        matplotlib.ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 3, 5) else ""
        )
    )
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.set_xlabel(
        f"CPU latency per sentence, median ms (log; batch 1, {report['settings']['num_threads']} threads, "
        "incl. tokenization)",
        fontsize=8,
    )
    ax.set_ylabel("SST-2 validation accuracy (%)")
    ax.set_title(f"Accuracy vs latency — {report['machine']['cpu_model']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.3, y=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict:
    """Run the report; print the markdown and write report.json, report.md, report.png; return the report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    (args,) = parse_args(ReportArguments, args=argv)
    if args.latency_samples < 1 or args.batch_size < 1 or args.num_threads < 1:
        raise ValueError("latency_samples, batch_size and num_threads must all be >= 1")
    torch.set_num_threads(args.num_threads)
    machine = machine_info(torch.get_num_threads())
    device = gpu_device() if args.gpu else None
    print(
        f"machine: {machine['cpu_model']}, {machine['cpu_cores']} cores; torch {machine['torch']}; "
        f"torch.set_num_threads({args.num_threads}) -> torch.get_num_threads() = {torch.get_num_threads()}; "
        f"GPU: {gpu_name(device) if device is not None else 'none'}",
        flush=True,
    )
    if args.plot:  # fail before the long measurements, not after
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            raise ImportError("report.png needs matplotlib: pip install -e '.[plot]' (or pass --no_plot)") from None

    data = load_sst2(dataset_name=args.dataset_name, data_dir=args.data_dir, max_eval_samples=args.max_eval_samples)[
        "validation"
    ]
    paths = {"teacher": args.teacher, "student": args.student, "baseline": args.baseline}
    names = {"teacher": args.teacher_name, "student": args.student_name, "baseline": args.baseline_name}
    models = {}
    for role in tqdm([r for r in ROLES if paths[r]], desc="models", unit="model"):
        models[role] = benchmark_model(role, paths[role], names[role], data, args)
    add_ratios(models)

    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(["python", "benchmarks/report.py", *argv]),
        "machine": machine,
        "gpu": gpu_name(device) if device is not None else None,
        "settings": {**asdict(args), "timing": TIMING_NOTE},
        "data": {"source": args.data_dir or args.dataset_name, "split": "validation", "rows": len(data)},
        "models": models,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    markdown = render_markdown(report)
    print(markdown)
    outputs = {name: os.path.join(args.output_dir, name) for name in ("report.json", "report.md", "report.png")}
    with open(outputs["report.json"], "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    with open(outputs["report.md"], "w", encoding="utf-8") as f:
        f.write(markdown)
    if args.plot:
        plot_report(report, outputs["report.png"])
    else:
        outputs.pop("report.png")
    print("wrote " + ", ".join(outputs.values()))
    return report


if __name__ == "__main__":
    main()
