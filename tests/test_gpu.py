"""`benchmarks/gpu.py`: the paper-recipe benchmark runs end to end, here on the CPU with tiny settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from .conftest import ROOT, tiny_pipeline_args


def test_gpu_benchmark_runs_end_to_end_without_a_gpu(tmp_path, tiny_bert_dir, toy_data_dir):
    results_dir = tmp_path / "results"
    run_args = tiny_pipeline_args(tmp_path / "stages", tiny_bert_dir, toy_data_dir) + [
        "--use_cpu",
        "true",
        "--seed",
        "3",
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
    for run in (first, second):
        assert set(run["accuracy"]) == {"teacher", "student"}
        assert all(0.0 <= acc <= 1.0 for acc in run["accuracy"].values())
    # the second run retrained only the student, with a bf16 LSTM
    assert second["seconds"]["student"] > 0
    saved = json.loads((tmp_path / "stages" / "run" / "student-bfloat16" / "config.json").read_text())
    assert saved["lstm_dtype"] == "bfloat16"
    assert "| full | float32 |" in (results_dir / "tiny.md").read_text()
