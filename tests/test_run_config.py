"""`distil.run_config`: one file per run, its sections, dotted overrides and their precedence, one line for a key in
the wrong place, the configs in `configs/`, and the stage recipes reading the same file."""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import sys

import pytest
import yaml

from distil.configs import ConfigError, DataArguments
from distil.records import read_record, settings_of
from distil.run_config import (
    DATA_KEYS,
    RUN_KEYS,
    RUN_SECTIONS,
    PipelineArguments,
    parse_run,
    parse_stage,
    section_keys,
    stage_arguments,
    stage_plan,
)

from .conftest import ROOT, TINY_STUDENT, TINY_TEACHER, run_file, tiny_pipeline_args

RUN_FILES = sorted(p for p in (ROOT / "configs").glob("*.yaml"))


def plan_of(tmp_path, top=None, cli=(), **sections):
    config = run_file(tmp_path / "run.yaml", {"data_dir": "data", **(top or {})}, **sections)
    return stage_plan(parse_run(["--config", str(config), *cli]))


# --- sections, dotted overrides, precedence ---------------------------------------------------------------------


def test_sections_reach_their_stage_and_the_top_level_reaches_every_stage(tmp_path):
    plan = plan_of(
        tmp_path,
        {"output_dir": "out", "seed": 7, "max_train_samples": 10, "text_column": "text"},
        teacher={"learning_rate": 3e-5, "max_seq_length": 96},
        transfer_set={"n_iter": 9},
        student={"hidden_size": 32},
    )
    teacher, data, training, _ = plan["teacher"]
    assert training.learning_rate == 3e-5 and data.max_seq_length == 96 and training.output_dir == "out/teacher"
    transfer, rules, data, _ = plan["transfer_set"]
    assert rules.n_iter == 9 and transfer.teacher_model == "out/teacher" and transfer.output_dir == "out/transfer_set"
    assert data.max_seq_length == 128  # the teacher's section does not reach the transfer set
    student, data, training, _ = plan["student"]
    assert student.hidden_size == 32 and student.transfer_set == "out/transfer_set" and student.loss is None
    assert data.max_seq_length == 64 and training.learning_rate == 4e-3  # the student's defaults
    assert plan["baseline"] is None  # no baseline settings: no baseline
    for args in filter(None, plan.values()):
        data = next(a for a in args if isinstance(a, DataArguments))
        assert (data.data_dir, data.max_train_samples, data.text_column) == ("data", 10, "text")
        assert all(getattr(a, "seed", 7) == 7 for a in args)


def test_precedence_defaults_then_file_then_command_line(tmp_path):
    cli = ["--student.num_train_epochs", "5", "--student.learning_rate=0.5", "--seed", "3", "--student.bf16"]
    plan = plan_of(tmp_path, {"seed": 11}, cli, student={"num_train_epochs": 4, "per_device_train_batch_size": 16})
    _, _, training, _ = plan["student"]
    assert training.num_train_epochs == 5 and training.learning_rate == 0.5  # the command line over the file
    assert training.per_device_train_batch_size == 16  # the file over the default
    assert training.per_device_eval_batch_size == 256  # the default
    assert training.bf16 is True and training.seed == 3
    assert plan["teacher"][2].num_train_epochs == 1  # another section keeps its own


def test_a_baseline_section_adds_the_baseline_from_the_students_start(tmp_path):
    plan = plan_of(tmp_path, {"output_dir": "out"}, baseline={"num_train_epochs": 5})
    student, _, training, _ = plan["baseline"]
    assert training.num_train_epochs == 5 and training.learning_rate == 1e-3
    assert (student.loss, student.transfer_set, student.prune_vocab) == ("ce", None, False)
    assert student.tokenizer_name_or_path == "out/student" and student.teacher_model == "out/teacher"
    assert plan_of(tmp_path, cli=["--baseline.num_train_epochs", "2"])["baseline"] is not None
    assert plan_of(tmp_path, cli=["--train_baseline", "false"], baseline={})["baseline"] is None


def test_a_given_teacher_is_read_by_the_later_stages(tmp_path):
    plan = plan_of(tmp_path, {"train_teacher": False, "teacher_model": "me/teacher"})
    assert plan["teacher"] is None
    assert plan["transfer_set"][0].teacher_model == plan["student"][0].teacher_model == "me/teacher"


def test_every_section_key_reaches_its_stages_settings(tmp_path):
    """The stage records see every effective setting: a section key is a field of the stage's arguments, recorded in
    its settings unless the records ignore it (paths, workers, logging)."""
    for stage in RUN_SECTIONS:
        keys = section_keys(stage)
        assert keys and not keys & RUN_KEYS
        fields = {f.name for dtype in RUN_SECTIONS[stage] for f in dataclasses.fields(dtype)}
        assert keys <= fields
    plan = plan_of(tmp_path, cli=["--student.alpha", "0.25", "--student.lstm_dtype", "bfloat16"])
    settings = settings_of(*plan["student"][:3])
    assert settings["alpha"] == 0.25 and settings["lstm_dtype"] == "bfloat16"


# --- one line for a key in the wrong place ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "top, sections, message",
    [
        ({}, {"student": {"learnin_rate": 1}}, "student.learnin_rate: unknown key, not a setting of student; "
         "did you mean learning_rate?"),
        ({"learnin_rate": 1}, {}, "learnin_rate: unknown key; did you mean learning_rate?"),
        ({}, {"student": {"n_iter": 2}}, "student.n_iter: a setting of transfer_set, not of student; move it under "
         "transfer_set:"),
        ({}, {"teacher": {"data_dir": "x"}}, "teacher.data_dir: a setting of the whole run; set it at the top level, "
         "not under teacher:"),
        ({}, {"student": {"transfer_set": "x"}}, "student.transfer_set: set by the run (output_dir/transfer_set of "
         "the run), not in a section"),
        ({}, {"student": {"hub_model_id": "me/x"}}, "student.hub_model_id: the stages never push; the run's Hub "
         "settings are at the top level"),
        ({"n_iter": 20}, {"student": {}}, "n_iter: a setting of transfer_set, not of the whole run; put it under "
         "transfer_set:"),
        ({"max_seq_length": 64}, {"student": {}}, "max_seq_length: a setting of teacher, transfer_set, student, "
         "baseline, not of the whole run; put it under teacher:"),
    ],
    ids=["unknown-in-section", "unknown-at-top", "other-section", "run-key-in-section", "set-by-the-run", "hub-key",
         "stage-key-at-top", "max_seq_length-at-top"],
)  # fmt: skip
def test_a_key_in_the_wrong_place_is_one_line_naming_section_and_key(tmp_path, top, sections, message):
    config = run_file(tmp_path / "run.yaml", top, **sections)
    with pytest.raises(ConfigError) as excinfo:
        parse_run(["--config", str(config)])
    assert str(excinfo.value) == f"{config}: {message}"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--student.learnin_rate", "1"], "command line: student.learnin_rate: unknown key, not a setting of "
         "student; did you mean learning_rate?"),
        (["--teacher.n_iter", "2"], "command line: teacher.n_iter: a setting of transfer_set, not of teacher; move "
         "it under transfer_set:"),
        (["--learning_rate", "1"], "command line: --learning_rate: a setting of teacher, student, baseline, not of "
         "the whole run; --teacher.learning_rate"),
        (["--n_iter", "2"], "command line: --n_iter: a setting of transfer_set, not of the whole run; "
         "--transfer_set.n_iter"),
        (["--studnet.hidden_size", "2"], "command line: --studnet.hidden_size: no section studnet; use one of "
         "teacher, transfer_set, student, baseline"),
    ],
    ids=["unknown", "other-section", "stage-key-at-top", "old-n_iter", "no-such-section"],
)  # fmt: skip
def test_a_wrong_flag_is_one_line(flags, message):
    with pytest.raises(ConfigError) as excinfo:
        parse_run(flags)
    assert str(excinfo.value) == message


def test_a_bad_value_names_the_section_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"^transfer_set\.n_iter: must be >= 0, got -1$"):
        plan_of(tmp_path, cli=["--transfer_set.n_iter", "-1"])
    with pytest.raises(ConfigError, match=r"^student\.hidden_size: invalid int value: 'wide'$"):
        plan_of(tmp_path, student={"hidden_size": "wide"})
    with pytest.raises(ConfigError, match=r"^teacher\.lr_schedule: warmup sets lr_scheduler_type linear, but it is"):
        plan_of(tmp_path, teacher={"lr_scheduler_type": "cosine"})
    assert plan_of(tmp_path, teacher={"lr_scheduler_type": "cosine", "lr_schedule": None})["teacher"]


# --- the old layout ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("output_dir: out\nteacher_config: configs/sst2/teacher.yaml\n", "teacher_config is the old layout (a file "
         "per stage and *_overrides): a run is one file now, each stage's settings in its section; use the teacher: "
         "section of this file (docs/configs.md)"),
        ("student_overrides:\n  num_train_epochs: 3\n", "student_overrides is the old layout (a file per stage and "
         "*_overrides): a run is one file now, each stage's settings in its section; use the student: section of "
         "this file (docs/configs.md)"),
        ("model_name_or_path: some/model\ndata_dir: data\nlearning_rate: 1.0e-4\noutput_dir: out\n", "a stage "
         "config of the old layout (learning_rate, model_name_or_path at the top level): a run is one file now; put "
         "stage settings under its teacher:, transfer_set:, student: or baseline: section (docs/configs.md)"),
        ("transfer_set: outputs/transfer-set\nhidden_size: 150\noutput_dir: out\n", "a stage config of the old "
         "layout (hidden_size, transfer_set at the top level): a run is one file now; put stage settings under its "
         "teacher:, transfer_set:, student: or baseline: section (docs/configs.md)"),
    ],
    ids=["stage-config-paths", "overrides", "flat-stage-file", "flat-student-file"],
)  # fmt: skip
def test_an_old_layout_file_is_refused_with_one_line(tmp_path, text, message):
    config = tmp_path / "old.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as excinfo:
        parse_run(["--config", str(config)])
    assert str(excinfo.value) == f"{config}: {message}"


def test_old_layout_flags_are_refused_with_one_line():
    with pytest.raises(ConfigError) as excinfo:
        parse_run(["--student_overrides", "{num_train_epochs: 3}"])
    assert str(excinfo.value) == (
        "command line: --student_overrides is the old layout (a file per stage and *_overrides): a run is one file "
        "now, each stage's settings in its section; use --student.KEY VALUE (docs/configs.md)"
    )
    with pytest.raises(ConfigError, match=r"^command line: --augment\.n_iter: no section augment; use "):
        parse_run(["--augment.n_iter", "3"])


def test_script_old_layout_exits_with_one_line(tmp_path):
    from .conftest import error_line, run_script

    config = tmp_path / "quickstart.yaml"
    config.write_text("teacher_config: configs/sst2/teacher.yaml\n")
    line = error_line(run_script("distil.py", "--config", config))
    assert line.startswith(f"distil.py: error: {config}: teacher_config is the old layout")


# --- configs/ ---------------------------------------------------------------------------------------------------


def _json(value) -> str:
    return json.dumps(value, default=str)


@pytest.mark.parametrize("path", RUN_FILES, ids=lambda p: p.name)
def test_run_files_plan_and_repeat_no_package_default(path, monkeypatch):
    """Every run file in configs/ plans all its stages and holds no value equal to the package default it would
    replace (compared as the stage records compare values: as JSON)."""
    monkeypatch.chdir(ROOT)
    config = yaml.safe_load(path.read_text())
    run = parse_run(["--config", str(path)])
    stage_plan(run)
    top_defaults = {f.name: f.default for dtype in (PipelineArguments, RUN_SECTIONS["teacher"][1]) for f in
                    dataclasses.fields(dtype) if f.name in RUN_KEYS}  # fmt: skip
    for key, value in config.items():
        if key in RUN_SECTIONS:
            defaults = stage_arguments(parse_run([]), key, from_run=False)
            for name, setting in value.items():
                default = next(getattr(a, name) for a in defaults if hasattr(a, name))
                assert _json(setting) != _json(default), f"{path.name}: {key}.{name} repeats the default {default!r}"
        else:
            assert _json(value) != _json(top_defaults[key]), f"{path.name}: {key} repeats the default"
    if path.stem in ("sst2", "trec"):
        assert len(path.read_text().splitlines()) <= 40


def test_the_quickstart_is_the_package_defaults_on_sst2(monkeypatch):
    """configs/sst2.yaml holds the data, the run's folder, the workers and the loss it names: its plan equals the
    no-file plan with those flags (the recipe is the defaults)."""
    monkeypatch.chdir(ROOT)
    from_file = stage_plan(parse_run(["--config", "configs/sst2.yaml"]))
    flags = ["--data_dir", "../shared/data/sst2", "--output_dir", "outputs/quickstart", "--transfer_set.num_proc", "2"]
    flags += ["--student.loss", "mse"]
    no_file = stage_plan(parse_run(flags))
    for stage in ("teacher", "transfer_set", "student"):
        assert from_file[stage] == no_file[stage], stage
    student, data, training, _ = from_file["student"]
    assert (student.hidden_size, student.classifier_hidden_size, student.embedding_size) == (150, 200, 128)
    assert student.tokenizer == "teacher" and student.prune_vocab and student.embedding_init == "auto"
    rules = from_file["transfer_set"][1]
    assert rules.n_iter == "auto" and rules.for_train_size(67_349).n_iter == 4  # SST-2's 67,349 sentences: 4 each
    assert (student.train_rows, student.evaluations) == (300_000, 8)


def test_the_baseline_starts_from_the_quickstart_student(monkeypatch):
    monkeypatch.chdir(ROOT)
    plan = stage_plan(parse_run(["--config", "configs/sst2.yaml", "--train_baseline", "true"]))
    student, student_data, student_training, _ = plan["student"]
    baseline, baseline_data, baseline_training, _ = plan["baseline"]
    # the baseline reads the quickstart student's tokenizer and the quickstart teacher's embeddings
    assert baseline.tokenizer_name_or_path == "outputs/quickstart/student"
    assert baseline.teacher_model == student.teacher_model == "outputs/quickstart/teacher"
    for name in ("embedding_size", "hidden_size", "classifier_hidden_size", "embedding_init"):
        assert getattr(baseline, name) == getattr(student, name), name
    assert baseline_data.max_seq_length == student_data.max_seq_length
    assert baseline_training.num_train_epochs == student_training.num_train_epochs
    assert (baseline.train_rows, baseline.evaluations) == (student.train_rows, student.evaluations)
    assert baseline.loss == "ce" and baseline.transfer_set is None


def test_the_paper_scale_runs_train_the_papers_student(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, embedding_size in (("sst2_paper_minilm_gpu", None), ("sst2_paper_bert_large_gpu", 300)):
        plan = stage_plan(parse_run(["--config", f"configs/{name}.yaml"]))
        student = plan["student"][0]
        assert (student.hidden_size, student.classifier_hidden_size) == (300, 400), name
        assert student.embedding_size == embedding_size and plan["transfer_set"][1].n_iter == 20


def test_data_keys_are_the_data_arguments_but_the_sequence_length():
    assert set(DATA_KEYS) == {f.name for f in dataclasses.fields(DataArguments)} - {"max_seq_length"}


# --- the stage recipes read the same file -----------------------------------------------------------------------


def test_stage_recipes_build_the_pipelines_arguments(tmp_path):
    config = run_file(tmp_path / "run.yaml", {"data_dir": "data", "output_dir": "out"}, baseline={})
    args = ["--config", str(config), "--student.hidden_size", "24", "--teacher.learning_rate", "0.1"]
    plan = stage_plan(parse_run(args))
    assert parse_stage(["teacher"], args) == plan["teacher"]
    assert parse_stage(["transfer_set"], args) == plan["transfer_set"]
    assert parse_stage(["student", "baseline"], args) == plan["student"]
    assert parse_stage(["student", "baseline"], [*args, "--stage", "baseline"]) == plan["baseline"]
    # a recipe's own flags come last; without a file, the defaults and the flags alone
    assert parse_stage(["student"], [*args, "--hidden_size", "12"])[0].hidden_size == 12
    alone = parse_stage(["student"], ["--output_dir", "s"])
    assert alone[0].transfer_set is None and alone[2].output_dir == "s" and alone[0].hidden_size == 150
    with pytest.raises(ConfigError, match=r"^--stage: must be one of student, baseline, got 'teacher'$"):
        parse_stage(["student", "baseline"], [*args, "--stage", "teacher"])


def test_each_stage_recipe_runs_alone_from_the_run_file_then_the_pipeline_skips_them(
    tmp_path, tiny_bert_dir, toy_data_dir, monkeypatch
):
    """The three stage recipes run one after the other from the pipeline's file and command line, each into its
    folder of the run; the pipeline then finds every stage done with the same signature."""
    from distil.pipeline import run_pipeline

    args = tiny_pipeline_args(tmp_path, tiny_bert_dir, toy_data_dir) + [
        "--max_train_samples",
        "40",
        "--use_cpu",
        "true",
    ]
    recipes = ROOT / "recipes"
    monkeypatch.syspath_prepend(str(recipes))  # as when run as a script; `_recipes` takes it off again
    for script in ("train_teacher.py", "augment.py", "train_student.py"):
        runpy.run_path(str(recipes / script))["main"](args)
    assert str(recipes) not in sys.path
    out = tmp_path / "run"
    records = {s: read_record(str(out / s)) for s in ("teacher", "transfer_set", "student")}
    assert all(r["status"] == "done" for r in records.values())
    stamps = {s: os.path.getmtime(out / s / "stage.json") for s in records}
    run_pipeline(parse_run(args))
    assert {s: os.path.getmtime(out / s / "stage.json") for s in records} == stamps  # every stage skipped
    assert TINY_TEACHER["learning_rate"] == json.loads((out / "teacher" / "run_args.json").read_text())[
        "TrainingArguments"]["learning_rate"]  # fmt: skip
    assert TINY_STUDENT["hidden_size"] == json.loads((out / "student" / "run_args.json").read_text())[
        "StudentArguments"]["hidden_size"]  # fmt: skip


def test_a_stage_recipe_publishes_its_output_to_the_runs_repo_for_it(tmp_path):
    config = run_file(tmp_path / "run.yaml", {"data_dir": "data", "output_dir": "out"}, baseline={})
    hub = ["--push_to_hub", "true", "--hub_model_id", "me/student", "--hub_dataset_id", "me/ts", "--hub_token", "t"]
    args = ["--config", str(config), *hub]
    assert not parse_stage(["teacher"], args)[2].push_to_hub  # no hub_teacher_id: the teacher is not pushed
    teacher = parse_stage(["teacher"], [*args, "--hub_teacher_id", "me/teacher"])[2]
    assert teacher.push_to_hub and (teacher.hub_model_id, teacher.hub_token) == ("me/teacher", "t")
    transfer = parse_stage(["transfer_set"], args)[0]
    assert transfer.push_to_hub and transfer.hub_dataset_id == "me/ts"
    student = parse_stage(["student", "baseline"], args)[2]
    assert student.push_to_hub and student.hub_model_id == "me/student"
    assert not parse_stage(["student", "baseline"], [*args, "--stage", "baseline"])[2].push_to_hub
    # in the pipeline no stage pushes: publishing pushes the run once, after them
    plan = stage_plan(parse_run(args))
    assert not any(getattr(a, "push_to_hub", False) for args in plan.values() for a in args)
