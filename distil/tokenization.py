"""The student's tokenizer.

Two kinds of tokenizer, both saved beside the student and loaded with `AutoTokenizer`:

- `build_word_tokenizer`: a word-level `tokenizers` tokenizer built from a dataset's vocabulary. It lowercases, splits
  words as spaCy's English tokenizer does (`ca n't`, `it 's`, punctuation apart), and keeps the mask token
  (`[MASK]`) of the masking augmentation whole.
- `load_teacher_tokenizer`: the teacher's own (WordPiece) tokenizer, emitting only what the student reads;
  `prune_tokenizer` cuts its vocabulary to the WordPieces of the training sentences (plus specials and characters).

`student_tokenizer` picks one of them (or loads a saved one) from the student's settings.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator

import pyarrow as pa
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel
from tokenizers.trainers import WordLevelTrainer
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from distil.encoding import WordCacheEncoder, distinct_words, iter_texts
from distil.errors import ConfigError
from distil.hub import load_errors, resolve_model_path

logger = logging.getLogger(__name__)

PAD_TOKEN, UNK_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[MASK]"
STUDENT_INPUT_NAMES = ["input_ids", "attention_mask"]
# spaCy-compatible word splitting: English clitics apart (`do n't`, `ca n't`, `it 's`), decimals whole, ellipses,
# dashes and closing TeX quotes (`...`, `--`, `''`) whole, any other punctuation character on its own. Where it
# differs from spaCy's English tokenizer: fractions (`1/2`) and a detached `'m`/`'ve`, which spaCy splits into `'` + `m`.
WORD_PATTERN = r"n't|'(?:s|re|ve|ll|d|m|em)\b|\w+(?=n't\b)|\d+(?:[.,]\d+)+|\w+|\.{2,}|-{2,}|''|[^\w\s]"


def word_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Keep the matches of `WORD_PATTERN`, drop the whitespace between them."""
    return pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="removed", invert=True)


def word_pieces(sentences: Iterable[str], mask_token: str | None) -> Iterator[str]:
    """The text of `sentences` around each `mask_token`: the mask token is a special token, kept out of the counts."""
    for sentence in sentences:
        yield from sentence.split(mask_token) if mask_token else (sentence,)


def build_word_tokenizer(
    sentences: Iterable[str],
    mask_token: str | None = MASK_TOKEN,
    min_frequency: int = 1,
    max_vocab_size: int | None = None,
    model_max_length: int = 128,
) -> PreTrainedTokenizerFast:
    """A lowercased word-level tokenizer over the words of `sentences` (`[PAD]`=0, `[UNK]`=1, then the mask token).

    `tokenizers`' `WordLevelTrainer` counts the words: ordered by decreasing count, ties alphabetically, so the same
    data always gives the same ids. `max_vocab_size` counts the special tokens.
    """
    specials = [PAD_TOKEN, UNK_TOKEN] + ([mask_token] if mask_token else [])
    backend = Tokenizer(WordLevel(unk_token=UNK_TOKEN))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = word_pre_tokenizer()
    trainer = WordLevelTrainer(
        vocab_size=max(max_vocab_size or sys.maxsize, len(specials)),
        min_frequency=min_frequency,
        show_progress=False,
        # matched on the raw text, before lowercasing and splitting: `[MASK]` stays one token
        special_tokens=[AddedToken(t, special=True, normalized=False) for t in specials],
    )
    backend.train_from_iterator(word_pieces(sentences, mask_token), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        mask_token=mask_token,
        model_input_names=list(STUDENT_INPUT_NAMES),
        model_max_length=model_max_length,
    )


def load_teacher_tokenizer(name_or_path: str, **kwargs) -> PreTrainedTokenizerBase:
    """The teacher's tokenizer, set to emit only `input_ids` and `attention_mask` (no `token_type_ids`)."""
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    tokenizer.model_input_names = list(STUDENT_INPUT_NAMES)
    tokenizer.init_kwargs["model_input_names"] = list(STUDENT_INPUT_NAMES)
    return tokenizer


def sentence_token_ids(tokenizer, sentences: Iterable[str], chunk_size: int = 50_000) -> set[int]:
    """The ids `tokenizer` gives to `sentences` (without the special tokens it adds around each).

    `sentences` may be an Arrow text column: for a tokenizer that `WordCacheEncoder` supports, its distinct words
    then come from Arrow compute (a million sentences in seconds)."""
    found: set[int] = set()
    if isinstance(sentences, (pa.Array, pa.ChunkedArray)):
        if WordCacheEncoder.supports(tokenizer):
            backend = WordCacheEncoder(tokenizer, max_length=0).backend
            words = sorted(distinct_words(sentences).to_pylist())
            for encoding in backend.encode_batch(words, add_special_tokens=False):
                found.update(encoding.ids)
            return found
        sentences = iter_texts(sentences)
    sentences = iter(sentences)
    if WordCacheEncoder.supports(tokenizer):  # the pieces of each distinct word
        words: set[str] = set()
        while chunk := list(itertools.islice(sentences, chunk_size)):
            words.update(" ".join(chunk).split(" "))
        backend = WordCacheEncoder(tokenizer, max_length=0).backend
        for encoding in backend.encode_batch(sorted(words), add_special_tokens=False):
            found.update(encoding.ids)
        return found
    while chunk := list(itertools.islice(sentences, chunk_size)):
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            found.update(ids)
    return found


def prune_tokenizer(
    tokenizer: PreTrainedTokenizerBase, sentences: Iterable[str], keep_characters: bool = True
) -> PreTrainedTokenizerFast:
    """A copy of a WordPiece `tokenizer` whose vocabulary keeps only the tokens it gives `sentences`, plus its
    special tokens and (`keep_characters`) its single-character ASCII pieces (`a`, `##a`, `!`, ...).

    Kept tokens keep the teacher's relative order (so `[PAD]` stays 0). WordPiece matches each word greedily, longest
    piece first, and a word with a position that no piece matches becomes `[UNK]` whole. So every word of `sentences`
    splits exactly as before (its longest pieces are all kept); an unseen word splits into the longest kept pieces,
    down to single characters, and only a word with a character outside the kept ones becomes `[UNK]`.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    spec = json.loads(backend.to_str()) if backend is not None else {}
    if spec.get("model", {}).get("type") != "WordPiece":
        kind = spec.get("model", {}).get("type") or type(tokenizer).__name__
        raise ConfigError(
            f"prune_vocab: the teacher's tokenizer is {kind}, and only a fast WordPiece vocabulary is pruned; unset "
            "prune_vocab (or use tokenizer=word, a vocabulary of the data's words)"
        )
    vocab = spec["model"]["vocab"]
    keep = sentence_token_ids(tokenizer, sentences)
    keep.update(tokenizer.all_special_ids)
    keep.update(token["id"] for token in spec.get("added_tokens", []))
    if keep_characters:
        prefix = spec["model"].get("continuing_subword_prefix") or "##"
        for token, i in vocab.items():
            bare = token[len(prefix) :] if token.startswith(prefix) else token
            if len(bare) == 1 and bare.isascii():
                keep.add(i)
    by_id = {i: token for token, i in vocab.items()}
    new_vocab = {by_id[i]: new_id for new_id, i in enumerate(sorted(keep))}

    spec["model"]["vocab"] = new_vocab
    for token in spec.get("added_tokens", []):
        token["id"] = new_vocab[token["content"]]
    _remap_post_processor(spec.get("post_processor"), new_vocab)
    spec["truncation"] = spec["padding"] = None  # set per call by the wrapper
    pruned = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        model_input_names=list(STUDENT_INPUT_NAMES),
        model_max_length=tokenizer.model_max_length,
        padding_side=tokenizer.padding_side,
        **{name: getattr(tokenizer, name) for name in SPECIAL_TOKEN_NAMES if getattr(tokenizer, name, None)},
    )
    logger.info("Pruned the vocabulary from %d to %d tokens", len(tokenizer), len(pruned))
    return pruned


SPECIAL_TOKEN_NAMES = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token", "bos_token", "eos_token")


def _remap_post_processor(processor: dict | None, vocab: dict[str, int]) -> None:
    """Point a post-processor's special tokens (`[CLS]`, `[SEP]`) at their ids in `vocab`, in place."""
    if not processor:
        return
    for inner in processor.get("processors", []):  # Sequence
        _remap_post_processor(inner, vocab)
    for special in processor.get("special_tokens", {}).values():  # TemplateProcessing
        special["ids"] = [vocab[token] for token in special["tokens"]]
    for key in ("cls", "sep"):  # BertProcessing, RobertaProcessing
        if isinstance(processor.get(key), list):
            processor[key][1] = vocab[processor[key][0]]


def student_tokenizer(
    kind: str,
    sentences: Iterable[str],
    *,
    teacher_model: str | None = None,
    prune_vocab: bool = False,
    name_or_path: str | None = None,
    mask_token: str | None = MASK_TOKEN,
    min_frequency: int = 1,
    max_vocab_size: int | None = None,
    model_max_length: int = 128,
) -> PreTrainedTokenizerBase:
    """The student's tokenizer: a saved one from `name_or_path`; else for `kind="teacher"` the teacher's (pruned to
    `sentences` with `prune_vocab`), for `kind="word"` a word-level one built from `sentences` (Python strings or an
    Arrow text column)."""
    if name_or_path:
        if not os.path.isfile(os.path.join(name_or_path, "tokenizer_config.json")):
            raise ConfigError(
                f"tokenizer_name_or_path: {name_or_path}: no saved tokenizer (tokenizer_config.json) there"
            )
        return load_teacher_tokenizer(name_or_path)
    if kind == "teacher":
        if not teacher_model:
            raise ConfigError("teacher_model: required by tokenizer=teacher")
        with load_errors("teacher_model", teacher_model):
            tokenizer = load_teacher_tokenizer(resolve_model_path(teacher_model))
        if prune_vocab:
            tokenizer = prune_tokenizer(tokenizer, sentences)
        return tokenizer
    if isinstance(sentences, (pa.Array, pa.ChunkedArray)):
        sentences = iter_texts(sentences)
    return build_word_tokenizer(
        sentences,
        mask_token=mask_token,
        min_frequency=min_frequency,
        max_vocab_size=max_vocab_size,
        model_max_length=model_max_length,
    )
