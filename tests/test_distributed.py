"""Several processes: the pipeline under `accelerate launch` with 2 CPU processes (gloo) against 1 process, and
labelling split across ranks against one rank."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from transformers import AutoModelForSequenceClassification

import distil  # noqa: F401  (registers the BiLSTM auto classes)
from distil.labeling import add_classifier_logits, label_in_shards, labelling_shards

from .conftest import ROOT, tiny_pipeline_args, toy_rows


def _launch(num_processes: int, args: list[str], cache: str) -> str:
    """Run recipes/distil.py under `accelerate launch` with `num_processes` CPU processes; returns its output."""
    # `accelerate launch --cpu` starts one process (several CPU processes need mpirun there); cpu_2proc.yaml starts
    # them with torch's launcher, and on a machine without a GPU they form a gloo group.
    config = ROOT / "configs" / "accelerate" / ("cpu_2proc.yaml" if num_processes == 2 else "cpu.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--main_process_port", "0",
         str(ROOT / "recipes" / "distil.py"), *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT, stdin=subprocess.DEVNULL,
        env={**os.environ, "HF_DATASETS_CACHE": cache, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def test_pipeline_on_two_processes_equals_one(tiny_bert_dir, toy_data_dir, tmp_path):
    runs = {}
    for n in (1, 2):
        # The teacher stage runs (DDP on 2 processes) at learning rate 0, so both runs label with the same teacher.
        args = tiny_pipeline_args(tmp_path / f"p{n}", tiny_bert_dir, toy_data_dir)
        args += ["--teacher.learning_rate", "0.0"]
        output = _launch(n, args, str(tmp_path / f"cache{n}"))
        runs[n] = (tmp_path / f"p{n}" / "run", output)
    assert "2 process(es)" in runs[2][1] and "1 process(es)" in runs[1][1]

    one, two = (load_from_disk(str(runs[n][0] / "transfer_set")) for n in (1, 2))
    for split in ("train", "validation"):
        assert one[split]["sentence"] == two[split]["sentence"]  # same sentences, same order
        assert one[split]["idx"] == two[split]["idx"]
        np.testing.assert_allclose(
            np.array(one[split]["teacher_logits"]), np.array(two[split]["teacher_logits"]), atol=1e-4
        )
    for n, (run, output) in runs.items():
        # each stage saved once, the report written once, by the main process
        for stage in ("teacher", "transfer_set", "student"):
            assert output.count(f"Saved {stage} to") == 1, (n, stage)
        assert output.count("Wrote the report to") == 1, n
        assert (run / "all_results.json").is_file() and (run / "results.md").is_file()
        model = AutoModelForSequenceClassification.from_pretrained(run / "student")
        assert model.config.model_type == "bilstm"
        assert not [p for p in os.listdir(run) if ".tmp" in p]  # no temporary leftovers
    # the 2-process run labelled on both ranks: each logged its own block of shards
    assert "shard 1/" in runs[2][1] and "(train): shard" in runs[2][1]


def _file_backed(tmp_path, name: str, n: int) -> Dataset:
    rows = toy_rows(n, seed=5)
    Dataset.from_dict({"sentence": [s for s, _ in rows]}).save_to_disk(tmp_path / name)
    return load_from_disk(str(tmp_path / name))


def test_labelling_on_two_ranks_equals_one_rank(tiny_bert_dir, tmp_path):
    kwargs = dict(shard_rows=7, max_length=32, batch_size=4)
    # Rank 1 labels its shards first, then rank 0 labels its own and reads rank 1's back from the cache: what two
    # processes do, in turn. A copy of the data in another folder has its own cache, for the 1-rank run.
    two_ranks = _file_backed(tmp_path, "a", 50)

    class AtBarrier(Exception):
        """Rank 1 reached the barrier: it stops here, as if waiting for rank 0."""

    def barrier():
        raise AtBarrier

    with pytest.raises(AtBarrier):
        label_in_shards(two_ranks, str(tiny_bert_dir), process_index=1, num_processes=2, wait_for_everyone=barrier,
                        **kwargs)  # fmt: skip
    waited = []
    gathered = label_in_shards(
        two_ranks, str(tiny_bert_dir), process_index=0, num_processes=2, wait_for_everyone=lambda: waited.append(1),
        **kwargs,
    )  # fmt: skip
    assert waited == [1]
    one_rank = label_in_shards(_file_backed(tmp_path, "b", 50), str(tiny_bert_dir), **kwargs)
    reference = add_classifier_logits(Dataset.from_dict(two_ranks[:]), str(tiny_bert_dir), max_length=32)
    assert gathered["sentence"] == one_rank["sentence"] == two_ranks["sentence"]
    np.testing.assert_allclose(np.array(gathered["teacher_logits"]), np.array(one_rank["teacher_logits"]), atol=1e-6)
    np.testing.assert_allclose(np.array(gathered["teacher_logits"]), np.array(reference["teacher_logits"]), atol=1e-5)


def test_a_shard_nobody_labelled_is_an_error(tiny_bert_dir, tmp_path):
    data = _file_backed(tmp_path, "c", 30)
    with pytest.raises(RuntimeError, match="shard 3/3 was not labelled"):
        label_in_shards(data, str(tiny_bert_dir), shard_rows=10, process_index=0, num_processes=2, max_length=32)


def test_shards_cover_every_row_once():
    for rows, size in ((0, 5), (1, 5), (10, 5), (11, 5), (1000, 64)):
        data = Dataset.from_dict({"i": list(range(rows))})
        shards = labelling_shards(data, size)
        assert [i for shard in shards for i in shard["i"]] == list(range(rows))
        assert all(len(shard) <= size for shard in shards) and len(shards) == max(1, -(-rows // size))
