"""The BiLSTM student as a `transformers` model: shapes, padding, save/load, Auto classes, remote code."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

import distil  # noqa: F401  (registers model_type="bilstm")
from distil.modeling_bilstm import BiLSTMConfig, BiLSTMForSequenceClassification, BiLSTMModel
from distil.tokenization import build_word_tokenizer

TINY = dict(vocab_size=40, embedding_size=8, hidden_size=6, classifier_hidden_size=10)


def tiny_model(**overrides) -> BiLSTMForSequenceClassification:
    torch.manual_seed(0)
    return BiLSTMForSequenceClassification(BiLSTMConfig(**{**TINY, **overrides})).eval()


def batch(batch_size=3, seq_len=7, pad_from=(7, 4, 1)):
    torch.manual_seed(1)
    input_ids = torch.randint(3, TINY["vocab_size"], (batch_size, seq_len))
    attention_mask = torch.ones_like(input_ids)
    for row, start in enumerate(pad_from):
        input_ids[row, start:] = 0
        attention_mask[row, start:] = 0
    return input_ids, attention_mask


@pytest.mark.parametrize("multichannel", [False, True])
def test_forward_shapes(multichannel):
    model = tiny_model(use_multichannel_embedding=multichannel, multichannel_channels=5)
    input_ids, attention_mask = batch()
    out = model(input_ids, attention_mask=attention_mask, labels=torch.tensor([0, 1, 1]), output_hidden_states=True)
    assert out.logits.shape == (3, 2)
    assert out.loss.ndim == 0 and out.loss.item() > 0
    base = model.bilstm(input_ids, attention_mask=attention_mask)
    assert base.pooler_output.shape == (3, 2 * TINY["hidden_size"])
    assert base.last_hidden_state.shape == (3, 7, 2 * TINY["hidden_size"])
    if multichannel:
        assert model.bilstm.lstm.input_size == 3 * 5
    # tuple outputs too
    logits = model(input_ids, attention_mask=attention_mask, return_dict=False)[0]
    assert torch.equal(logits, out.logits)


def test_defaults_follow_the_paper():
    config = BiLSTMConfig(vocab_size=10)
    assert (config.embedding_size, config.hidden_size, config.classifier_hidden_size) == (300, 300, 400)
    assert config.classifier_dropout == 0.15
    assert config.multichannel_filters == [2, 4, 6] and config.multichannel_channels == 64
    assert config.id2label == {0: "LABEL_0", 1: "LABEL_1"}  # no task's label names baked in: the data names them
    assert config.model_type == "bilstm"


@pytest.mark.parametrize("multichannel", [False, True])
def test_padding_does_not_leak(multichannel):
    model = tiny_model(use_multichannel_embedding=multichannel, multichannel_channels=5)
    input_ids, attention_mask = batch()
    logits = model(input_ids, attention_mask=attention_mask).logits
    for row in range(3):
        n = int(attention_mask[row].sum())
        alone = model(input_ids[row : row + 1, :n]).logits
        assert torch.allclose(alone, logits[row : row + 1], atol=1e-6), row
    # whatever sits in the padded positions does not matter
    noisy = input_ids.masked_fill(attention_mask == 0, 5)
    assert torch.allclose(model(noisy, attention_mask=attention_mask).logits, logits, atol=1e-6)
    # left padding gives the same result as right padding
    n = int(attention_mask[1].sum())
    left_ids = torch.cat([input_ids[1:2, n:], input_ids[1:2, :n]], dim=1)
    left_mask = torch.cat([attention_mask[1:2, n:], attention_mask[1:2, :n]], dim=1)
    assert torch.allclose(model(left_ids, attention_mask=left_mask).logits, logits[1:2], atol=1e-6)


def test_features_are_last_forward_and_first_backward_state():
    model = tiny_model()
    input_ids, attention_mask = batch(batch_size=1, pad_from=(5,))
    out = model.bilstm(input_ids, attention_mask=attention_mask)
    h = TINY["hidden_size"]
    states = out.last_hidden_state[0]
    assert torch.allclose(out.pooler_output[0, :h], states[4, :h])
    assert torch.allclose(out.pooler_output[0, h:], states[0, h:])


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model(use_multichannel_embedding=True, multichannel_channels=4)
    input_ids, attention_mask = batch()
    before = model(input_ids, attention_mask=attention_mask).logits
    model.save_pretrained(tmp_path)
    loaded = BiLSTMForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.equal(loaded(input_ids, attention_mask=attention_mask).logits, before)
    assert loaded.config.to_diff_dict() | {"_name_or_path": ""} == model.config.to_diff_dict() | {"_name_or_path": ""}


def test_auto_classes_after_import_distil(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    input_ids, attention_mask = batch()
    assert type(AutoConfig.from_pretrained(tmp_path)) is BiLSTMConfig
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert type(auto) is BiLSTMForSequenceClassification
    assert torch.equal(auto(input_ids, attention_mask=attention_mask).logits, model(input_ids, attention_mask).logits)
    base = AutoModel.from_pretrained(tmp_path).eval()
    assert type(base) is BiLSTMModel
    assert torch.equal(
        base(input_ids, attention_mask=attention_mask).pooler_output,
        model.bilstm(input_ids, attention_mask=attention_mask).pooler_output,
    )
    assert (
        type(AutoModelForSequenceClassification.from_config(BiLSTMConfig(**TINY))) is BiLSTMForSequenceClassification
    )


def test_saved_code_is_self_contained(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "modeling_bilstm.BiLSTMConfig",
        "AutoModel": "modeling_bilstm.BiLSTMModel",
        "AutoModelForSequenceClassification": "modeling_bilstm.BiLSTMForSequenceClassification",
    }
    code = (tmp_path / "modeling_bilstm.py").read_text()
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, flags=re.M)
    assert {name.split(".")[0] for name in imports} <= {"__future__", "torch", "transformers"}, imports


REMOTE_SCRIPT = r"""
import json, sys
try:
    import distil
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("distil is importable: " + distil.__file__)
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model_dir, sentences = sys.argv[1], json.loads(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
inputs = tokenizer(sentences, padding=True, return_tensors="pt")
with torch.no_grad():
    logits = model(**inputs).logits.tolist()
classifier = pipeline("text-classification", model=model_dir, trust_remote_code=True)
print(json.dumps({
    "module": type(model).__module__,
    "logits": logits,
    "tokens": [tokenizer.convert_ids_to_tokens(ids) for ids in tokenizer(sentences)["input_ids"]],
    "pipeline": classifier(sentences),
    "distil_modules": [m for m in sys.modules if m == "distil" or m.startswith("distil.")],
}))
"""


def load_without_distil(model_dir, sentences: list[str], tmp_path) -> dict:
    """Load `model_dir` with `trust_remote_code` in a Python where distil cannot be imported; classify `sentences`."""
    # -I: no PYTHON* variables, no user site, no cwd on sys.path; -S: no site-packages .pth files, so the editable
    # install of distil is invisible. The site-packages folders this interpreter uses (a venv's and, with
    # --system-site-packages, the system's) are added back by path.
    site_dirs = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
    site_dirs = site_dirs or [sysconfig.get_paths()["purelib"]]
    script = tmp_path / "load.py"
    script.write_text(f"import sys\nsys.path.extend({site_dirs!r})\n" + REMOTE_SCRIPT)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir(exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(model_dir), json.dumps(sentences)],
        cwd=run_dir,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Do you wish to run the custom code" not in result.stdout, result.stdout
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["distil_modules"] == []
    assert out["module"].startswith("transformers_modules.")
    return out


TREC_NAMES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def test_loads_with_remote_code_where_distil_is_not_installed(tmp_path):
    model_dir = tmp_path / "student"
    tokenizer = build_word_tokenizer(["a good film", "a boring , awful mess"])
    model = tiny_model(
        vocab_size=len(tokenizer),
        num_labels=len(TREC_NAMES),
        id2label=dict(enumerate(TREC_NAMES)),
        label2id={name: i for i, name in enumerate(TREC_NAMES)},
    )
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    inputs = tokenizer(["a good film", "boring , awful mess"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits

    out = load_without_distil(model_dir, ["a good film", "boring , awful mess"], tmp_path)
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-6)
    assert len(out["pipeline"]) == 2
    for prediction in out["pipeline"]:
        assert prediction["label"] in TREC_NAMES  # the names the model was saved with, through pipeline()
        assert 1 / len(TREC_NAMES) <= prediction["score"] <= 1.0


@pytest.mark.parametrize("rows", ["padded", "unpadded", "one"])
def test_lstm_runs_in_fp32_under_bf16_autocast(rows, monkeypatch):
    """CPU check of the autocast guard. This machine has no GPU, so the CUDA case (where cuDNN would otherwise run
    the LSTM in fp16 whatever dtype autocast was asked for) is not exercised here; the guard is the same code."""
    torch.manual_seed(0)
    model = BiLSTMForSequenceClassification(
        BiLSTMConfig(vocab_size=30, embedding_size=8, hidden_size=6, classifier_hidden_size=5)
    ).eval()
    seen = {}

    def record(module, inputs, output):
        packed = inputs[0]
        seen["input"], seen["output"] = packed.data.dtype, output[0].data.dtype
        seen["weight"] = module.weight_ih_l0.dtype
        seen["autocast"] = torch.is_autocast_enabled("cpu")  # CPU autocast happens to leave LSTMs alone: check both

    model.bilstm.lstm.register_forward_hook(record)
    lstm_function = torch.lstm

    def record_function(x, hx, weights, *args):  # a padded batch on the CPU: one call per direction, unpacked
        output = lstm_function(x, hx, weights, *args)
        seen["input"], seen["output"], seen["weight"] = x.dtype, output[0].dtype, weights[0].dtype
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        return output

    monkeypatch.setattr(torch, "lstm", record_function)
    input_ids = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    if rows == "unpadded":  # the fast path without packing
        attention_mask = torch.ones_like(input_ids)
    elif rows == "one":  # one padded sentence, cut to its tokens
        input_ids, attention_mask = input_ids[1:], attention_mask[1:]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert seen == {"input": torch.float32, "output": torch.float32, "weight": torch.float32, "autocast": False}
    assert logits.dtype == torch.bfloat16  # the classifier still runs under autocast
    reference = model(input_ids=input_ids, attention_mask=attention_mask).logits
    assert torch.allclose(logits.float(), reference, atol=0.05)


@pytest.mark.parametrize("multichannel", [False, True])
def test_unpadded_fast_path_equals_the_packed_path(multichannel):
    model = tiny_model(use_multichannel_embedding=multichannel, multichannel_channels=5)
    input_ids, attention_mask = batch(pad_from=(7, 4, 1))
    with torch.no_grad():
        packed = model.bilstm(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        packed_logits = model(input_ids, attention_mask=attention_mask).logits
        for row in range(3):
            length = int(attention_mask[row].sum())
            ids = input_ids[row : row + 1, :length]
            for mask in (None, torch.ones_like(ids)):  # no padding: the LSTM runs unpacked
                fast = model.bilstm(ids, attention_mask=mask, output_hidden_states=True)
                torch.testing.assert_close(fast.pooler_output, packed.pooler_output[row : row + 1], atol=1e-6, rtol=0)
                torch.testing.assert_close(
                    fast.last_hidden_state, packed.last_hidden_state[row : row + 1, :length], atol=1e-6, rtol=0
                )
                torch.testing.assert_close(
                    model(ids, attention_mask=mask).logits, packed_logits[row : row + 1], atol=1e-6, rtol=0
                )
            # one padded sentence (right or left padding) is cut to its tokens: same outputs, zeros where padded
            for padded_ids, padded_mask in (
                (input_ids[row : row + 1], attention_mask[row : row + 1]),
                (input_ids[row : row + 1].roll(7 - length, 1), attention_mask[row : row + 1].roll(7 - length, 1)),
            ):
                if not multichannel or padded_mask[0, 0]:  # left padding shifts the convolutions' windows
                    one = model.bilstm(padded_ids.clone(), attention_mask=padded_mask.clone())
                    torch.testing.assert_close(
                        one.pooler_output, packed.pooler_output[row : row + 1], atol=1e-6, rtol=0
                    )
                    assert one.last_hidden_state.shape == (1, 7, 2 * TINY["hidden_size"])
                    assert torch.all(one.last_hidden_state[0, length:] == 0)


def test_batch_of_equal_lengths_takes_the_fast_path_with_the_same_outputs():
    model = tiny_model()
    input_ids, _ = batch(pad_from=(7, 7, 7))
    with torch.no_grad():
        fast = model(input_ids, attention_mask=torch.ones_like(input_ids)).logits
        one_by_one = torch.cat([model(input_ids[i : i + 1]).logits for i in range(3)])
        # a padded column forces the packed path; the real tokens are the same
        padded = torch.cat([input_ids, torch.zeros_like(input_ids[:, :1])], dim=1)
        mask = torch.cat([torch.ones_like(input_ids), torch.zeros_like(input_ids[:, :1])], dim=1)
        packed = model(padded, attention_mask=mask).logits
    torch.testing.assert_close(fast, one_by_one, atol=1e-6, rtol=0)
    torch.testing.assert_close(fast, packed, atol=1e-6, rtol=0)


def test_int8_dynamic_quantisation_keeps_predictions_close():
    from distil.quantization import quantize_dynamic_int8, quantized_state_bytes

    torch.manual_seed(0)
    config = BiLSTMConfig(vocab_size=300, embedding_size=32, hidden_size=24, classifier_hidden_size=16)
    model = BiLSTMForSequenceClassification(config).eval()
    with torch.no_grad():  # logits of a useful scale, as a trained student has
        model.classifier[-1].weight.mul_(50.0)
    quantized = quantize_dynamic_int8(model)
    assert type(quantized.bilstm.lstm).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert type(model.bilstm.lstm) is torch.nn.LSTM  # the original is left as it was
    torch.manual_seed(2)
    input_ids = torch.randint(1, 300, (64, 12))
    attention_mask = (torch.arange(12) < torch.randint(3, 13, (64, 1))).long()
    with torch.no_grad():
        reference = model(input_ids, attention_mask=attention_mask).logits
        logits = quantized(input_ids, attention_mask=attention_mask).logits
    scale = reference.abs().max()
    assert (logits - reference).abs().max() < 0.05 * scale, ((logits - reference).abs().max(), scale)
    assert (logits.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.95
    assert quantized_state_bytes(quantized) < 0.4 * quantized_state_bytes(model)


def test_int8_student_runs_in_a_pipeline():
    from transformers import pipeline

    from distil.quantization import quantize_dynamic_int8

    tokenizer = build_word_tokenizer(["a good film", "a boring , awful mess"])
    model = tiny_model(vocab_size=len(tokenizer))
    quantized = quantize_dynamic_int8(model)
    assert list(quantized.parameters()) == [] and quantized.device == torch.device("cpu")
    classify = pipeline("text-classification", model=quantized, tokenizer=tokenizer, device="cpu")
    expected = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    sentences = ["a good film", "never seen words here"]
    assert [p["label"] for p in classify(sentences)] == [p["label"] for p in expected(sentences)]


@pytest.mark.parametrize("multichannel", [False, True])
def test_cpu_lengths_give_the_attention_mask_path_outputs(multichannel):
    """The collator's CPU `lengths` (right padding) replace the mask scan: same pooled features and logits."""
    model = tiny_model(use_multichannel_embedding=multichannel, multichannel_channels=5)
    input_ids, attention_mask = batch(pad_from=(7, 4, 1))
    lengths = attention_mask.sum(1)
    with torch.no_grad():
        by_mask = model.bilstm(input_ids, attention_mask=attention_mask)
        by_lengths = model.bilstm(input_ids, attention_mask=attention_mask, lengths=lengths)
        torch.testing.assert_close(by_lengths.pooler_output, by_mask.pooler_output, atol=1e-6, rtol=0)
        torch.testing.assert_close(by_lengths.last_hidden_state, by_mask.last_hidden_state, atol=1e-6, rtol=0)
        expected = model(input_ids, attention_mask=attention_mask).logits
        torch.testing.assert_close(model(input_ids, lengths=lengths).logits, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(
            model(input_ids, attention_mask=attention_mask, lengths=lengths).logits, expected, atol=1e-6, rtol=0
        )
        # one row with its length: the unpacked single-sentence path
        one = model(input_ids[1:2], lengths=lengths[1:2]).logits
        torch.testing.assert_close(one, expected[1:2], atol=1e-6, rtol=0)


def test_pooled_is_the_last_forward_and_first_backward_output():
    model = tiny_model(num_layers=2)
    input_ids, attention_mask = batch(pad_from=(7, 4, 2))
    with torch.no_grad():
        out = model.bilstm(input_ids, attention_mask=attention_mask, lengths=attention_mask.sum(1))
    hidden = TINY["hidden_size"]
    for row, length in enumerate(attention_mask.sum(1).tolist()):
        torch.testing.assert_close(out.pooler_output[row, :hidden], out.last_hidden_state[row, length - 1, :hidden])
        torch.testing.assert_close(out.pooler_output[row, hidden:], out.last_hidden_state[row, 0, hidden:])


def test_bf16_lstm_keeps_fp32_weights_and_close_outputs(monkeypatch):
    reference = tiny_model()
    model = tiny_model(lstm_dtype="bfloat16")
    model.load_state_dict(reference.state_dict())
    input_ids, attention_mask = batch(pad_from=(7, 4, 1))
    lengths = attention_mask.sum(1)
    seen = []
    model.bilstm.lstm.register_forward_hook(lambda m, i, o: seen.append(("module", i[0].dtype)))
    lstm_function = torch.lstm

    def record_function(x, hx, weights, *args):
        seen.append(("function", x.dtype, weights[0].dtype))
        return lstm_function(x, hx, weights, *args)

    monkeypatch.setattr(torch, "lstm", record_function)
    logits = model(input_ids, lengths=lengths).logits  # padded: per-direction calls
    one = model(input_ids[:1]).logits  # one sentence: the module on bf16 copies
    assert seen == [("function", torch.bfloat16, torch.bfloat16)] * 2 + [("module", torch.bfloat16)]
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, reference(input_ids, lengths=lengths).logits, atol=0.05, rtol=0)
    torch.testing.assert_close(one, reference(input_ids[:1]).logits, atol=0.05, rtol=0)
    logits.sum().backward()
    weight = model.bilstm.lstm.weight_ih_l0
    assert weight.dtype == torch.float32 and weight.grad is not None and weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="lstm_dtype"):
        BiLSTMConfig(lstm_dtype="float16")


@pytest.mark.parametrize("num_layers", [1, 2])
def test_cpu_unpacked_directions_equal_the_packed_lstm(num_layers):
    """On the CPU a padded batch runs as two one-directional LSTMs over unpacked rows (the backward one over each
    row's tokens reversed in place): outputs and gradients equal the packed bidirectional LSTM's."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    model = tiny_model(num_layers=num_layers).train()
    input_ids, attention_mask = batch(pad_from=(7, 4, 1))
    lengths = attention_mask.sum(1)
    embedded = model.bilstm.embeddings(input_ids)
    packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
    out, (h_n, _) = model.bilstm.lstm(packed)
    expected_sequence, _ = pad_packed_sequence(out, batch_first=True, total_length=7)
    expected = torch.cat([h_n[-2], h_n[-1]], dim=-1)
    sequence_output, pooled = model.bilstm.run_lstm_padded(embedded, lengths)
    torch.testing.assert_close(pooled, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(sequence_output, expected_sequence, atol=1e-6, rtol=0)
    weights = list(model.bilstm.lstm.parameters())
    for got, want in zip(torch.autograd.grad(pooled.sum(), weights), torch.autograd.grad(expected.sum(), weights)):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_packed_path_skips_the_sort_for_batches_that_come_longest_first(monkeypatch):
    """The packed LSTM (a GPU's path; here on the CPU through an `nn.LSTM` subclass, which the CPU's unpacked path
    does not take) packs a longest-first batch with `enforce_sorted=True`, any other with the sort, and both give the
    outputs of the CPU path."""
    import distil.modeling_bilstm as modeling

    reference = tiny_model()
    model = tiny_model()

    class PackedLSTM(torch.nn.LSTM):
        pass

    packed_lstm = PackedLSTM(8, 6, batch_first=True, bidirectional=True)
    packed_lstm.load_state_dict(model.bilstm.lstm.state_dict())
    model.bilstm.lstm = packed_lstm
    calls = []
    pack = modeling.pack_padded_sequence
    monkeypatch.setattr(
        modeling, "pack_padded_sequence", lambda *a, **k: calls.append(k["enforce_sorted"]) or pack(*a, **k)
    )
    input_ids, attention_mask = batch(pad_from=(7, 4, 1))  # longest first, as the length-grouped order gives them
    lengths = attention_mask.sum(1)
    with torch.no_grad():
        for order in ([0, 1, 2], [1, 0, 2]):
            logits = model(input_ids[order], lengths=lengths[order]).logits
            torch.testing.assert_close(logits, reference(input_ids[order], lengths=lengths[order]).logits)
    assert calls == [True, False]
