"""`distil.student` end to end on toy data: distil from a transfer set, the CE baseline, caps, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value, load_from_disk
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainingArguments,
    pipeline,
)

from distil import student
from distil.configs import DataArguments, parse_args
from distil.errors import ConfigError
from distil.modeling_bilstm import BiLSTMForSequenceClassification
from distil.stage import StageArguments

from .conftest import ROOT, error_line, run_script, toy_rows

TINY = ["--tokenizer", "word", "--embedding_size", "16", "--hidden_size", "8", "--classifier_hidden_size", "12"]
FAST = ["--per_device_train_batch_size", "16", "--report_to", "none", "--logging_steps", "2", "--seed", "0"]
FEATURES = Features(
    {
        "sentence": Value("string"),
        "idx": Value("int64"),
        "label": ClassLabel(names=["negative", "positive"]),
        "teacher_logits": Sequence(Value("float32"), length=2),
    }
)


def run_stage(args: list[str]):
    """The stage as `recipes/train_student.py` calls it: parse a command line, call `train_student`."""
    return student.train_student(
        *parse_args(student.StudentArguments, DataArguments, TrainingArguments, StageArguments, args=args)
    )


@pytest.fixture(scope="module")
def transfer_set(tmp_path_factory) -> Path:
    """A transfer set as the transfer-set stage writes it: gold rows plus masked copies labelled -1."""

    def split(rows, augment):
        out = {"sentence": [], "idx": [], "label": [], "teacher_logits": []}
        for i, (sentence, label) in enumerate(rows):
            sign = 1.0 if label else -1.0
            out["sentence"].append(sentence)
            out["idx"].append(i)
            out["label"].append(label)
            out["teacher_logits"].append([-2.0 * sign, 2.0 * sign])
            if augment:
                words = sentence.split()
                words[0] = "[MASK]"
                out["sentence"].append(" ".join(words))
                out["idx"].append(i)
                out["label"].append(-1)
                out["teacher_logits"].append([-sign, sign])
        return Dataset.from_dict(out, features=FEATURES)

    d = tmp_path_factory.mktemp("transfer") / "transfer-set"
    DatasetDict(train=split(toy_rows(64, seed=0), True), validation=split(toy_rows(24, seed=1), False)).save_to_disk(d)
    return d


def test_distil_from_transfer_set(transfer_set, tmp_path):
    out = tmp_path / "student"
    metrics = run_stage(
        ["--transfer_set", str(transfer_set), "--output_dir", str(out), "--embedding_init", "random"]
        + ["--num_train_epochs", "2", "--train_rows", "0", "--learning_rate", "1e-2", "--eval_strategy", "epoch"]
        + TINY
        + FAST
    )
    results = json.loads((out / "all_results.json").read_text())
    for key in ("eval_loss", "eval_perplexity", "eval_accuracy", "eval_f1", "eval_agreement", "train_loss"):
        assert key in results and key in metrics, key
    assert results["train_samples"] == 128 and results["eval_samples"] == 24

    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model) is BiLSTMForSequenceClassification
    assert model.config.vocab_size == len(tokenizer) and model.config.embedding_size == 16
    assert tokenizer.mask_token == "[MASK]" and tokenizer.convert_ids_to_tokens(tokenizer("[MASK]")["input_ids"]) == [
        "[MASK]"
    ]
    assert (out / "modeling_bilstm.py").is_file() and (out / "run_args.json").is_file()
    predictions = pipeline("text-classification", model=str(out))(["a good film", "a dull film"])
    assert {p["label"] for p in predictions} <= {"negative", "positive"}


def test_cross_entropy_baseline_without_teacher(toy_data_dir, tmp_path):
    out = tmp_path / "baseline"
    metrics = run_stage(
        ["--data_dir", str(toy_data_dir), "--output_dir", str(out), "--embedding_init", "random"]
        + ["--num_train_epochs", "3", "--train_rows", "0", "--learning_rate", "1e-2"]
        + TINY
        + FAST
    )
    assert "eval_agreement" not in metrics
    assert metrics["eval_samples"] == 32 and metrics["train_samples"] == 96
    assert metrics["eval_perplexity"] == pytest.approx(torch.tensor(metrics["eval_loss"]).exp().item(), rel=1e-5)
    run_args = json.loads((out / "run_args.json").read_text())
    assert run_args["StudentArguments"]["transfer_set"] is None

    with pytest.raises(ValueError, match="transfer_set"):
        run_stage(["--data_dir", str(toy_data_dir), "--output_dir", str(tmp_path / "x"), "--loss", "mse"] + FAST)


def test_teacher_wordpiece_and_embeddings(transfer_set, tiny_bert_dir, tmp_path):
    out = tmp_path / "student"
    run_stage(
        ["--transfer_set", str(transfer_set), "--output_dir", str(out), "--max_steps", "2"]
        + ["--tokenizer", "teacher", "--teacher_model", str(tiny_bert_dir), "--embedding_init", "teacher"]
        + [
            "--hidden_size",
            "8",
            "--classifier_hidden_size",
            "12",
            "--embedding_size",
            "null",
            "--prune_vocab",
            "false",
        ]
        + FAST
    )
    teacher = AutoModel.from_pretrained(tiny_bert_dir).get_input_embeddings().weight
    student = AutoModelForSequenceClassification.from_pretrained(out)
    # sized to the teacher's embeddings, the teacher's vocabulary, no token_type_ids
    assert student.get_input_embeddings().weight.shape == teacher.shape
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(tiny_bert_dir).get_vocab()
    assert set(AutoTokenizer.from_pretrained(out)("a good film")) == {"input_ids", "attention_mask"}

    # a narrower student projects the teacher's embeddings onto their principal components
    out = tmp_path / "narrow"
    run_stage(
        ["--transfer_set", str(transfer_set), "--output_dir", str(out), "--max_steps", "1"]
        + ["--tokenizer", "word", "--teacher_model", str(tiny_bert_dir), "--embedding_init", "teacher"]
        + ["--embedding_size", "4", "--hidden_size", "8", "--classifier_hidden_size", "12"]
        + FAST
    )
    assert AutoModelForSequenceClassification.from_pretrained(out).config.embedding_size == 4


def _count_steps(monkeypatch) -> list[int]:
    """The optimizer steps each later run trains (`training_step` calls), one count per run."""
    from distil.trainer import DistillationTrainer

    counts = []
    training_step = DistillationTrainer.training_step

    def counted(self, *args, **kwargs):
        if self.state.global_step == 0 or not counts or counts[-1][0] is not self:
            counts.append([self, 0])
        counts[-1][1] += 1
        return training_step(self, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "training_step", counted)
    return counts


def _losses(checkpoint: Path) -> list[tuple[int, float]]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return [(e["step"], e["loss"]) for e in state["log_history"] if "loss" in e]


# a constant learning rate: a longer run's schedule then agrees with a shorter one's on the steps they share
RESUMABLE = ["--embedding_init", "random", "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1"]
RESUMABLE += ["--lr_scheduler_type", "constant", "--classifier_dropout", "0.5"]


@pytest.fixture(scope="module")
def uninterrupted(transfer_set, tmp_path_factory) -> Path:
    """Four steps in one run: the loss curve and weights a resumed run must reproduce."""
    out = tmp_path_factory.mktemp("uninterrupted") / "student"
    run_stage(["--transfer_set", str(transfer_set), "--output_dir", str(out), "--max_steps", "4"]
              + RESUMABLE + TINY + FAST)  # fmt: skip
    return out


@pytest.mark.parametrize("named", [False, True], ids=["last-checkpoint", "resume_from_checkpoint"])
def test_a_larger_max_steps_continues_from_the_checkpoint(transfer_set, uninterrupted, tmp_path, monkeypatch, named):
    out = tmp_path / "student"
    args = ["--transfer_set", str(transfer_set), "--output_dir", str(out)] + RESUMABLE + TINY + FAST
    counts = _count_steps(monkeypatch)
    run_stage(args + ["--max_steps", "2"])
    assert (out / "checkpoint-2").is_dir()
    more = ["--resume_from_checkpoint", str(out / "checkpoint-2")] if named else []
    metrics = run_stage(args + ["--max_steps", "4"] + more)
    assert [n for _, n in counts] == [2, 2]  # the second run trained steps 3 and 4 only
    assert (out / "checkpoint-2").is_dir()  # kept: the run continued from it
    assert _losses(out / "checkpoint-4") == pytest.approx(_losses(uninterrupted / "checkpoint-4"), rel=1e-6)
    resumed = AutoModelForSequenceClassification.from_pretrained(out).state_dict()
    reference = AutoModelForSequenceClassification.from_pretrained(uninterrupted).state_dict()
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-5, atol=1e-6)
    assert metrics["train_samples"] == 128 and "eval_agreement" in metrics
    # the finished longer run is done: the same command skips it
    assert run_stage(args + ["--max_steps", "4"]) == metrics and len(counts) == 2


def test_a_named_checkpoint_is_never_deleted(transfer_set, tmp_path, monkeypatch):
    out = tmp_path / "student"
    args = ["--transfer_set", str(transfer_set), "--output_dir", str(out)] + RESUMABLE + TINY + FAST
    run_stage(args + ["--max_steps", "2"])
    counts = _count_steps(monkeypatch)
    # another setting and a checkpoint named: the run is rebuilt from that checkpoint, which stays
    run_stage(
        args + ["--max_steps", "4", "--learning_rate", "3e-3", "--resume_from_checkpoint", str(out / "checkpoint-2")]
    )
    assert [n for _, n in counts] == [2] and (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    # a checkpoint that is not there: one line, before anything is written
    with pytest.raises(ConfigError) as excinfo:
        run_stage(args + ["--output_dir", str(tmp_path / "other"), "--resume_from_checkpoint", str(tmp_path / "nope")])
    assert str(excinfo.value) == f"resume_from_checkpoint: {tmp_path / 'nope'}: no such directory"
    assert not (tmp_path / "other").exists()


def _digests(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_do_eval_alone_leaves_a_trained_student_byte_identical(transfer_set, tmp_path, monkeypatch):
    """`recipes/train_student.py --do_eval` evaluates the saved student: no weights, record or checkpoint written,
    even when its other settings are not the ones it trained with."""
    import runpy

    monkeypatch.syspath_prepend(str(ROOT / "recipes"))  # as when run as a script; `_recipes` takes it off again
    recipe = runpy.run_path(str(ROOT / "recipes" / "train_student.py"))["main"]
    out = tmp_path / "student"
    common = ["--transfer_set", str(transfer_set), "--output_dir", str(out), "--embedding_init", "random"]
    common += TINY + FAST + ["--max_seq_length", "6"]
    trained = recipe(
        common + ["--max_steps", "3", "--save_strategy", "steps", "--save_steps", "3", "--evaluations", "0"]
    )
    before, checkpoint = _digests(out), _digests(out / "checkpoint-3")
    # the training command but evaluation only, without its max_steps (another signature: never a rebuild)
    metrics = recipe(common + ["--do_eval", "true"])
    after = _digests(out)
    written = after.pop("eval_results.json", None)
    assert after == before and _digests(out / "checkpoint-3") == checkpoint
    assert written is not None
    # the student's own evaluation, at the length it trained at (6, from its run_args.json)
    for key in ("eval_loss", "eval_accuracy", "eval_agreement"):
        assert metrics[key] == pytest.approx(trained[key], rel=1e-5), key
    assert json.loads((out / "eval_results.json").read_text())["eval_accuracy"] == metrics["eval_accuracy"]
    with pytest.raises(ConfigError, match="no saved student to evaluate"):
        recipe(["--transfer_set", str(transfer_set), "--output_dir", str(tmp_path / "none"), "--do_eval", "true"])
    assert not (tmp_path / "none").exists()


def test_the_word_tokenizer_keeps_the_transfer_sets_mask_token(toy_data_dir, tiny_bert_dir, tmp_path):
    """A teacher whose mask token is RoBERTa's `<mask>`: the transfer set's samples hold it, its stage.json records
    it, and the student's word-level tokenizer keeps it as one token."""
    import shutil

    from transformers import BertTokenizerFast

    from distil.augment import AugmentationArguments
    from distil.transfer_set import TransferSetArguments, build_transfer_set

    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_bert_dir, teacher)
    vocab = (teacher / "vocab.txt").read_text(encoding="utf-8").replace("[MASK]\n", "<mask>\n")
    (teacher / "vocab.txt").write_text(vocab, encoding="utf-8")
    BertTokenizerFast(vocab_file=str(teacher / "vocab.txt"), mask_token="<mask>").save_pretrained(teacher)
    build_transfer_set(
        *parse_args(TransferSetArguments, AugmentationArguments, DataArguments, args=[
            "--teacher_model", str(teacher), "--data_dir", str(toy_data_dir), "--output_dir", str(tmp_path / "t"),
            "--n_iter", "2", "--p_mask", "0.5", "--max_seq_length", "32"])
    )  # fmt: skip
    sentences = load_from_disk(str(tmp_path / "t"))["train"]["sentence"]
    assert any("<mask>" in s for s in sentences) and not any("[MASK]" in s for s in sentences)
    out = tmp_path / "student"
    run_stage(["--transfer_set", str(tmp_path / "t"), "--output_dir", str(out), "--max_steps", "1"] + TINY + FAST)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.mask_token == "<mask>" and tokenizer.tokenize("a <mask> film") == ["a", "<mask>", "film"]
    assert json.loads((out / "run_args.json").read_text())["StudentArguments"]["mask_token"] == "<mask>"
    with pytest.raises(ConfigError, match="mask_token: '\\[MASK\\]' is not the mask token of the transfer set"):
        run_stage(["--transfer_set", str(tmp_path / "t"), "--output_dir", str(tmp_path / "x"), "--mask_token", "[MASK]"]
                  + TINY + FAST)  # fmt: skip


def test_defaults_are_the_measured_best():
    student_args, _, _ = parse_args(
        student.StudentArguments, DataArguments, TrainingArguments, args=["--output_dir", "x"]
    )
    assert student_args.tokenizer == "teacher" and student_args.embedding_init == "auto"
    assert student.AUTO_EMBEDDING_INIT == "teacher"


UNSEEN = ["zebras juggle xylophones", "a good film", "qwxz !!"]


def test_pruned_vocabulary_student_saves_reloads_and_reads_unseen_words(transfer_set, tiny_bert_dir, tmp_path):
    from .test_modeling_bilstm import load_without_distil

    out = tmp_path / "student"
    run_stage(
        ["--transfer_set", str(transfer_set), "--output_dir", str(out), "--max_steps", "2"]
        + ["--tokenizer", "teacher", "--prune_vocab", "true", "--teacher_model", str(tiny_bert_dir)]
        + ["--embedding_init", "teacher", "--hidden_size", "8", "--classifier_hidden_size", "12"]
        + ["--embedding_size", "16"]
        + FAST
    )
    teacher_tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    train_sentences = load_from_disk(str(transfer_set))["train"]["sentence"]
    used = {t for s in train_sentences for t in teacher_tokenizer.tokenize(s)}
    assert set(tokenizer.get_vocab()) == used | set(teacher_tokenizer.all_special_tokens) | {
        t for t in teacher_tokenizer.get_vocab() if len(t.removeprefix("##")) == 1 and t.isascii()
    }
    assert len(tokenizer) < len(teacher_tokenizer)
    assert model.config.vocab_size == len(tokenizer) == model.get_input_embeddings().weight.shape[0]
    assert model.config.init_embeddings["method"] == "teacher" and model.config.init_embeddings["fingerprint"]

    # words never seen become [UNK] (or smaller pieces); the classifier still answers
    assert "[UNK]" in tokenizer.tokenize(UNSEEN[0]) and "[UNK]" not in tokenizer.tokenize(UNSEEN[1])
    classify = pipeline("text-classification", model=str(out), device="cpu")
    predictions = classify(UNSEEN)
    assert [p["label"] in {"negative", "positive"} for p in predictions] == [True] * 3
    inputs = tokenizer(UNSEEN, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits

    # and where distil is not installed
    remote = load_without_distil(out, UNSEEN, tmp_path)
    assert torch.allclose(torch.tensor(remote["logits"]), expected, atol=1e-6)
    assert remote["tokens"][0].count("[UNK]") == 3
    assert [p["label"] for p in remote["pipeline"]] == [p["label"] for p in predictions]


def test_baseline_starts_from_the_students_tokenizer_and_embeddings(
    transfer_set, tiny_bert_dir, toy_data_dir, tmp_path
):
    common = ["--teacher_model", str(tiny_bert_dir), "--embedding_init", "teacher", "--embedding_size", "6"]
    common += ["--hidden_size", "8", "--classifier_hidden_size", "12", "--max_steps", "1"] + FAST
    run_stage(
        ["--transfer_set", str(transfer_set), "--output_dir", str(tmp_path / "student"), "--prune_vocab", "true"]
        + common
    )
    run_stage(
        ["--data_dir", str(toy_data_dir), "--output_dir", str(tmp_path / "baseline")]
        + ["--tokenizer_name_or_path", str(tmp_path / "student")]
        + common
    )
    run_stage(
        ["--data_dir", str(toy_data_dir), "--output_dir", str(tmp_path / "full"), "--prune_vocab", "false"] + common
    )
    config = {name: AutoConfig.from_pretrained(tmp_path / name) for name in ("student", "baseline", "full")}
    assert config["baseline"].vocab_fingerprint == config["student"].vocab_fingerprint
    assert config["baseline"].init_embeddings == config["student"].init_embeddings
    # without the student's tokenizer: the teacher's full vocabulary, another starting point
    assert config["full"].vocab_fingerprint != config["student"].vocab_fingerprint
    assert config["full"].init_embeddings["fingerprint"] != config["student"].init_embeddings["fingerprint"]

    with pytest.raises(ConfigError, match="tokenizer_name_or_path"):
        run_stage(
            ["--data_dir", str(toy_data_dir), "--output_dir", str(tmp_path / "x")]
            + ["--tokenizer_name_or_path", str(tmp_path / "nowhere")]
            + common
        )


def test_caps_mean_sentences_then_rows(transfer_set, tmp_path):
    # max_train_samples counts SST-2 source sentences (idx), max_transfer_samples transfer-set rows
    common = ["--transfer_set", str(transfer_set), "--embedding_init", "random", "--max_steps", "1"] + TINY + FAST
    metrics = run_stage(common + ["--output_dir", str(tmp_path / "a"), "--max_train_samples", "10"])
    assert metrics["train_samples"] == 20  # 10 sentences, each with its one augmented copy
    metrics = run_stage(common + ["--output_dir", str(tmp_path / "b"), "--max_transfer_samples", "7"])
    assert metrics["train_samples"] == 7
    metrics = run_stage(common + ["--output_dir", str(tmp_path / "c"), "--max_eval_samples", "5"])
    assert metrics["train_samples"] == 128 and metrics["eval_samples"] == 5


# --- bad input: one line naming the field, nothing written ---------------------------------------------------------


def _variant(transfer_set: Path, path: Path, split: str, change) -> Path:
    """A copy of `transfer_set` with `change(columns)` applied to `split`'s columns (a dict of lists)."""
    splits = DatasetDict.load_from_disk(str(transfer_set))
    columns = splits[split].to_dict()
    features = change(columns) or Features({k: v for k, v in FEATURES.items() if k in columns})
    splits[split] = Dataset.from_dict(columns, features=features)
    splits.save_to_disk(str(path))
    return path


def _set(split_rows: dict, row: int, logits) -> None:
    split_rows["teacher_logits"][row] = logits


VARIABLE = Features({**FEATURES, "teacher_logits": Sequence(Value("float32"))})


BAD_TRANSFER_SETS = [
    pytest.param("train", lambda c: c.pop("teacher_logits") and None,
                 "[train]: missing column(s) teacher_logits", id="no-teacher-logits"),
    pytest.param("train", lambda c: c.update(teacher_logits=[v + [0.0] for v in c["teacher_logits"]])
                 or Features({**FEATURES, "teacher_logits": Sequence(Value("float32"), length=3)}),
                 "[train]: row 0: 3 teacher_logits, the student has 2 labels (negative, positive)", id="width-3"),
    pytest.param("train", lambda c: _set(c, 5, [1.0]) or VARIABLE,
                 "[train]: row 5: 1 teacher_logits, the student has 2 labels (negative, positive)", id="ragged"),
    pytest.param("train", lambda c: _set(c, 7, [float("nan"), 1.0]),
                 "[train]: row 7: teacher_logits nan is not finite", id="nan"),
    pytest.param("validation", lambda c: _set(c, 3, [1.0, float("-inf")]),
                 "[validation]: row 3: teacher_logits -inf is not finite", id="inf"),
    pytest.param("train", lambda c: _set(c, 2, None) or VARIABLE,
                 "[train]: row 2: teacher_logits is missing", id="null-row"),
    pytest.param("train", lambda c: c.update(teacher_logits=[[str(x) for x in v] for v in c["teacher_logits"]])
                 or Features({**FEATURES, "teacher_logits": Sequence(Value("string"))}),
                 "[train]: teacher_logits must hold a list of floats per row, found list<item: string>", id="strings"),
]  # fmt: skip


@pytest.mark.parametrize("split, change, message", BAD_TRANSFER_SETS)
def test_bad_transfer_set_is_one_line_and_writes_nothing(transfer_set, tmp_path, split, change, message):
    bad = _variant(transfer_set, tmp_path / "bad-transfer-set", split, change)
    out = tmp_path / "student"
    with pytest.raises(ConfigError) as excinfo:
        run_stage(["--transfer_set", str(bad), "--output_dir", str(out), "--max_steps", "1"] + TINY + FAST)
    assert str(excinfo.value) == f"transfer_set: {bad}{message}"
    assert not out.exists()


def test_path_that_is_not_a_saved_dataset_dict(transfer_set, tmp_path):
    out = tmp_path / "student"
    (tmp_path / "empty").mkdir()
    Dataset.from_dict({"sentence": ["a"]}).save_to_disk(str(tmp_path / "one-dataset"))
    for path, reason in [
        (tmp_path / "nope", "not a saved DatasetDict (no such directory)"),
        (tmp_path / "empty", "not a saved DatasetDict (no dataset_dict.json in it)"),
        (tmp_path / "one-dataset", "expected a DatasetDict with train and validation splits"),
    ]:
        with pytest.raises(ConfigError) as excinfo:
            run_stage(["--transfer_set", str(path), "--output_dir", str(out)] + TINY + FAST)
        assert str(excinfo.value) == f"transfer_set: {path}: {reason}"
    assert not out.exists()


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--classifier_dropout", "1.5", "classifier_dropout: must be in [0, 1), got 1.5"),
        ("--alpha", "-0.1", "alpha: must be in [0, 1], got -0.1"),
        ("--temperature", "0", "temperature: must be > 0 or unset, got 0.0"),
        ("--embedding_size", "0", "embedding_size: must be >= 1 or unset, got 0"),
    ],
)
def test_out_of_range_settings_are_named(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit):
        run_stage(["--output_dir", str(tmp_path / "out"), flag, value])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"error: {message}")
    assert not (tmp_path / "out").exists()


def test_script_nan_logits_exit_with_one_line(transfer_set, tmp_path):
    bad = _variant(transfer_set, tmp_path / "bad", "train", lambda c: _set(c, 4, [float("nan"), 0.0]))
    result = run_script("train_student.py", "--transfer_set", bad, "--output_dir", tmp_path / "out", *TINY)
    assert (
        error_line(result)
        == f"train_student.py: error: transfer_set: {bad}[train]: row 4: teacher_logits nan is not finite"
    )
    assert not (tmp_path / "out").exists()


def test_script_prune_vocab_of_a_teacher_without_wordpiece_exits_with_one_line(transfer_set, tmp_path):
    from distil.tokenization import build_word_tokenizer

    teacher = tmp_path / "word-level-teacher"  # a tokenizer that is not WordPiece (as RoBERTa's BPE is not)
    build_word_tokenizer(["a good film", "a dull film"]).save_pretrained(teacher)
    result = run_script("train_student.py", "--transfer_set", transfer_set, "--output_dir", tmp_path / "out",
                        "--tokenizer", "teacher", "--teacher_model", teacher, "--prune_vocab", "true",
                        "--embedding_init", "random", "--max_steps", "1")  # fmt: skip
    assert error_line(result) == (
        "train_student.py: error: prune_vocab: the teacher's tokenizer is WordLevel, and only a fast WordPiece "
        "vocabulary is pruned; unset prune_vocab (or use tokenizer=word, a vocabulary of the data's words)"
    )
    assert not (tmp_path / "out").exists()


def test_the_best_checkpoint_is_the_one_saved(tmp_path):
    from safetensors.torch import load_file

    # validation's gold labels are the opposite of what the teacher teaches: accuracy falls as the student learns, so
    # the best checkpoint is an early one, not the last
    def rows(n, seed, flip):
        out = {"sentence": [], "idx": [], "label": [], "teacher_logits": []}
        for i, (sentence, label) in enumerate(toy_rows(n, seed=seed)):
            sign = 1.0 if label else -1.0
            out["sentence"].append(sentence)
            out["idx"].append(i)
            out["label"].append(1 - label if flip else label)
            out["teacher_logits"].append([-3.0 * sign, 3.0 * sign])
        return Dataset.from_dict(out, features=FEATURES)

    data = tmp_path / "transfer-set"
    DatasetDict(train=rows(128, 5, False), validation=rows(48, 6, True)).save_to_disk(data)
    out = tmp_path / "student"
    metrics = run_stage(
        ["--transfer_set", str(data), "--output_dir", str(out), "--embedding_init", "random"]
        + ["--train_rows", str(16 * 40), "--evaluations", "4", "--learning_rate", "5e-2", "--save_total_limit", "8"]
        + TINY
        + FAST
    )
    checkpoints = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert [p.name for p in checkpoints] == ["checkpoint-10", "checkpoint-20", "checkpoint-30", "checkpoint-40"]
    state = json.loads((checkpoints[-1] / "trainer_state.json").read_text())
    evals = {e["step"]: e["eval_accuracy"] for e in state["log_history"] if "eval_accuracy" in e}
    best_step = max(evals, key=lambda step: (evals[step], -step))
    assert best_step != 40 and evals[best_step] > evals[40]
    assert metrics["eval_accuracy"] == pytest.approx(evals[best_step])
    saved = load_file(out / "model.safetensors")
    best = load_file(out / f"checkpoint-{best_step}" / "model.safetensors")
    last = load_file(checkpoints[-1] / "model.safetensors")
    assert all(torch.equal(saved[k], best[k]) for k in saved)
    assert not all(torch.equal(saved[k], last[k]) for k in saved)
