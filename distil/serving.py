"""Serving an exported student with ONNX Runtime: `ONNXClassifier`, which answers as `pipeline("text-classification")`.

It needs only `onnxruntime`, `numpy` and the saved tokenizer (`transformers.AutoTokenizer`); no torch runs. The model
is the student's `onnx/model.onnx` (or `onnx/model_quantized.onnx`), written by `distil.export`:

    from distil.serving import ONNXClassifier

    classify = ONNXClassifier.from_pretrained("outputs/quickstart/student")  # or a Hub repo id
    classify("a gorgeous , witty , seductive movie .")  # [{'label': 'positive', 'score': 0.98}]

`session_options` holds the settings for low latency at batch size 1: one intra-op thread (a sentence's LSTM runs one
time step after another, so more threads only add hand-offs), sequential execution and every graph optimisation.
"""

from __future__ import annotations

import json
import os

import numpy as np

ONNX_DIR = "onnx"
MODEL_FILE = "model.onnx"
QUANTIZED_FILE = "model_quantized.onnx"
_NO_TOP_K = object()  # `top_k` not given: the pipeline's single-best answer, one dict per text


def session_options(threads: int = 1):
    """`onnxruntime.SessionOptions` for batch-size-1 latency on `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def inference_session(path: str, threads: int = 1):
    """An `onnxruntime.InferenceSession` of `path` on the CPU with `session_options(threads)`."""
    import onnxruntime as ort

    return ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


class ONNXClassifier:
    """An exported student and its tokenizer, called as `pipeline("text-classification")` is.

    `classify(text)` returns `[{"label", "score"}]`; `classify(texts)` one dict per text; with `top_k` (an int, or
    None for every label) each text gets a list of dicts, best first. Scores are the softmax of the logits (a sigmoid
    for a single label), or the logits with `function_to_apply="none"`. Texts run in batches of `batch_size`: in
    fp32 padding changes no logit (each row's LSTM stops at its last token); the int8 model quantises activations per
    batch, so its logits shift a little with the batch a text is in (`batch_size=1` makes them the export's check's).
    """

    def __init__(self, session, tokenizer, id2label: dict[int, str], batch_size: int = 32):
        self.session = session
        self.tokenizer = tokenizer
        self.id2label = {int(k): v for k, v in id2label.items()}
        self.batch_size = batch_size
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        file_name: str = MODEL_FILE,
        threads: int = 1,
        batch_size: int = 32,
        revision: str | None = None,
        token: str | None = None,
    ) -> ONNXClassifier:
        """Load `onnx/<file_name>`, the tokenizer and the label names from a student folder or Hub repo."""
        from transformers import AutoTokenizer

        folder = name_or_path
        if not os.path.isdir(name_or_path):
            from huggingface_hub import snapshot_download

            folder = snapshot_download(
                name_or_path,
                revision=revision,
                token=token,
                allow_patterns=[f"{ONNX_DIR}/{file_name}", "*.json", "*.txt", "*.model"],  # model, config, tokenizer
            )
        path = os.path.join(folder, ONNX_DIR, file_name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{name_or_path}: no {ONNX_DIR}/{file_name} (export it: python -m distil.export)")
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            id2label = json.load(f).get("id2label") or {}
        tokenizer = AutoTokenizer.from_pretrained(folder)
        return cls(inference_session(path, threads), tokenizer, id2label, batch_size=batch_size)

    def logits(self, texts: list[str], **tokenizer_kwargs) -> np.ndarray:
        """`(len(texts), num_labels)` float32 logits, in batches of `batch_size`."""
        out = []
        for start in range(0, len(texts), self.batch_size):
            encoded = self.tokenizer(
                texts[start : start + self.batch_size], padding=True, return_tensors="np", **tokenizer_kwargs
            )
            out.append(self.session.run(None, {name: encoded[name] for name in self.input_names})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.id2label)), dtype=np.float32)

    def __call__(
        self, inputs: str | list[str], top_k=_NO_TOP_K, function_to_apply: str = "default", **tokenizer_kwargs
    ):
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        logits = self.logits(texts, **tokenizer_kwargs)
        if function_to_apply == "default":
            function_to_apply = "sigmoid" if logits.shape[-1] == 1 else "softmax"
        scores = {"softmax": softmax, "sigmoid": sigmoid, "none": lambda x: x}[function_to_apply.lower()](logits)
        if top_k is _NO_TOP_K:
            best = [{"label": self.id2label[int(row.argmax())], "score": float(row.max())} for row in scores]
            return best
        ranked = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[: None if top_k is None else top_k]
            ranked.append([{"label": self.id2label[int(i)], "score": float(row[i])} for i in order])
        return ranked[0] if isinstance(inputs, str) else ranked
