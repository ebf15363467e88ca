"""What keeps a search process well-behaved: fresh sampler seeds on resume, a stop after
repeated failures, Ctrl-C / SIGTERM turned into one failed trial, and Optuna's failure log lines
without tracebacks."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_FAILED = re.compile(r"^Trial (\d+) failed")


def sampler_seed(seed: int, study_name: str, n_trials: int, offset: int = 0) -> int:
    """The sampler seed for a run that joins a study already holding ``n_trials`` trials.

    An empty study keeps ``seed`` (a fresh search is reproducible); resuming, or a second
    process on the same study, gets another seed, so the random start-up trials do not replay.
    """
    if n_trials == 0 and offset == 0:
        return seed
    digest = hashlib.sha256(f"{seed}/{study_name}/{n_trials}/{offset}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


class FailureStreak:
    """Counts this process's consecutive FAIL trials; pruned or complete trials reset it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.last_error: str | None = None
        self.last_trial: int | None = None

    def update(self, state: str, trial: int, error: str | None) -> bool:
        """Record a finished trial; ``True`` once ``limit`` trials in a row have failed."""
        if state != "FAIL":
            self.count = 0
            return False
        self.count += 1
        self.last_error, self.last_trial = error, trial
        return self.count >= self.limit


class TrialLogFilter(logging.Filter):
    """Optuna logs a failed trial with its traceback, then its (empty) value: keep one line.

    Lines about ``silenced`` trials (interrupted, or already failed by another worker: the search
    reports those itself) are dropped, and so are all failure lines when ``quiet`` (a progress
    line already shows the trial's state and error).
    """

    def __init__(self, silenced: set[int], quiet: bool = False) -> None:
        super().__init__()
        self.quiet = quiet
        self.silenced = silenced  # shared with the caller, which adds to it as trials end

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        match = _FAILED.match(message)
        if match is None:
            return True
        if self.quiet or int(match.group(1)) in self.silenced or "failed with value" in message:
            return False
        record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def trial_log_filter(silenced: set[int], quiet: bool = False) -> Iterator[TrialLogFilter]:
    """Install a :class:`TrialLogFilter` on Optuna's optimize logger for the block."""
    logger = logging.getLogger("optuna.study._optimize")
    log_filter = TrialLogFilter(silenced, quiet)
    logger.addFilter(log_filter)
    try:
        yield log_filter
    finally:
        logger.removeFilter(log_filter)


def is_late_tell(exc: BaseException) -> bool:
    """Optuna's error when telling a trial another worker has already failed (stale heartbeat)."""
    import optuna

    return isinstance(exc, optuna.exceptions.UpdateFinishedTrialError) or (
        isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a"))


def trial_error(trial: Any) -> str:
    """The first line of a finished trial's recorded error."""
    error = trial.user_attrs.get("error") if trial is not None else None
    return str(error).splitlines()[0][:400] if error else "no error recorded"
