"""distil: distil a fine-tuned BERT teacher into a tiny BiLSTM student (Tang et al., 2019), the Hugging Face way."""

__version__ = "0.1.0"

# `import distil` registers model_type="bilstm" with AutoConfig, AutoModel and AutoModelForSequenceClassification.
from distil.modeling_bilstm import register as _register_bilstm  # noqa: E402

_register_bilstm()
