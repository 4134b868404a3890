import json
import os

import pytest
from transformers import AutoModelForSequenceClassification

import distil  # noqa: F401  (registers the BiLSTM auto classes)

from .conftest import load_recipe


@pytest.fixture(scope="module")
def distil_recipe():
    return load_recipe("distil")


def _configs(tmp_path, tiny_bert_dir, toy_data_dir):
    teacher = tmp_path / "teacher.yaml"
    teacher.write_text(
        f"model_name_or_path: {tiny_bert_dir}\ndata_dir: {toy_data_dir}\nmax_steps: 4\n"
        "per_device_train_batch_size: 16\nsave_strategy: 'no'\nreport_to: none\nlearning_rate: 1.0e-3\n"
    )
    augment = tmp_path / "augment.yaml"
    augment.write_text(f"data_dir: {toy_data_dir}\nn_iter: 5\nnum_proc: 1\n")
    student = tmp_path / "student.yaml"
    student.write_text(
        f"data_dir: {toy_data_dir}\ntokenizer: word\nembedding_size: 16\nhidden_size: 8\n"
        "classifier_hidden_size: 8\nmax_steps: 6\nper_device_train_batch_size: 32\nsave_strategy: 'no'\n"
        "eval_strategy: 'no'\nreport_to: none\nlearning_rate: 1.0e-2\n"
    )
    return [
        "--teacher_config", str(teacher),
        "--augment_config", str(augment),
        "--student_config", str(student),
        "--output_dir", str(tmp_path / "run"),
        "--use_cpu", "true",
    ]  # fmt: skip


def test_pipeline_end_to_end_then_resume(distil_recipe, tiny_bert_dir, toy_data_dir, tmp_path):
    args = _configs(tmp_path, tiny_bert_dir, toy_data_dir)
    results = distil_recipe.main(args + ["--n_iter", "3"])
    run = tmp_path / "run"
    for stage in ("teacher", "transfer_set", "student"):
        assert (run / stage).is_dir(), stage
    assert set(results) == {"teacher", "student"}
    assert results["teacher"]["agreement_with_teacher"] == 1.0
    assert results["student"]["eval_samples"] == 32
    on_disk = json.loads((run / "all_results.json").read_text())
    assert on_disk["student"]["accuracy"] == results["student"]["accuracy"]
    assert "| student |" in (run / "results.md").read_text()
    # --n_iter from the command line reached the augment stage: at most 1 + 3 rows per source sentence
    from datasets import load_from_disk

    transfer = load_from_disk(str(run / "transfer_set"))
    assert 96 < len(transfer["train"]) <= 96 * 4
    model = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert model.config.model_type == "bilstm"

    # a second run finds every stage done and only re-evaluates
    stamps = {p: os.path.getmtime(run / p) for p in ("teacher/model.safetensors", "student/model.safetensors")}
    again = distil_recipe.main(args + ["--n_iter", "3"])
    assert {p: os.path.getmtime(run / p) for p in stamps} == stamps
    assert again["student"]["accuracy"] == results["student"]["accuracy"]


def test_pipeline_needs_teacher_model_without_training(distil_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        distil_recipe.main(["--train_teacher", "false", "--output_dir", str(tmp_path)])
    assert "teacher_model is required when train_teacher is false" in capsys.readouterr().err
