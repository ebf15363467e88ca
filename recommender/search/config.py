"""What a search needs to know, stored in the study so any worker can join it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recommender.config_utils import check_choice, check_range
from recommender.errors import ConfigError

OBJECTIVES = ("quality", "pareto")
SAMPLERS = ("tpe", "random", "nsga2")
PRUNERS = ("successive_halving", "hyperband", "none")
ISOLATION = ("process", "none")


@dataclass(frozen=True)
class TaskRef:
    """How to rebuild a task in any process: a bundled name or a file path, plus options."""

    source: str
    overrides: dict[str, Any] = field(default_factory=dict)
    max_train: int | None = None
    max_dev: int | None = None
    seed: int = 0

    def load(self) -> Any:
        from recommender.tasks import load_task

        task = load_task(self.source, **self.overrides)
        if self.max_train or self.max_dev:
            task = task.subsample(self.max_train, self.max_dev, seed=self.seed)
        return task

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskRef:
        return cls(**data)


@dataclass(frozen=True)
class SearchConfig:
    """A budgeted search. Times are seconds; ``None`` means no limit.

    ``latency_budget_ms`` applies at ``latency_batch``; ``objective="pareto"`` optimises
    (metric up, time to convergence down, latency down) together.
    """

    methods: tuple[str, ...] | None = None
    time_budget: float | None = None
    trial_time_budget: float = 180.0
    n_trials: int | None = None
    latency_budget_ms: float | None = None
    latency_batch: int = 1
    max_trainable_params: int | None = None
    objective: str = "quality"
    sampler: str = "tpe"
    pruner: str = "successive_halving"
    warm_start: bool = False
    max_epochs: float = 3.0
    patience: int = 3
    evals_per_epoch: float = 2.0
    seed: int = 0
    model: str | None = None
    device: str = "auto"
    isolation: str = "process"

    def __post_init__(self) -> None:
        owner = "SearchConfig"
        check_choice(owner, "objective", self.objective, OBJECTIVES)
        check_choice(owner, "sampler", self.sampler, SAMPLERS)
        check_choice(owner, "pruner", self.pruner, PRUNERS)
        check_choice(owner, "isolation", self.isolation, ISOLATION)
        check_range(owner, "trial_time_budget", self.trial_time_budget, 5, None)
        if self.time_budget is not None:
            check_range(owner, "time_budget", self.time_budget, 0, None, low_open=True)
            if self.time_budget < 10:
                raise ConfigError(f"SearchConfig.time_budget={self.time_budget}s cannot fit a single trial; "
                                  "give at least 10 s (a useful search needs minutes)")
        if self.n_trials is not None:
            check_range(owner, "n_trials", self.n_trials, 1, None)
        if self.latency_budget_ms is not None:
            check_range(owner, "latency_budget_ms", self.latency_budget_ms, 0, None, low_open=True)
        check_range(owner, "latency_batch", self.latency_batch, 1, 4096)
        if self.max_trainable_params is not None:
            check_range(owner, "max_trainable_params", self.max_trainable_params, 1, None)
        if self.time_budget is None and self.n_trials is None:
            raise ConfigError("give a time budget or a number of trials, or the search never ends")

    @property
    def constrained(self) -> bool:
        return self.latency_budget_ms is not None or self.max_trainable_params is not None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["methods"] = list(self.methods) if self.methods else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        data = dict(data)
        if data.get("methods") is not None:
            data["methods"] = tuple(data["methods"])
        return cls(**data)
