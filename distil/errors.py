"""The errors that mean "your input is wrong": a recipe prints each as one line naming the file, line or field."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a config value, a data file, a model, a transfer set); the message names where it is."""


class ConfigError(InputError):
    """A config file, key or flag that cannot be used."""


class TSVFormatError(InputError):
    """A GLUE TSV file that cannot be read; the message names the file and line."""
