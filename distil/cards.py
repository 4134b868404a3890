"""Hub cards for what a run produces: the student, the teacher and the transfer set.

Each card is built with `huggingface_hub`'s card API: the metadata as `ModelCardData` (with `EvalResult`s, which
become `model-index`) or `DatasetCardData`, the text from a Jinja template (`ModelCard.from_template`). Everything on
a card is read from the stage's output folder (`config.json`, `run_args.json`, `all_results.json`, the weights, the
saved `DatasetDict`), plus what only the caller knows: the Hub ids of the other outputs, the pipeline's
teacher-vs-student evaluation and, when it has run, the CPU benchmark of `benchmarks/report.py` (`report.json`).
Nothing here talks to the Hub (`distil.push` does).
"""

from __future__ import annotations

import logging
import os
import re
from importlib import resources

from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from distil.task import Task, task_of
from distil.utils import read_json

logger = logging.getLogger("distil")

PAPER = "[Tang et al., 2019](https://arxiv.org/abs/1903.12136)"
SST2_EXAMPLE = "a gorgeous , witty , seductive movie ."
# The arguments a card lists (all of them are in the repo's `run_args.json`).
TRAINING_KEYS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "seed", "bf16", "fp16",
)  # fmt: skip
STUDENT_KEYS = ("loss", "alpha", "temperature", "tokenizer", "embedding_init", "max_transfer_samples")
TEACHER_KEYS = ("model_name_or_path", "lr_schedule")
TEMPLATES = resources.files("distil") / "templates"  # Jinja templates of the cards' text
DATA_KEYS = (
    "dataset_name", "dataset_config_name", "data_dir", "train_file", "validation_file", "text_column", "label_column",
    "validation_split_percentage", "max_train_samples", "max_eval_samples", "max_seq_length",
)  # fmt: skip


def columns(task: Task) -> dict[str, str]:
    """What each transfer-set column holds."""
    return {
        "sentence": "the text, case and spacing as in the data; masked words are the teacher's mask token",
        "idx": f"row of the {task.name} train sentence this row was made from",
        "label": f"gold label of original {task.name} sentences; -1 for augmented rows, which have none",
        "teacher_logits": f"the teacher's logits ({task.labels_text}), float32: the distillation target",
    }


def example(task: Task, transfer_set_dir: str | None = None) -> str:
    """A sentence for a card's usage snippet: SST-2's, else the first validation sentence of the run's local transfer
    set, else a placeholder."""
    if task.is_sst2:
        return SST2_EXAMPLE
    if transfer_set_dir and os.path.isfile(os.path.join(transfer_set_dir, "dataset_dict.json")):
        from datasets import load_from_disk

        validation = load_from_disk(transfer_set_dir).get("validation")
        if validation is not None and len(validation):
            return validation[0]["sentence"].replace("\\", "\\\\").replace('"', '\\"')
    return "Your text here."


def model_task(model_dir: str, data_args: dict) -> Task:
    """The task of a saved model: its data arguments and its `id2label`."""
    id2label = read_json(os.path.join(model_dir, "config.json")).get("id2label") or {}
    return task_of(data_args, [id2label[k] for k in sorted(id2label, key=int)])


def template(name: str) -> str:
    """The Jinja template `distil/templates/<name>.md` (shipped with the package)."""
    return (TEMPLATES / f"{name}.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- reading a stage's output


def run_args(output_dir: str) -> dict:
    """The stage's `run_args.json` (`{dataclass name: {field: value}}`, plus `command` where recorded)."""
    return read_json(os.path.join(output_dir, "run_args.json"))


def hub_id_of(name_or_path: str | None, kind: str = "model") -> str | None:
    """The Hub id of a model or dataset named in a run: a Hub id as is; a local stage output that was pushed (its
    `run_args.json` says so) as the id it was pushed to; None otherwise (local only, or weights in a package)."""
    if not name_or_path or name_or_path.startswith("pkg://"):
        return None
    if os.path.isdir(name_or_path):
        record = run_args(name_or_path)
        args = record.get("TrainingArguments" if kind == "model" else "TransferSetArguments", {})
        key = "hub_model_id" if kind == "model" else "hub_dataset_id"
        return args.get(key) if args.get("push_to_hub") else None
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    return None if looks_local else name_or_path


def parameter_counts(model_dir: str) -> dict[str, int]:
    """Parameters in total, in the input-embedding matrix, and without it (as `benchmarks/report.py` counts)."""
    from transformers import AutoModelForSequenceClassification

    import distil  # noqa: F401  (registers the BiLSTM with the Auto classes)

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    total = sum(p.numel() for p in model.parameters())
    embeddings = model.get_input_embeddings()
    emb = embeddings.weight.numel() if embeddings is not None else 0
    return {"params": total, "embedding_params": emb, "params_without_embeddings": total - emb}


def human(n: int | float | None) -> str:
    """`13.6M`, `1.89M`, `22.7k`: three significant digits."""
    if n is None:
        return "n/a"
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(int(n))


def selected(record: dict, section: str, keys) -> list[tuple[str, object]]:
    """(key, value) of `keys` in `record[section]` that are set (not None, and max_steps only when positive)."""
    values = record.get(section, {})
    out = []
    for key in keys:
        value = values.get(key)
        if value is None or (key == "max_steps" and value <= 0) or (key in ("bf16", "fp16") and not value):
            continue
        out.append((key, value))
    return out


def f1_of(metrics: dict, prefix: str = "") -> float | None:
    """The F1 of an evaluation: binary F1 for two labels, macro-F1 for more."""
    value = metrics.get(f"{prefix}f1", metrics.get(f"{prefix}macro_f1"))
    return None if value is None else float(value)


def f1_name(task: Task) -> str:
    return "F1" if len(task.label_names) <= 2 else "macro-F1"


def eval_scores(model_dir: str, results: dict | None, role: str) -> dict[str, float] | None:
    """Accuracy and F1 (binary, or macro beyond two labels) on the validation split: the pipeline's evaluation when
    given, else the stage's own (`all_results.json`, on the validation split it trained with)."""
    if results and role in results:
        return {"accuracy": results[role]["accuracy"], "f1": f1_of(results[role])}
    own = read_json(os.path.join(model_dir, "all_results.json"))
    if "eval_accuracy" in own:
        return {"accuracy": own["eval_accuracy"], "f1": f1_of(own, "eval_")}
    return None


def eval_results(scores: dict | None, task: Task, data_args: dict) -> list[EvalResult] | None:
    """`EvalResult`s (accuracy, F1 or macro-F1) for `model-index`."""
    if not scores:
        return None
    common = dict(
        task_type="text-classification",
        task_name=task.description[:1].upper() + task.description[1:],
        dataset_type=task.hub_id or task.name,
        dataset_name=task.name,
        dataset_config=data_args.get("dataset_config_name") if task.hub_id else None,
        dataset_split="validation",
    )
    out = [
        EvalResult(metric_type="accuracy", metric_name="Accuracy", metric_value=float(scores["accuracy"]), **common)
    ]
    if scores.get("f1") is not None:
        kind, name = ("f1", "F1") if len(task.label_names) <= 2 else ("f1", "Macro F1")
        args = {} if len(task.label_names) <= 2 else {"metric_args": {"average": "macro"}}
        out.append(EvalResult(metric_type=kind, metric_name=name, metric_value=float(scores["f1"]), **common, **args))
    return out


def load_benchmark(path: str | None, student_dir: str) -> dict | None:
    """The `report.json` of `benchmarks/report.py` when it measured this student (same folder); None otherwise."""
    if not path:
        return None
    report = read_json(path)
    student = report.get("models", {}).get("student")
    if not student or "teacher" not in report.get("models", {}):
        logger.warning("%s has no teacher and student entries; the card leaves the benchmark out", path)
        return None
    if os.path.realpath(student.get("path", "")) != os.path.realpath(student_dir):
        logger.warning(
            "%s measured %s, not %s; the card leaves the benchmark out", path, student.get("path"), student_dir
        )
        return None
    return report


def benchmark_rows(report: dict | None) -> list[dict] | None:
    """Teacher and student CPU figures of a `report.json`, with the student's ratios to the teacher."""
    if not report:
        return None
    rows = []
    for role in ("teacher", "student"):
        m = report["models"][role]
        cpu = m.get("cpu") or {}
        if not cpu:
            return None
        rows.append(
            {
                "name": m.get("name") or role,
                "params": human(m.get("params")),
                "params_without_embeddings": human(m.get("params_without_embeddings")),
                "latency": cpu["latency_ms"]["median"],
                "latency_p95": cpu["latency_ms"]["p95"],
                "throughput": cpu["throughput_rows_per_s"],
            }
        )
    teacher, student = rows
    speed = {
        "latency": teacher["latency"] / student["latency"],
        "throughput": student["throughput"] / teacher["throughput"],
    }
    machine = report.get("machine", {})
    return {
        "rows": rows,
        "speedup": speed,
        "cpu": machine.get("cpu_model"),
        "threads": machine.get("torch_num_threads"),
    }


def repo_link(repo_id: str | None, kind: str = "model") -> str | None:
    """A Markdown link to a Hub repo, relative so that it works on any Hub endpoint."""
    if not repo_id:
        return None
    return f"[`{repo_id}`](/{'datasets/' if kind == 'dataset' else ''}{repo_id})"


def size_category(n: int) -> str:
    for bound, name in ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"), (1e7, "1M<n<10M")):
        if n < bound:
            return name
    return "10M<n<100M"


# ---------------------------------------------------------------- model cards


def _results_rows(model_dir: str, results: dict | None, role: str, task: Task) -> tuple[list[dict], str]:
    """The rows of a card's results table and a sentence saying where they come from."""
    if results and role in results:
        order = sorted(results, key=lambda name: (name != "teacher", name != "student", name))
        rows = [
            {"name": name, "accuracy": results[name]["accuracy"], "f1": f1_of(results[name]),
             "agreement": results[name].get("agreement_with_teacher")}
            for name in order
        ]  # fmt: skip
        n = results[role].get("eval_samples")
        return (
            rows,
            f"Evaluated by the pipeline (`distil.pipeline.evaluate_models`) on {n} {task.name} validation sentences.",
        )
    scores = eval_scores(model_dir, None, role)
    if not scores:
        return [], "This run recorded no evaluation."
    n = read_json(os.path.join(model_dir, "all_results.json")).get("eval_samples")
    rows = [{"name": "this model", "accuracy": scores["accuracy"], "f1": scores["f1"], "agreement": None}]
    return rows, f"Evaluated at the end of training on {n} validation sentences (`all_results.json`)."


def onnx_export(model_dir: str) -> dict | None:
    """The record of the student's ONNX export (`onnx/export.json`, written by `distil.export`), or None."""
    record = read_json(os.path.join(model_dir, "onnx", "export.json"))
    return record if record.get("files") else None


def architecture(model_dir: str) -> dict:
    config = read_json(os.path.join(model_dir, "config.json"))
    config["architecture"] = (config.get("architectures") or ["?"])[0]
    config["num_labels"] = len(config.get("id2label") or {}) or 2
    return config


def student_card(
    model_dir: str,
    repo_id: str,
    *,
    teacher_id: str | None = None,
    transfer_set_id: str | None = None,
    results: dict | None = None,
    benchmark: dict | None = None,
) -> ModelCard:
    """The student's model card. `teacher_id` / `transfer_set_id`: their Hub ids (default: found from the run's
    records, see `hub_id_of`); `results`: the pipeline's `evaluate_models` output; `benchmark`: a `report.json`."""
    record = run_args(model_dir)
    student_args = record.get("StudentArguments", {})
    data_args = record.get("DataArguments", {})
    transfer_set_path = student_args.get("transfer_set")
    distilled = transfer_set_path is not None
    transfer_record = run_args(transfer_set_path) if transfer_set_path and os.path.isdir(transfer_set_path) else {}
    teacher_name = transfer_record.get("TransferSetArguments", {}).get("teacher_model") or student_args.get(
        "teacher_model"
    )
    teacher_id = teacher_id or hub_id_of(teacher_name, "model")
    transfer_set_id = transfer_set_id or hub_id_of(transfer_set_path, "dataset")

    task = model_task(model_dir, data_args)
    scores = eval_scores(model_dir, results, "student")
    loss = student_args.get("loss") or ("mse" if distilled else "ce")
    loss_text = {
        "mse": "mean squared error between the student's and the teacher's logits",
        "kl": f"KL divergence to the teacher's softened distribution (temperature {student_args.get('temperature')})",
        "ce": "cross-entropy on gold labels",
    }[loss]
    if distilled and student_args.get("alpha"):
        loss_text += f", plus {student_args['alpha']} x cross-entropy on the gold labels of original sentences"
    params = parameter_counts(model_dir)
    params.update({f"{k}_h": human(v) for k, v in list(params.items())})
    rows, results_source = _results_rows(model_dir, results, "student", task)
    card_data = ModelCardData(
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["text-classification", *task.tags, "distillation", "bilstm", "custom_code"],
        datasets=[d for d in ((transfer_set_id if distilled else None), task.hub_id) if d] or None,
        metrics=["accuracy", "f1"],
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(scores, task, data_args),
    )
    return ModelCard.from_template(
        card_data,
        template_str=template("student"),
        repo_id=repo_id,
        model_name=repo_id.split("/")[-1],
        distilled=distilled,
        teacher=repo_link(teacher_id) or f"`{teacher_name}` (not on the Hub)",
        transfer_set=repo_link(transfer_set_id, "dataset") or f"`{transfer_set_path}` (not on the Hub)",
        paper=PAPER,
        loss_text=loss_text,
        task=task,
        f1_name=f1_name(task),
        example=example(task, transfer_set_path),
        arch=architecture(model_dir),
        params=params,
        results=rows,
        has_agreement=any(r["agreement"] is not None for r in rows),
        results_source=results_source,
        benchmark=benchmark_rows(benchmark),
        onnx=onnx_export(model_dir),
        training=selected(record, "StudentArguments", STUDENT_KEYS)
        + selected(record, "TrainingArguments", TRAINING_KEYS)
        + selected(record, "DataArguments", DATA_KEYS),
    )


def teacher_card(
    model_dir: str, repo_id: str, *, transfer_set_id: str | None = None, results: dict | None = None
) -> ModelCard:
    """The fine-tuned teacher's model card."""
    record = run_args(model_dir)
    data_args = record.get("DataArguments", {})
    base = record.get("TeacherArguments", {}).get("model_name_or_path")
    base_id = hub_id_of(base, "model")
    params = parameter_counts(model_dir)
    params.update({f"{k}_h": human(v) for k, v in list(params.items())})
    task = model_task(model_dir, data_args)
    teacher_results = {"teacher": results["teacher"]} if results else None
    rows, results_source = _results_rows(model_dir, teacher_results, "teacher", task)
    card_data = ModelCardData(
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=["text-classification", *task.tags, "distillation-teacher"],
        base_model=base_id,
        datasets=[task.hub_id] if task.hub_id else None,
        metrics=["accuracy", "f1"],
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(eval_scores(model_dir, results, "teacher"), task, data_args),
    )
    return ModelCard.from_template(
        card_data,
        template_str=template("teacher"),
        repo_id=repo_id,
        model_name=repo_id.split("/")[-1],
        base_model=base_id or base or "a pretrained model",
        transfer_set=repo_link(transfer_set_id, "dataset") or "",
        paper=PAPER,
        task=task,
        f1_name=f1_name(task),
        example=example(task),
        arch=architecture(model_dir),
        params=params,
        results=rows,
        results_source=results_source,
        training=selected(record, "TeacherArguments", TEACHER_KEYS)
        + selected(record, "TrainingArguments", TRAINING_KEYS)
        + selected(record, "DataArguments", DATA_KEYS),
    )


def model_card(model_dir: str, repo_id: str, **kwargs) -> ModelCard:
    """`student_card` for a BiLSTM, else `teacher_card` (which takes only `transfer_set_id` and `results`)."""
    if read_json(os.path.join(model_dir, "config.json")).get("model_type") == "bilstm":
        return student_card(model_dir, repo_id, **kwargs)
    return teacher_card(
        model_dir, repo_id, transfer_set_id=kwargs.get("transfer_set_id"), results=kwargs.get("results")
    )


# ---------------------------------------------------------------- dataset card


def transfer_set_card(dataset_dir: str, repo_id: str, *, teacher_id: str | None = None, splits=None) -> DatasetCard:
    """The transfer set's dataset card, from the folder `build_transfer_set` wrote (`splits`: the loaded
    `DatasetDict`, to skip loading it again)."""
    from datasets import load_from_disk

    splits = splits if splits is not None else load_from_disk(dataset_dir)
    record = run_args(dataset_dir)
    transfer_args = record.get("TransferSetArguments", {})
    rules = record.get("AugmentationArguments", {})
    data_args = record.get("DataArguments", {})
    teacher_name = transfer_args.get("teacher_model")
    teacher_id = teacher_id or hub_id_of(teacher_name, "model")
    help_text = record.get("help", {}).get("AugmentationArguments", {})  # recorded by the stage
    features = next(iter(splits.values())).features
    task = task_of(data_args, features["label"].names if hasattr(features.get("label"), "names") else [])
    total = sum(len(ds) for ds in splits.values())
    card_data = DatasetCardData(
        language=["en"],
        pretty_name=f"{task.name} transfer set ({repo_id.split('/')[-1]})",
        task_categories=["text-classification"],
        task_ids=[task.task_id],
        annotations_creators=["machine-generated"],
        size_categories=[size_category(total)],
        tags=["distillation", "knowledge-distillation", "data-augmentation", *task.tags],
    )
    source = f"`{task.source}`" if task.source else None
    cap = selected(record, "DataArguments", ("max_train_samples",))
    return DatasetCard.from_template(
        card_data,
        template_str=template("transfer_set"),
        repo_id=repo_id,
        pretty_name=card_data.pretty_name,
        paper=PAPER,
        teacher=repo_link(teacher_id) or f"`{teacher_name}`",
        teacher_settings=selected(record, "TransferSetArguments", ("precision", "seed"))
        + selected(record, "DataArguments", ("max_seq_length",)),
        source=source or repo_link(task.hub_id, "dataset"),
        task=task,
        spacy_model=transfer_args.get("spacy_model"),
        augmented=not transfer_args.get("no_augment"),
        splits=[(name, len(ds)) for name, ds in splits.items()],
        columns=[(name, feature_type(feature), columns(task).get(name, "")) for name, feature in features.items()],
        augmentation=[(k, v, help_text.get(k, "")) for k, v in rules.items()]
        + [(k, v, f"Only the first N {task.name} train sentences were used.") for k, v in cap],
        command=record.get("command"),
    )


def feature_type(feature) -> str:
    """`string`, `int64`, `ClassLabel(negative, positive)`, `List(float32, length=2)`."""
    from datasets import ClassLabel, List, Value

    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, ClassLabel):
        return f"ClassLabel({', '.join(feature.names)})"
    if isinstance(feature, List):
        inner = feature_type(feature.feature)
        return f"List({inner}, length={feature.length})" if feature.length not in (None, -1) else f"List({inner})"
    return re.sub(r"\s+", " ", repr(feature))
