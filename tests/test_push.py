"""`distil.push` against a local Hub (`tests/hub_server.py`): the pipeline's and the stages' recipes publish their
outputs with cards, a Hub user loads them back without `distil`, a re-push duplicates nothing, and a failed push says so in one
line.

Clients run in subprocesses: `huggingface_hub` and `datasets` read `HF_ENDPOINT` and friends when imported.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from datasets import load_from_disk
from huggingface_hub import DatasetCard, ModelCard

from .conftest import HUB_TOKEN, ROOT
from .hub_server import HubServer, client_env

STUDENT, TEACHER, TRANSFER = "me/bilstm-sst2", "me/teacher-sst2", "me/sst2-transfer-set"
STAGE_STUDENT, STAGE_TRANSFER = "me/stage-student", "me/stage-transfer-set"
PUSH = ["--push_to_hub", "true", "--hub_model_id", STUDENT, "--hub_dataset_id", TRANSFER, "--hub_teacher_id", TEACHER]

# One client process: the pipeline's recipe publishes the run; the same command publishes it again; then a student
# stage and a transfer-set stage each publish their own output, as their recipes do. File lists are read between.
PUSH_SCRIPT = """
import json, os, runpy, sys
from huggingface_hub import HfApi
from transformers import TrainingArguments
from distil.augment import AugmentationArguments
from distil.configs import DataArguments, parse_args
from distil.push import main as push_main, published
from distil.student import StudentArguments, train_student
from distil.transfer_set import TransferSetArguments, build_transfer_set

spec = json.loads(sys.argv[1])
sys.path.insert(0, os.path.dirname(spec["recipe"]))  # as when run as a script (recipes/_recipes.py takes it off)
distil_recipe = runpy.run_path(spec["recipe"])["main"]  # recipes/distil.py, not run as a script
api = HfApi()
listing = lambda: {repo: api.list_repo_files(repo, repo_type=kind) for kind, repo in spec["repos"]}
distil_recipe(spec["pipeline"])
first = listing()
distil_recipe(spec["pipeline"])
second = listing()
published(train_student, parse_args(StudentArguments, DataArguments, TrainingArguments, args=spec["student"]))
push_main(spec["repush_student"])  # what a failed push says to run
published(build_transfer_set, parse_args(TransferSetArguments, AugmentationArguments, DataArguments, args=spec["augment"]),
          command="accelerate launch recipes/augment.py --no_augment")
json.dump({"first": first, "second": second}, open(spec["out"], "w"))
"""

# A Hub user: only the endpoint, a fresh cache, no distil (the editable install's finder is removed and no path
# leads to the repo), a working directory outside the repo.
LOAD_SCRIPT = """
import importlib.util, json, sys
sys.meta_path = [f for f in sys.meta_path if "distil" not in getattr(f, "__module__", "")]
assert importlib.util.find_spec("distil") is None, "distil is importable"
import datasets, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

spec = json.loads(sys.argv[1])
datasets.config.USE_PARQUET_EXPORT = False  # no dataset viewer to ask
datasets.load_dataset(spec["dataset"]).save_to_disk(spec["out"] + "/dataset")
model = AutoModelForSequenceClassification.from_pretrained(spec["model"], trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(spec["model"], trust_remote_code=True)
with torch.no_grad():
    logits = model(**tokenizer(spec["sentences"], padding=True, return_tensors="pt")).logits
classify = pipeline("text-classification", model=spec["model"], trust_remote_code=True, function_to_apply="none")
scores = [{d["label"]: d["score"] for d in out} for out in classify(spec["sentences"], top_k=None)]
json.dump({"logits": logits.tolist(), "pipeline": scores, "class_module": type(model).__module__,
           "pipeline_module": type(classify.model).__module__, "distil_loaded": "distil" in sys.modules},
          open(spec["out"] + "/model.json", "w"))
"""


def test_push_settings_have_the_same_names_everywhere():
    import dataclasses

    from transformers import TrainingArguments

    from distil.pipeline import PipelineArguments
    from distil.push import HubArguments
    from distil.transfer_set import TransferSetArguments

    def hub_fields(*types):
        return {f.name for t in types for f in dataclasses.fields(t) if f.name.startswith(("hub_", "push_to_hub"))}

    shared = {"push_to_hub", "hub_private_repo", "hub_token"}
    everywhere = hub_fields(HubArguments)
    assert shared | {"hub_model_id", "hub_dataset_id", "hub_teacher_id"} <= everywhere
    assert hub_fields(PipelineArguments) == everywhere
    assert shared | {"hub_dataset_id"} == hub_fields(TransferSetArguments)
    assert shared | {"hub_model_id"} <= hub_fields(TrainingArguments)  # the trainer recipes' own


def test_the_token_is_never_written_down(tmp_path):
    from distil.transfer_set import TransferSetArguments
    from distil.utils import save_run_args

    args = TransferSetArguments(push_to_hub=True, hub_dataset_id="me/d", hub_token="hf_secret")
    assert "hf_secret" not in repr(args)
    path = save_run_args(str(tmp_path), args, command="accelerate launch recipes/augment.py --hub_token hf_secret")
    assert "hf_secret" not in Path(path).read_text() and "--hub_token <HUB_TOKEN>" in Path(path).read_text()


def run_client(script: str, spec: dict, env: dict, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), json.dumps(spec)],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-6000:]
    return result


def tree_digest(path: Path) -> dict[str, str]:
    """`{relative path: sha256}` of every file under `path`."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pushed(tiny_run, hub_server, tmp_path_factory, tiny_bert_dir, toy_data_dir):
    tmp = tmp_path_factory.mktemp("push")
    run = tiny_run["dir"]
    shutil.copytree(run / "transfer_set", tmp / "transfer-set-copy")  # the student stage writes map caches there
    spec = {
        "recipe": str(ROOT / "recipes" / "distil.py"),
        "pipeline": tiny_run["args"] + PUSH,
        "repos": [("model", STUDENT), ("model", TEACHER), ("dataset", TRANSFER)],
        "student": [
            "--transfer_set", str(tmp / "transfer-set-copy"), "--output_dir", str(tmp / "stage-student"),
            "--tokenizer", "word", "--embedding_size", "8", "--hidden_size", "4", "--classifier_hidden_size", "4",
            "--max_steps", "2", "--save_strategy", "steps", "--save_steps", "1", "--report_to", "none",
            "--use_cpu", "true", "--push_to_hub", "true", "--hub_model_id", STAGE_STUDENT,
        ],
        "augment": [
            "--teacher_model", str(run / "teacher"), "--data_dir", str(toy_data_dir), "--no_augment", "true",
            "--output_dir", str(tmp / "stage-transfer-set"), "--max_seq_length", "32",
            "--push_to_hub", "true", "--hub_dataset_id", STAGE_TRANSFER, "--hub_token", HUB_TOKEN,
        ],
        "repush_student": ["--model_dir", str(tmp / "stage-student"), "--hub_model_id", STAGE_STUDENT],
        "out": str(tmp / "listings.json"),
    }  # fmt: skip
    before = tree_digest(run)
    run_client(PUSH_SCRIPT, spec, client_env(hub_server.url, tmp / "home", HUB_TOKEN, PYTHONPATH=str(ROOT)), tmp)
    return {"tmp": tmp, "run": run, "before": before, "listings": json.loads((tmp / "listings.json").read_text())}


def test_round_trip_loads_as_a_hub_user(pushed, hub_server, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = pushed["run"]
    local = load_from_disk(str(run / "transfer_set"))
    sentences = local["validation"]["sentence"][:20]
    spec = {"dataset": TRANSFER, "model": STUDENT, "sentences": sentences, "out": str(tmp_path)}
    env = client_env(hub_server.url, tmp_path / "home", None)  # a reader needs no token for public repos
    run_client(LOAD_SCRIPT, spec, env, tmp_path)

    # the transfer set: the same splits, features and rows
    remote = load_from_disk(str(tmp_path / "dataset"))
    assert set(remote) == set(local)
    for split in local:
        assert remote[split].features == local[split].features, split
        assert remote[split].to_dict() == local[split].to_dict(), split

    # the student: the same logits as the local one, from the repo's code rather than distil's
    out = json.loads((tmp_path / "model.json").read_text())
    assert out["class_module"].startswith("transformers_modules.") and out["pipeline_module"] == out["class_module"]
    assert not out["distil_loaded"]
    model = AutoModelForSequenceClassification.from_pretrained(run / "student").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "student")
    with torch.no_grad():
        expected = model(**tokenizer(sentences, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(np.array(out["logits"]), expected, rtol=0, atol=1e-5)
    labels = [model.config.id2label[i] for i in range(expected.shape[1])]
    from_pipeline = np.array([[row[label] for label in labels] for row in out["pipeline"]])
    np.testing.assert_allclose(from_pipeline, expected, rtol=0, atol=1e-5)


def test_repush_duplicates_nothing(pushed, hub_server):
    first, second = pushed["listings"]["first"], pushed["listings"]["second"]
    assert first == second
    assert sorted(f for f in first[TRANSFER] if f.startswith("data/")) == [
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    ]
    student_files = set(first[STUDENT])
    assert {"README.md", "config.json", "model.safetensors", "modeling_bilstm.py", "run_args.json"} <= student_files
    assert not any(f.startswith("checkpoint-") or f == "training_args.bin" for f in student_files)
    # an unchanged re-push makes no commit at all
    titles = [c["title"] for c in hub_server.commits("model", STUDENT)]
    assert titles == ["initial commit", "Upload student"]
    titles = [c["title"] for c in hub_server.commits("dataset", TRANSFER)]
    assert titles == ["initial commit", "Upload transfer set", "Dataset card"]
    # pushing read the run and wrote nothing into it
    assert tree_digest(pushed["run"]) == pushed["before"]


def test_cards_hold_what_a_reader_needs(pushed, hub_server, tiny_run):
    results = tiny_run["results"]
    card = ModelCard(hub_server.read("model", STUDENT, "README.md").decode())
    accuracy = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert accuracy == {"accuracy": results["student"]["accuracy"], "f1": results["student"]["f1"]}
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}
    assert card.data.pipeline_tag == "text-classification" and TRANSFER in card.data.datasets
    text = card.text
    assert f"[`{TEACHER}`](/{TEACHER})" in text and f"[`{TRANSFER}`](/datasets/{TRANSFER})" in text
    assert f'pipeline("text-classification", model="{STUDENT}", trust_remote_code=True)' in text
    assert "parameters without the embedding matrix" in text and "`learning_rate` | `0.01`" in text

    teacher = ModelCard(hub_server.read("model", TEACHER, "README.md").decode())
    assert {r.metric_type: r.metric_value for r in teacher.data.eval_results}["accuracy"] == results["teacher"][
        "accuracy"
    ]

    dataset = DatasetCard(hub_server.read("dataset", TRANSFER, "README.md").decode())
    assert dataset.data.configs and dataset.data.dataset_info  # written by datasets, kept under our card
    local = load_from_disk(str(pushed["run"] / "transfer_set"))
    assert f"| train | {len(local['train']):,} |" in dataset.text
    assert "| `n_iter` | `3` |" in dataset.text and "`teacher_logits`" in dataset.text
    assert f"[`{TEACHER}`](/{TEACHER})" in dataset.text and "accelerate launch recipes/distil.py" in dataset.text


def test_trainer_stage_pushes_its_output_once(pushed, hub_server):
    # saving every step with push_to_hub on: the Trainer alone would push at each checkpoint and twice at the end;
    # then `python -m distil.push` pushed the same folder again, which changed nothing
    commits = hub_server.commits("model", STAGE_STUDENT)
    assert [c["title"] for c in commits] == ["initial commit", "Upload stage-student"]
    files = hub_server.files("model", STAGE_STUDENT)
    local = pushed["tmp"] / "stage-student"
    assert (
        files["model.safetensors"]["sha256"] == hashlib.sha256((local / "model.safetensors").read_bytes()).hexdigest()
    )
    assert files["model.safetensors"]["lfs"] and not files["config.json"]["lfs"]
    card = ModelCard(hub_server.read("model", STAGE_STUDENT, "README.md").decode())
    assert card.data.eval_results[0].metric_type == "accuracy"
    record = json.loads(hub_server.read("model", STAGE_STUDENT, "run_args.json"))
    assert record["TrainingArguments"]["push_to_hub"] is True  # recorded as asked


def test_transfer_set_stage_pushes_its_output(pushed, hub_server):
    files = hub_server.files("dataset", STAGE_TRANSFER)
    assert {"data/train-00000-of-00001.parquet", "data/validation-00000-of-00001.parquet", "README.md"} <= set(files)
    card = DatasetCard(hub_server.read("dataset", STAGE_TRANSFER, "README.md").decode())
    assert "accelerate launch recipes/augment.py --no_augment" in card.text
    record = json.loads((pushed["tmp"] / "stage-transfer-set" / "run_args.json").read_text())
    assert record["TransferSetArguments"]["hub_token"] == "<HUB_TOKEN>"  # the token is never written down


@pytest.mark.parametrize("failure", ["unreachable", "bad token", "server error"])
def test_failed_push_keeps_the_outputs_and_says_how_to_retry(failure, tiny_run, hub_server, tmp_path):
    run = tiny_run["dir"]
    before = tree_digest(run)
    url, token = hub_server.url, HUB_TOKEN
    if failure == "unreachable":
        closed = HubServer(tmp_path / "closed")  # bound, then closed: nothing listens on its port
        closed.server_close()
        url = closed.url
    elif failure == "bad token":
        token = "hf_wrong_token"
    else:
        hub_server.fail_commits = "storage is down"
    name = failure.replace(" ", "-")  # fresh repos: a push to repos that hold the same files would commit nothing
    push = ["--push_to_hub", "true", "--hub_model_id", f"me/{name}-student", "--hub_dataset_id", f"me/{name}-data"]
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "recipes" / "distil.py"), *tiny_run["args"], *push],
            env=client_env(url, tmp_path / "home", token, PYTHONPATH=str(ROOT)), cwd=tmp_path,
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    finally:
        hub_server.fail_commits = None
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("distil.py: error: push_to_hub: "), last
    assert f"at {url} failed: " in last
    expected = {
        "unreachable": f"cannot reach {url}",
        "bad token": "HTTP 401 Invalid credentials in Authorization header (check the token",
        "server error": "HTTP 500 storage is down",
    }[failure]
    assert expected in last and "the same command again" in last, last
    if failure == "server error":  # the run was evaluated and pushing began: the outputs it read are named intact
        assert f"{run / 'transfer_set'} is intact." in last
    assert tree_digest(run) == before


def test_push_command_checks_its_arguments(tmp_path, capsys):
    from distil.configs import parse_args
    from distil.push import PushArguments

    with pytest.raises(SystemExit):
        parse_args(PushArguments, args=["--model_dir", str(tmp_path)])
    assert "hub_model_id: required with --push_to_hub" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(PushArguments, args=["--dataset_dir", str(tmp_path / "nope"), "--hub_dataset_id", "me/d"])
    assert f"dataset_dir: {tmp_path / 'nope'} is not a folder" in capsys.readouterr().err


def test_transport_errors_are_those_of_the_hub_client():
    """Connection failures come from huggingface_hub's HTTP client (httpx2 under 2.x, httpx under 1.x)."""
    import importlib.metadata

    from distil.push import transport_errors

    client = "httpx2" if int(importlib.metadata.version("huggingface_hub").split(".")[0]) >= 2 else "httpx"
    errors = transport_errors()
    assert errors and issubclass(__import__(client).ConnectError, errors)
