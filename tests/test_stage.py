"""`distil.stage`: stale outputs, done written last, and resuming each stage after a SIGKILL."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import distil  # noqa: F401  (registers the BiLSTM auto classes)
from distil.errors import ConfigError
from distil.records import STAGE_FILE, Signature, is_done, read_record
from distil.stage import StageArguments, StageOutput

from .conftest import ROOT, tiny_pipeline_args, toy_rows, write_tsv


def test_done_only_with_the_same_signature(tmp_path):
    signature = Signature("student", {"lr": 1}, {})
    output = StageOutput(str(tmp_path / "s"), signature)
    assert not output.check()
    output.start()
    assert read_record(str(tmp_path / "s"))["status"] == "running" and not output.check()
    output.mark_done()
    assert output.check() and is_done(str(tmp_path / "s"), signature)
    changed = StageOutput(str(tmp_path / "s"), Signature("student", {"lr": 2}, {}), StageArguments(on_stale="error"))
    with pytest.raises(ConfigError, match=r"s: the student there was built from other settings .*lr: 1 -> 2"):
        changed.check()
    assert not StageOutput(str(tmp_path / "s"), Signature("student", {"lr": 2}, {})).check()  # rebuild


def _stage_env(cache: Path) -> dict:
    return {**os.environ, "HF_DATASETS_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def kill_when(cmd: list[str], env: dict, log: Path, ready, timeout: float = 300) -> None:
    """Run `cmd`, SIGKILL it as soon as `ready()` is true; fail if it ended first."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
            time.sleep(0.01)
        proc.kill()
    pytest.fail(
        f"{cmd[1]} ended (rc {proc.returncode}) before it could be killed part-way:\n{log.read_text()[-3000:]}"
    )


def run(cmd: list[str], env: dict) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def _complete_checkpoint(out: Path):
    return lambda: any((p / "trainer_state.json").is_file() for p in out.glob("checkpoint-*"))


def _assert_same_weights(a: Path, b: Path, atol: float = 1e-6):
    ma, mb = (AutoModelForSequenceClassification.from_pretrained(p).state_dict() for p in (a, b))
    assert ma.keys() == mb.keys()
    for name in ma:
        torch.testing.assert_close(ma[name], mb[name], atol=atol, rtol=0, msg=name)


@pytest.fixture(scope="module")
def transfer_set_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """A small transfer set (the stage run in-process on toy data)."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

    features = Features(
        {
            "sentence": Value("string"),
            "idx": Value("int64"),
            "label": ClassLabel(names=["negative", "positive"]),
            "teacher_logits": List(Value("float32"), length=2),
        }
    )

    def split(rows):
        return Dataset.from_dict(
            {
                "sentence": [s for s, _ in rows],
                "idx": list(range(len(rows))),
                "label": [y for _, y in rows],
                "teacher_logits": [[-1.0, 1.0] if y else [1.0, -1.0] for _, y in rows],
            },
            features=features,
        )

    d = tmp_path_factory.mktemp("stage") / "transfer"
    DatasetDict(train=split(toy_rows(400, seed=7)), validation=split(toy_rows(20, seed=8))).save_to_disk(d)
    return d


def test_student_resumes_after_sigkill(transfer_set_dir, tmp_path):
    def cmd(out):
        return [sys.executable, "recipes/train_student.py", "--transfer_set", str(transfer_set_dir),
                "--output_dir", str(out), "--tokenizer", "word", "--embedding_init", "random",
                "--embedding_size", "16", "--hidden_size", "32", "--classifier_hidden_size", "16",
                "--max_steps", "300", "--per_device_train_batch_size", "8", "--learning_rate", "1e-2",
                "--save_strategy", "steps", "--save_steps", "20", "--save_total_limit", "2",
                "--eval_strategy", "no", "--evaluations", "0", "--report_to", "none", "--logging_steps", "50",
                "--seed", "3"]  # fmt: skip

    env = _stage_env(tmp_path / "cache")
    out = tmp_path / "killed"
    kill_when(cmd(out), env, tmp_path / "kill.log", _complete_checkpoint(out))
    assert read_record(str(out))["status"] == "running"  # never read as finished
    resumed = run(cmd(out), env)
    assert "Resuming from" in resumed and "checkpoint-" in resumed
    assert read_record(str(out))["status"] == "done"
    state = json.loads(next(out.glob("checkpoint-300")).joinpath("trainer_state.json").read_text())
    assert state["global_step"] == 300
    run(cmd(tmp_path / "straight"), env)
    _assert_same_weights(out, tmp_path / "straight")


def test_teacher_resumes_after_sigkill(tiny_bert_dir, toy_data_dir, tmp_path):
    def cmd(out):
        return [sys.executable, "recipes/train_teacher.py", "--model_name_or_path", str(tiny_bert_dir),
                "--data_dir", str(toy_data_dir), "--output_dir", str(out), "--max_steps", "200",
                "--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--save_strategy", "steps",
                "--save_steps", "10", "--save_total_limit", "2", "--report_to", "none", "--logging_steps", "50",
                "--seed", "3", "--max_seq_length", "32"]  # fmt: skip

    env = _stage_env(tmp_path / "cache")
    out = tmp_path / "killed"
    kill_when(cmd(out), env, tmp_path / "kill.log", _complete_checkpoint(out))
    assert read_record(str(out))["status"] == "running"
    resumed = run(cmd(out), env)
    assert "Resuming from" in resumed
    run(cmd(tmp_path / "straight"), env)
    _assert_same_weights(out, tmp_path / "straight", atol=1e-5)
    AutoTokenizer.from_pretrained(out)


def test_labelling_resumes_after_sigkill(tiny_bert_dir, tmp_path):
    data = tmp_path / "data"
    write_tsv(data / "train.tsv", toy_rows(1500, seed=21))
    write_tsv(data / "dev.tsv", toy_rows(40, seed=22))

    def cmd(out):
        return [sys.executable, "recipes/augment.py", "--teacher_model", str(tiny_bert_dir), "--data_dir", str(data),
                "--output_dir", str(out), "--n_iter", "3", "--max_seq_length", "32", "--label_batch_size", "32",
                "--label_shard_rows", "250", "--label_chunk_size", "125"]  # fmt: skip

    env = _stage_env(tmp_path / "cache")
    out, log = tmp_path / "killed", tmp_path / "kill.log"
    kill_when(cmd(out), env, log, lambda: "(train): shard 4/" in log.read_text())
    assert not out.exists()  # nothing half-written
    resumed = run(cmd(out), env)
    assert "(train): shard 1/" in resumed and "rows) from cache" in resumed
    kept = [line for line in resumed.splitlines() if "(train): shard" in line and "from cache" in line]
    assert len(kept) >= 3, resumed[-3000:]  # the shards finished before the kill were not labelled again
    straight = tmp_path / "straight"
    run(cmd(straight), _stage_env(tmp_path / "fresh-cache"))  # its own cache: computed from scratch
    a, b = load_from_disk(str(out)), load_from_disk(str(straight))
    for split in ("train", "validation"):
        assert a[split]["sentence"] == b[split]["sentence"]
        np.testing.assert_array_equal(np.array(a[split]["teacher_logits"]), np.array(b[split]["teacher_logits"]))


def test_changing_n_iter_or_the_teacher_rebuilds(tiny_bert_dir, toy_data_dir, tmp_path, caplog):
    from distil.pipeline import run_pipeline
    from distil.run_config import parse_run

    args = tiny_pipeline_args(tmp_path, tiny_bert_dir, toy_data_dir) + ["--transfer_set.n_iter", "2"]
    run_pipeline(parse_run(args))
    run_dir = tmp_path / "run"
    first = {s: read_record(str(run_dir / s))["signature"] for s in ("teacher", "transfer_set", "student")}
    rows = len(load_from_disk(str(run_dir / "transfer_set"))["train"])

    # n_iter changed: the transfer set (and so the student) is rebuilt, the teacher is kept
    caplog.set_level(logging.INFO, logger="distil")
    run_pipeline(parse_run(args[:-2] + ["--transfer_set.n_iter", "4"]))
    assert "transfer_set: " in caplog.text and "n_iter: 2 -> 4" in caplog.text
    second = {s: read_record(str(run_dir / s))["signature"] for s in first}
    assert second["teacher"] == first["teacher"]
    assert second["transfer_set"] != first["transfer_set"] and second["student"] != first["student"]
    assert len(load_from_disk(str(run_dir / "transfer_set"))["train"]) > rows

    # with on_stale error, a changed teacher stops the run with the line naming the change; nothing is rebuilt
    caplog.clear()
    changed = args[:-2] + ["--transfer_set.n_iter", "4", "--teacher.learning_rate", "0.01", "--on_stale", "error"]
    with pytest.raises(ConfigError, match=r"teacher there was built from other settings .*learning_rate"):
        run_pipeline(parse_run(changed))
    assert {s: read_record(str(run_dir / s))["signature"] for s in first} == second

    # rebuilt by default: the new teacher makes the transfer set stale through its input
    run_pipeline(parse_run(changed[:-2]))
    assert "input teacher changed" in caplog.text
    third = {s: read_record(str(run_dir / s))["signature"] for s in first}
    assert all(third[s] != second[s] for s in first)


def test_an_interrupted_final_save_is_not_done(tmp_path, monkeypatch):
    """Disk full while saving: the error propagates, stage.json stays `running`, nothing is marked done."""
    from distil import stage

    output = StageOutput(str(tmp_path / "out"), Signature("student", {}, {}))
    output.start()

    class Trainer:
        args = type("Args", (), {"output_dir": str(tmp_path / "out"), "push_to_hub": False})()

        def evaluate(self, dataset):
            return {"eval_loss": 0.1}

        def log_metrics(self, *args):
            pass

        def is_world_process_zero(self):
            return True

        def save_model(self, path):
            os.makedirs(path, exist_ok=True)
            Path(path, "model.safetensors").write_bytes(b"partial")
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        stage.finish_training(Trainer(), [1, 2], {}, output)
    assert read_record(str(tmp_path / "out"))["status"] == "running"
    assert not (tmp_path / "out" / "all_results.json").exists()
    assert not (tmp_path / "out" / "model.safetensors").exists()  # the partial file stayed in the staging folder
    assert not output.check()
    assert STAGE_FILE == "stage.json"


def test_overwrite_output_dir_starts_fresh_but_only_in_a_stage_folder(tmp_path):
    signature = Signature("student", {"lr": 1}, {})
    out = tmp_path / "s"
    done = StageOutput(str(out), signature)
    done.start()
    (out / "checkpoint-5").mkdir()
    done.mark_done()
    again = StageOutput(str(out), signature, StageArguments(overwrite_output_dir=True))
    assert not again.check()  # done with the same signature, yet rebuilt on purpose
    assert not out.exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a distil stage output"):
        StageOutput(str(foreign), signature, StageArguments(overwrite_output_dir=True)).check()
    assert (foreign / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize(
    ("num_rows", "train_rows", "min_epochs", "max_steps", "expected_steps"),
    [(100_000, 600_000, 0.0, -1, 600_000 // 64), (1_000, 600_000, 0.0, -1, 600_000 // 64),
     (67_349, 20_000, 1.0, -1, math.ceil(67_349 / 64)), (4_416, 20_000, 1.0, -1, math.ceil(20_000 / 64)),
     (1_000, 600_000, 0.0, 7, 7), (1_000, 0, 0.0, -1, -1)],
    ids=["budget", "small-data-same-budget", "teacher-large", "teacher-small", "max-steps-given", "off"],
)  # fmt: skip
def test_schedule_training_follows_the_budget(tmp_path, num_rows, train_rows, min_epochs, max_steps, expected_steps):
    from transformers import TrainingArguments

    from distil.stage import schedule_training

    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=32, gradient_accumulation_steps=2,
                             max_steps=max_steps, report_to="none")  # fmt: skip
    said = schedule_training(args, num_rows, train_rows, evaluations=4, min_epochs=min_epochs)
    assert args.max_steps == expected_steps
    steps = expected_steps if expected_steps > 0 else math.ceil(3 * math.ceil(num_rows / 64))
    assert args.eval_strategy == "steps" and args.save_strategy == "steps" and args.load_best_model_at_end
    assert args.eval_steps == args.save_steps == math.ceil(steps / 4)
    assert args.metric_for_best_model == "accuracy" and args.greater_is_better
    assert f"{steps} steps" in said

    # a given eval_strategy, or checkpoints turned off, are kept as given
    for given in ({"eval_strategy": "epoch"}, {"save_strategy": "no"}):
        args = TrainingArguments(str(tmp_path), report_to="none", **given)
        schedule_training(args, num_rows, train_rows, evaluations=4)
        assert not args.load_best_model_at_end and args.eval_strategy == given.get("eval_strategy", "no")
