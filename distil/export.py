"""The student for serving on CPUs: an ONNX export, checked against PyTorch on the validation split.

`export_onnx(model_dir, validation)` writes `model_dir/onnx/` (the layout optimum and transformers.js read):

- `model.onnx`: the student from the tokenizer's output (`input_ids`, `attention_mask`, any batch size and length) to
  `logits`, exported with `torch.onnx.export(dynamo=True)`. The BiLSTM is ONNX's `LSTM` op with each row's token
  count as `sequence_lens`, so no direction reads padding and a padded row gets the logits it gets alone, as the
  PyTorch model's packed LSTM gives them; ONNX Runtime runs it with its CPU LSTM kernel.
- `model_quantized.onnx`: ONNX Runtime's dynamic int8 quantisation of it (`quantize_dynamic`: int8 weights,
  activations quantised on the fly, per batch), kept only when its validation accuracy, one sentence at a time, is at
  most `max_int8_accuracy_drop` points below the fp32 export's.
- `export.json`: what it was built from and the checks: fp32 logits against PyTorch's (max abs difference at most
  `FP32_TOLERANCE`, the same argmax on every row; a failed check writes nothing and raises), and the int8 copy's
  accuracy. The model card shows them (`distil.cards`).

An export of the same student, data and settings is not redone. The pipeline runs it after the student stage
(`export_onnx`, on by default); without `onnx`, `onnxscript` and `onnxruntime` installed (`pip install
'distil[onnx]'`) it logs one line and skips it. By hand:

    python -m distil.export --model_dir outputs/quickstart/student

checks on the validation split the student was trained with (its `run_args.json`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from distil.configs import DataArguments, parse_args, run_recipe
from distil.data import LABEL_COLUMN, TEXT_COLUMN, load_data_from_args
from distil.errors import ConfigError
from distil.labels import label_order
from distil.modeling_bilstm import BiLSTMForSequenceClassification, MultiChannelEmbedding
from distil.records import Signature, json_fingerprint, model_fingerprint
from distil.serving import MODEL_FILE, ONNX_DIR, QUANTIZED_FILE, inference_session
from distil.utils import atomic_directory, read_json, write_json

logger = logging.getLogger("distil")

EXPORT_FILE = "export.json"
FP32_TOLERANCE = 1e-4  # max abs difference between the fp32 export's logits and PyTorch's
REQUIRED_PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # the `onnx` extra


class ExportCheckError(RuntimeError):
    """The exported model does not compute what the PyTorch model computes."""


@dataclass
class ExportArguments:
    """`python -m distil.export`: the student to export and the rule for its int8 copy."""

    model_dir: str | None = field(default=None, metadata={"help": "A saved BiLSTM student folder (`student/`)."})
    max_int8_accuracy_drop: float = field(
        default=0.2,
        metadata={
            "help": "Keep `onnx/model_quantized.onnx` only if its validation accuracy is at most this many points "
            "below the fp32 export's. A negative value never keeps it."
        },
    )
    check_batch_size: int = field(
        default=64,
        metadata={
            "help": "Batch size of the fp32 check on the validation split (padded batches, for both runtimes); the "
            "int8 copy is checked one sentence at a time, as it is served at batch size 1."
        },
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Debug cap: check on the first N validation rows only."}
    )

    def __post_init__(self):
        if self.check_batch_size < 1:
            raise ConfigError(f"check_batch_size must be >= 1, got {self.check_batch_size}")


# ---------------------------------------------------------------- the graph


def lstm_op_weights(lstm: nn.LSTM, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`(W, R, B)` of ONNX's bidirectional `LSTM` op for one layer of `lstm`: gates reordered from PyTorch's
    (input, forget, cell, output) to ONNX's (input, output, forget, cell), directions stacked, biases concatenated."""

    def gates(t: torch.Tensor) -> torch.Tensor:
        i, f, g, o = t.detach().float().chunk(4, 0)
        return torch.cat([i, o, f, g], 0)

    directions = [f"l{layer}", f"l{layer}_reverse"]
    w = torch.stack([gates(getattr(lstm, f"weight_ih_{d}")) for d in directions])
    r = torch.stack([gates(getattr(lstm, f"weight_hh_{d}")) for d in directions])
    b = torch.stack(
        [torch.cat([gates(getattr(lstm, f"bias_ih_{d}")), gates(getattr(lstm, f"bias_hh_{d}"))]) for d in directions]
    )
    return w, r, b


class ONNXStudent(nn.Module):
    """A `BiLSTMForSequenceClassification`'s inference, from the tokenizer's output to logits, in ONNX's ops: for
    `torch.onnx.export(dynamo=True)` only (its LSTM is a symbolic ONNX op, which returns zeros when run eagerly).

    Each row's tokens move to its front, in order (left padding, or holes in the mask), as the model does; each row's
    token count is the `LSTM` op's `sequence_lens`, so the forward state is taken at the last token and the backward
    one at the first, as the model's packed LSTM gives them.
    """

    def __init__(self, model: BiLSTMForSequenceClassification):
        super().__init__()
        self.embeddings = model.bilstm.embeddings
        self.classifier = model.classifier
        lstm = model.bilstm.lstm
        self.hidden_size, self.num_layers = lstm.hidden_size, lstm.num_layers
        for layer in range(lstm.num_layers):
            for name, weight in zip("WRB", lstm_op_weights(lstm, layer)):
                self.register_buffer(f"{name}_{layer}", weight)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, seq = input_ids.shape
        mask = attention_mask.to(torch.int64)
        positions = torch.arange(seq, device=input_ids.device)
        order = torch.argsort((1 - mask) * seq + positions, dim=1)  # real tokens first, each group in order
        input_ids, mask = input_ids.gather(1, order), mask.gather(1, order)
        lengths = mask.sum(dim=1).clamp(min=1).to(torch.int32)
        if isinstance(self.embeddings, MultiChannelEmbedding):
            x = self.embeddings(input_ids, mask)
        else:
            x = self.embeddings(input_ids)
        x = x.transpose(0, 1)  # (seq, batch, features): the op's layout 0
        hidden = self.hidden_size
        for layer in range(self.num_layers):
            y, y_h, _ = torch.onnx.ops.symbolic_multi_out(
                "LSTM",
                [x, getattr(self, f"W_{layer}"), getattr(self, f"R_{layer}"), getattr(self, f"B_{layer}"), lengths],
                {"direction": "bidirectional", "hidden_size": hidden},
                dtypes=[x.dtype] * 3,
                shapes=[[seq, 2, batch, hidden], [2, batch, hidden], [2, batch, hidden]],
                version=14,
            )
            x = y.permute(0, 2, 1, 3).reshape(seq, batch, 2 * hidden)  # next layer's input: both directions
        pooled = y_h.permute(1, 0, 2).reshape(batch, 2 * hidden)  # forward at the last token, backward at the first
        return self.classifier(pooled)


def export_graph(model: BiLSTMForSequenceClassification, path: str) -> int:
    """Write `model`'s ONNX graph to `path` (one file, weights inside); returns its opset."""
    import onnx

    example = torch.tensor([[2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 0, 0, 0], [2, 3, 0, 0, 0, 0, 0]])
    example = example.clamp(max=model.config.vocab_size - 1)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: sequence}
    with warnings.catch_warnings(), quiet_logger("torch.onnx"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            ONNXStudent(model).eval(),
            (example, (example != 0).long()),
            path,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_shapes={"input_ids": axes, "attention_mask": axes},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    return max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


@contextlib.contextmanager
def quiet_logger(name: str, level: int = logging.ERROR):
    """Raise the level of logger `name` for the duration (a library's notes that are not the user's business)."""
    target = logging.getLogger(name)
    previous = target.level
    target.setLevel(level)
    try:
        yield
    finally:
        target.setLevel(previous)


def quantize_int8(source: str, path: str) -> None:
    """ONNX Runtime's dynamic int8 quantisation of `source` (LSTM, MatMul/Gemm and the embedding Gather) to `path`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet_logger("root"):  # its advice to pre-process the graph (shape inference) is for convolutional models
        quantize_dynamic(source, path, weight_type=QuantType.QInt8)


# ---------------------------------------------------------------- the checks


def tokenized_batches(tokenizer, texts: list[str], batch_size: int):
    """The tokenizer's NumPy output for consecutive batches of `texts`, padded to each batch's longest."""
    for start in range(0, len(texts), batch_size):
        yield tokenizer(texts[start : start + batch_size], padding=True, truncation=True, return_tensors="np")


def pytorch_logits(model, tokenizer, texts: list[str], batch_size: int) -> np.ndarray:
    with torch.inference_mode():
        return np.concatenate(
            [
                model(**{k: torch.from_numpy(v) for k, v in encoded.items()}).logits.numpy()
                for encoded in tokenized_batches(tokenizer, texts, batch_size)
            ]
        )


def session_logits(session, tokenizer, texts: list[str], batch_size: int) -> np.ndarray:
    names = [i.name for i in session.get_inputs()]
    return np.concatenate(
        [
            session.run(None, {name: encoded[name] for name in names})[0]
            for encoded in tokenized_batches(tokenizer, texts, batch_size)
        ]
    )


def accuracy(logits: np.ndarray, order: list[int] | None, references: np.ndarray) -> float:
    predictions = (logits if order is None else logits[:, order]).argmax(-1)
    return float(np.mean(predictions == references))


def fp32_check(reference: np.ndarray, exported: np.ndarray) -> dict:
    """The fp32 export against PyTorch: max abs difference of the logits and rows whose argmax differs."""
    differences = int(np.sum(reference.argmax(-1) != exported.argmax(-1)))
    max_diff = float(np.abs(reference - exported).max()) if len(reference) else 0.0
    return {
        "max_abs_diff": max_diff,
        "tolerance": FP32_TOLERANCE,
        "argmax_differences": differences,
        "passed": max_diff <= FP32_TOLERANCE and differences == 0,
    }


def int8_decision(fp32_accuracy: float, int8_accuracy: float, max_drop: float) -> dict:
    """Whether the int8 copy is kept: its accuracy drop (in points, fp32 minus int8) at most `max_drop`."""
    drop = 100 * (fp32_accuracy - int8_accuracy)
    return {"accuracy_drop_points": drop, "max_accuracy_drop_points": max_drop, "kept": drop <= max_drop}


# ---------------------------------------------------------------- the step


def missing_packages() -> list[str]:
    """What the export needs and cannot import: packages of the `onnx` extra, or a torch with `torch.onnx.ops`."""
    missing = [] if hasattr(torch.onnx, "ops") else [f"torch>=2.8 (this is {torch.__version__})"]
    for name in REQUIRED_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def export_signature(model_dir: str, validation, args: ExportArguments) -> Signature:
    return Signature(
        stage="export",
        settings={
            "max_int8_accuracy_drop": args.max_int8_accuracy_drop,
            "fp32_tolerance": FP32_TOLERANCE,
            "int8_check_batch_size": 1,
        },
        inputs={
            "student": model_fingerprint(model_dir),
            "validation": json_fingerprint(validation.select_columns([TEXT_COLUMN, LABEL_COLUMN]).to_dict()),
        },
    )


def is_exported(model_dir: str, signature: Signature) -> bool:
    """`model_dir/onnx` holds an export of this signature, with every file its record lists."""
    onnx_dir = os.path.join(model_dir, ONNX_DIR)
    record = read_json(os.path.join(onnx_dir, EXPORT_FILE))
    return record.get("signature") == signature.digest and all(
        os.path.isfile(os.path.join(onnx_dir, name)) for name in record.get("files", {})
    )


def export_onnx(model_dir: str, validation, args: ExportArguments | None = None) -> dict:
    """Export the student in `model_dir` to `model_dir/onnx/` and check it on `validation` (`sentence` and `label`
    columns); returns the record written to `onnx/export.json`. The folder is written whole or not at all."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    args = args or ExportArguments()
    if args.max_eval_samples is not None and args.max_eval_samples < len(validation):
        validation = validation.select(range(args.max_eval_samples))
    signature = export_signature(model_dir, validation, args)
    onnx_dir = os.path.join(model_dir, ONNX_DIR)
    if is_exported(model_dir, signature):
        logger.info("ONNX export: done for this student and data in %s, skipping", onnx_dir)
        return read_json(os.path.join(onnx_dir, EXPORT_FILE))

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    if model.config.model_type != "bilstm":
        raise ConfigError(f"model_dir: {model_dir} holds a {model.config.model_type} model, not a BiLSTM student")
    lstm_dtype = model.config.lstm_dtype
    model.config.lstm_dtype = "float32"  # the export computes in fp32; so does the reference
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    names = list(validation.features[LABEL_COLUMN].names)
    order = label_order("model_dir", model_dir, model.config, names)
    texts, references = list(validation[TEXT_COLUMN]), np.asarray(validation[LABEL_COLUMN])
    if not texts:
        raise ConfigError(f"{model_dir}: the validation split is empty; there is nothing to check the export on")

    with tempfile.TemporaryDirectory(prefix="distil-onnx-") as work:
        fp32_path, int8_path = os.path.join(work, MODEL_FILE), os.path.join(work, QUANTIZED_FILE)
        opset = export_graph(model, fp32_path)
        quantize_int8(fp32_path, int8_path)
        # fp32 on padded batches, as PyTorch; int8 one sentence at a time, as served at batch size 1 (its
        # activations are quantised per batch, so its logits shift a little with the batch a sentence is in)
        logits = {
            "pytorch": pytorch_logits(model, tokenizer, texts, args.check_batch_size),
            "fp32": session_logits(inference_session(fp32_path), tokenizer, texts, args.check_batch_size),
            "int8": session_logits(inference_session(int8_path), tokenizer, texts, 1),
        }

        check = fp32_check(logits["pytorch"], logits["fp32"])
        if not check["passed"]:
            raise ExportCheckError(
                f"{model_dir}: the ONNX export's logits differ from PyTorch's on {len(texts)} validation rows (max "
                f"abs difference {check['max_abs_diff']:.3g}, tolerance {FP32_TOLERANCE:g}; argmax differs on "
                f"{check['argmax_differences']} rows); nothing was written"
            )
        accuracies = {name: accuracy(value, order, references) for name, value in logits.items()}
        int8 = int8_decision(accuracies["fp32"], accuracies["int8"], args.max_int8_accuracy_drop)
        int8.update(
            batch_size=1,
            accuracy=accuracies["int8"],
            agreement_with_fp32=float(np.mean(logits["int8"].argmax(-1) == logits["fp32"].argmax(-1))),
            max_abs_diff_to_fp32=float(np.abs(logits["int8"] - logits["fp32"]).max()),
        )
        files = [MODEL_FILE] + ([QUANTIZED_FILE] if int8["kept"] else [])
        record = signature.record(
            "done",
            files={name: {"bytes": os.path.getsize(os.path.join(work, name))} for name in files},
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            opset=opset,
            versions=package_versions(),
            validation={"rows": len(texts), "label_names": names},
            fp32={**check, "accuracy_pytorch": accuracies["pytorch"], "accuracy": accuracies["fp32"]},
            int8=int8,
            reference_lstm_dtype="float32" if lstm_dtype == "float32" else f"float32 (the student's is {lstm_dtype})",
        )
        with atomic_directory(onnx_dir) as staging:
            os.makedirs(staging)
            for name in files:
                shutil.move(os.path.join(work, name), os.path.join(staging, name))
            write_json(os.path.join(staging, EXPORT_FILE), record)
    logger.info(
        "ONNX export: %s (fp32: max abs difference %.2g to PyTorch on %d rows, same argmax; int8: accuracy %+.2f "
        "points, %s)",
        onnx_dir, check["max_abs_diff"], len(texts), 0.0 - int8["accuracy_drop_points"], "kept" if int8["kept"] else
        f"not kept (more than {args.max_int8_accuracy_drop:g} points)",
    )  # fmt: skip
    return record


def package_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import onnxscript

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxscript": onnxscript.__version__,
            "onnxruntime": onnxruntime.__version__}  # fmt: skip


def export_onnx_if_installed(model_dir: str, validation, args: ExportArguments | None = None) -> dict | None:
    """`export_onnx`, or one logged line and None when a package of the `onnx` extra is missing."""
    missing = missing_packages()
    if missing:
        logger.warning(
            "ONNX export skipped: %s not installed (pip install 'distil[onnx]')", ", ".join(missing)
        )  # fmt: skip
        return None
    return export_onnx(model_dir, validation, args)


# ---------------------------------------------------------------- python -m distil.export


def recorded_data_arguments(model_dir: str) -> DataArguments:
    """The data arguments the student in `model_dir` was trained with (its `run_args.json`)."""
    recorded = read_json(os.path.join(model_dir, "run_args.json")).get("DataArguments")
    if not recorded:
        raise ConfigError(f"model_dir: {model_dir} has no run_args.json with DataArguments (not a distil student)")
    known = {f.name for f in dataclasses.fields(DataArguments)}
    return DataArguments(**{k: v for k, v in recorded.items() if k in known})


def main(args: list[str] | None = None) -> dict:
    (export_args,) = parse_args(ExportArguments, args=args)
    if not export_args.model_dir or not os.path.isdir(export_args.model_dir):
        raise ConfigError(f"model_dir: {export_args.model_dir} is not a folder")
    missing = missing_packages()
    if missing:
        raise ConfigError(f"the ONNX export needs {', '.join(missing)}: pip install 'distil[onnx]'")
    validation = load_data_from_args(recorded_data_arguments(export_args.model_dir))["validation"]
    return export_onnx(export_args.model_dir, validation, export_args)


if __name__ == "__main__":
    from distil.utils import setup_logging

    setup_logging(library_level=logging.WARNING)
    run_recipe(main, "python -m distil.export")
