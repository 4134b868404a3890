"""`distil.export`: a tiny random student exported to ONNX, checked against PyTorch; the int8 rule; the skip line."""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch

from distil.data import load_sst2
from distil.export import (
    EXPORT_FILE,
    ExportArguments,
    ONNXStudent,
    export_onnx,
    export_onnx_if_installed,
    int8_decision,
    main,
    missing_packages,
)
from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
from distil.serving import inference_session
from distil.tokenization import build_word_tokenizer


def save_student(path, sentences, labels=("negative", "positive"), seed=0, **config):
    """A random BiLSTM student over a word tokenizer of `sentences`, saved as the student stage saves one."""
    tokenizer = build_word_tokenizer(sentences, model_max_length=32)
    torch.manual_seed(seed)
    settings = dict(embedding_size=16, hidden_size=8, classifier_hidden_size=8, **config)
    model = BiLSTMForSequenceClassification(
        BiLSTMConfig(
            vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, num_labels=len(labels),
            id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)}, **settings,
        )
    ).eval()  # fmt: skip
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


@pytest.fixture(scope="module")
def toy_validation(toy_data_dir):
    return load_sst2(data_dir=str(toy_data_dir))["validation"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory, toy_validation):
    d = tmp_path_factory.mktemp("student")
    model, tokenizer = save_student(d, toy_validation["sentence"])
    record = export_onnx(str(d), toy_validation, ExportArguments(max_int8_accuracy_drop=100.0))
    return {"dir": d, "model": model, "tokenizer": tokenizer, "record": record}


def test_export_matches_pytorch_on_padded_batches(exported, toy_validation):
    d, model, tokenizer = exported["dir"], exported["model"], exported["tokenizer"]
    assert sorted(p.name for p in (d / "onnx").iterdir()) == [EXPORT_FILE, "model.onnx", "model_quantized.onnx"]
    record = json.loads((d / "onnx" / EXPORT_FILE).read_text())
    assert record == json.loads(json.dumps(exported["record"]))
    assert record["fp32"]["passed"] and record["fp32"]["argmax_differences"] == 0
    assert record["fp32"]["max_abs_diff"] <= 1e-4 and record["validation"]["rows"] == len(toy_validation)

    import onnx

    graph = onnx.load(str(d / "onnx" / "model.onnx"))
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    assert "LSTM" in {n.op_type for n in graph.graph.node}
    session = inference_session(str(d / "onnx" / "model.onnx"))
    # the tokenizer's output as is, right- and left-padded; and each sentence alone
    sentences = list(toy_validation["sentence"][:9]) + ["good", "a"]
    with torch.no_grad():
        expected = model(**tokenizer(sentences, padding=True, return_tensors="pt")).logits.numpy()
    for side in ("right", "left"):
        tokenizer.padding_side = side
        got = session.run(None, dict(tokenizer(sentences, padding=True, return_tensors="np")))[0]
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    tokenizer.padding_side = "right"
    alone = np.concatenate([session.run(None, dict(tokenizer([s], return_tensors="np")))[0] for s in sentences])
    np.testing.assert_allclose(alone, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "config", [{"num_layers": 2}, {"use_multichannel_embedding": True, "multichannel_channels": 4}]
)
def test_export_of_other_shapes(config, tmp_path, toy_validation):
    model, tokenizer = save_student(tmp_path, toy_validation["sentence"], labels=("a", "b", "c"), **config)
    session_path = tmp_path / "model.onnx"
    from distil.export import export_graph

    export_graph(model, str(session_path))
    sentences = list(toy_validation["sentence"][:12])
    encoded = tokenizer(sentences, padding=True, return_tensors="np")
    with torch.no_grad():
        expected = model(**{k: torch.from_numpy(v) for k, v in encoded.items()}).logits.numpy()
    got = inference_session(str(session_path)).run(None, dict(encoded))[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_the_export_graph_is_for_export_only(exported):
    """Run eagerly, the symbolic LSTM gives zeros: the export graph is never a PyTorch inference path."""
    graph = ONNXStudent(exported["model"])
    ids = torch.tensor([[2, 3, 4]])
    with torch.no_grad():
        logits = graph(ids, torch.ones_like(ids))
        expected = exported["model"].classifier(torch.zeros(1, 16))
    torch.testing.assert_close(logits, expected)


def test_int8_is_kept_only_within_the_accuracy_rule(exported):
    assert int8_decision(0.90, 0.899, 0.2)["kept"]  # 0.1 points
    assert not int8_decision(0.90, 0.897, 0.2)["kept"]  # 0.3 points
    assert int8_decision(0.90, 0.91, 0.2)["kept"]  # better
    kept = exported["record"]["int8"]
    assert kept["kept"] and kept["batch_size"] == 1 and 0.0 <= kept["agreement_with_fp32"] <= 1.0
    # a rule no int8 copy can pass: test_export_command_reads_the_students_data


def test_same_export_is_not_redone_and_a_new_student_is(exported, toy_validation, caplog):
    d = exported["dir"]
    stamp = (d / "onnx" / "model.onnx").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="distil"):
        again = export_onnx(str(d), toy_validation, ExportArguments(max_int8_accuracy_drop=100.0))
    assert again == json.loads(json.dumps(exported["record"])) and "skipping" in caplog.text
    assert (d / "onnx" / "model.onnx").stat().st_mtime_ns == stamp


def test_pipeline_step_skips_in_one_line_without_onnxruntime(monkeypatch, caplog, tmp_path, toy_validation):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    assert missing_packages() == ["onnxruntime"]
    with caplog.at_level(logging.INFO, logger="distil"):
        assert export_onnx_if_installed(str(tmp_path), toy_validation) is None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["ONNX export skipped: onnxruntime not installed (pip install 'distil[onnx]')"]
    assert not (tmp_path / "onnx").exists()


def test_export_command_reads_the_students_data(tmp_path, toy_data_dir, toy_validation):
    d = tmp_path / "student"
    save_student(d, toy_validation["sentence"])
    (d / "run_args.json").write_text(json.dumps({"DataArguments": {"data_dir": str(toy_data_dir)}}))
    # with a rule no int8 copy can pass: the fp32 file only, and the record says why
    record = main(["--model_dir", str(d), "--max_eval_samples", "10", "--max_int8_accuracy_drop", "-101"])
    assert (
        record["validation"]["rows"] == 10 and not record["int8"]["kept"] and list(record["files"]) == ["model.onnx"]
    )
    assert sorted(p.name for p in (d / "onnx").iterdir()) == [EXPORT_FILE, "model.onnx"]

    from distil.configs import run_recipe

    with pytest.raises(SystemExit) as exit:
        run_recipe(lambda: main(["--model_dir", str(tmp_path / "nope")]), "python -m distil.export")
    assert exit.value.code == f"python -m distil.export: error: model_dir: {tmp_path / 'nope'} is not a folder"
