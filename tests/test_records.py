"""`distil.records`: the stage record and the fingerprints, one function per kind of input."""

from __future__ import annotations

import os

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification

from distil import records
from distil.records import (
    Signature,
    array_fingerprint,
    dataset_dir_fingerprint,
    directory_fingerprint,
    file_fingerprint,
    files_fingerprint,
    is_done,
    json_fingerprint,
    map_fingerprint,
    model_fingerprint,
    module_fingerprint,
    read_record,
    settings_of,
    source_fingerprint,
    write_record,
)


def test_signature_names_what_changed():
    old = Signature("transfer_set", {"n_iter": 4, "p_mask": 0.1}, {"teacher": "abc"})
    new = Signature("transfer_set", {"n_iter": 20, "p_mask": 0.1}, {"teacher": "def"})
    assert old.digest != new.digest
    assert new.changes(old.record("done")) == ["n_iter: 4 -> 20", "input teacher changed"]
    assert Signature("s", {"a": 1}, {}).digest == Signature("s", {"a": 1}, {}).digest


def test_settings_leave_out_what_does_not_change_the_output(tmp_path):
    from transformers import TrainingArguments

    a = TrainingArguments(output_dir=str(tmp_path / "a"), logging_steps=5, per_device_eval_batch_size=3)
    b = TrainingArguments(output_dir=str(tmp_path / "b"), logging_steps=50, per_device_eval_batch_size=300)
    assert settings_of(a) == settings_of(b)
    c = TrainingArguments(output_dir=str(tmp_path / "a"), learning_rate=0.1)
    assert settings_of(a) != settings_of(c)


def test_record_written_and_read_back(tmp_path):
    signature = Signature("teacher", {"lr": 1}, {"data": "x"})
    assert read_record(str(tmp_path)) is None and not is_done(str(tmp_path))
    write_record(str(tmp_path), signature, records.RUNNING)
    assert read_record(str(tmp_path))["status"] == "running" and not is_done(str(tmp_path))
    write_record(str(tmp_path), signature, records.DONE, note=1)
    record = read_record(str(tmp_path))
    assert record["signature"] == signature.digest and record["note"] == 1
    assert is_done(str(tmp_path), signature) and not is_done(str(tmp_path), Signature("teacher", {"lr": 2}, {}))
    (tmp_path / records.STAGE_FILE).write_text("[not a record")
    assert read_record(str(tmp_path)) is None


def test_file_fingerprints_follow_the_bytes(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two")
    assert file_fingerprint(str(a)) == files_fingerprint([str(a)]) == source_fingerprint(str(a))
    assert files_fingerprint([str(a), str(b)]) != files_fingerprint([str(b), str(a)])
    assert file_fingerprint(str(tmp_path / "none")) == f"missing:{tmp_path / 'none'}"
    before = file_fingerprint(str(a))
    a.write_text("three")  # another size: the memo does not hide it
    assert file_fingerprint(str(a)) != before


def test_directory_fingerprint_reads_names_and_contents_not_subfolders(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    first = directory_fingerprint(str(tmp_path))
    (tmp_path / "sub" / "x").write_text("ignored")
    (tmp_path / ".hidden").write_text("ignored")
    assert directory_fingerprint(str(tmp_path)) == first
    os.rename(tmp_path / "config.json", tmp_path / "other.json")
    assert directory_fingerprint(str(tmp_path)) != first


def test_model_fingerprint_of_a_stage_a_folder_and_a_hub_id(tmp_path):
    assert model_fingerprint(None) is None
    assert model_fingerprint("org/model") == "hub:org/model@unknown"  # offline, and not in the local Hub cache
    assert model_fingerprint("pkg://no_such_package_here/model") == "missing:pkg://no_such_package_here/model"
    (tmp_path / "config.json").write_text("{}")
    assert model_fingerprint(str(tmp_path)) == directory_fingerprint(str(tmp_path))
    signature = Signature("teacher", {}, {})
    write_record(str(tmp_path), signature, records.DONE)
    assert model_fingerprint(str(tmp_path)) == signature.digest == dataset_dir_fingerprint(str(tmp_path))


def test_module_fingerprint_follows_the_weights():
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    first = module_fingerprint(model)
    assert module_fingerprint(model) == first
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    assert module_fingerprint(model) != first


def test_array_json_and_map_fingerprints():
    from datasets import Dataset

    assert array_fingerprint(np.arange(4)) == array_fingerprint(torch.arange(4))
    assert array_fingerprint(np.arange(4)) != array_fingerprint(np.arange(5))
    assert json_fingerprint({"a": 1, "b": 2}) == json_fingerprint({"b": 2, "a": 1})
    signature = Signature("s", {"a": 1}, {})
    assert signature.digest == json_fingerprint(["s", {"a": 1}, {}, signature.version])
    ds = Dataset.from_dict({"x": [1, 2]})
    assert map_fingerprint(ds, "step", 1) == map_fingerprint(ds, "step", 1) != map_fingerprint(ds, "step", 2)


def test_offline_a_hub_id_is_recorded_at_the_commit_the_local_cache_holds(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--model"
    (repo / "snapshots" / ("a" * 40)).mkdir(parents=True)
    assert model_fingerprint("org/model") == f"hub:org/model@{'a' * 40}"  # a snapshot, no ref
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    assert model_fingerprint("org/model") == f"hub:org/model@{'b' * 40}"  # what main points at
