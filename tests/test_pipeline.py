"""`distil.pipeline`: the stages of a run chained on toy data, re-runs that skip or rebuild exactly the stages a
changed setting feeds."""

import json
import os

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import distil  # noqa: F401  (registers the BiLSTM auto classes)
from distil.configs import ConfigError, parse_args
from distil.pipeline import run_pipeline
from distil.records import read_record
from distil.run_config import PipelineArguments, parse_run

from .conftest import TINY_STUDENT, tiny_pipeline_args


def run(args: list[str]):
    """The pipeline as `recipes/distil.py` calls it."""
    return run_pipeline(parse_run(args))


def dotted(section: str, settings: dict) -> list[str]:
    """`--section.key value` flags."""
    return [a for key, value in settings.items() for a in (f"--{section}.{key}", str(value))]


def _configs(tmp_path, tiny_bert_dir, toy_data_dir):
    return tiny_pipeline_args(tmp_path, tiny_bert_dir, toy_data_dir) + ["--use_cpu", "true"]


def test_quick_trial_end_to_end_then_resume(tiny_bert_dir, toy_data_dir, tmp_path):
    # the README's quick trial, shrunk: a cap on SST-2 sentences, n_iter, and dotted per-stage overrides
    args = _configs(tmp_path, tiny_bert_dir, toy_data_dir) + [
        "--max_train_samples", "40",
        "--transfer_set.n_iter", "3",
        "--student.learning_rate", "0.0123", "--student.max_steps", "3", "--student.max_seq_length", "5",
        "--teacher.warmup_steps", "1",
    ]  # fmt: skip
    results = run(args)
    out = tmp_path / "run"
    for stage in ("teacher", "transfer_set", "student"):
        assert (out / stage).is_dir(), stage
    assert set(results) == {"teacher", "student"}
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
    assert teacher_run["TrainingArguments"]["learning_rate"] == 1e-3  # from the run file's teacher section
    model = AutoModelForSequenceClassification.from_pretrained(out / "student")
    assert model.config.model_type == "bilstm"

    # The report scores the models that were made, as they were made, computed again here from what is on disk:
    # the teacher is the model that labelled, in the precision that labelled (its predictions are the transfer
    # set's validation logits' argmax); the student reads 5 tokens, as it trained, and its accuracy is its own
    # evaluation's; its agreement is with those teacher predictions.
    labelled = read_record(str(out / "transfer_set"))
    assert results["teacher"]["precision"] == labelled["labelling_precision"]  # bf16 on a CPU with native bf16
    assert results["student"]["precision"] == "fp32"
    assert results["teacher"]["max_length"] == 128 and results["student"]["max_length"] == 5
    gold = np.array(transfer["validation"]["label"])
    teacher_predictions = np.array(transfer["validation"]["teacher_logits"]).argmax(-1)
    assert results["teacher"]["accuracy"] == pytest.approx((teacher_predictions == gold).mean())
    tokenizer = AutoTokenizer.from_pretrained(out / "student")
    inputs = tokenizer(
        list(transfer["validation"]["sentence"]), truncation=True, max_length=5, padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        student_predictions = model.eval()(**inputs).logits.argmax(-1).numpy()
    assert results["student"]["accuracy"] == pytest.approx((student_predictions == gold).mean())
    assert results["student"]["accuracy"] == pytest.approx(student_results["eval_accuracy"])
    assert results["student"]["agreement_with_teacher"] == pytest.approx(
        (student_predictions == teacher_predictions).mean()
    )

    # a second run finds every stage done and only re-evaluates
    stamps = {p: os.path.getmtime(out / p) for p in ("teacher/model.safetensors", "student/model.safetensors")}
    again = run(args)
    assert {p: os.path.getmtime(out / p) for p in stamps} == stamps
    assert again["student"]["accuracy"] == results["student"]["accuracy"]


def test_unknown_keys_name_their_section_before_any_stage_runs(tmp_path, tiny_bert_dir, toy_data_dir):
    args = _configs(tmp_path, tiny_bert_dir, toy_data_dir)
    with pytest.raises(
        ConfigError, match=r"^command line: student\.learnin_rate: unknown key, not a setting of student"
    ):
        run(args + ["--student.learnin_rate", "0.1"])
    (tmp_path / "run.yaml").write_text((tmp_path / "run.yaml").read_text() + "  hiden_size: 3\n")  # under student:
    with pytest.raises(ConfigError, match=r"run\.yaml: student\.hiden_size: unknown key.*did you mean hidden_size\?$"):
        run(args)
    assert not (tmp_path / "run").exists()  # nothing ran: the student's section was checked before the teacher


def test_pipeline_needs_teacher_model_without_training(tmp_path):
    with pytest.raises(ConfigError, match="teacher_model is required when train_teacher is false"):
        parse_run(["--train_teacher", "false", "--output_dir", str(tmp_path)])


def test_a_changed_section_rebuilds_exactly_the_stages_it_feeds(tmp_path, tiny_bert_dir, toy_data_dir):
    """A student setting rebuilds the student and the baseline that starts from it; a baseline setting only the
    baseline; the teacher and the transfer set are kept (same signature, files untouched)."""
    args = _configs(tmp_path, tiny_bert_dir, toy_data_dir) + ["--max_train_samples", "40", "--train_baseline", "true"]
    args += dotted("baseline", {**TINY_STUDENT, "max_steps": 2})
    out = tmp_path / "run"
    stages = ("teacher", "transfer_set", "student", "baseline")

    def state():
        return {s: (read_record(str(out / s))["signature"], os.path.getmtime(out / s / "stage.json")) for s in stages}

    run(args)
    first = state()
    run(args + ["--student.learning_rate", "0.02"])
    second = state()
    assert {s for s in stages if second[s] == first[s]} == {"teacher", "transfer_set"}
    assert all(second[s][0] != first[s][0] for s in ("student", "baseline"))  # new signatures, rebuilt
    run(args + ["--student.learning_rate", "0.02", "--baseline.learning_rate", "0.02"])
    third = state()
    assert {s for s in stages if third[s] != second[s]} == {"baseline"}


def test_trec_recipe_with_the_50_fine_labels_end_to_end(tmp_path, tiny_bert_dir, monkeypatch):
    """`configs/trec.yaml` with `label_column: fine_label` on a slice, tiny settings: a head-less teacher
    gets a 50-label head, and the transfer set, the student and the baseline carry the data's 50 names."""
    from transformers import AutoTokenizer, BertModel

    from .conftest import ROOT

    headless = tmp_path / "headless"
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(headless)  # a base model, like the MiniLM
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(headless)
    monkeypatch.chdir(ROOT)  # the config's paths are relative to the repository root
    tiny = {"max_seq_length": 32, "max_steps": 3, "save_strategy": "no", "eval_strategy": "no"}
    student = {**tiny, "embedding_size": 16, "hidden_size": 8, "classifier_hidden_size": 8, "learning_rate": 1e-2}
    args = [
        "--config", "configs/trec.yaml",
        "--label_column", "fine_label",
        "--output_dir", str(tmp_path / "run"),
        "--max_train_samples", "200", "--max_eval_samples", "40", "--use_cpu", "true",
        *dotted("teacher", {**tiny, "model_name_or_path": headless}),
        *dotted("transfer_set", {"n_iter": 2, "max_seq_length": 32, "num_proc": 1}),
        *dotted("student", student),
        *dotted("baseline", student),
    ]  # fmt: skip
    results = run_pipeline(parse_run(args))

    run = tmp_path / "run"
    transfer = load_from_disk(str(run / "transfer_set"))
    names = transfer["train"].features["label"].names
    assert len(names) == 50 and "NUM:dist" in names and names == sorted(names)
    assert len(transfer["train"][0]["teacher_logits"]) == 50
    assert len(set(transfer["train"]["idx"])) == 200 and len(transfer["validation"]) == 40
    for stage in ("teacher", "student", "baseline"):
        config = AutoModelForSequenceClassification.from_pretrained(run / stage).config
        assert [config.id2label[i] for i in range(config.num_labels)] == names, stage
    assert set(results) == {"teacher", "student", "baseline"}
    for metrics in results.values():
        assert {"accuracy", "macro_f1", "agreement_with_teacher"} <= set(metrics)
        assert 0.0 <= metrics["macro_f1"] <= 1.0 and metrics["eval_samples"] == 40
    assert "| model | path | accuracy | macro-F1 | agreement with teacher |" in (run / "results.md").read_text()
    # the baseline starts where the student started: the same tokenizer and initial embeddings
    student_config = AutoModelForSequenceClassification.from_pretrained(run / "student").config
    baseline_config = AutoModelForSequenceClassification.from_pretrained(run / "baseline").config
    assert student_config.vocab_fingerprint == baseline_config.vocab_fingerprint
    assert student_config.init_embeddings == baseline_config.init_embeddings

    # cards: task text and tags from the data, not SST-2's
    from distil.cards import student_card, teacher_card, transfer_set_card

    card = student_card(str(run / "student"), "user/trec-student", results=results)
    assert "for TREC text classification into 50 classes," in card.text and "SST-2" not in card.text
    assert "sentiment" not in str(card.data.tags) and "trec" in card.data.tags
    assert "| model | accuracy | macro-F1 |" in card.text
    index = card.data.to_dict()["model-index"][0]["results"][0]
    assert index["dataset"]["name"] == "TREC" and {m["name"] for m in index["metrics"]} == {"Accuracy", "Macro F1"}
    assert transfer["validation"][0]["sentence"] in card.text  # the usage example is one of the task's texts
    teacher = teacher_card(str(run / "teacher"), "user/trec-teacher", results=results)
    assert "fine-tuned on TREC text classification into 50 classes" in teacher.text and "SST-2" not in teacher.text
    dataset = transfer_set_card(str(run / "transfer_set"), "user/trec-transfer")
    assert dataset.data.pretty_name == "TREC transfer set (trec-transfer)" and "SST-2" not in dataset.text
    assert dataset.data.task_ids == ["multi-class-classification"]


def test_each_student_is_scored_at_the_length_it_trained_at(toy_data_dir, tmp_path):
    """One random student saved twice: the report's teacher slot reads the texts at the labelling length (128), the
    student slot at its recorded training length (3); the student's agreement is then that of its own predictions
    at the two lengths, computed here again."""
    from distil.data import load_data
    from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
    from distil.pipeline import evaluate_models
    from distil.tokenization import build_word_tokenizer

    validation = load_data(data_dir=str(toy_data_dir))["validation"]
    sentences = list(validation["sentence"])
    tokenizer = build_word_tokenizer(sentences)
    torch.manual_seed(1)  # a start whose predictions depend on the words past the third
    config = BiLSTMConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, classifier_hidden_size=8,
                          num_labels=2, id2label={0: "negative", 1: "positive"}, initializer_range=1.0)  # fmt: skip
    model = BiLSTMForSequenceClassification(config).eval()
    folder = tmp_path / "student"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "run_args.json").write_text(json.dumps({"DataArguments": {"max_seq_length": 3}}))
    (pipe,) = parse_args(PipelineArguments, args=["--output_dir", str(tmp_path / "run")])
    results = evaluate_models(
        pipe, validation, {"teacher": str(folder), "student": str(folder)}, teacher_max_length=128
    )

    def predictions(max_length):
        inputs = tokenizer(sentences, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        with torch.no_grad():
            return model(**inputs).logits.argmax(-1).numpy()

    full, cut = predictions(128), predictions(3)
    assert (full != cut).any()  # the length changes what this student says
    assert results["teacher"]["max_length"] == 128 and results["student"]["max_length"] == 3
    gold = np.array(validation["label"])
    assert results["student"]["accuracy"] == pytest.approx((cut == gold).mean())
    assert results["student"]["agreement_with_teacher"] == pytest.approx((cut == full).mean())
