"""The recipe scripts: thin, runnable as scripts, and bad input exits with one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .conftest import ROOT, write_tsv

RECIPES = sorted(p for p in (ROOT / "recipes").glob("*.py") if not p.name.startswith("_"))


def test_recipes_are_thin():
    assert {p.name for p in RECIPES} == {"augment.py", "distil.py", "train_student.py", "train_teacher.py"}
    for path in RECIPES:
        n = len(path.read_text().splitlines())
        assert n <= 60, f"{path.name}: {n} lines; stage logic belongs in the package"
        assert "importlib" not in path.read_text()


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_script_help_runs(path):
    # run as a script: recipes/distil.py must not shadow the `distil` package
    result = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout or "--output_dir" in result.stdout


def test_script_bad_tsv_exits_with_one_line_and_writes_nothing(tiny_bert_dir, tmp_path):
    data = tmp_path / "data"
    write_tsv(data / "train.tsv", [("good", 1)])
    (data / "dev.tsv").write_bytes(b"sentence\tlabel\nbad\t7\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "train_teacher.py"), "--model_name_or_path", str(tiny_bert_dir),
         "--data_dir", str(data), "--output_dir", str(out), "--use_cpu", "true"],
        capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last == f"train_teacher.py: error: {data / 'dev.tsv'}:2: label must be 0 or 1 (negative, positive), got '7'"
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_script_missing_teacher_exits_with_one_line(toy_data_dir, tmp_path):
    proc = subprocess.run(
        [sys.executable, "recipes/augment.py", "--teacher_model", str(tmp_path / "nope"),
         "--data_dir", str(toy_data_dir), "--output_dir", str(tmp_path / "o")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith("augment.py: error: teacher_model: cannot load")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
