"""The BiLSTM student of Tang et al. (2019) as a `transformers` model.

An embedding (optionally a multichannel convolutional one), a bidirectional LSTM, and an MLP classifier over the last
forward state and the first backward state. Padding never reaches the LSTM: sequences are packed by their lengths
(`lengths` on the CPU, as the distillation collator gives them, or from `attention_mask`), and a batch without padding
(one sentence) runs unpacked.

This file is self-contained (it imports only `torch` and `transformers`): `save_pretrained` copies it next to the
weights, so a saved student loads with `trust_remote_code=True` where `distil` is not installed.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput

LSTM_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
AUTO_MAP = {
    "AutoConfig": "modeling_bilstm.BiLSTMConfig",
    "AutoModel": "modeling_bilstm.BiLSTMModel",
    "AutoModelForSequenceClassification": "modeling_bilstm.BiLSTMForSequenceClassification",
}


class BiLSTMConfig(PretrainedConfig):
    r"""Configuration of the BiLSTM student.

    Args:
        vocab_size: rows of the embedding matrix (the student tokenizer's vocabulary).
        embedding_size: width of each token embedding (300 in the paper).
        hidden_size: LSTM hidden size per direction (300 in the paper); pooled features are `2 * hidden_size`.
        num_layers: stacked LSTM layers.
        lstm_dropout: dropout between stacked LSTM layers (only used when `num_layers > 1`).
        classifier_hidden_size: width of the MLP classifier's hidden layer (400 in the paper).
        classifier_dropout: dropout after the classifier's ReLU (0.15).
        use_multichannel_embedding: feed the LSTM with ReLU'd 1-d convolutions of the embeddings instead of the
            embeddings themselves (the original's `MultiChannelEmbedding`).
        multichannel_filters: convolution widths of the multichannel embedding.
        multichannel_channels: output channels per convolution width; the LSTM input is
            `len(multichannel_filters) * multichannel_channels`.
        embedding_init_std: standard deviation of randomly initialised embeddings.
        initializer_range: standard deviation of the classifier's random weights.
        lstm_dtype: `float32` runs the LSTM in fp32 under any autocast; `bfloat16` on bf16 copies of its inputs and
            weights (a choice for GPUs with bf16; the weights themselves stay fp32).
    """

    model_type = "bilstm"

    def __init__(
        self,
        vocab_size: int = 30522,
        embedding_size: int = 300,
        hidden_size: int = 300,
        num_layers: int = 1,
        lstm_dropout: float = 0.0,
        classifier_hidden_size: int = 400,
        classifier_dropout: float = 0.15,
        use_multichannel_embedding: bool = False,
        multichannel_filters: list[int] | tuple[int, ...] = (2, 4, 6),
        multichannel_channels: int = 64,
        embedding_init_std: float = 1.0,
        initializer_range: float = 0.02,
        pad_token_id: int | None = 0,
        lstm_dtype: str = "float32",
        **kwargs,
    ):
        if lstm_dtype not in LSTM_DTYPES:
            raise ValueError(f"lstm_dtype must be one of {', '.join(LSTM_DTYPES)}; got {lstm_dtype!r}")
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm_dropout = lstm_dropout
        self.classifier_hidden_size = classifier_hidden_size
        self.classifier_dropout = classifier_dropout
        self.use_multichannel_embedding = use_multichannel_embedding
        self.multichannel_filters = list(multichannel_filters)
        self.multichannel_channels = multichannel_channels
        self.embedding_init_std = embedding_init_std
        self.initializer_range = initializer_range
        self.lstm_dtype = lstm_dtype
        super().__init__(pad_token_id=pad_token_id, **kwargs)

    @property
    def lstm_input_size(self) -> int:
        if self.use_multichannel_embedding:
            return len(self.multichannel_filters) * self.multichannel_channels
        return self.embedding_size


class MultiChannelEmbedding(nn.Module):
    """Token embeddings followed by parallel 1-d convolutions (one per filter width), concatenated and ReLU'd."""

    def __init__(self, config: BiLSTMConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.convs = nn.ModuleList(
            nn.Conv1d(config.embedding_size, config.multichannel_channels, kernel_size=k, padding=k // 2)
            for k in config.multichannel_filters
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        seq_len = input_ids.size(1)
        x = self.word_embeddings(input_ids)
        if attention_mask is not None:  # padded positions look like the convolutions' own zero padding
            x = x * attention_mask.unsqueeze(-1).to(x.dtype)
        x = x.transpose(1, 2)  # (batch, embedding, seq)
        # Even widths with padding k // 2 give seq_len + 1 outputs; keep the first seq_len (output i sees tokens up
        # to i + k // 2 - 1, as in the original, which packed the sequences to their true lengths afterwards).
        channels = [conv(x)[..., :seq_len] for conv in self.convs]
        return torch.relu(torch.cat(channels, dim=1)).transpose(1, 2)  # (batch, seq, channels)


class BiLSTMPreTrainedModel(PreTrainedModel):
    config_class = BiLSTMConfig
    base_model_prefix = "bilstm"
    main_input_name = "input_ids"
    # The models return per-batch means; the Trainer must not pass `num_items_in_batch` to `forward`.
    accepts_loss_kwargs = False

    @property
    def device(self) -> torch.device:
        """The device of the first parameter; a copy whose every layer is int8 dynamic-quantised (packed weights, no
        parameters left) runs on the CPU, so that `pipeline(model=...)` takes it."""
        for parameter in self.parameters():
            return parameter.device
        return torch.device("cpu")

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.embedding_init_std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LSTM):
            bound = module.hidden_size**-0.5  # PyTorch's own LSTM initialisation
            for param in module.parameters():
                init.uniform_(param, -bound, bound)
        elif isinstance(module, (nn.Linear, nn.Conv1d)):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)


class BiLSTMModel(BiLSTMPreTrainedModel):
    """Embedding + BiLSTM; `pooler_output` is the last forward state concatenated with the first backward state."""

    def __init__(self, config: BiLSTMConfig):
        super().__init__(config)
        if config.use_multichannel_embedding:
            self.embeddings = MultiChannelEmbedding(config)
        else:
            self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.lstm = nn.LSTM(
            config.lstm_input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.lstm_dropout if config.num_layers > 1 else 0.0,
            bidirectional=True,
            batch_first=True,
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        if isinstance(self.embeddings, MultiChannelEmbedding):
            return self.embeddings.word_embeddings
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding):
        if isinstance(self.embeddings, MultiChannelEmbedding):
            self.embeddings.word_embeddings = value
        else:
            self.embeddings = value

    def run_lstm(self, inputs):
        """The LSTM outside any autocast region: CUDA autocast would run cuDNN's LSTM in fp16 whatever dtype was asked
        for (bf16 included), without loss scaling. `lstm_dtype: float32` (the default) runs it in fp32;
        `bfloat16` runs it on bf16 copies of its inputs and weights (gradients reach the fp32 weights, the master
        weights, through the casts). Returns the outputs in fp32 and the final hidden states `h_n`."""
        data = inputs if isinstance(inputs, torch.Tensor) else inputs.data
        dtype = LSTM_DTYPES[self.config.lstm_dtype]
        if not torch.is_autocast_enabled(data.device.type) and dtype == torch.float32 and data.dtype == dtype:
            output, (h_n, _) = self.lstm(inputs)  # the common CPU case: no context to enter
            return output, h_n
        with torch.autocast(device_type=data.device.type, enabled=False):
            inputs = inputs.to(dtype)
            if dtype == torch.float32:
                output, (h_n, _) = self.lstm(inputs)
            else:
                weights = {name: p.to(dtype) for name, p in self.lstm.named_parameters()}
                output, (h_n, _) = torch.func.functional_call(self.lstm, weights, (inputs,))
        return output.float(), h_n.float()

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        sequence: bool = True,
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """`(sequence_output or None, pooled, embedded)`. `pooled` is the LSTM's final states (`h_n`): the forward
        direction's at each row's last token, the backward direction's at its first. `sequence=False` skips
        unpacking the per-token outputs when only `pooled` is needed (the classifier)."""
        batch_size, seq_len = input_ids.shape
        hidden = self.config.hidden_size
        if lengths is not None:
            # The collator's right-padded rows and their lengths on the CPU: no mask scan, no copy to the host.
            lengths = lengths if lengths.device.type == "cpu" else lengths.cpu()
            if attention_mask is None and isinstance(self.embeddings, MultiChannelEmbedding):
                positions = torch.arange(seq_len, device=input_ids.device)
                attention_mask = positions < lengths.to(input_ids.device, non_blocking=True)[:, None]
        elif attention_mask is not None and not bool(attention_mask.all()):
            attention_mask = attention_mask.to(torch.long)
            # Left padding (or holes): move each row's real tokens to the front, keeping their order.
            if (attention_mask[:, 1:] > attention_mask[:, :-1]).any():
                order = torch.sort(1 - attention_mask, dim=1, stable=True).indices
                input_ids = input_ids.gather(1, order)
                attention_mask = attention_mask.gather(1, order)
            lengths = attention_mask.sum(dim=1).clamp(min=1).cpu()
        else:
            attention_mask = None  # no padding

        if isinstance(self.embeddings, MultiChannelEmbedding):
            embedded = self.embeddings(input_ids, attention_mask)
        else:
            embedded = self.embeddings(input_ids)
        if lengths is None or (batch_size == 1 and int(lengths[0]) == seq_len):
            # No padding (one sentence, or a batch of equal lengths): the LSTM runs on the whole sequence, unpacked.
            sequence_output, h_n = self.run_lstm(embedded)
        elif batch_size == 1:
            # A single padded sentence is cut to its tokens and takes the same path; padded outputs are zeros.
            length = int(lengths[0])
            tokens_output, h_n = self.run_lstm(embedded[:, :length])
            sequence_output = None
            if sequence:
                sequence_output = tokens_output.new_zeros(1, seq_len, 2 * hidden)
                sequence_output[:, :length] = tokens_output
        elif embedded.device.type == "cpu" and type(self.lstm) is nn.LSTM:
            sequence_output, pooled = self.run_lstm_padded(embedded, lengths.clamp(min=1), sequence)
            return sequence_output, pooled, embedded
        else:
            lengths = lengths.clamp(min=1)
            # Length-grouped batches come longest first: then no sort and no reordering of the rows on the device.
            # (`lengths` is on the CPU: checking the order costs no device sync.)
            descending = bool((lengths[:-1] >= lengths[1:]).all())
            packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=descending)
            packed_out, h_n = self.run_lstm(packed)
            sequence_output = None
            if sequence:
                sequence_output, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seq_len)
        pooled = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # last layer: forward, backward
        return sequence_output, pooled, embedded

    def run_lstm_padded(
        self, embedded: torch.Tensor, lengths: torch.Tensor, sequence: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """The BiLSTM on right-padded rows without packing, exactly: `(sequence_output or None, pooled)`.

        Each direction runs as its own one-directional LSTM over the padded batch, the backward one over every row's
        tokens reversed in place (padding stays at the end), so neither reads padding before a real token. Unpacked
        LSTMs take the CPU's fused (oneDNN) kernel; a packed one steps through the batch sizes one time step at a
        time. `lengths` (CPU, >= 1) index the last real token.
        """
        lstm = self.lstm
        batch_size, seq_len, _ = embedded.shape
        device = embedded.device
        dtype = LSTM_DTYPES[self.config.lstm_dtype]
        positions = torch.arange(seq_len)
        reverse = torch.where(positions < lengths[:, None], lengths[:, None] - 1 - positions, positions).to(device)
        last = (lengths - 1).to(device)
        rows = torch.arange(batch_size, device=device)

        def flip(x):  # each row's real tokens reversed, padding left in place; its own inverse
            return x.gather(1, reverse.unsqueeze(-1).expand(-1, -1, x.size(-1)))

        zeros = embedded.new_zeros(1, batch_size, lstm.hidden_size, dtype=dtype)
        with torch.autocast(device_type=device.type, enabled=False):
            inputs = embedded.to(dtype)
            forward_in, backward_in = inputs, flip(inputs)
            for layer in range(lstm.num_layers):
                outputs = []
                for suffix, x in (("", forward_in), ("_reverse", backward_in)):
                    weights = [
                        getattr(lstm, f"{kind}_l{layer}{suffix}").to(dtype)
                        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                    ]
                    outputs.append(torch.lstm(x, (zeros, zeros), weights, True, 1, 0.0, self.training, False, True)[0])
                forward_out, backward_out = outputs
                if layer < lstm.num_layers - 1 or sequence:
                    aligned = torch.cat([forward_out, flip(backward_out)], dim=-1)
                    if layer < lstm.num_layers - 1:
                        aligned = nn.functional.dropout(aligned, lstm.dropout, self.training)
                        forward_in, backward_in = aligned, flip(aligned)
            pooled = torch.cat([forward_out[rows, last], backward_out[rows, last]], dim=-1).float()
        sequence_output = None
        if sequence:
            mask = (positions[None, :] < lengths[:, None]).to(device)
            sequence_output = aligned.float() * mask.unsqueeze(-1)
        return sequence_output, pooled

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted (BERT tokenizers emit it) and ignored
        lengths: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        r"""
        lengths (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Tokens per row of right-padded `input_ids`, on the CPU (`DistillationDataCollator` gives them): the
            LSTM packs the rows by them with no host sync. Unset: taken from `attention_mask` (any padding side).
        """
        if input_ids is None:
            raise ValueError("BiLSTMModel needs input_ids")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        sequence_output, pooled, embedded = self.encode(input_ids, attention_mask, lengths)
        hidden_states = (embedded, sequence_output) if output_hidden_states else None
        if not return_dict:
            return tuple(v for v in (sequence_output, pooled, hidden_states) if v is not None)
        return BaseModelOutputWithPooling(
            last_hidden_state=sequence_output, pooler_output=pooled, hidden_states=hidden_states
        )


class BiLSTMForSequenceClassification(BiLSTMPreTrainedModel):
    """`BiLSTMModel` + MLP classifier (hidden `classifier_hidden_size`, ReLU, dropout)."""

    def __init__(self, config: BiLSTMConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bilstm = BiLSTMModel(config)
        self.classifier = nn.Sequential(
            nn.Linear(2 * config.hidden_size, config.classifier_hidden_size),
            nn.ReLU(),
            nn.Dropout(config.classifier_dropout),
            nn.Linear(config.classifier_hidden_size, config.num_labels),
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bilstm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Embedding):
        self.bilstm.set_input_embeddings(value)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        sequence_output, pooled, embedded = self.bilstm.encode(
            input_ids, attention_mask, lengths, sequence=bool(output_hidden_states)
        )
        hidden_states = (embedded, sequence_output) if output_hidden_states else None
        logits = self.classifier(pooled)

        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
            else:
                loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        if not return_dict:
            output = (logits,) + ((hidden_states,) if hidden_states is not None else ())
            return ((loss,) + output) if loss is not None else output
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)


BiLSTMConfig.register_for_auto_class()
BiLSTMModel.register_for_auto_class("AutoModel")
BiLSTMForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")


def register() -> None:
    """Make `AutoConfig`/`AutoModel`/`AutoModelForSequenceClassification` know `model_type="bilstm"` (idempotent)."""
    AutoConfig.register(BiLSTMConfig.model_type, BiLSTMConfig, exist_ok=True)
    AutoModel.register(BiLSTMConfig, BiLSTMModel, exist_ok=True)
    AutoModelForSequenceClassification.register(BiLSTMConfig, BiLSTMForSequenceClassification, exist_ok=True)
