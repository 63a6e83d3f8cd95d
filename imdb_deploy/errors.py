"""Errors a user can act on. The CLI turns each into a message and exit code 1."""

from __future__ import annotations


class ImdbDeployError(Exception):
    """Base class: the message names the bad value and the fix."""


class DataError(ImdbDeployError):
    """Training or evaluation data is missing or malformed (names file, row and problem)."""


class HubUnreachableError(ImdbDeployError):
    """Something had to come from the Hugging Face Hub and the Hub could not be reached."""


class ModelLoadError(ImdbDeployError):
    """A model folder is missing, incomplete, or not a DistilBERT-style sequence classifier."""


class ParityError(ImdbDeployError):
    """An exported model disagrees with its PyTorch original beyond the gate's thresholds."""


class InputError(ImdbDeployError):
    """A row of a prediction input file is malformed (names the line and the fix)."""


class ConfigError(ImdbDeployError):
    """A stage configuration value is out of range (quotes the value)."""


class OutputError(ImdbDeployError):
    """An output cannot be written where asked: it exists, overlaps an input, or the disk refuses it."""


class ISAMismatchWarning(UserWarning):
    """The folder's default variant was measured on a CPU with other instruction-set flags."""
