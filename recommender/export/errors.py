"""The export's own error."""

from __future__ import annotations

from collections.abc import Callable

from recommender.errors import RecommenderError

#: reports what a long export step is doing (the CLI prints it to stderr)
Progress = Callable[[str], None]


class ExportError(RecommenderError, RuntimeError):
    """A bundle cannot be exported as asked (the message says why; nothing was written)."""
