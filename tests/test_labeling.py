"""Teacher logits: shape, dtype and values (un-sorted correctly), caching without loading the teacher, TSV export."""

from __future__ import annotations

import os
import platform
import re

import numpy as np
import pytest
import torch
from datasets import Dataset, List, Value, load_from_disk

import distil.labeling as labeling
from distil.labeling import export_tsv, label_with_teacher, read_tsv, resolve_autocast

from .conftest import toy_rows


def _sentences(n: int = 50) -> Dataset:
    rows = toy_rows(n, seed=4)
    # mixed lengths, so the length-sorted batches reorder rows
    return Dataset.from_dict({"sentence": [s if i % 3 else s + " " + s for i, (s, _) in enumerate(rows)]})


def _reference_logits(model_dir, sentences) -> np.ndarray:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return np.concatenate(
            [model(**tokenizer([s], return_tensors="pt")).logits.numpy() for s in sentences]  # one row at a time
        )


def test_teacher_logits_shape_dtype_and_values(tiny_bert_dir):
    ds = _sentences()
    out = label_with_teacher(ds, str(tiny_bert_dir), batch_size=8, chunk_size=20, precision="fp32")
    assert out.features["teacher_logits"] == List(Value("float32"), length=2)
    logits = out.with_format("numpy")[:]["teacher_logits"]
    assert logits.shape == (len(ds), 2) and logits.dtype == np.float32
    assert out["sentence"] == ds["sentence"]
    np.testing.assert_allclose(logits, _reference_logits(tiny_bert_dir, ds["sentence"]), atol=1e-5)


def test_model_object_gives_the_same_logits(tiny_bert_dir):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    model.train()
    ds = _sentences(20)
    by_object = label_with_teacher(ds, model, batch_size=4, precision="fp32")
    by_path = label_with_teacher(ds, str(tiny_bert_dir), batch_size=16, precision="fp32")
    np.testing.assert_allclose(by_object["teacher_logits"], by_path["teacher_logits"], atol=1e-5)
    assert model.training  # the caller's mode is restored


def test_cache_hit_does_not_load_the_teacher(tiny_bert_dir, tmp_path):
    _sentences(30).save_to_disk(tmp_path / "ds")
    ds = load_from_disk(tmp_path / "ds")  # on disk, so map caches
    labeling._TEACHERS.clear()
    first = label_with_teacher(ds, str(tiny_bert_dir), batch_size=8)
    assert labeling._TEACHERS  # computed: the teacher was loaded
    labeling._TEACHERS.clear()
    second = label_with_teacher(ds, str(tiny_bert_dir), batch_size=32)  # batch size is not part of the key
    assert not labeling._TEACHERS
    assert second._fingerprint == first._fingerprint
    assert second["teacher_logits"] == first["teacher_logits"]


def test_fingerprint_follows_the_teacher_weights(tiny_bert_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        model.classifier.bias += 1.0
    model.save_pretrained(tmp_path / "other")
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path / "other")
    ds = _sentences(10)
    a = label_with_teacher(ds, str(tiny_bert_dir), precision="fp32")
    b = label_with_teacher(ds, str(tmp_path / "other"), precision="fp32")
    assert a._fingerprint != b._fingerprint
    np.testing.assert_allclose(np.array(b["teacher_logits"]) - np.array(a["teacher_logits"]), 1.0, atol=1e-5)


def test_tsv_round_trip(tiny_bert_dir, tmp_path):
    out = label_with_teacher(_sentences(40), str(tiny_bert_dir))
    path = tmp_path / "sub" / "train.tsv"
    assert export_tsv(out, str(path)) == 40
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "sentence\tscores"
    assert all(re.fullmatch(r"[^\t]+\t-?\d+\.\d{6} -?\d+\.\d{6}", line) for line in lines[1:])
    sentences, scores = read_tsv(str(path))
    assert sentences == out["sentence"]
    np.testing.assert_allclose(scores, np.array(out["teacher_logits"]), atol=1e-6)


@pytest.mark.parametrize(
    ("capability", "flags", "expected"),
    [
        ("AVX2", {"avx2", "fma"}, None),  # AVX2-only EPYC: bf16 is emulated, fp32
        ("AVX512", {"avx512f", "avx512bw"}, None),  # AVX-512 without its bf16 extension
        ("AVX2", {"avx2", "avx512_bf16"}, None),  # flags alone are not enough where torch does not use AVX-512
        ("AVX512", {"avx512f", "avx512_bf16"}, torch.bfloat16),  # e.g. AMD Zen 4
        ("AVX512", {"avx512f", "amx_tile", "amx_bf16"}, torch.bfloat16),  # Intel Sapphire Rapids (AMX)
        ("SVE256", {"sve", "bf16"}, torch.bfloat16),  # Arm Neoverse V1
        ("DEFAULT", {"asimd"}, None),  # Arm without BF16
    ],
)
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, capability, flags, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(labeling, "cpu_flags", lambda: set(flags))
    assert labeling.cpu_has_native_bf16() is (expected is not None)
    assert resolve_autocast("cpu", "auto") is expected
    assert resolve_autocast("cpu", "fp32") is None  # asked for, always honoured
    assert resolve_autocast("cpu", "bf16") is torch.bfloat16
    assert resolve_autocast("cpu", "fp16") is torch.float16


def test_auto_precision_on_gpu_is_half(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_autocast("cuda", "auto") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_autocast("cuda", "auto") is torch.float16


def test_unknown_precision_is_an_error():
    with pytest.raises(ValueError, match="precision"):
        resolve_autocast("cpu", "int8")


def test_cpu_flags_reads_proc_cpuinfo():
    flags = labeling.cpu_flags()
    assert isinstance(flags, set)
    if os.path.isfile("/proc/cpuinfo") and platform.machine() in ("x86_64", "AMD64"):
        assert "sse2" in flags  # every x86-64 CPU has it


def test_word_cache_encoder_matches_the_tokenizer(tiny_bert_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    assert labeling.WordCacheEncoder.supports(tokenizer)
    sentences = list(_sentences(60)["sentence"]) + [
        "",
        "  two  spaces ",
        "The MOVIE, it's [MASK]good[MASK] !",
        "cafe\u0301 naïve 日本語 tab\there",
        "unknownword brilliantly " * 40,  # truncated
        "\u00a0nbsp\u2028line x\x0by",
    ]
    encoder = labeling.WordCacheEncoder(tokenizer, max_length=32)
    for _ in range(2):  # cold, then from the cache
        encoded = encoder(sentences)
        order = np.argsort(-encoded.total_lengths(), kind="stable")
        input_ids, attention_mask = encoded.pad(order, tokenizer.pad_token_id)
        expected = tokenizer([sentences[i] for i in order], truncation=True, max_length=32, padding=True)
        assert input_ids.tolist() == expected["input_ids"]
        assert attention_mask.tolist() == expected["attention_mask"]


def test_word_level_tokenizers_fall_back_to_the_tokenizer(tiny_bert_dir):
    from distil.tokenization import build_word_tokenizer

    tokenizer = build_word_tokenizer(["a good movie", "a bad movie ."])
    assert not labeling.WordCacheEncoder.supports(tokenizer)  # its regex pre-tokenizer is not a plain split


def test_worker_processes_give_the_same_logits(tiny_bert_dir):
    ds = _sentences(48)
    one = label_with_teacher(ds, str(tiny_bert_dir), batch_size=4, chunk_size=8, precision="fp32")
    two = label_with_teacher(ds, str(tiny_bert_dir), batch_size=4, chunk_size=8, precision="fp32", num_proc=2)
    np.testing.assert_allclose(two["teacher_logits"], one["teacher_logits"], atol=1e-5)
    assert two["sentence"] == ds["sentence"]


def test_missing_text_column_names_it(tiny_bert_dir):
    with pytest.raises(ValueError, match="text_column"):
        label_with_teacher(_sentences(4), str(tiny_bert_dir), text_column="text")


def test_export_tsv_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "transfer.tsv"
    path.write_text("sentence\tscores\nold\t0.000000 1.000000\n")
    bad = Dataset.from_dict({"sentence": ["fine", "a\ttab"], "teacher_logits": [[0.0, 1.0], [1.0, 0.0]]})
    with pytest.raises(ValueError, match="tab or newline"):
        export_tsv(bad, str(path))
    assert path.read_text() == "sentence\tscores\nold\t0.000000 1.000000\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transfer.tsv"]
