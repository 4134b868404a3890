import pytest
from transformers import TrainingArguments

from distil.configs import DataArguments, apply_lr_schedule, parse_args
from distil.teacher import TeacherArguments


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
