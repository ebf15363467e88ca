"""The sections of a bundle's record: where the choice comes from, the method, the task, the
budgets, the measured numbers, the weights and the files.

Each has ``to_dict`` (its JSON form, key for key) and ``from_dict`` (which names a missing field).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from recommender.errors import ConfigError
from recommender.types import Budget, Record

S = TypeVar("S", bound="Section")


def as_mapping(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"bundle {where}: expected a mapping, got {type(data).__name__}")
    return data


class Section(Record):
    """A section whose JSON keys are its field names; ``from_dict`` names a missing field."""

    where: ClassVar[str] = "section"

    @classmethod
    def from_dict(cls: type[S], data: Any) -> S:
        data = as_mapping(data, cls.where)
        required = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise ConfigError(f"bundle {cls.where} lacks {', '.join(missing)}")
        return super().from_dict(dict(data))  # type: ignore[misc]


# --- where the choice comes from ---------------------------------------------------------------
@dataclass(frozen=True)
class RunnerUp(Section):
    """The best other complete trial of the study."""

    where: ClassVar[str] = "source.runner_up"
    trial: int
    method: str | None
    metric: float


@dataclass(frozen=True)
class TrialSource(Section):
    """A measured trial of a search study in a run store (its URL with the password masked)."""

    where: ClassVar[str] = "source"
    _nested: ClassVar[dict[str, type]] = {"runner_up": RunnerUp}
    storage: str
    study: str
    trial: int
    selected_as: str
    objective: str
    rank_by_metric: int | None
    n_complete_trials: int
    runner_up: RunnerUp | None
    constraint_violations: dict[str, float]
    warm_start: bool

    @property
    def chosen_as_best(self) -> bool:
        return self.selected_as.startswith("best")


@dataclass(frozen=True)
class RecommendationSource:
    """A meta-model recommendation, made before any trial on the task."""

    KIND: ClassVar[str] = "meta-model recommendation"
    rank: int | None = None
    rationale: Any = None
    notes: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, "rank": self.rank, "rationale": self.rationale, "notes": self.notes}

    @classmethod
    def from_dict(cls, data: Any) -> RecommendationSource:
        data = as_mapping(data, "source")
        return cls(rank=data.get("rank"), rationale=data.get("rationale"), notes=data.get("notes"))


# --- the method and its hyperparameters -------------------------------------------------------
@dataclass(frozen=True)
class MergeInfo:
    """Whether the method folds into the base weights; for a measured trial, what was seen."""

    implemented: bool
    reason: str | None
    measured: bool = False  # a trial's merge check is recorded below
    verified: bool | None = None
    max_abs_diff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"implemented": self.implemented, "reason": self.reason}
        if self.measured:
            out.update(verified=self.verified, max_abs_diff=self.max_abs_diff)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> MergeInfo:
        data = as_mapping(data, "merge")
        return cls(implemented=bool(data.get("implemented")), reason=data.get("reason"),
                   measured="verified" in data, verified=data.get("verified"),
                   max_abs_diff=data.get("max_abs_diff"))


@dataclass(frozen=True)
class MethodSection:
    """The method, its configs and hyperparameters; a PEFT config or the reason there is none.

    Written flat at the top of the record (``"method"`` is :attr:`name`)."""

    KEYS: ClassVar[tuple[str, ...]] = ("method", "method_description", "uses_adapters", "adapters_config",
                                       "method_params", "hyperparameters", "searched_hyperparameters", "merge")
    name: str
    description: str
    uses_adapters: bool
    adapters_config: dict[str, Any] | None
    method_params: dict[str, Any]
    hyperparameters: dict[str, Any]
    searched_hyperparameters: dict[str, Any]
    merge: MergeInfo
    peft_config: dict[str, Any] | None = None
    peft_reason: str | None = None

    def __post_init__(self) -> None:
        if (self.peft_config is None) == (self.peft_reason is None):
            raise ConfigError(f"bundle method {self.name!r}: give either peft_config or peft_reason, not "
                              f"{'both' if self.peft_config is not None else 'neither'}")

    @property
    def peft_equivalent(self) -> bool:
        return self.peft_config is not None

    @property
    def shown_params(self) -> dict[str, Any]:
        """The hyperparameters a reader looks for: the searched ones, else all."""
        return self.searched_hyperparameters or self.hyperparameters

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.name, "method_description": self.description, "uses_adapters": self.uses_adapters,
            "adapters_config": self.adapters_config, "method_params": self.method_params,
            "hyperparameters": self.hyperparameters, "searched_hyperparameters": self.searched_hyperparameters,
            "peft_equivalent": self.peft_equivalent, "merge": self.merge.to_dict(),
        }
        if self.peft_config is not None:
            out["peft_config"] = self.peft_config
        else:
            out["peft_reason"] = self.peft_reason
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MethodSection:
        missing = [key for key in cls.KEYS if key not in data]
        if missing:
            raise ConfigError(f"bundle record lacks {', '.join(missing)}")
        return cls(name=str(data["method"]), description=data["method_description"],
                   uses_adapters=bool(data["uses_adapters"]), adapters_config=data["adapters_config"],
                   method_params=dict(data["method_params"]), hyperparameters=dict(data["hyperparameters"]),
                   searched_hyperparameters=dict(data["searched_hyperparameters"] or {}),
                   merge=MergeInfo.from_dict(data["merge"]), peft_config=data.get("peft_config"),
                   peft_reason=data.get("peft_reason"))


# --- task, budget, numbers, files --------------------------------------------------------------
@dataclass(frozen=True)
class TaskSection(Section):
    """The task reference (``TaskRef`` dict, data paths made absolute), spec and meta-features."""

    where: ClassVar[str] = "task"
    ref: dict[str, Any]
    spec: dict[str, Any] | None
    metafeatures: dict[str, Any]

    @property
    def source(self) -> str:
        return str(self.ref.get("source"))


@dataclass(frozen=True)
class RetrainLatency(Section):
    """The latency measurement a retrain repeats (off when the time limit did not bind)."""

    where: ClassVar[str] = "budget.latency"
    enabled: bool
    batch_sizes: tuple[int, ...]
    max_seconds: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch_sizes", tuple(int(b) for b in self.batch_sizes))


@dataclass(frozen=True)
class BundleBudget:
    """The trial's budget (measured bundles) and the one a retrain uses."""

    retrain: Budget
    latency: RetrainLatency
    time_limit_binding: bool
    trial: Budget | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.trial is None else {"trial": self.trial.to_dict()}
        out.update(retrain=self.retrain.to_dict(), latency=self.latency.to_dict(),
                   time_limit_binding=self.time_limit_binding)
        if self.note is not None:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: Any) -> BundleBudget:
        data = as_mapping(data, "budget")
        for key in ("retrain", "latency"):
            if key not in data:
                raise ConfigError(f"bundle budget lacks {key}")
        trial = data.get("trial")
        return cls(retrain=Budget.from_dict(dict(as_mapping(data["retrain"], "budget.retrain"))),
                   latency=RetrainLatency.from_dict(data["latency"]),
                   time_limit_binding=bool(data.get("time_limit_binding", False)),
                   trial=None if trial is None else Budget.from_dict(dict(as_mapping(trial, "budget.trial"))),
                   note=data.get("note"))


@dataclass(frozen=True)
class MeasuredNumbers(Section):
    """What the trial measured (a ``RunResult``'s numbers; latency rows and curve as JSON)."""

    where: ClassVar[str] = "measured"
    status: str
    stop_reason: str | None
    metric_name: str
    metric: float | None
    metrics: dict[str, Any] | None
    time_to_best_s: float | None
    time_to_within_1pct_s: float | None
    steps_to_best: int | None
    examples_to_best: int | None
    tokens_to_best: int | None
    flops_to_best: float | None
    train_seconds: float | None
    eval_seconds: float | None
    wall_seconds: float | None
    steps: int | None
    epochs: float | None
    latency: dict[str, Any]
    trainable_params: int | None
    head_params: int | None
    total_params: int | None
    peak_memory_mb: float | None
    artifact_bytes: int | None
    mergeable: bool | None
    merge_max_abs_diff: float | None
    n_train: int | None
    n_dev: int | None
    curve: list[Any]
    extra: dict[str, Any]


@dataclass(frozen=True)
class WeightsInfo(Section):
    """The retrain that produced ``weights/`` and whether it reproduced the trial's metric."""

    where: ClassVar[str] = "weights"
    artifact: str
    merged: str | None
    artifact_kind: str
    retrained_metric: float | None
    trial_metric: float | None
    abs_diff: float | None
    reproduced: bool | None
    merge_max_abs_diff: float | None
    steps: int | None
    stop_reason: str | None
    retrain_seconds: float


@dataclass(frozen=True)
class BundleFiles:
    """The bundle's files, by role (absent roles are not written)."""

    config: str
    train_script: str = "train.py"
    readme: str = "README.md"
    peft_config: str | None = None
    peft_dir: str | None = None
    weights: str | None = None

    @classmethod
    def for_bundle(cls, fmt: str, peft: bool, weights: bool) -> BundleFiles:
        return cls(config=f"config.{fmt}", peft_config="peft_config.json" if peft else None,
                   peft_dir="peft/adapter_config.json" if peft else None, weights="weights/" if weights else None)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: Any) -> BundleFiles:
        data = as_mapping(data, "files")
        if "config" not in data:
            raise ConfigError("bundle files lacks config")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
