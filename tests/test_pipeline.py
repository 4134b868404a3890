"""`distil.pipeline`: the three stages chained on toy data, stage arguments built from configs and overrides."""

import json
import os

import pytest
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification

import distil  # noqa: F401  (registers the BiLSTM auto classes)
from distil.configs import ConfigError, parse_args
from distil.pipeline import PipelineArguments, run_pipeline, stage_arguments

from .conftest import tiny_pipeline_args


def run(args: list[str]):
    """The pipeline as `recipes/distil.py` calls it."""
    return run_pipeline(*parse_args(PipelineArguments, args=args))


def _configs(tmp_path, tiny_bert_dir, toy_data_dir):
    return tiny_pipeline_args(tmp_path, tiny_bert_dir, toy_data_dir) + ["--use_cpu", "true"]


def test_quick_trial_end_to_end_then_resume(tiny_bert_dir, toy_data_dir, tmp_path):
    # the README's quick trial, shrunk: a cap on SST-2 sentences, n_iter, and a per-stage override
    args = _configs(tmp_path, tiny_bert_dir, toy_data_dir) + [
        "--max_train_samples", "40",
        "--n_iter", "3",
        "--student_overrides", '{"learning_rate": 0.0123, "max_steps": 3}',
        "--teacher_overrides", "{warmup_steps: 1}",
    ]  # fmt: skip
    results = run(args)
    out = tmp_path / "run"
    for stage in ("teacher", "transfer_set", "student"):
        assert (out / stage).is_dir(), stage
    assert set(results) == {"teacher", "student"}
    assert results["teacher"]["agreement_with_teacher"] == 1.0
    assert results["student"]["eval_samples"] == 32
    on_disk = json.loads((out / "all_results.json").read_text())
    assert on_disk["student"]["accuracy"] == results["student"]["accuracy"]
    assert "| student |" in (out / "results.md").read_text()

    # max_train_samples capped SST-2 sentences in every stage; n_iter reached the transfer-set stage
    teacher_results = json.loads((out / "teacher" / "all_results.json").read_text())
    assert teacher_results["train_samples"] == 40
    transfer = load_from_disk(str(out / "transfer_set"))
    assert set(transfer["train"]["idx"]) == set(range(40))
    assert 40 < len(transfer["train"]) <= 40 * 4
    # ... and the student trained on every row of its transfer set
    student_results = json.loads((out / "student" / "all_results.json").read_text())
    assert student_results["train_samples"] == len(transfer["train"])
    # the per-stage overrides reached their stages (the saved training arguments)
    student_run = json.loads((out / "student" / "run_args.json").read_text())
    assert student_run["TrainingArguments"]["learning_rate"] == 0.0123
    assert student_run["TrainingArguments"]["max_steps"] == 3
    assert student_run["StudentArguments"]["transfer_set"] == str(out / "transfer_set")
    teacher_run = json.loads((out / "teacher" / "run_args.json").read_text())
    assert teacher_run["TrainingArguments"]["warmup_steps"] == 1
    assert teacher_run["TrainingArguments"]["learning_rate"] == 1e-3  # from teacher.yaml
    model = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert model.config.model_type == "bilstm"

    # a second run finds every stage done and only re-evaluates
    stamps = {p: os.path.getmtime(out / p) for p in ("teacher/model.safetensors", "student/model.safetensors")}
    again = run(args)
    assert {p: os.path.getmtime(out / p) for p in stamps} == stamps
    assert again["student"]["accuracy"] == results["student"]["accuracy"]


def test_stage_arguments_layers(tmp_path, tiny_bert_dir, toy_data_dir):
    (pipe,) = parse_args(PipelineArguments, args=_configs(tmp_path, tiny_bert_dir, toy_data_dir) + ["--seed", "7"])
    pipe.augment_overrides = {"p_mask": 0.3}
    pipe.on_stale = "error"
    transfer_args, rules, data_args, stage_args = stage_arguments(
        pipe, "augment", str(tmp_path / "t"), teacher_model="x"
    )
    assert stage_args.on_stale == "error"
    assert (rules.n_iter, rules.p_mask) == (5, 0.3)  # the YAML file, then the override
    assert transfer_args.seed == 7 and transfer_args.teacher_model == "x"
    assert transfer_args.output_dir == str(tmp_path / "t") and data_args.data_dir == str(toy_data_dir)
    _, _, training_args, _ = stage_arguments(pipe, "student", str(tmp_path / "s"))
    assert training_args.seed == 7 and training_args.use_cpu and training_args.learning_rate == 1e-2


def test_unknown_keys_name_their_source_before_any_stage_runs(tmp_path, tiny_bert_dir, toy_data_dir):
    args = _configs(tmp_path, tiny_bert_dir, toy_data_dir)
    with pytest.raises(ConfigError, match="student_overrides: unknown key.s. learnin_rate"):
        run(args + ["--student_overrides", "{learnin_rate: 0.1}"])
    (tmp_path / "student.yaml").write_text((tmp_path / "student.yaml").read_text() + "hiden_size: 3\n")
    with pytest.raises(ConfigError, match=r"student.yaml: unknown key.s. hiden_size"):
        run(args)
    assert not (tmp_path / "run").exists()  # nothing ran: the student's config was checked before the teacher


def test_pipeline_needs_teacher_model_without_training(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(PipelineArguments, args=["--train_teacher", "false", "--output_dir", str(tmp_path)])
    assert "teacher_model is required when train_teacher is false" in capsys.readouterr().err
