"""Exceptions raised by the package: one base class, subclasses of built-ins where the meaning fits."""

from __future__ import annotations


class RecommenderError(Exception):
    """Base class of every error this package raises on purpose.

    The CLI and the app print ``str(error)`` as one line; the message says what was wrong
    and what to do.
    """


class ConfigError(RecommenderError, ValueError):
    """A configuration value is invalid (names the field, the value and what was expected)."""


class UnknownNameError(RecommenderError, KeyError):
    """A name (task, method, hyperparameter) is not registered; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class DataError(RecommenderError, ValueError):
    """Task data cannot be used as given (bad file, bad column, bad labels)."""


class DataFileNotFoundError(RecommenderError, FileNotFoundError):
    """A data file or folder does not exist."""


class ModelNotFoundError(RecommenderError, FileNotFoundError):
    """A model reference is not a usable local Hugging Face model directory."""


class UnsupportedTaskError(RecommenderError, ValueError):
    """A tuning method does not support a task type."""


class BudgetError(RecommenderError, ValueError):
    """A budget cannot be met by construction (e.g. below the base model's own latency)."""


class StorageError(RecommenderError, RuntimeError):
    """The run store (an Optuna storage) cannot be reached or holds incompatible data."""


class NotMergeableError(RecommenderError, ValueError):
    """A method's weights cannot be merged into the base model correctly."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UnknownNameError:
    """Build the standard 'unknown X' error listing the valid names."""
    return UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")


class StorageNotFoundError(StorageError, FileNotFoundError):
    """A command that only reads a run store was given one that does not exist (nothing is created)."""


class SearchFailedError(RecommenderError, RuntimeError):
    """A search stopped because its trials keep failing; the message quotes the last trial's error."""


class SearchInterrupted(KeyboardInterrupt):
    """SIGTERM or Ctrl-C reached a search or worker: the running trial is failed and the command ends."""
