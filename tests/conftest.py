"""Shared fixtures: tiny random BERT teachers and small SST-2-shaped data, built inside the test session."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Each test session gets its own datasets cache (set before `datasets` is imported anywhere).
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="distil-test-datasets-"))

ROOT = Path(__file__).resolve().parents[1]
# Scripts the tests start import this checkout's `distil`, not whichever one is installed.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
SST2_DIR = ROOT.parent / "shared" / "data" / "sst2"

WORDS = (
    "the a an movie film story plot actor actors it is was are good great bad awful boring fun funny dull "
    "brilliant terrible not very really and but or of to in with this that , . ! ? 's n't love hate best worst "
    "one long string cliches entertaining charming mess"
).split()


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for sentence, label in rows:
            f.write(f"{sentence}\t{label}\n")
    return path


def toy_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        mood = rng.choice(["good", "great", "fun", "brilliant"] if label else ["bad", "awful", "boring", "dull"])
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        words.insert(rng.randint(0, len(words)), mood)
        rows.append((" ".join(words), label))
    return rows


def run_file(path: Path, top: dict, **sections: dict) -> Path:
    """Write a run file (`distil.run_config`): the `top` keys, then a section per keyword."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    top = {k: str(v) if isinstance(v, Path) else v for k, v in top.items()}
    path.write_text(yaml.safe_dump({**top, **sections}, sort_keys=False))
    return path


TINY_TEACHER = {"max_steps": 4, "per_device_train_batch_size": 16, "save_strategy": "no", "learning_rate": 1e-3}
TINY_STUDENT = {
    "tokenizer": "word", "embedding_size": 16, "hidden_size": 8, "classifier_hidden_size": 8, "num_train_epochs": 1,
    "train_rows": 0, "per_device_train_batch_size": 32, "save_strategy": "no", "eval_strategy": "no", "learning_rate": 1e-2,
}  # fmt: skip


def tiny_pipeline_args(tmp_path: Path, tiny_bert_dir: Path, toy_data_dir: Path) -> list[str]:
    """`recipes/distil.py` arguments for the whole pipeline on toy data with tiny models (the run file written to
    `tmp_path / "run.yaml"`, its student section last; the run goes to `tmp_path / "run"`)."""
    config = run_file(
        tmp_path / "run.yaml",
        {"data_dir": toy_data_dir},
        teacher={"model_name_or_path": str(tiny_bert_dir), **TINY_TEACHER},
        transfer_set={"n_iter": 5, "num_proc": 1, "label_shard_rows": 64},
        student=TINY_STUDENT,
    )
    return ["--config", str(config), "--output_dir", str(tmp_path / "run")]


@pytest.fixture(scope="session")
def toy_data_dir(tmp_path_factory) -> Path:
    """A GLUE-layout directory with small `train.tsv` / `dev.tsv` files."""
    d = tmp_path_factory.mktemp("toy_sst2")
    write_tsv(d / "train.tsv", toy_rows(96, seed=0))
    write_tsv(d / "dev.tsv", toy_rows(32, seed=1))
    return d


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A tiny random `BertForSequenceClassification` and its WordPiece tokenizer, saved to a temp dir."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(WORDS))
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(d / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def sst2_dir() -> Path:
    """The real SST-2 GLUE files in ../shared; their absence is an error, not a skip."""
    assert (SST2_DIR / "train.tsv").is_file(), f"real SST-2 expected at {SST2_DIR}"
    return SST2_DIR


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_DISABLED", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_bert_3_labels_dir(tmp_path_factory, tiny_bert_dir) -> Path:
    """`tiny_bert_dir`'s body and tokenizer with a 3-label head (a classifier fine-tuned on another task)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    d = tmp_path_factory.mktemp("tiny_bert_3_labels")
    config = AutoConfig.from_pretrained(tiny_bert_dir, num_labels=3)
    config.id2label, config.label2id = {0: "a", 1: "b", 2: "c"}, {"a": 0, "b": 1, "c": 2}
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(d)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(d)
    return d


def run_script(script: str, *args, **env) -> subprocess.CompletedProcess:
    """Run `recipes/<script>` as a script (as a user would), with `env` added to the environment."""
    return subprocess.run(
        [sys.executable, str(ROOT / "recipes" / script), *map(str, args)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def error_line(result: subprocess.CompletedProcess) -> str:
    """The last line a failed script wrote to stderr, after checking it failed without a traceback."""
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    return result.stderr.strip().splitlines()[-1]


HUB_TOKEN = "hf_test_write_token"


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory):
    """A Hub-compatible server on 127.0.0.1 (`tests/hub_server.py`) that accepts `HUB_TOKEN`; repos on disk."""
    from .hub_server import HubServer

    with HubServer(tmp_path_factory.mktemp("hub"), token=HUB_TOKEN) as server:
        yield server


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_bert_dir, toy_data_dir) -> dict:
    """A finished pipeline run on toy data (tiny teacher, transfer set, student): `dir`, `args` (the pipeline's
    command line, without push settings) and `results` (its teacher-vs-student evaluation)."""
    from distil.configs import recipe_command
    from distil.pipeline import run_pipeline
    from distil.run_config import parse_run

    d = tmp_path_factory.mktemp("tiny_run")
    config = run_file(
        d / "run.yaml",
        {"data_dir": toy_data_dir},
        teacher={"model_name_or_path": str(tiny_bert_dir), "max_seq_length": 32, **TINY_TEACHER},
        transfer_set={"n_iter": 3, "num_proc": 1, "max_seq_length": 32},
        student={**TINY_STUDENT, "max_seq_length": 32, "num_train_epochs": 3, "max_steps": 6},
    )
    args = ["--config", str(config), "--output_dir", str(d / "run"), "--use_cpu", "true"]
    results = run_pipeline(parse_run(args), command=recipe_command("recipes/distil.py", args))
    return {"dir": d / "run", "args": args, "results": results}
