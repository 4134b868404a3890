"""`benchmarks/report.py` on tiny random models: the JSON fields, the markdown, the PNG, the GPU branch."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SPEED_KEYS = ("median", "p95", "mean", "forward_median", "forward_p95", "pipeline_median", "pipeline_p95", "n")
RATIO_KEYS = {
    "accuracy",
    "f1",
    "params",
    "params_without_embeddings",
    "disk_bytes",
    "cpu_forward_median_ms",
    "cpu_forward_p95_ms",
    "cpu_latency_median_ms",
    "cpu_latency_p95_ms",
    "cpu_pipeline_median_ms",
    "cpu_pipeline_p95_ms",
    "cpu_throughput_rows_per_s",
}


def load_report_module():
    """Import `benchmarks/report.py` (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("benchmarks_report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


report_mod = load_report_module()


def save_bilstm(path: Path, tokenizer, seed: int, **config_kwargs) -> Path:
    """A tiny random BiLSTM student saved with `tokenizer` beside it, as the student recipe saves one."""
    from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification

    config = BiLSTMConfig(
        vocab_size=len(tokenizer),
        embedding_size=12,
        hidden_size=8,
        classifier_hidden_size=16,
        pad_token_id=tokenizer.pad_token_id,
        **config_kwargs,
    )
    torch.manual_seed(seed)
    BiLSTMForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, tiny_bert_dir, toy_data_dir) -> dict[str, Path]:
    """Teacher: tiny BERT. Student: BiLSTM with a word-level tokenizer. Baseline: BiLSTM on the teacher's WordPiece."""
    from distil.data import load_sst2
    from distil.tokenization import build_word_tokenizer, load_teacher_tokenizer

    d = tmp_path_factory.mktemp("report_models")
    words = build_word_tokenizer(load_sst2(data_dir=str(toy_data_dir))["train"]["sentence"])
    wordpiece = load_teacher_tokenizer(str(tiny_bert_dir))
    return {
        "teacher": tiny_bert_dir,
        "student": save_bilstm(d / "student", words, seed=1),
        "baseline": save_bilstm(d / "baseline", wordpiece, seed=2, use_multichannel_embedding=True),
    }


def report_argv(model_dirs, data_dir, output_dir, *extra) -> list[str]:
    return [
        "--teacher", str(model_dirs["teacher"]),
        "--student", str(model_dirs["student"]),
        "--baseline", str(model_dirs["baseline"]),
        "--data_dir", str(data_dir),
        "--output_dir", str(output_dir),
        "--num_threads", "1",
        "--latency_samples", "6",
        "--warmup", "1",
        "--batch_size", "8",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory, model_dirs, toy_data_dir):
    """One CPU run of `main()`: its return value, stdout and output directory."""
    out = tmp_path_factory.mktemp("report_out")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = report_mod.main(report_argv(model_dirs, toy_data_dir, out, "--no_gpu"))
    return result, stdout.getvalue(), out


def test_report_json_fields(run, model_dirs):
    result, _, out = run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(result))
    assert list(report["models"]) == ["teacher", "student", "baseline"]
    assert report["machine"]["cpu_cores"] >= 1 and report["machine"]["cpu_model"]
    assert report["machine"]["torch"] == torch.__version__ and report["machine"]["torch_num_threads"] == 1
    assert report["command"].startswith("python benchmarks/report.py --teacher ")
    assert "date" not in report and report["data"]["rows"] == 32  # results name hardware, not when
    assert report["gpu"] is None
    for role, m in report["models"].items():
        assert m["role"] == role
        assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["f1"] <= 1.0
        assert (
            m["params"] == m["params_without_embeddings"] + m["embedding_params"] > m["params_without_embeddings"] > 0
        )
        assert m["disk_bytes"] == (model_dirs[role] / "model.safetensors").stat().st_size
        latency = m["cpu"]["latency_ms"]
        assert set(SPEED_KEYS) <= set(latency) and latency["n"] == 6
        assert 0 < latency["forward_median"] <= latency["median"] <= latency["p95"]
        assert 0 < latency["pipeline_median"] <= latency["pipeline_p95"]
        assert m["cpu"]["throughput_rows_per_s"] > 0 and m["cpu"]["batch_size"] == 8 and m["cpu"]["rows"] == 32
        assert m["gpu"] is None
        assert set(m["ratios"]) == RATIO_KEYS
    assert report["models"]["student"]["model_type"] == report["models"]["baseline"]["model_type"] == "bilstm"
    teacher, student = report["models"]["teacher"], report["models"]["student"]
    for key, ratio in teacher["ratios"].items():
        assert ratio is None or ratio == pytest.approx(1.0), key
    assert student["ratios"]["params"] == pytest.approx(student["params"] / teacher["params"])
    assert student["ratios"]["cpu_latency_median_ms"] == pytest.approx(
        student["cpu"]["latency_ms"]["median"] / teacher["cpu"]["latency_ms"]["median"]
    )


def test_report_accuracy_matches_a_plain_loop(run, model_dirs, toy_data_dir):
    """Length-sorted batching must put every prediction back in its row."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distil.data import load_sst2

    data = load_sst2(data_dir=str(toy_data_dir))["validation"]
    for role in ("teacher", "student", "baseline"):
        model = AutoModelForSequenceClassification.from_pretrained(model_dirs[role]).eval()
        tokenizer = AutoTokenizer.from_pretrained(model_dirs[role])
        with torch.inference_mode():
            predictions = [
                model(**tokenizer([s], return_tensors="pt")).logits.argmax(-1).item() for s in data["sentence"]
            ]
        expected = float(np.mean(np.asarray(predictions) == np.asarray(data["label"])))
        assert run[0]["models"][role]["accuracy"] == pytest.approx(expected)


def test_report_markdown_and_png(run):
    _, stdout, out = run
    assert "| model | role | architecture | train rows × epochs | accuracy | F1 | params |" in stdout
    assert "torch.set_num_threads(1)" in stdout and "Ratios against the teacher" in stdout
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "## Paper vs ours" in markdown and "94.9" in markdown and "90.7" in markdown and "86.7" in markdown
    assert markdown.count("| ours (validation) |") == 3
    png = (out / "report.png").read_bytes()
    assert png.startswith(PNG_MAGIC)
    import matplotlib.image

    image = matplotlib.image.imread(out / "report.png")
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_report_serving_table(run, model_dirs):
    """The student's ONNX export (made by the report: the student has no `onnx/` folder) in ONNX Runtime, fp32 and
    int8, beside PyTorch eager and the teacher, on 1 and 2 threads, in the JSON and the markdown."""
    result, stdout, _ = run
    serving = result["serving"]
    assert list(serving["models"]) == ["teacher", "student", "student-onnx", "student-onnx-int8"]
    assert serving["threads"] == [1, 2] and "exported by this report" in serving["onnx"]["source"]
    models = serving["models"]
    # fp32 ONNX predicts exactly what PyTorch predicts; every figure is there for both thread counts
    assert (
        models["student-onnx"]["accuracy"] == models["student"]["accuracy"] == result["models"]["student"]["accuracy"]
    )
    assert models["teacher"]["accuracy"] == result["models"]["teacher"]["accuracy"]
    for m in models.values():
        for threads in ("1", "2"):
            f = m["threads"][threads]
            assert 0 < f["latency_p50_ms"] <= f["latency_p99_ms"] and f["throughput_rows_per_s"] > 0
            assert f["speedup_p50"] == pytest.approx(
                models["teacher"]["threads"][threads]["latency_p50_ms"] / f["latency_p50_ms"]
            )
    assert not (model_dirs["student"] / "onnx").exists()  # the report wrote nothing into the student
    assert "## Serving on CPU: PyTorch eager and ONNX Runtime" in stdout
    assert "| | teacher, PyTorch | student, PyTorch | student, ONNX fp32 | student, ONNX int8 |" in stdout
    assert "| 2 threads: batch 1, p50 / p99 (ms) |" in stdout and "| 1 thread: batch 8 (rows/s) |" in stdout


def test_report_gpu_branch(tmp_path, model_dirs, toy_data_dir, monkeypatch):
    """The GPU section, exercised on the CPU by standing a CPU device in for the GPU."""
    monkeypatch.setattr(report_mod, "gpu_device", lambda: torch.device("cpu"))
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        report = report_mod.main(report_argv(model_dirs, toy_data_dir, tmp_path, "--no_plot", "--onnx", "false"))
    assert report["gpu"] == "cpu"
    for m in report["models"].values():
        assert m["gpu"]["throughput_rows_per_s"] > 0 and m["gpu"]["latency_ms"]["n"] == 6
        assert {"gpu_forward_median_ms", "gpu_pipeline_p95_ms", "gpu_throughput_rows_per_s"} <= set(m["ratios"])
    assert "| model | GPU |" in stdout.getvalue()
    assert not (tmp_path / "report.png").exists() and (tmp_path / "report.json").is_file()


def test_report_without_matplotlib_fails_early(tmp_path, model_dirs, toy_data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install -e '\.\[plot\]'"):
        with contextlib.redirect_stdout(io.StringIO()):
            report_mod.main(report_argv(model_dirs, toy_data_dir, tmp_path))
    assert not (tmp_path / "report.json").exists()


def test_render_paper_comparison_names_the_teacher():
    models = {}
    for role, name, acc, params, latency, rows in (
        ("teacher", "teacher-minilm", 0.9, 22_700_000, 20.0, 100.0),
        ("student", "student-bilstm", 0.85, 1_000_000, 2.0, 1000.0),
    ):
        models[role] = {
            "role": role,
            "name": name,
            "model_type": "bert" if role == "teacher" else "bilstm",
            "accuracy": acc,
            "params": params,
            "cpu": {"latency_ms": {"median": latency}, "throughput_rows_per_s": rows},
        }
    report = {"models": models, "machine": {"cpu_model": "Test CPU"}, "settings": {"num_threads": 2}}
    section = report_mod.render_paper_comparison(report)
    assert "teacher `teacher-minilm` (bert, 22.7M params)" in section
    assert (
        "| ours (validation) | student-bilstm (distilled student, bilstm) | 85.0 | 1M | 10× (batch 1), 10× (batch) |"
        in section
    )
    assert "| Tang et al. 2019 (test) | BiLSTM_SOFT (distilled) | 90.7 | 960k | 434× |" in section


def test_report_quantised_copies_variants_training_and_same_start(tmp_path, model_dirs, toy_data_dir):
    """--quantize adds an int8 copy of each BiLSTM; --variants adds students; trained models show rows x epochs; the
    student/baseline starting point is compared."""
    import shutil

    from transformers import AutoConfig

    from distil.data import load_sst2
    from distil.tokenization import build_word_tokenizer

    student = tmp_path / "student"
    shutil.copytree(model_dirs["student"], student)
    (student / "all_results.json").write_text(json.dumps({"train_samples": 1234, "epoch": 2.0, "eval_accuracy": 0.5}))
    words = build_word_tokenizer(load_sst2(data_dir=str(toy_data_dir))["train"]["sentence"])
    variant = save_bilstm(tmp_path / "variant", words, seed=3)
    baseline = tmp_path / "baseline"
    shutil.copytree(student, baseline)
    for path, init in ((student, "abc"), (baseline, "abc")):
        config = AutoConfig.from_pretrained(path)
        config.vocab_fingerprint, config.init_embeddings = "v1", {"method": "teacher", "fingerprint": init}
        config.save_pretrained(path)
    argv = report_argv({**model_dirs, "student": student, "baseline": baseline}, toy_data_dir, tmp_path / "out")
    argv += ["--variants", str(variant), "--variant_names", "other size", "--quantize", "true", "--no_plot"]
    argv += ["--onnx", "false"]
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        report = report_mod.main(argv + ["--no_gpu"])
    models = report["models"]
    assert list(models) == ["teacher", "student", "student-int8", "baseline", "baseline-int8", "variant-1",
                            "variant-1-int8"]  # fmt: skip
    int8 = models["student-int8"]
    assert int8["quantized"] and int8["params"] == models["student"]["params"]
    assert int8["disk_bytes"] < models["student"]["disk_bytes"]
    assert 0.0 <= int8["agreement_with_fp32"] <= 1.0
    assert models["student"]["training"] == {"train_samples": 1234, "epoch": 2.0, "train_runtime": None}
    assert models["teacher"]["training"] is None and models["variant-1"]["name"] == "other size"
    markdown = stdout.getvalue()
    assert "| 1,234 × 2 |" in markdown and "not trained here" in markdown
    assert "Same start: the baseline's tokenizer is the same as the student's" in markdown
    assert "initial embeddings are the same" in markdown
    assert "BiLSTM 8/16, 12-d" in markdown and ", int8 |" in markdown
    assert "fewer parameters" in markdown and "× the throughput" in markdown


def test_describe_names_the_paper_and_seed_sizes():
    base = {"model_type": "bilstm", "embedding_size": 128, "vocab_size": 11630}
    paper = {**base, "hidden_size": 150, "classifier_hidden_size": 200, "size_name": "the paper's SST-2 size"}
    assert report_mod.describe(paper) == "BiLSTM 150/200, 128-d, 11.6k vocab (the paper's SST-2 size)"
    assert report_mod.NAMED_SIZES[(300, 400)] == "the seed's size"
    assert report_mod.NAMED_SIZES[(150, 200)] == "the paper's SST-2 size"
