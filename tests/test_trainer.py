"""`DistillationTrainer`: the teacher's logits reach the loss, evaluation metrics, checkpoints and resuming."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Sequence, Value
from transformers import EvalPrediction, TrainingArguments

from distil.losses import distillation_loss
from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
from distil.tokenization import build_word_tokenizer
from distil.trainer import DistillationDataCollator, DistillationTrainer, compute_distillation_metrics

FEATURES = Features(
    {
        "sentence": Value("string"),
        "idx": Value("int64"),
        "label": ClassLabel(names=["negative", "positive"]),
        "teacher_logits": Sequence(Value("float32"), length=2),
    }
)


def transfer_split(n: int, seed: int, synthetic: bool) -> Dataset:
    rng = np.random.default_rng(seed)
    words = ["good", "great", "fun", "bad", "awful", "dull", "the", "film", "plot", "[MASK]"]
    rows = {"sentence": [], "idx": [], "label": [], "teacher_logits": []}
    for i in range(n):
        sentence = " ".join(rng.choice(words, size=rng.integers(2, 7)))
        positive = sum(w in sentence for w in ("good", "great", "fun")) - sum(
            w in sentence for w in ("bad", "awful", "dull")
        )
        rows["sentence"].append(sentence)
        rows["idx"].append(i)
        rows["label"].append(-1 if synthetic and i % 2 else int(positive >= 0))
        rows["teacher_logits"].append([-float(positive), float(positive)])
    return Dataset.from_dict(rows, features=FEATURES)


@pytest.fixture(scope="module")
def setup():
    train, validation = transfer_split(48, 0, synthetic=True), transfer_split(16, 1, synthetic=False)
    tokenizer = build_word_tokenizer(train["sentence"])

    def tokenize(batch):
        return tokenizer(batch["sentence"])

    return tokenizer, train.map(tokenize, batched=True), validation.map(tokenize, batched=True)


def tiny_student(tokenizer) -> BiLSTMForSequenceClassification:
    torch.manual_seed(0)
    config = BiLSTMConfig(
        vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, classifier_hidden_size=8, pad_token_id=0
    )
    return BiLSTMForSequenceClassification(config)


def training_args(output_dir, **overrides) -> TrainingArguments:
    defaults = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        learning_rate=1e-2,
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        report_to="none",
        seed=0,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    return TrainingArguments(**{**defaults, **overrides})


def test_collator_pads_and_stacks(setup):
    tokenizer, train, _ = setup
    features = [train[i] for i in range(3)]
    batch = DistillationDataCollator(tokenizer)(features)
    assert set(batch) == {"input_ids", "attention_mask", "lengths", "labels", "teacher_logits"}
    longest = max(len(f["input_ids"]) for f in features)
    assert batch["input_ids"].shape == (3, longest)
    for row, f in zip(range(3), features):  # right-padded with the pad id, each row's tokens in order
        n = len(f["input_ids"])
        assert batch["input_ids"][row, :n].tolist() == f["input_ids"]
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
    # lengths: int64 on the CPU, one per row, equal to the mask's sums
    assert batch["lengths"].device.type == "cpu" and batch["lengths"].dtype == torch.int64
    assert batch["lengths"].tolist() == [len(f["input_ids"]) for f in features]
    assert batch["teacher_logits"].dtype == torch.float32 and batch["teacher_logits"].shape == (3, 2)
    assert batch["labels"].tolist() == [f["label"] for f in features]


def test_teacher_logits_survive_column_pruning(setup, tmp_path):
    tokenizer, train, validation = setup
    trainer = DistillationTrainer(
        model=tiny_student(tokenizer),
        args=training_args(tmp_path),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
    )
    assert trainer.args.remove_unused_columns
    batch = next(iter(trainer.get_train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "lengths", "labels", "teacher_logits"}
    assert batch["lengths"].device.type == "cpu"
    # compute_loss is the MSE on the teacher's logits
    model = trainer.model.eval()
    loss = trainer.compute_loss(model, batch)
    expected = distillation_loss(model(batch["input_ids"], batch["attention_mask"]).logits, batch["teacher_logits"])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_and_alpha(setup, tmp_path):
    tokenizer, train, _ = setup
    batch = DistillationDataCollator(tokenizer)([train[i] for i in range(8)])
    model = tiny_student(tokenizer).eval()
    logits = model(batch["input_ids"], batch["attention_mask"]).logits
    for kwargs in (dict(loss_type="ce"), dict(alpha=0.5), dict(temperature=2.0), dict(loss_type="kl")):
        trainer = DistillationTrainer(model=model, args=training_args(tmp_path), processing_class=tokenizer, **kwargs)
        loss = trainer.compute_loss(model, batch).item()
        if kwargs.get("loss_type") == "ce":
            gold = batch["labels"] >= 0
            expected = torch.nn.functional.cross_entropy(logits[gold], batch["labels"][gold])
        else:
            expected = distillation_loss(
                logits,
                batch["teacher_logits"],
                batch["labels"],
                alpha=kwargs.get("alpha", 0.0),
                temperature=kwargs.get("temperature", 1.0 if kwargs.get("loss_type") == "kl" else None),
            )
        assert loss == pytest.approx(expected.item(), rel=1e-5), kwargs
    with pytest.raises(ValueError):
        DistillationTrainer(model=model, args=training_args(tmp_path), loss_type="l1")


def test_compute_metrics_accuracy_f1_agreement():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    labels = np.array([0, 1, 0, -1])
    teacher = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    metrics = compute_distillation_metrics(EvalPrediction(predictions=logits, label_ids=(labels, teacher)))
    assert metrics["accuracy"] == pytest.approx(2 / 3)  # the unlabelled row does not count
    assert metrics["f1"] == pytest.approx(2 / 3)
    assert metrics["agreement"] == pytest.approx(0.5)
    assert "agreement" not in compute_distillation_metrics(EvalPrediction(predictions=logits, label_ids=labels))


def test_few_steps_write_a_checkpoint_and_resume(setup, tmp_path):
    tokenizer, train, validation = setup
    args = training_args(tmp_path, max_steps=2)
    trainer = DistillationTrainer(
        model=tiny_student(tokenizer),
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
    )
    first = trainer.train()
    assert first.global_step == 2 and math.isfinite(first.training_loss)
    checkpoint = tmp_path / "checkpoint-2"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "trainer_state.json").is_file()
    assert (checkpoint / "tokenizer.json").is_file() and (checkpoint / "modeling_bilstm.py").is_file()

    resumed = DistillationTrainer(
        model=tiny_student(tokenizer),
        args=training_args(tmp_path, max_steps=4),
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
    )
    result = resumed.train(resume_from_checkpoint=str(checkpoint))
    assert result.global_step == 4
    state = json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]

    metrics = resumed.evaluate()
    for key in ("eval_loss", "eval_perplexity", "eval_accuracy", "eval_f1", "eval_agreement"):
        assert key in metrics, key
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))


def test_a_step_sends_the_device_only_what_it_uses_without_blocking(setup, tmp_path, monkeypatch):
    """The BiLSTM packs by the collator's CPU `lengths`: they stay on the CPU (the same tensor), the unused
    `attention_mask` is not copied, and every other tensor is copied with `non_blocking=True` (from the loader's
    pinned memory on a GPU)."""
    tokenizer, train, _ = setup
    trainer = DistillationTrainer(
        model=tiny_student(tokenizer), args=training_args(tmp_path), train_dataset=train, processing_class=tokenizer
    )
    batch = next(iter(trainer.get_train_dataloader()))
    assert {"input_ids", "attention_mask", "lengths", "labels", "teacher_logits"} <= set(batch)
    copies = []
    to = torch.Tensor.to
    monkeypatch.setattr(
        torch.Tensor, "to", lambda self, *a, **k: copies.append(k.get("non_blocking")) or to(self, *a, **k)
    )
    prepared = trainer._prepare_inputs(batch)
    assert set(prepared) == {"input_ids", "lengths", "labels", "teacher_logits"}
    assert prepared["lengths"] is batch["lengths"]
    assert copies == [True] * 3
    monkeypatch.undo()
    trainer.model.eval()
    with torch.no_grad():  # the same logits as with the attention mask
        with_mask = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        torch.testing.assert_close(trainer.model(input_ids=prepared["input_ids"], lengths=prepared["lengths"]).logits,
                                   with_mask)  # fmt: skip
