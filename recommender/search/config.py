"""What a search needs to know, stored in the study so any worker can join it."""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar

from recommender.config_utils import check_choice, check_range
from recommender.errors import ConfigError, StorageError
from recommender.store import SCHEMA_VERSION
from recommender.types import Budget, UserBudgets

OBJECTIVES = ("quality", "pareto")
SAMPLERS = ("tpe", "random", "nsga2")
#: ``sampler="auto"``: the policy of the CLI and the app alike (NSGA-II for a Pareto front)
AUTO_SAMPLER = {"pareto": "nsga2", "quality": "tpe"}
PRUNERS = ("successive_halving", "hyperband", "none")
ISOLATION = ("process", "none")
#: how a search spends its budget: Optuna's sampler and pruner, or the meta-model's portfolio raced
#: (:mod:`recommender.search.race`)
STRATEGIES = ("optuna", "race")

#: Version of the stored search configuration (the study's schema): 2 added the heartbeat
#: settings and ``max_consecutive_failures``; a study written with schema 1 gets their defaults.
CONFIG_SCHEMA = SCHEMA_VERSION
#: field -> the schema that introduced it (missing in an older study: its default is safe)
ADDED_IN = {"heartbeat_interval": 2, "grace_period": 2, "max_consecutive_failures": 2}

D = TypeVar("D")


def _fits(hint: Any, value: Any) -> bool:
    """Whether a stored JSON value fits a field's declared type (ints are floats; bools are neither)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(arg, value) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


def from_stored(cls: type[D], data: Any, what: str, schema: Any = CONFIG_SCHEMA, *,
                missing_defaults: bool = False) -> D:
    """Rebuild dataclass ``cls`` from a stored dict written with ``schema``.

    A field this version does not know, a missing field that was not added after ``schema``
    (any missing field with a default when ``missing_defaults``), or a value of the wrong type
    is one :class:`StorageError` naming the field and both versions.
    """
    versions = f"stored with schema {schema}, this version reads schema {CONFIG_SCHEMA}"
    if not isinstance(data, dict):
        raise StorageError(f"the stored {what} is not a mapping ({versions})")
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise StorageError(f"the stored {what} has an invalid schema version {schema!r} "
                           f"(this version reads schema {CONFIG_SCHEMA})")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        newer = "; it was written by a newer version: upgrade the package" if schema > CONFIG_SCHEMA else ""
        raise StorageError(f"the stored {what} has field {unknown[0]!r} unknown to this version "
                           f"({versions}){newer}")
    hints = typing.get_type_hints(cls)
    for name, spec in known.items():
        if name not in data:
            has_default = spec.default is not MISSING or spec.default_factory is not MISSING
            if ADDED_IN.get(name, 1) <= schema and not (missing_defaults and has_default):
                raise StorageError(f"the stored {what} lacks field {name!r} ({versions})")
        elif not _fits(hints[name], data[name]):
            raise StorageError(f"the stored {what} has {name}={data[name]!r}, not of type {hints[name]} "
                               f"({versions})")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"the stored {what} is invalid: {exc} ({versions})") from None


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
    def from_dict(cls, data: dict[str, Any] | Any, schema: Any = CONFIG_SCHEMA) -> TaskRef:
        """Rebuild from :meth:`to_dict` (absent options take their defaults); data that does not
        fit is a :class:`StorageError`."""
        return from_stored(cls, data, "task reference", schema, missing_defaults=True)


@dataclass(frozen=True)
class SearchConfig:
    """A budgeted search. Times are seconds; ``None`` means no limit.

    ``time_budget`` bounds the whole search, ``trial_time_budget`` each trial (it becomes the
    trial's ``Budget.max_seconds``, see :meth:`trial_budget`). ``latency_budget_ms`` applies at
    ``latency_batch``; ``objective="pareto"`` optimises (metric up, time to convergence down,
    latency down) together. ``sampler="auto"`` resolves through :data:`AUTO_SAMPLER`.
    """

    methods: tuple[str, ...] | None = None
    time_budget: float | None = None
    trial_time_budget: float = 180.0
    n_trials: int | None = None
    latency_budget_ms: float | None = None
    latency_batch: int = 1
    max_trainable_params: int | None = None
    objective: str = "quality"
    sampler: str = "auto"
    pruner: str = "successive_halving"
    warm_start: bool = False
    max_epochs: float = 3.0
    patience: int = 3
    evals_per_epoch: float = 2.0
    seed: int = 0
    model: str | None = None
    device: str = "auto"
    precision: str = "auto"
    isolation: str = "process"
    heartbeat_interval: int = 30
    grace_period: int = 90
    max_consecutive_failures: int = 5

    def __post_init__(self) -> None:
        owner = "SearchConfig"
        check_choice(owner, "objective", self.objective, OBJECTIVES)
        check_choice(owner, "sampler", self.sampler, ("auto", *SAMPLERS))
        if self.sampler == "auto":  # resolved once: the stored configuration names the real sampler
            object.__setattr__(self, "sampler", AUTO_SAMPLER[self.objective])
        check_choice(owner, "pruner", self.pruner, PRUNERS)
        check_choice(owner, "isolation", self.isolation, ISOLATION)
        check_choice(owner, "precision", self.precision, ("auto", "fp32", "bf16"))
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
        check_range(owner, "heartbeat_interval", self.heartbeat_interval, 1, 3600)
        check_range(owner, "grace_period", self.grace_period, 2, None)
        if self.grace_period <= self.heartbeat_interval:
            raise ConfigError(f"SearchConfig.grace_period={self.grace_period} must exceed heartbeat_interval="
                              f"{self.heartbeat_interval}, or live trials are failed between two heartbeats")
        check_range(owner, "max_consecutive_failures", self.max_consecutive_failures, 1, None)
        if self.time_budget is None and self.n_trials is None:
            raise ConfigError("give a time budget or a number of trials, or the search never ends")

    @classmethod
    def from_budgets(cls, budgets: UserBudgets, **search: Any) -> SearchConfig:
        """The search that checks a recommendation within a practitioner's budgets (the app and
        the CLI build theirs here): ``budgets.time_budget_s`` is each trial's training time
        (default 180 s), the latency, batch, trainable-parameter limits and hardware carry over;
        ``search`` gives the rest (``time_budget`` for the whole search, ``n_trials``, ...).

        >>> SearchConfig.from_budgets(UserBudgets(time_budget_s=300), time_budget=3600).trial_time_budget
        300
        """
        mapped: dict[str, Any] = {
            "trial_time_budget": budgets.time_budget_s, "latency_budget_ms": budgets.latency_budget_ms,
            "latency_batch": budgets.latency_batch, "max_trainable_params": budgets.max_trainable_params,
            "device": budgets.hardware}
        twice = sorted(set(mapped) & set(search))
        if twice:
            raise ConfigError(f"SearchConfig.from_budgets: {twice} come from the UserBudgets; do not give them again")
        return cls(**{k: v for k, v in mapped.items() if v is not None}, **search)

    def trial_budget(self, max_seconds: float | None) -> Budget:
        """A trial's Budget: ``max_seconds`` (what the search grants this trial, at most
        ``trial_time_budget``) plus this configuration's epoch, patience and evaluation limits."""
        return Budget.from_settings(self, max_seconds=max_seconds)

    @property
    def constrained(self) -> bool:
        return self.latency_budget_ms is not None or self.max_trainable_params is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields plus ``schema``, the version :meth:`from_dict` checks."""
        out = asdict(self)
        out["methods"] = list(self.methods) if self.methods else None
        out["schema"] = CONFIG_SCHEMA
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | Any) -> SearchConfig:
        """Rebuild a stored configuration (schema 1 had no ``schema`` key); one
        :class:`StorageError` names any field that does not fit and both versions."""
        if not isinstance(data, dict):
            return from_stored(cls, data, "search configuration")
        data = dict(data)
        schema = data.pop("schema", 1)
        if isinstance(data.get("methods"), list):
            data["methods"] = tuple(data["methods"])
        return from_stored(cls, data, "search configuration", schema)


def check_strategy(strategy: str, config: SearchConfig) -> None:
    """A :class:`ConfigError` unless ``config`` can run as a ``strategy`` search (a race splits a
    time budget and ranks by the dev metric)."""
    check_choice("search", "strategy", strategy, STRATEGIES)
    if strategy == "race" and config.time_budget is None:
        raise ConfigError("a race needs a time budget (--time-budget): it splits it")
    if strategy == "race" and config.objective != "quality":
        raise ConfigError("a race ranks configurations by the dev metric: it needs the quality objective, "
                          f"not {config.objective!r}")
