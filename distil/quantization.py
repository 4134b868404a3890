"""int8 dynamic quantisation of a saved student for CPU inference.

`quantize_dynamic_int8` turns the LSTM and Linear layers into int8 dynamic-quantised ones (weights int8, activations
quantised on the fly) and, optionally, the embedding into an 8-bit weight-only one: the BiLSTM student shrinks about 4x
in memory and on disk. Its predictions stay close to float32's (the report measures accuracy and agreement).

It uses `torch.ao.quantization.quantize_dynamic`, the one PyTorch API that quantises `nn.LSTM`. PyTorch deprecates
`torch.ao.quantization` in favour of torchao, whose `quantize_` covers Linear layers but not LSTMs, so this module
silences the deprecation warnings it knows and fails with a clear message where the API is gone.

    from transformers import AutoModelForSequenceClassification, pipeline
    from distil.quantization import quantize_dynamic_int8

    model = quantize_dynamic_int8(AutoModelForSequenceClassification.from_pretrained("outputs/quickstart/student"))
    classify = pipeline("text-classification", model=model, tokenizer="outputs/quickstart/student", device="cpu")
"""

from __future__ import annotations

import io
import warnings

import torch
from torch import nn


def quantize_dynamic_int8(model: nn.Module, embeddings: bool = True) -> nn.Module:
    """A copy of `model` (in eval mode, on CPU) with int8 dynamic LSTM/Linear layers and, with `embeddings`, an 8-bit
    weight-only embedding (per-row scales). Inference only: the result cannot be trained or saved with
    `save_pretrained`; `quantized_state_bytes` gives its serialised size."""
    try:
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            float_qparams_weight_only_qconfig,
            quantize_dynamic,
        )
    except ImportError as e:  # pragma: no cover - a future torch without torch.ao.quantization
        raise ImportError(
            f"int8 dynamic quantisation needs torch.ao.quantization, missing in torch {torch.__version__}"
        ) from e
    if torch.backends.quantized.engine == "none":
        raise RuntimeError("int8 dynamic quantisation: this torch build has no quantised CPU engine")
    spec = {nn.LSTM: default_dynamic_qconfig, nn.Linear: default_dynamic_qconfig}
    if embeddings:
        spec[nn.Embedding] = float_qparams_weight_only_qconfig
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_channel.*deprecated.*")
        return quantize_dynamic(model.to("cpu").eval(), spec, dtype=torch.qint8, inplace=False)


def quantized_state_bytes(model: nn.Module) -> int:
    """Bytes of `torch.save(model.state_dict())`: the size a quantised model takes on disk."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()
