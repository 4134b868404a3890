"""`ColumnRows`: a tokenized dataset's columns as NumPy, batches equal to the dataset's own rows, collated alike."""

from __future__ import annotations

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Features, Sequence, Value, concatenate_datasets

from distil.batching import ColumnRows, RowBatch, pad_rows
from distil.trainer import DistillationDataCollator, DistillationTrainer


class PadZero:
    model_input_names = ["input_ids", "attention_mask"]
    pad_token_id = 0


def tokenized(n: int = 40, seed: int = 0, chunks: int = 4) -> Dataset:
    """Token-id rows of 1..9 tokens with labels, teacher logits and lengths, written in several Arrow chunks."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 10, n)
    features = Features(
        {
            "input_ids": Sequence(Value("int32")),
            "label": ClassLabel(names=["a", "b", "c"]),
            "teacher_logits": Sequence(Value("float32")),
            "length": Value("int64"),
        }
    )
    dataset = Dataset.from_dict(
        {
            "input_ids": [rng.integers(1, 50, k).tolist() for k in lengths],
            "label": rng.integers(0, 3, n).tolist(),
            "teacher_logits": rng.normal(size=(n, 3)).astype(np.float32).tolist(),
            "length": lengths.tolist(),
        },
        features=features,
    )
    return concatenate_datasets([dataset.shard(chunks, i, contiguous=True) for i in range(chunks)])


def test_rows_match_the_dataset_through_an_indices_mapping():
    dataset = tokenized().select([7, 3, 30, 3, 12, 0])  # an indices mapping, a row twice
    rows = ColumnRows.of(dataset)
    assert isinstance(rows, ColumnRows) and len(rows) == 6
    assert rows.lengths.tolist() == [len(ids) for ids in dataset["input_ids"]]
    for i in range(6):
        expected = dataset[i]
        got = rows[i]
        assert got["input_ids"] == expected["input_ids"]
        assert got["label"] == expected["label"]
        np.testing.assert_allclose(got["teacher_logits"], expected["teacher_logits"], rtol=1e-6)


def test_a_batch_collates_as_the_rows_do():
    dataset = tokenized()
    rows = ColumnRows.of(dataset)
    collator = DistillationDataCollator(PadZero())
    indices = [5, 17, 2, 39, 2]
    batch = rows.__getitems__(indices)
    assert isinstance(batch, RowBatch)
    from_columns = collator(batch)
    from_rows = collator([dataset[i] for i in indices])
    assert (
        set(from_columns) == set(from_rows) == {"input_ids", "attention_mask", "lengths", "labels", "teacher_logits"}
    )
    for key in from_rows:
        assert from_columns[key].dtype == from_rows[key].dtype, key
        assert torch.equal(from_columns[key], from_rows[key]), key
    assert from_columns["lengths"].device.type == "cpu"


def test_pad_to_multiple_of():
    rows = ColumnRows.of(tokenized())
    batch = rows.__getitems__([0, 1, 2])
    input_ids, mask = pad_rows(batch, pad_token_id=-1, pad_to_multiple_of=8)
    assert input_ids.shape[1] % 8 == 0 and input_ids.shape[1] >= batch.lengths.max()
    assert (input_ids[~mask] == -1).all()
    assert mask.sum(1).tolist() == batch.lengths.tolist()


def test_other_columns_keep_the_dataset():
    dataset = tokenized()
    assert ColumnRows.of(dataset.add_column("token_type_ids", [[0]] * len(dataset))) is None
    assert ColumnRows.of(dataset.remove_columns("input_ids")) is None


def test_the_trainer_loads_batches_from_columns(tmp_path):
    from transformers import TrainingArguments

    from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification

    dataset = tokenized(64)
    torch.manual_seed(0)
    model = BiLSTMForSequenceClassification(
        BiLSTMConfig(vocab_size=50, embedding_size=8, hidden_size=8, classifier_hidden_size=8, num_labels=3)
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        max_steps=3,
        report_to="none",
        use_cpu=True,
        train_sampling_strategy="group_by_length",
        save_strategy="no",
    )
    trainer = DistillationTrainer(model=model, args=args, train_dataset=dataset, processing_class=PadZero())
    loader = trainer.get_train_dataloader()
    assert isinstance(loader.dataset, ColumnRows)
    seen = np.concatenate([batch["lengths"].numpy() for batch in loader])
    assert sorted(seen.tolist()) == sorted(dataset["length"])  # every row once in an epoch
    trainer.train()
    assert trainer.state.global_step == 3
