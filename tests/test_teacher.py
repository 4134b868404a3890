"""`distil.teacher`: fine-tuning on toy data, the original schedules, configs with overrides."""

import json

import pytest
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from distil.configs import DataArguments, parse_args
from distil.errors import ConfigError, InputError
from distil.labels import check_head
from distil.stage import StageArguments
from distil.teacher import TeacherArguments, train_teacher


def run_stage(args: list[str]):
    """The stage as `recipes/train_teacher.py` calls it: parse a command line, call `train_teacher`."""
    return train_teacher(*parse_args(TeacherArguments, DataArguments, TrainingArguments, StageArguments, args=args))


def _run(tiny_bert_dir, toy_data_dir, out, *extra):
    return run_stage(
        [
            "--model_name_or_path", str(tiny_bert_dir),
            "--data_dir", str(toy_data_dir),
            "--output_dir", str(out),
            "--max_steps", "3",
            "--per_device_train_batch_size", "8",
            "--per_device_eval_batch_size", "16",
            "--max_eval_samples", "20",
            "--use_cpu", "true",
            "--report_to", "none",
            "--save_strategy", "no",
            *extra,
        ]
    )  # fmt: skip


def test_main_trains_and_writes_results(tiny_bert_dir, toy_data_dir, tmp_path):
    metrics = _run(tiny_bert_dir, toy_data_dir, tmp_path / "out", "--lr_schedule", "warmup",
                   "--warmup_steps", "1")  # fmt: skip
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    for key in ("eval_loss", "eval_perplexity", "eval_accuracy", "eval_f1", "train_loss"):
        assert key in results, key
    assert results["eval_samples"] == 20
    assert abs(results["eval_perplexity"] - 2.718281828 ** results["eval_loss"]) < 1e-6
    assert 0.0 <= results["eval_accuracy"] <= 1.0
    assert metrics["eval_accuracy"] == results["eval_accuracy"]
    run_args = json.loads((tmp_path / "out" / "run_args.json").read_text())
    assert run_args["TrainingArguments"]["max_steps"] == 3
    # the saved teacher reloads with readable labels
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")
    AutoTokenizer.from_pretrained(tmp_path / "out")
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_training_changes_weights(tiny_bert_dir, toy_data_dir, tmp_path):
    _run(tiny_bert_dir, toy_data_dir, tmp_path / "out", "--learning_rate", "1e-2")
    before = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).classifier.weight
    after = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").classifier.weight
    assert not before.allclose(after)


@pytest.mark.parametrize("schedule", ["constant", "cyclic"])
def test_original_schedules_run(tiny_bert_dir, toy_data_dir, tmp_path, schedule):
    _run(tiny_bert_dir, toy_data_dir, tmp_path / "out", "--lr_schedule", schedule)
    run_args = json.loads((tmp_path / "out" / "run_args.json").read_text())
    expected = {"constant": "constant", "cyclic": "cosine_with_restarts"}[schedule]
    assert run_args["TrainingArguments"]["lr_scheduler_type"] == expected


def test_config_file_with_overrides(tiny_bert_dir, toy_data_dir, tmp_path):
    config = tmp_path / "teacher.yaml"
    config.write_text(f"model_name_or_path: {tiny_bert_dir}\ndata_dir: {toy_data_dir}\nmax_steps: 50\n")
    run_stage(["--config", str(config), "--max_steps", "2", "--output_dir", str(tmp_path / "o"),
                        "--use_cpu", "true", "--save_strategy", "no", "--max_eval_samples", "8"])  # fmt: skip
    results = json.loads((tmp_path / "o" / "all_results.json").read_text())
    assert results["eval_samples"] == 8


def test_tiny_teacher_tokenizer_knows_its_vocab(tiny_bert_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    ids = tokenizer("a good movie")["input_ids"]
    assert tokenizer.unk_token_id not in ids and len(tokenizer) > 40


# --- bad input: one line naming the field, nothing written ---------------------------------------------------------


@pytest.mark.parametrize(
    "model, message",
    [
        ("{tmp}/no-such-teacher", "model_name_or_path: cannot load '{tmp}/no-such-teacher': no such directory"),
        (
            "pkg://no_such_pkg_xyz/model",
            "model_name_or_path: pkg://no_such_pkg_xyz/model: Python package 'no_such_pkg_xyz' is not installed "
            "(pip install no-such-pkg-xyz, or pip install -e '.[offline]')",
        ),
    ],
    ids=["missing-directory", "missing-package"],
)
def test_missing_teacher_is_named(toy_data_dir, tmp_path, model, message):
    out = tmp_path / "out"
    with pytest.raises(InputError) as excinfo:
        _run(model.format(tmp=tmp_path), toy_data_dir, out)
    assert str(excinfo.value) == message.format(tmp=tmp_path)
    assert not out.exists()


def test_classifier_with_other_num_labels_is_refused_unless_its_head_is_replaced(
    tiny_bert_3_labels_dir, toy_data_dir, tmp_path
):
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as excinfo:
        _run(tiny_bert_3_labels_dir, toy_data_dir, out)
    assert str(excinfo.value) == (
        f"model_name_or_path: '{tiny_bert_3_labels_dir}' is a classifier with num_labels=3, the data has 2 labels "
        "(negative, positive); set ignore_mismatched_sizes to replace its head"
    )
    assert not out.exists()
    # asked for, the head is replaced (an MNLI-style intermediate model as a starting point)
    _run(tiny_bert_3_labels_dir, toy_data_dir, out, "--ignore_mismatched_sizes", "true")
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 2 and model.classifier.weight.shape[0] == 2


def test_base_model_or_two_label_head_always_loads():
    from transformers import BertConfig

    def check(name, config, label_names):
        check_head("model_name_or_path", name, config, label_names)

    names = ["negative", "positive"]
    check("base", BertConfig(architectures=["BertModel"], num_labels=3), names)  # no head: a new one is trained
    check("s", BertConfig(architectures=["BertForSequenceClassification"], id2label={0: "NEG", 1: "POS"}), names)
    with pytest.raises(ConfigError, match="num_labels=3"):
        check("mnli", BertConfig(architectures=["BertForSequenceClassification"], num_labels=3), names)
    # six data labels: a 6-label head loads, a 2-label one is refused
    six = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    check("trec", BertConfig(architectures=["BertForSequenceClassification"], num_labels=6), six)
    with pytest.raises(ConfigError, match=r"num_labels=2, the data has 6 labels \(ABBR, DESC, ENTY, HUM, LOC, NUM\)"):
        check("sst2", BertConfig(architectures=["BertForSequenceClassification"], num_labels=2), six)
