"""`distil.sampler`: the length-grouped order from Arrow lengths, and the trainer that uses it."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset
from transformers import TrainingArguments

from distil.sampler import LengthGroupedSampler, column_lengths, length_grouped_order


def lengths_of(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 65, size=n)


@pytest.mark.parametrize("n", [1, 7, 128, 1000, 50_001])
def test_every_row_exactly_once_per_epoch(n):
    sampler = LengthGroupedSampler(lengths_of(n), batch_size=32, seed=3)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == len(sampler) == n
        assert sorted(order) == list(range(n))


def test_same_seed_same_order_and_epochs_differ():
    lengths = lengths_of(5000)
    a, b = LengthGroupedSampler(lengths, 64, seed=42), LengthGroupedSampler(lengths, 64, seed=42)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again repeats the epoch
    a.set_epoch(1)
    assert list(a) != list(b)
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(LengthGroupedSampler(lengths, 64, seed=43)) != list(LengthGroupedSampler(lengths, 64, seed=42))


def test_rows_within_a_batch_have_similar_lengths():
    lengths = lengths_of(20_000)
    batch = 64
    order = length_grouped_order(lengths, batch, seed=0)
    batches = lengths[order[: len(order) // batch * batch]].reshape(-1, batch)
    spread = batches.max(1) - batches.min(1)
    random_batches = lengths[np.random.default_rng(1).permutation(len(lengths))[: batches.size]].reshape(-1, batch)
    random_spread = random_batches.max(1) - random_batches.min(1)
    # megabatches of 50 batches sorted by length: a batch spans a 50th of the length range, not all of it
    assert np.median(spread) <= 3
    assert np.median(random_spread) >= 50
    # the longest row comes first
    assert lengths[order[0]] == lengths.max()


def test_megabatches_are_sorted_by_decreasing_length_and_random_across_seeds():
    lengths = lengths_of(4096)
    order = length_grouped_order(lengths, 16, seed=5, mega_batch_mult=4)
    megabatches = lengths[order].reshape(-1, 64)
    assert (np.diff(megabatches[1:], axis=1) <= 0).all()  # the first one's head was swapped with the longest
    assert set(order[:64]) != set(length_grouped_order(lengths, 16, seed=6, mega_batch_mult=4)[:64])


def test_column_lengths_reads_arrow_through_an_indices_mapping():
    rows = [[1] * n for n in (3, 1, 4, 1, 5, 9, 2, 6)]
    dataset = Dataset.from_dict({"input_ids": rows, "length": [len(r) for r in rows]})
    assert column_lengths(dataset).tolist() == [3, 1, 4, 1, 5, 9, 2, 6]
    picked = dataset.select([5, 0, 7])
    assert column_lengths(picked).tolist() == [9, 3, 6]
    assert column_lengths(picked.remove_columns("length")).tolist() == [9, 3, 6]  # from input_ids
    assert column_lengths(dataset).dtype == np.int64
    with pytest.raises(ValueError, match="length"):
        column_lengths(dataset.remove_columns(["length", "input_ids"]))


def test_a_million_rows_each_once():  # its time is measured by benchmarks/student.py, not here
    lengths = lengths_of(1_000_000)
    order = length_grouped_order(lengths, 128, seed=0)
    assert order.dtype == np.int64 and len(order) == len(lengths)
    assert np.bincount(order, minlength=len(lengths)).max() == 1


def test_trainer_uses_it_and_reseeds_each_epoch(tmp_path):
    from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
    from distil.tokenization import build_word_tokenizer
    from distil.trainer import DistillationTrainer

    rng = np.random.default_rng(0)
    sentences = [" ".join(["good"] * int(n)) for n in rng.integers(1, 30, size=200)]
    tokenizer = build_word_tokenizer(sentences)
    data = Dataset.from_dict({"sentence": sentences, "teacher_logits": [[0.0, 1.0]] * 200})
    data = data.map(lambda b: {**tokenizer(b["sentence"]), "length": [len(s.split()) for s in b["sentence"]]},
                    batched=True)  # fmt: skip
    model = BiLSTMForSequenceClassification(BiLSTMConfig(vocab_size=len(tokenizer), embedding_size=4, hidden_size=4))
    args = TrainingArguments(str(tmp_path), per_device_train_batch_size=8, train_sampling_strategy="group_by_length",
                             use_cpu=True, report_to="none", seed=7)  # fmt: skip
    trainer = DistillationTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    loader = trainer.get_train_dataloader()
    sampler = loader.batch_sampler.sampler
    assert isinstance(sampler, LengthGroupedSampler) and sampler.seed == 7
    widths = [b["input_ids"].shape[1] for b in loader]
    # the batches are the sampler's, padded to their longest row (a word tokenizer adds no special tokens)
    expected = np.asarray(data["length"])[np.asarray(list(sampler))].reshape(-1, 8).max(1)
    assert widths == expected.tolist() and max(widths) == widths[0]
    loader.set_epoch(1)
    assert sampler.epoch == 1
    assert list(sampler) != list(LengthGroupedSampler(sampler.lengths, 8, seed=7))
    # under several processes accelerate wraps the batch sampler in a shard; its loader still reaches the sampler
    # (what `Trainer._run_epoch` relies on: distil sets no epoch itself)
    from accelerate.data_loader import BatchSamplerShard, prepare_data_loader
    from torch.utils.data import DataLoader

    sharded = prepare_data_loader(DataLoader(list(range(200)), batch_size=8, sampler=sampler), num_processes=2,
                                  process_index=1, put_on_device=False)  # fmt: skip
    assert isinstance(sharded.batch_sampler, BatchSamplerShard)
    sharded.set_epoch(3)
    assert sampler.epoch == 3


def test_the_teacher_trainer_orders_by_length_too(tmp_path):
    """`LengthGroupedTrainer` (the teacher stage's): a BERT tokenizer's columns (`token_type_ids` included) and the
    default collator, ordered by `distil.sampler` from the input ids' lengths (no `length` column)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from distil.trainer import LengthGroupedTrainer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    rng = np.random.default_rng(0)
    sentences = [" ".join(["good"] * int(n)) for n in rng.integers(1, 20, size=64)]
    data = Dataset.from_dict({"sentence": sentences, "label": [0, 1] * 32})
    data = data.map(lambda b: tokenizer(b["sentence"]), batched=True, remove_columns=["sentence"])
    assert "token_type_ids" in data.column_names and "length" not in data.column_names
    config = BertConfig(vocab_size=len(words), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=8, num_labels=2)  # fmt: skip
    args = TrainingArguments(str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=2, seed=3,
                             train_sampling_strategy="group_by_length", use_cpu=True, report_to="none",
                             save_strategy="no")  # fmt: skip
    trainer = LengthGroupedTrainer(
        model=BertForSequenceClassification(config), args=args, train_dataset=data, processing_class=tokenizer
    )
    loader = trainer.get_train_dataloader()
    sampler = loader.batch_sampler.sampler
    assert isinstance(sampler, LengthGroupedSampler)
    assert sampler.lengths.tolist() == [len(ids) for ids in data["input_ids"]]
    assert [b["input_ids"].shape[1] for b in loader] == sampler.lengths[np.asarray(list(sampler))].reshape(-1, 8).max(
        1
    ).tolist()
    trainer.train()
    assert trainer.state.global_step == 2


def test_two_processes_share_each_epoch_between_them():
    """Under accelerate every process builds the same order and takes every other batch of it."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    lengths = lengths_of(1024)
    per_rank = []
    for rank in range(2):
        sampler = LengthGroupedSampler(lengths, 8, seed=11)  # each process has its own, equal sampler
        sampler.set_epoch(2)
        shard = BatchSamplerShard(BatchSampler(sampler, 8, drop_last=False), num_processes=2, process_index=rank)
        per_rank.append([row for batch in shard for row in batch])
    assert len(per_rank[0]) == len(per_rank[1]) == 512
    assert sorted(per_rank[0] + per_rank[1]) == list(range(1024))
