"""Benchmark report: teacher vs distilled student (vs baseline, other students, int8 copies) on SST-2 validation.

Per model: accuracy and F1; the training rows and epochs it saw; parameters with and without the input-embedding
matrix; size on disk; batch-size-1 latency (p50, p95) of the model alone, of tokenizer + model, and end to end through
`pipeline("text-classification")`; throughput at batch 256, on CPU with a fixed thread count (and on GPU when one is
present); every figure as a ratio against the teacher. CPU timings interleave the models sentence by sentence and
batch by batch, so that load from other jobs on the machine falls on all of them alike. Writes a markdown table to stdout and `report.md`,
`report.json` and `report.png` (accuracy against latency) to `--output_dir`.

A serving table (`--onnx`, on by default) sets the student's ONNX export (`<student>/onnx/`, written by
`python -m distil.export`), fp32 and int8 in ONNX Runtime, beside the student and the teacher in PyTorch eager:
batch-size-1 latency (p50, p99) and throughput at batch 256, on 1 and 2 threads (`--serving_threads`), in the same
interleaved way.

    python benchmarks/report.py --teacher outputs/teacher-minilm --student outputs/student \\
        --baseline outputs/baseline --data_dir ../shared/data/sst2 --output_dir results

Any model that `AutoModelForSequenceClassification` and `AutoTokenizer` load works; `import distil` registers the
BiLSTM student with the auto classes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import distil
from distil.configs import parse_args
from distil.data import SST2_LABEL_NAMES, load_sst2
from distil.hardware import cpu_flags, cpu_model
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

TIMING_NOTE = (
    "Model-only latency is the forward pass alone on an already tokenized sentence (`torch.inference_mode`, "
    "float32 weights); pipeline latency is `pipeline('text-classification')(sentence)`, tokenization and "
    "post-processing included. Throughput times tokenization of the raw sentences plus the forward pass; the order "
    "of the batches (sorted by token length) is computed outside the timed region. The models are timed in turn, "
    "sentence by sentence and batch by batch."
)
REPORTED_FLAGS = {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8", "bf16", "sve"}
# Student sizes with a name: (LSTM hidden size, MLP hidden size).
NAMED_SIZES = {(300, 400): "the seed's size", (150, 200): "the paper's SST-2 size"}

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
    variants: list[str] = field(
        default_factory=list,
        metadata={"help": "More students to size and time beside the student, e.g. other sizes (a trade-off table)."},
    )
    variant_names: list[str] = field(default_factory=list, metadata={"help": "Display names of `variants`."})
    quantize: bool = field(
        default=False,
        metadata={"help": "Also measure int8 dynamic-quantised copies (`distil.quantization`) of the students (CPU)."},
    )
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
    onnx: bool = field(
        default=True,
        metadata={
            "help": "Also time the student served by ONNX Runtime, fp32 and int8 (its `onnx/` folder, written by "
            "`python -m distil.export`; without one, an export to a temporary folder), beside the student and the "
            "teacher in PyTorch eager, on each of `serving_threads` (needs `pip install '.[onnx]'`)."
        },
    )
    serving_threads: list[int] = field(
        default_factory=lambda: [1, 2],
        metadata={"help": "Thread counts of the serving table (ONNX Runtime intra-op threads, torch threads)."},
    )


# ---------------------------------------------------------------- machine


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
        "cpu_flags": sorted(cpu_flags() & REPORTED_FLAGS),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
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


def sst2_id_map(config) -> np.ndarray | None:
    """The dataset's class id (0 negative, 1 positive) of each of the model's class ids, when its config names them."""
    id2label = {int(i): str(name).lower() for i, name in (config.id2label or {}).items()}
    if sorted(id2label.values()) != sorted(SST2_LABEL_NAMES):
        return None
    return np.array([SST2_LABEL_NAMES.index(id2label[i]) for i in range(len(id2label))])


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
        self.id_map = sst2_id_map(model.config)
        self._pipeline = None

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

    @property
    def pipeline(self):
        """`pipeline("text-classification")` over this model and tokenizer, as a user would build it."""
        if self._pipeline is None:
            from transformers import pipeline

            self._pipeline = pipeline(
                "text-classification", model=self.model, tokenizer=self.tokenizer, device=self.device
            )
        return self._pipeline

    def classify(self, sentence: str):
        return self.pipeline(sentence, truncation=True, max_length=self.max_seq_length)

    def predictions(self, logits: torch.Tensor) -> np.ndarray:
        ids = logits.argmax(-1).cpu().numpy()
        return self.id_map[ids] if self.id_map is not None else ids

    def token_lengths(self, sentences: list[str]) -> list[int]:
        enc = self.tokenizer(sentences, truncation=True, max_length=self.max_seq_length)
        return [len(ids) for ids in enc["input_ids"]]


class ONNXRunner(Runner):
    """The student's ONNX export in an ONNX Runtime session (`distil.serving.session_options(threads)`), fed the
    tokenizer's NumPy output: a `Runner` for the timing loops."""

    def __init__(self, path: str, tokenizer, config, max_seq_length: int, threads: int):
        from distil.serving import inference_session

        self.session = inference_session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer, self.max_seq_length = tokenizer, max_seq_length
        self.device = torch.device("cpu")
        self.id_map = sst2_id_map(config)

    def encode(self, sentences: list[str]) -> dict:
        enc = self.tokenizer(
            sentences, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np"
        )
        return {name: enc[name] for name in self.input_names}

    def logits(self, inputs: dict) -> np.ndarray:
        return self.session.run(None, inputs)[0]

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        ids = logits.argmax(-1)
        return self.id_map[ids] if self.id_map is not None else ids


def _latency_summary(total: list[float], forward: list[float], pipe: list[float]) -> dict:
    summary = {
        "median": float(np.median(total)),
        "p95": float(np.percentile(total, 95)),
        "p99": float(np.percentile(total, 99)),
        "mean": float(np.mean(total)),
        "forward_median": float(np.median(forward)),
        "forward_p95": float(np.percentile(forward, 95)),
        "forward_p99": float(np.percentile(forward, 99)),
        "n": len(total),
    }
    if pipe:
        summary.update(pipeline_median=float(np.median(pipe)), pipeline_p95=float(np.percentile(pipe, 95)))
    return summary


def measure_latencies(runners: dict, sentences: list[str], warmup: int, desc: str, pipeline: bool = True) -> dict:
    """Batch-size-1 latency in ms of every runner, taking turns sentence by sentence: tokenizer + forward (`median`,
    `p95`), the forward pass alone (`forward_*`) and `pipeline(...)` (`pipeline_*`)."""
    roles = list(runners)
    for runner in runners.values():
        for sentence in sentences[:warmup]:
            runner.logits(runner.encode([sentence]))
            if pipeline:
                runner.classify(sentence)
        runner.sync()
    times = {role: ([], [], []) for role in roles}
    for i, sentence in enumerate(tqdm(sentences, desc=desc, unit="sent", leave=False)):
        for role in roles[i % len(roles) :] + roles[: i % len(roles)]:  # a different model goes first each time
            runner, (total, forward, pipe) = runners[role], times[role]
            t0 = time.perf_counter()
            inputs = runner.encode([sentence])
            t1 = time.perf_counter()
            runner.logits(inputs)
            runner.sync()
            t2 = time.perf_counter()
            total.append((t2 - t0) * 1e3)
            forward.append((t2 - t1) * 1e3)
            if pipeline:
                t3 = time.perf_counter()
                runner.classify(sentence)
                runner.sync()
                pipe.append((time.perf_counter() - t3) * 1e3)
    return {role: _latency_summary(*times[role]) for role in roles}


def measure_latency(runner: Runner, sentences: list[str], warmup: int, desc: str) -> dict:
    """One runner's batch-size-1 latency (see `measure_latencies`)."""
    return measure_latencies({"model": runner}, sentences, warmup, desc)["model"]


def measure_throughputs(runners: dict, sentences: list[str], batch_size: int, desc: str) -> dict:
    """Predictions for every sentence and throughput in rows/s over length-sorted batches of `batch_size`, every
    runner taking turns batch by batch. Returns `{role: (predictions, speed)}`."""
    plans = {}
    for role, runner in runners.items():
        lengths = runner.token_lengths(sentences)
        order = sorted(range(len(sentences)), key=lambda i: (-lengths[i], i))
        plans[role] = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        runner.logits(runner.encode([sentences[i] for i in plans[role][0]]))  # warm-up on the longest batch
        runner.sync()
    predictions = {role: np.empty(len(sentences), dtype=np.int64) for role in runners}
    elapsed = dict.fromkeys(runners, 0.0)
    for b in tqdm(range(max(len(plan) for plan in plans.values())), desc=desc, unit="batch", leave=False):
        for role, runner in runners.items():
            if b >= len(plans[role]):
                continue
            batch = plans[role][b]
            t0 = time.perf_counter()
            logits = runner.logits(runner.encode([sentences[i] for i in batch]))
            runner.sync()
            elapsed[role] += time.perf_counter() - t0
            predictions[role][batch] = runner.predictions(logits)
    return {
        role: (
            predictions[role],
            {
                "throughput_rows_per_s": len(sentences) / elapsed[role],
                "batch_size": batch_size,
                "rows": len(sentences),
            },
        )
        for role in runners
    }


def measure_batches(runner: Runner, sentences: list[str], batch_size: int, desc: str) -> tuple[np.ndarray, dict]:
    """One runner's predictions and throughput (see `measure_throughputs`)."""
    return measure_throughputs({"model": runner}, sentences, batch_size, desc)["model"]


def latency_sentences(sentences: list[str], n: int, seed: int) -> list[str]:
    """`n` sentences in a seeded random order (cycling when the split has fewer), the same for every model."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[order[i % len(order)]] for i in range(n)]


def training_info(model_dir: str) -> dict | None:
    """Training rows, epochs and time from the `all_results.json` a training stage writes (None: not trained here)."""
    path = os.path.join(model_dir, "all_results.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    if "train_samples" not in results:
        return None
    return {k: results.get(k) for k in ("train_samples", "epoch", "train_runtime")}


def architecture_info(model) -> dict:
    """The sizes that name a BiLSTM student (hidden, MLP, embedding width, vocabulary) and its starting point."""
    config = model.config
    info = {"vocab_size": getattr(config, "vocab_size", None)}
    if config.model_type == "bilstm":
        info.update(
            hidden_size=config.hidden_size,
            classifier_hidden_size=config.classifier_hidden_size,
            embedding_size=config.embedding_size,
            vocab_fingerprint=getattr(config, "vocab_fingerprint", None),
            init_embeddings=getattr(config, "init_embeddings", None),
        )
        size = (config.hidden_size, config.classifier_hidden_size)
        info["size_name"] = NAMED_SIZES.get(size)
    return info


def load_entry(role: str, path: str, name: str | None, quantize: bool = False) -> dict:
    """A model to measure: the loaded model and tokenizer, and what does not need timing (size, training, shape)."""
    local = resolve_model_path(path)
    model = AutoModelForSequenceClassification.from_pretrained(local).eval()
    tokenizer = AutoTokenizer.from_pretrained(local)
    result = {
        "role": role,
        "name": name or os.path.basename(os.path.normpath(path)),
        "path": path,
        "model_type": model.config.model_type,
        "architecture": type(model).__name__,
        **count_params(model),
        "disk_bytes": safetensors_bytes(local),
        "quantized": None,
        "training": training_info(local),
        **architecture_info(model),
    }
    if quantize:
        from distil.quantization import quantize_dynamic_int8, quantized_state_bytes

        model = quantize_dynamic_int8(model)
        result.update(
            quantized="int8 dynamic (LSTM, Linear) + 8-bit embedding", disk_bytes=quantized_state_bytes(model)
        )
    return {"result": result, "model": model, "tokenizer": tokenizer}


def benchmark_models(entries: dict, data, args: ReportArguments) -> dict:
    """Every figure for every model: CPU timings interleaved across the models, then the GPU ones model by model."""
    sentences, labels = list(data["sentence"]), np.asarray(data["label"])
    timed = latency_sentences(sentences, args.latency_samples, args.seed)
    cpu = torch.device("cpu")
    runners = {
        role: Runner(entry["model"], entry["tokenizer"], args.max_seq_length, cpu) for role, entry in entries.items()
    }
    batches = measure_throughputs(runners, sentences, args.batch_size, "CPU throughput")
    latencies = measure_latencies(runners, timed, args.warmup, "CPU latency")
    metric = classification_metrics()
    results = {}
    for role, entry in entries.items():
        predictions, speed = batches[role]
        metrics = metric.compute(predictions=predictions, references=labels)
        result = results[role] = entry["result"]
        result["accuracy"], result["f1"] = float(metrics["accuracy"]), float(metrics["f1"])
        result["cpu"] = {"latency_ms": latencies[role], **speed}
        result["gpu"] = None
        source = entry.get("quantized_from")
        if source is not None:  # an int8 copy: how often it predicts what its float32 model predicts
            result["agreement_with_fp32"] = float(np.mean(predictions == batches[source][0]))
    device = gpu_device() if args.gpu else None
    if device is not None:
        for role, entry in entries.items():
            if entry["result"]["quantized"]:
                continue  # CPU-only kernels
            runner = Runner(entry["model"], entry["tokenizer"], args.max_seq_length, device)
            _, gpu_speed = measure_batches(runner, sentences, args.batch_size, f"{role}: GPU throughput")
            latency = measure_latency(runner, timed, args.warmup, f"{role}: GPU latency")
            results[role]["gpu"] = {"device": gpu_name(device), "latency_ms": latency, **gpu_speed}
            entry["model"].to("cpu")
    return results


# ---------------------------------------------------------------- serving: ONNX Runtime

SERVING_COLUMNS = {
    "teacher": "teacher, PyTorch",
    "student": "student, PyTorch",
    "student-onnx": "student, ONNX fp32",
    "student-onnx-int8": "student, ONNX int8",
}


def onnx_models(student_dir: str, work: str) -> dict:
    """The student's ONNX models to time: `fp32` and `int8` paths, and where they come from. Its `onnx/` folder
    (`distil.export`) when it has one, else an export into `work`; an int8 copy the export did not keep (its accuracy
    rule) is quantised into `work`, and said so."""
    from distil.export import EXPORT_FILE, export_graph, quantize_int8
    from distil.serving import MODEL_FILE, ONNX_DIR, QUANTIZED_FILE
    from distil.utils import read_json

    folder = os.path.join(student_dir, ONNX_DIR)
    record = read_json(os.path.join(folder, EXPORT_FILE))
    fp32, int8 = os.path.join(folder, MODEL_FILE), os.path.join(folder, QUANTIZED_FILE)
    source = f"`{folder}`"
    if not os.path.isfile(fp32):
        fp32, record = os.path.join(work, MODEL_FILE), {}
        export_graph(AutoModelForSequenceClassification.from_pretrained(student_dir).eval(), fp32)
        source = "exported by this report (the student has no `onnx/` folder)"
    if os.path.isfile(int8) and record:
        int8_source = "published by the export (accuracy rule held)"
    else:
        int8 = os.path.join(work, QUANTIZED_FILE)
        quantize_int8(fp32, int8)
        int8_source = "quantised by this report"
        if record.get("int8"):
            int8_source += (
                f"; the export did not publish it (accuracy {record['int8']['accuracy_drop_points']:.2f} points below "
                f"fp32's, more than {record['int8']['max_accuracy_drop_points']:g})"
            )
    return {"fp32": fp32, "int8": int8, "source": source, "int8_source": int8_source, "export": record or None}


def benchmark_serving(entries: dict, data, args: ReportArguments) -> dict:
    """The serving table: the teacher and the student in PyTorch eager, the student's ONNX export (fp32, int8) in ONNX
    Runtime; per thread count, model-only batch-1 latency (p50, p99) and throughput at `batch_size`, all four taking
    turns sentence by sentence and batch by batch."""
    sentences, labels = list(data["sentence"]), np.asarray(data["label"])
    timed = latency_sentences(sentences, args.latency_samples, args.seed)
    student, teacher, cpu = entries["student"], entries["teacher"], torch.device("cpu")
    results = {role: {"name": name, "threads": {}} for role, name in SERVING_COLUMNS.items()}
    with tempfile.TemporaryDirectory(prefix="report-onnx-") as work:
        files = onnx_models(resolve_model_path(args.student), work)
        for threads in args.serving_threads:
            torch.set_num_threads(threads)
            runners = {
                "teacher": Runner(teacher["model"], teacher["tokenizer"], args.max_seq_length, cpu),
                "student": Runner(student["model"], student["tokenizer"], args.max_seq_length, cpu),
                **{
                    role: ONNXRunner(files[kind], student["tokenizer"], student["model"].config, args.max_seq_length,
                                     threads)
                    for role, kind in (("student-onnx", "fp32"), ("student-onnx-int8", "int8"))
                },
            }  # fmt: skip
            where = f"serving, {threads} thread{'s' if threads > 1 else ''}"
            batches = measure_throughputs(runners, sentences, args.batch_size, f"{where}: throughput")
            latencies = measure_latencies(runners, timed, args.warmup, f"{where}: latency", pipeline=False)
            for role in runners:
                predictions, speed = batches[role]
                latency = latencies[role]
                results[role]["accuracy"] = float(np.mean(predictions == labels))
                results[role]["threads"][str(threads)] = {
                    "latency_p50_ms": latency["forward_median"],
                    "latency_p99_ms": latency["forward_p99"],
                    "tokenizer_and_model_p50_ms": latency["median"],
                    "throughput_rows_per_s": speed["throughput_rows_per_s"],
                }
    torch.set_num_threads(args.num_threads)
    for result in results.values():
        for threads, figures in result["threads"].items():
            reference = results["teacher"]["threads"][threads]
            figures["speedup_p50"] = reference["latency_p50_ms"] / figures["latency_p50_ms"]
            figures["throughput_ratio"] = figures["throughput_rows_per_s"] / reference["throughput_rows_per_s"]
    files.pop("fp32"), files.pop("int8")
    return {"models": results, "onnx": files, "threads": list(args.serving_threads)}


def serving_table(report: dict) -> str:
    """The serving table as markdown: one column per runtime, one row per figure and thread count."""
    serving, settings = report["serving"], report["settings"]
    models = serving["models"]
    lines = [
        "## Serving on CPU: PyTorch eager and ONNX Runtime",
        "",
        "| | " + " | ".join(m["name"] for m in models.values()) + " |",
        "|---|" + "---:|" * len(models),
        "| accuracy (%) | " + " | ".join(f"{m['accuracy'] * 100:.2f}" for m in models.values()) + " |",
    ]
    for threads in serving["threads"]:
        t = f"{threads} thread{'s' if threads > 1 else ''}"
        rows = (
            (f"{t}: batch 1, p50 / p99 (ms)", lambda f: f"{f['latency_p50_ms']:.3f} / {f['latency_p99_ms']:.3f}"),
            (f"{t}: batch 1, speed-up over the teacher (p50)", lambda f: f"{f['speedup_p50']:.3g}×"),
            (f"{t}: batch {settings['batch_size']} (rows/s)", lambda f: f"{f['throughput_rows_per_s']:.0f}"),
        )
        for title, cell in rows:
            lines.append(
                f"| {title} | " + " | ".join(cell(m["threads"][str(threads)]) for m in models.values()) + " |"
            )
    onnx = serving["onnx"]
    lines += [
        "",
        "Model-only latency: the forward pass on an already tokenized sentence, median (p50) and p99 over "
        f"{settings['latency_samples']} sentences; throughput: tokenization plus forward pass over batches sorted by "
        "token length. PyTorch: `torch.set_num_threads(N)`, float32, `torch.inference_mode`. ONNX Runtime: "
        "`distil.serving.session_options(N)` (N intra-op threads, sequential execution, all graph optimisations), "
        f"CPU execution provider. ONNX models: {onnx['source']}; int8 copy: {onnx['int8_source']}. The int8 model "
        "quantises activations per batch, so its accuracy here (batches sorted by length) can differ a little from "
        "the export's check (one sentence at a time). The four take turns sentence by sentence and batch by batch.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- ratios, tables, plot


def flat_figures(result: dict) -> dict:
    """The numeric figures of one model, flattened (`cpu_forward_median_ms`, ...)."""
    figures = {k: result[k] for k in ("accuracy", "f1", "params", "params_without_embeddings", "disk_bytes")}
    for dev in ("cpu", "gpu"):
        speed = result.get(dev)
        if speed:
            latency = speed["latency_ms"]
            figures[f"{dev}_forward_median_ms"] = latency["forward_median"]
            figures[f"{dev}_forward_p95_ms"] = latency["forward_p95"]
            figures[f"{dev}_latency_median_ms"] = latency["median"]
            figures[f"{dev}_latency_p95_ms"] = latency["p95"]
            if "pipeline_median" in latency:
                figures[f"{dev}_pipeline_median_ms"] = latency["pipeline_median"]
                figures[f"{dev}_pipeline_p95_ms"] = latency["pipeline_p95"]
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
    "cpu_forward_median_ms": "model-only p50",
    "cpu_forward_p95_ms": "model-only p95",
    "cpu_latency_median_ms": "tokenizer+model p50",
    "cpu_latency_p95_ms": "tokenizer+model p95",
    "cpu_pipeline_median_ms": "pipeline p50",
    "cpu_pipeline_p95_ms": "pipeline p95",
    "cpu_throughput_rows_per_s": "CPU throughput",
    "gpu_forward_median_ms": "GPU model-only p50",
    "gpu_forward_p95_ms": "GPU model-only p95",
    "gpu_latency_median_ms": "GPU tokenizer+model p50",
    "gpu_latency_p95_ms": "GPU tokenizer+model p95",
    "gpu_pipeline_median_ms": "GPU pipeline p50",
    "gpu_pipeline_p95_ms": "GPU pipeline p95",
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


def describe(r: dict) -> str:
    """`BiLSTM 150/200, 128-d, 11.6k vocab (the paper's SST-2 size)`, `bert, 30.5k vocab`, `..., int8`."""
    if r.get("hidden_size") is not None:
        text = f"BiLSTM {r['hidden_size']}/{r['classifier_hidden_size']}, {r['embedding_size']}-d"
    else:
        text = r["model_type"]
    text += f", {_count(r.get('vocab_size'))} vocab"
    if r.get("size_name"):
        text += f" ({r['size_name']})"
    if r.get("quantized"):
        text += ", int8"
    return text


def _training(r: dict) -> str:
    t = r.get("training")
    if not t:
        return "not trained here"
    return f"{t['train_samples']:,} × {t['epoch']:g}"


def markdown_tables(report: dict) -> str:
    """The absolute figures and the ratios against the teacher, as markdown tables."""
    models = report["models"]
    threads = report["settings"]["num_threads"]
    lines = [
        "| model | role | architecture | train rows × epochs | accuracy | F1 | params | params w/o emb. | disk (MB) "
        "| model-only p50 / p95 (ms) | pipeline p50 / p95 (ms) | throughput, batch "
        f"{report['settings']['batch_size']} (rows/s) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in models.values():
        latency = r["cpu"]["latency_ms"]
        lines.append(
            f"| {r['name']} | {r['role']} | {describe(r)} | {_training(r)} | {r['accuracy'] * 100:.2f} "
            f"| {r['f1'] * 100:.2f} | {_count(r['params'])} | {_count(r['params_without_embeddings'])} "
            f"| {_num(None if r['disk_bytes'] is None else r['disk_bytes'] / 1e6, '.3g')} "
            f"| {latency['forward_median']:.2f} / {latency['forward_p95']:.2f} "
            f"| {_num(latency.get('pipeline_median'), '.2f')} / {_num(latency.get('pipeline_p95'), '.2f')} "
            f"| {r['cpu']['throughput_rows_per_s']:.1f} |"
        )
    if any(r["gpu"] for r in models.values()):
        lines += [
            "",
            "| model | GPU | model-only p50 / p95 (ms) | pipeline p50 / p95 (ms) | throughput (rows/s) |",
            "|---|---|---:|---:|---:|",
        ]
        for r in models.values():
            g = r["gpu"]
            if not g:
                continue
            latency = g["latency_ms"]
            lines.append(
                f"| {r['name']} | {g['device']} | {latency['forward_median']:.2f} / {latency['forward_p95']:.2f} "
                f"| {_num(latency.get('pipeline_median'), '.2f')} / {_num(latency.get('pipeline_p95'), '.2f')} "
                f"| {g['throughput_rows_per_s']:.1f} |"
            )
    keys = list(next(iter(models.values()))["ratios"])
    titles = [RATIO_TITLES.get(k, k) for k in keys]
    lines += ["", "Ratios against the teacher (model / teacher):", "", "| model | " + " | ".join(titles) + " |"]
    lines.append("|---|" + "---:|" * len(keys))
    for r in models.values():
        lines.append(f"| {r['name']} | " + " | ".join(_ratio(r["ratios"].get(k)) for k in keys) + " |")
    lines += ["", *versus_teacher(report)]
    lines += [
        "",
        f"SST-2 validation, {report['data']['rows']} sentences. Accuracy and F1 in %, F1 of the positive class; "
        "a model 'not trained here' has no `all_results.json` with training rows beside it (its accuracy means "
        f"nothing unless it was trained elsewhere). `torch.set_num_threads({threads})`. Latency: batch size 1, "
        f"median and p95 over {report['settings']['latency_samples']} sentences. "
        f"Throughput: batches of {report['settings']['batch_size']} "
        f"sentences sorted by token length. {TIMING_NOTE} Params w/o emb.: without `get_input_embeddings()`. "
        "Disk: the safetensors files (int8 copies: their serialised state dict).",
    ]
    return "\n".join(lines)


def versus_teacher(report: dict) -> list[str]:
    """One line per model: how many times smaller and faster than the teacher, and the accuracy difference."""
    models = report["models"]
    teacher = models["teacher"]
    t_latency, t_speed = teacher["cpu"]["latency_ms"], teacher["cpu"]["throughput_rows_per_s"]
    lines = []
    for r in models.values():
        if r is teacher:
            continue
        latency = r["cpu"]["latency_ms"]
        line = (
            f"- {r['name']}: {teacher['params'] / r['params']:.3g}× fewer parameters "
            f"({teacher['params_without_embeddings'] / r['params_without_embeddings']:.3g}× without embeddings)"
        )
        if r["disk_bytes"] and teacher["disk_bytes"]:
            line += f", {teacher['disk_bytes'] / r['disk_bytes']:.3g}× smaller on disk"
        line += (
            f"; model-only latency {t_latency['forward_median'] / latency['forward_median']:.3g}× lower "
            f"({latency['forward_median']:.2f} ms p50)"
        )
        if "pipeline_median" in latency and "pipeline_median" in t_latency:
            line += f", pipeline latency {t_latency['pipeline_median'] / latency['pipeline_median']:.3g}× lower"
        line += (
            f"; {r['cpu']['throughput_rows_per_s'] / t_speed:.3g}× the throughput; accuracy "
            f"{(r['accuracy'] - teacher['accuracy']) * 100:+.2f} points"
        )
        if r.get("agreement_with_fp32") is not None:
            line += f" (predicts as its float32 model on {r['agreement_with_fp32'] * 100:.2f}% of sentences)"
        lines.append(line + ".")
    student, baseline = models.get("student"), models.get("baseline")
    if student and baseline and student.get("vocab_fingerprint") and baseline.get("vocab_fingerprint"):
        same_vocab = student["vocab_fingerprint"] == baseline["vocab_fingerprint"]
        same_init = (student.get("init_embeddings") or {}).get("fingerprint") == (
            baseline.get("init_embeddings") or {}
        ).get("fingerprint")
        lines.append(
            f"- Same start: the baseline's tokenizer is {'the same as' if same_vocab else 'NOT the same as'} the "
            f"student's, and its initial embeddings are {'the same' if same_init else 'NOT the same'}."
        )
    return lines


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
    label = {"teacher": "teacher", "student": "distilled student", "baseline": "baseline, no distillation"}
    for r in models.values():
        role = label.get(r["role"], r["role"])
        shape = f"; {describe(r)}" if r.get("hidden_size") is not None else ""
        t_latency, latency = teacher["cpu"]["latency_ms"], r["cpu"]["latency_ms"]
        speedup = t_latency.get("forward_median", t_latency["median"]) / latency.get(
            "forward_median", latency["median"]
        )
        batch_speedup = r["cpu"]["throughput_rows_per_s"] / teacher["cpu"]["throughput_rows_per_s"]
        lines.append(
            f"| ours (validation) | {r['name']} ({role}, {r['model_type']}{shape}) | {r['accuracy'] * 100:.1f} "
            f"| {_count(r['params'])} | {speedup:.3g}× (batch 1), {batch_speedup:.3g}× (batch) |"
        )
    lines += [
        "",
        "Paper: Tang et al., *Distilling Task-Specific Knowledge from BERT into Simple Neural Networks* (2019, "
        "arXiv:1903.12136); accuracy from their Table 1 (GLUE SST-2 **test** set), parameters and the 434× "
        "inference speed-up of BiLSTM_SOFT over BERT-large from their model-size and inference-time table (their "
        "hardware and batching). Their SST-2 BiLSTM has hidden size 150 and an MLP of 200 (the authors' released "
        'configuration, "the paper\'s SST-2 size"); the seed of this project used 300 and 400 ("the seed\'s size"). '
        "Ours: every number measured by this report on the SST-2 **validation** set, "
        f"teacher `{teacher['name']}` ({teacher['model_type']}, {_count(teacher['params'])} params), on "
        f"{report['machine']['cpu_model']} with {report['settings']['num_threads']} threads; speed-up is the "
        "teacher's CPU model-only median latency over the model's (batch 1) and the model's CPU throughput over the "
        "teacher's (batch). Test and validation accuracies are not directly comparable.",
    ]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    """The whole report as markdown: set-up, tables, paper comparison."""
    m, s = report["machine"], report["settings"]
    gpu = ", GPU: " + report["gpu"] if report["gpu"] else ", no GPU"
    flags = f"; CPU flags {', '.join(m['cpu_flags'])}" if m.get("cpu_flags") else ""
    lines = [
        "# Benchmark report",
        "",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu_model']}, {m['cpu_cores']} cores{gpu}{flags}; torch {m['torch']}, transformers "
        f"{m['transformers']}, Python {m['python']}; "
        f"load average at start {_num(m['load_average_1m_at_start'], '.2f')}, at end "
        f"{_num(m.get('load_average_1m_at_end'), '.2f')}",
        f"- `torch.set_num_threads({s['num_threads']})`",
        "",
        markdown_tables(report),
        "",
        render_paper_comparison(report),
        "",
    ]
    if report.get("serving"):
        lines += [serving_table(report), ""]
    return "\n".join(lines)


def plot_report(report: dict, path: str) -> str:
    """Accuracy against CPU model-only median latency (log x axis), one labelled point per model, saved to `path`."""
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
        x, y = r["cpu"]["latency_ms"]["forward_median"], r["accuracy"] * 100
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
        f"CPU model-only latency per sentence, median ms (log; batch 1, {report['settings']['num_threads']} threads)",
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

    if args.onnx:
        from distil.export import missing_packages

        if missing_packages():
            raise ImportError(
                f"the serving table needs {', '.join(missing_packages())}: pip install -e '.[onnx]' (or pass "
                "--onnx false)"
            )
    data = load_sst2(dataset_name=args.dataset_name, data_dir=args.data_dir, max_eval_samples=args.max_eval_samples)[
        "validation"
    ]
    if args.variant_names and len(args.variant_names) != len(args.variants):
        raise ValueError("variant_names: give one name per variant (or none)")
    paths = {"teacher": args.teacher, "student": args.student, "baseline": args.baseline}
    names = {"teacher": args.teacher_name, "student": args.student_name, "baseline": args.baseline_name}
    for i, path in enumerate(args.variants, start=1):
        paths[f"variant-{i}"] = path
        names[f"variant-{i}"] = args.variant_names[i - 1] if args.variant_names else None
    entries = {}
    for role in tqdm([r for r in paths if paths[r]], desc="loading", unit="model"):
        entries[role] = load_entry(role, paths[role], names[role])
        if args.quantize and role != "teacher" and entries[role]["result"]["model_type"] == "bilstm":
            copy = load_entry(f"{role}-int8", paths[role], f"{entries[role]['result']['name']}, int8", quantize=True)
            copy["quantized_from"] = role
            entries[f"{role}-int8"] = copy
    if args.onnx and entries["student"]["result"]["model_type"] != "bilstm":
        raise ValueError(f"--onnx: the student {args.student} is not a BiLSTM student (pass --onnx false)")
    models = benchmark_models(entries, data, args)
    serving = benchmark_serving(entries, data, args) if args.onnx else None
    machine["load_average_1m_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    add_ratios(models)

    report = {
        "command": shlex.join(["python", "benchmarks/report.py", *argv]),
        "machine": machine,
        "gpu": gpu_name(device) if device is not None else None,
        "settings": {**asdict(args), "timing": TIMING_NOTE},
        "data": {"source": args.data_dir or args.dataset_name, "split": "validation", "rows": len(data)},
        "models": models,
        "serving": serving,
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
