"""`benchmarks/gpu.py`: the paper-recipe benchmark runs end to end, here on the CPU with tiny settings, and reports
the figures of the models it made."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import distil  # noqa: F401  (registers the BiLSTM auto classes)

from .conftest import ROOT, tiny_pipeline_args


def predictions(model_dir, sentences: list[str], max_length: int = 128) -> np.ndarray:
    """A saved classifier's predictions, computed with transformers alone."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    inputs = tokenizer(sentences, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits.argmax(-1).numpy()


def test_gpu_benchmark_reports_the_models_it_made(tmp_path, tiny_bert_dir, toy_data_dir):
    results_dir = tmp_path / "results"
    run_args = tiny_pipeline_args(tmp_path / "stages", tiny_bert_dir, toy_data_dir) + [
        "--use_cpu",
        "true",
        "--seed",
        "3",
        # long enough for the models to learn the toy task: students that say different things to tell apart
        "--teacher.max_steps",
        "80",
        "--teacher.learning_rate",
        "0.01",
        "--student.num_train_epochs",
        "6",
        "--student.learning_rate",
        "0.03",
    ]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--name", "tiny", "--results_dir", str(results_dir),
         *run_args],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    payload = json.loads((results_dir / "tiny.json").read_text())
    assert payload["device"]["device"] == "cpu" and payload["device"]["gpu_model"] is None
    first, second = payload["runs"]
    assert [first["lstm_dtype"], second["lstm_dtype"]] == ["float32", "bfloat16"]
    for stage in ("teacher", "transfer_set", "student", "end_to_end"):
        assert first["seconds"][stage] > 0
    assert first["rows_per_s"]["student"] > 0 and first["rows_per_s"]["transfer_set"] > 0
    assert second["seconds"]["student"] > 0  # the second run retrained the student

    # Each run's figures are those of the models it made, computed again here: the teacher's are the transfer
    # set's labels (the model that labelled, as it labelled); each student's are its own kept copy's, so the
    # bfloat16 run reports the bfloat16 student, not the float32 one trained before it into the same folder.
    run = tmp_path / "stages" / "run"
    validation = load_from_disk(str(run / "transfer_set"))["validation"]
    gold = np.array(validation["label"])
    teacher = np.array(validation["teacher_logits"]).argmax(-1)
    students = {d: predictions(run / f"student-{d}", list(validation["sentence"])) for d in ("float32", "bfloat16")}
    assert (students["float32"] != students["bfloat16"]).any()  # two different students to tell apart
    assert json.loads((run / "student-bfloat16" / "config.json").read_text())["lstm_dtype"] == "bfloat16"
    for entry in (first, second):
        student = students[entry["lstm_dtype"]]
        assert entry["accuracy"]["teacher"] == (teacher == gold).mean()
        assert entry["accuracy"]["student"] == (student == gold).mean()
        assert entry["results"]["student"]["agreement_with_teacher"] == (student == teacher).mean()
    assert "| full | float32 |" in (results_dir / "tiny.md").read_text()
