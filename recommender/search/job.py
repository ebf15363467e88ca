"""The records a search hands to another process, each serialized one way (JSON).

:class:`TrialJob`: one trial, search process -> trial process (:mod:`recommender.search.executor`
-> :mod:`recommender.search.trial_runner`). Its :class:`~recommender.types.Budget` is decided once,
by the search, and its time limit runs from ``issued_at``: the trial process's start-up comes out
of it. :class:`SearchJob`: a whole search, app -> background search process
(:mod:`recommender.search.background` -> ``recommender search --job FILE``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from recommender.errors import ConfigError
from recommender.search.config import SearchConfig, TaskRef, check_strategy
from recommender.types import Budget

#: a trial process still alive this long after its budget (x2, + this) is killed by its parent
KILL_FACTOR = 2.0
KILL_GRACE_S = 120.0
#: the budget a kill is timed from when a trial has no time limit (a trial-count-only search)
UNTIMED_TRIAL_S = 3600.0
#: the least time a trial process is given to start training, whatever start-up took
MIN_TRIAL_TIME_S = 1.0


@dataclass(frozen=True)
class TrialJob:
    """One training job: what to train, with what, and within which :class:`Budget`.

    >>> job = TrialJob(TaskRef("glue_rte"), "lora", {}, Budget(max_seconds=60), issued_at=time.time())
    >>> TrialJob.from_json(job.to_json()) == job
    True
    """

    task: TaskRef
    method: str
    params: dict[str, Any]
    budget: Budget
    seed: int = 0
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    latency: dict[str, Any] = field(default_factory=dict)  # LatencyConfig's fields
    issued_at: float | None = None  # time.time() when the budget was granted

    def __post_init__(self) -> None:
        if not isinstance(self.task, TaskRef) or not isinstance(self.budget, Budget):
            raise ConfigError(f"TrialJob.task / budget: expected a TaskRef and a Budget, got "
                              f"{type(self.task).__name__} and {type(self.budget).__name__}")
        if not isinstance(self.method, str) or not self.method:
            raise ConfigError(f"TrialJob.method={self.method!r}; expected a method name")
        for name in ("params", "latency"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"TrialJob.{name}={getattr(self, name)!r}; expected a mapping")

    @classmethod
    def for_trial(cls, task: TaskRef, config: SearchConfig, method: str, params: dict[str, Any],
                  max_seconds: float | None) -> TrialJob:
        """The job of one search trial granted ``max_seconds`` now (``None``: no time limit)."""
        return cls(task, method, params, config.trial_budget(max_seconds), seed=config.seed,
                   model=config.model, device=config.device, precision=config.precision,
                   latency={"batch_sizes": sorted({1, config.latency_batch}), "max_seconds": 1.0},
                   issued_at=time.time())

    def budget_left(self, now: float | None = None) -> Budget:
        """The budget from ``now`` on: the time since ``issued_at`` (process start-up, loading
        the task) is spent, the rest of the budget is unchanged."""
        if self.budget.max_seconds is None or self.issued_at is None:
            return self.budget
        spent = (time.time() if now is None else now) - self.issued_at
        left = max(MIN_TRIAL_TIME_S, self.budget.max_seconds - max(0.0, spent))
        return Budget(**{**self.budget.to_dict(), "max_seconds": left})

    @property
    def kill_after_s(self) -> float:
        """Seconds after which the parent kills a trial process that has not ended by itself."""
        return (self.budget.max_seconds or UNTIMED_TRIAL_S) * KILL_FACTOR + KILL_GRACE_S

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task.to_dict(), "method": self.method, "params": self.params,
                "budget": self.budget.to_dict(), "seed": self.seed, "model": self.model,
                "device": self.device, "precision": self.precision, "latency": self.latency,
                "issued_at": self.issued_at}

    @classmethod
    def from_dict(cls, data: Any) -> TrialJob:
        """Rebuild from :meth:`to_dict`; an unknown or missing field is a :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"a trial job must be a mapping, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        missing = sorted({"task", "method", "params", "budget"} - set(data))
        if unknown or missing:
            raise ConfigError(f"trial job: unknown fields {unknown}, missing fields {missing}")
        if not isinstance(data["budget"], dict):
            raise ConfigError(f"TrialJob.budget={data['budget']!r}; expected a mapping of Budget fields")
        return cls(**{**data, "task": TaskRef.from_dict(data["task"]), "budget": Budget.from_dict(data["budget"])})

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> TrialJob:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"a trial job is not JSON: {exc}") from None
        return cls.from_dict(data)


@dataclass(frozen=True)
class SearchJob:
    """A whole search for another process: the task, the configuration and the strategy
    (:data:`~recommender.search.config.STRATEGIES`), nothing else (the storage travels in the
    environment, where no other user can read a password)."""

    task: TaskRef
    config: SearchConfig
    strategy: str = "optuna"

    def __post_init__(self) -> None:
        check_strategy(self.strategy, self.config)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task.to_dict(), "config": self.config.to_dict(), "strategy": self.strategy}

    @classmethod
    def from_dict(cls, data: Any) -> SearchJob:
        """Rebuild from :meth:`to_dict` with the checks of a stored configuration (a job written
        before the strategy was recorded is an Optuna search)."""
        if not isinstance(data, dict) or not {"config", "task"} <= set(data) <= {"config", "task", "strategy"}:
            raise ConfigError(f"a search job must be a mapping of 'task', 'config' and 'strategy', got {data!r:.200}")
        return cls(TaskRef.from_dict(data["task"]), SearchConfig.from_dict(data["config"]),
                   data.get("strategy", "optuna"))

    def write(self, path: Path) -> Path:
        """Write the job to ``path``, readable by this user only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh)
        return path

    @classmethod
    def read(cls, path: str | Path) -> SearchJob:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the search job {path}: {exc}") from None
        return cls.from_dict(data)
