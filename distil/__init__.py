"""distil: distil a fine-tuned BERT teacher into a tiny BiLSTM student (Tang et al., 2019), the Hugging Face way."""

__version__ = "0.1.0"
