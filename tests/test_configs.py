import pytest
from transformers import TrainingArguments

from distil.configs import ConfigError, DataArguments, apply_lr_schedule, parse_args
from distil.teacher import TeacherArguments

from .conftest import error_line, run_script


def _parse(tmp_path, yaml_text, cli=()):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    return parse_args(TeacherArguments, DataArguments, TrainingArguments, args=["--config", str(config), *cli])


def test_yaml_then_cli_override(tmp_path):
    model_args, data_args, training_args = _parse(
        tmp_path,
        "model_name_or_path: some/model\nmax_train_samples: 10\noutput_dir: out\nlearning_rate: 1.0e-3\n",
        ["--learning_rate", "2e-5", "--max_eval_samples", "4"],
    )
    assert model_args.model_name_or_path == "some/model"
    assert data_args.max_train_samples == 10 and data_args.max_eval_samples == 4
    assert training_args.learning_rate == 2e-5
    assert training_args.output_dir == "out"


def test_unknown_yaml_key_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse(tmp_path, "output_dir: out\nlearnin_rate: 0.1\n")
    err = capsys.readouterr().err
    assert "c.yaml: unknown key(s) learnin_rate" in err


def test_unknown_cli_flag_fails(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _parse(tmp_path, "output_dir: out\n", ["--no_such_flag", "1"])
    assert "--no_such_flag" in capsys.readouterr().err


def test_missing_config_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(DataArguments, args=["--config", str(tmp_path / "nope.yaml")])
    assert "nope.yaml: config file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "schedule, expected", [("constant", "constant"), ("warmup", "linear"), ("cyclic", "cosine_with_restarts")]
)
def test_original_schedule_names(tmp_path, schedule, expected):
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=4, warmup_steps=100)
    apply_lr_schedule(args, schedule, epochs_per_cycle=2)
    assert args.lr_scheduler_type.value == expected
    if schedule == "cyclic":
        assert args.lr_scheduler_kwargs["num_cycles"] == 2
    if schedule == "warmup":
        assert args.warmup_steps == 100


# --- bad config: one line naming the file and line, or the field; nothing written -------------------------------


def run_augment_stage(args: list[str]):
    """The transfer-set stage as `recipes/augment.py` calls it: parse a command line, call the stage."""
    from distil.augment import AugmentationArguments
    from distil.transfer_set import TransferSetArguments, build_transfer_set

    return build_transfer_set(*parse_args(TransferSetArguments, AugmentationArguments, DataArguments, args=args))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--p_mask", "0.6", "--p_pos", "0.6"], "p_mask + p_pos: must be <= 1, got 1.2"),
        (["--p_pos", "-0.1"], "p_pos: must be in [0, 1], got -0.1"),
        (["--p_ng", "1.5"], "p_ng: must be in [0, 1], got 1.5"),
        (["--n_iter", "-1"], "n_iter: must be >= 0, got -1"),
        (["--max_ng", "0"], "max_ng: must be >= 1, got 0"),
    ],
    ids=["p_mask+p_pos", "negative", "above-one", "n_iter", "max_ng"],
)
def test_out_of_range_augmentation_is_named(toy_data_dir, tiny_bert_dir, tmp_path, capsys, flags, message):
    out = tmp_path / "transfer"
    with pytest.raises(SystemExit) as excinfo:
        run_augment_stage(["--teacher_model", str(tiny_bert_dir), "--data_dir", str(toy_data_dir),
                           "--output_dir", str(out), *flags])  # fmt: skip
    assert excinfo.value.code != 0
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f": error: {message}")
    assert not out.exists()


def test_out_of_range_in_a_pipeline_names_the_section_and_field(toy_data_dir, tmp_path):
    from distil.pipeline import run_pipeline
    from distil.run_config import parse_run

    out = tmp_path / "run"
    with pytest.raises(ConfigError) as excinfo:
        run_pipeline(
            parse_run(["--output_dir", str(out), "--data_dir", str(toy_data_dir), "--transfer_set.n_iter", "-1"])
        )
    assert str(excinfo.value) == "transfer_set.n_iter: must be >= 0, got -1"
    assert not out.exists()


@pytest.mark.parametrize(
    "text, where, problem",
    [
        ("output_dir: out\n  learning_rate: 1\n", "2:16", "mapping values are not allowed here"),
        ("output_dir: out\nseed: [1, 2\nlearning_rate: 1\n", "3:14", "expected ',' or ']', but got ':'"),
        ("output_dir: out\nseed:\t1\n", "2:6", "found character '\\t' that cannot start any token"),
    ],
    ids=["indent", "unclosed-list", "tab"],
)
def test_yaml_syntax_error_names_file_and_line(tmp_path, capsys, text, where, problem):
    with pytest.raises(SystemExit):
        _parse(tmp_path, text)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f": error: {tmp_path / 'c.yaml'}:{where}: not valid YAML: {problem}")


def test_script_yaml_syntax_error_exits_with_one_line(tmp_path):
    config = tmp_path / "teacher.yaml"
    config.write_text("output_dir: out\nlearning_rate: [1e-4\n", encoding="utf-8")
    result = run_script("train_teacher.py", "--config", config)
    assert error_line(result) == (
        f"train_teacher.py: error: {config}:3:1: not valid YAML: expected ',' or ']', but got '<stream end>'"
    )
