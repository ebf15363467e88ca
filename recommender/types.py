"""The records handed from one stage to the next.

task -> :class:`TaskSpec` + :class:`MetaFeatures` -> :class:`Budget` -> :class:`RunResult`
-> (search, knowledge base) -> :class:`Recommendation`.

Every record is a dataclass that round-trips through JSON (``to_dict`` / ``from_dict``), which is
how it is stored in the run store (Optuna user attributes) and in the knowledge base.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from recommender.errors import ConfigError

TASK_TYPES = ("classification", "regression", "extractive_qa", "token_classification")
RUN_STATUSES = ("complete", "budget_exhausted", "pruned", "failed", "oom")

T = TypeVar("T", bound="Record")
#: a run "learned" when it beats the constant predictor by at least this much (metric units)
LEARNED_MARGIN = 0.02
#: a budget counts as met when it is met with this probability: a latency budget by the
#: predicted 90 % quantile (what the replay evaluation chose, ``replay_eval.LATENCY_QUANTILE``);
#: parameter and storage budgets are known exactly (probability 0 or 1)
MIN_P_MEETS = 0.9
#: the batch size latency is reported at beside batch 1 (a serving batch), unless one is given
SERVING_BATCH = 32
#: the app's upload limit (its server refuses bigger uploads, and the app checks it itself)
MAX_UPLOAD_MB = 20


class Record:
    """Mixin: JSON-friendly ``to_dict`` / ``from_dict`` for flat-ish dataclasses."""

    _nested: ClassVar[dict[str, type]] = {}
    _nested_lists: ClassVar[dict[str, type]] = {}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Record):
                value = value.to_dict()
            elif isinstance(value, (list, tuple)) and value and isinstance(value[0], Record):
                value = [v.to_dict() for v in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                continue  # tolerate fields added by newer versions
            if key in cls._nested and isinstance(value, dict):
                value = cls._nested[key].from_dict(value)  # type: ignore[attr-defined]
            elif key in cls._nested_lists and isinstance(value, list):
                value = [cls._nested_lists[key].from_dict(v) for v in value]  # type: ignore[attr-defined]
            kwargs[key] = value
        return cls(**kwargs)


@dataclass
class TaskSpec(Record):
    """Declarative description of a task: where its data is and how to read it.

    Bundled tasks keep one in ``data/tasks/<name>/task.json``; a user's file gets one built by
    :func:`recommender.tasks.load_task` from column inference and explicit overrides.
    """

    name: str
    task_type: str
    metric: str
    train_file: str
    dev_file: str | None = None
    text_col: str = "text"
    text_pair_col: str | None = None
    label_col: str = "label"
    label_names: list[str] | None = None
    positive_label: str | None = None  # binary: the class F1 / AP / ROC AUC are about
    negative_label: str | None = None  # micro-F1 leaves this class out (e.g. "no relation")
    metric_reason: str = ""  # why this metric: the benchmark's own (with source) or the rule
    language: str = "und"
    eval_language: str | None = None
    domain: str = "unknown"
    description: str = ""
    source: str = ""
    license: str = ""
    n_train: int | None = None
    n_dev: int | None = None
    dev_fraction: float = 0.2
    split_seed: int = 13

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise ConfigError(
                f"task {self.name!r}: task_type={self.task_type!r}; expected one of {TASK_TYPES}"
            )
        from recommender.tasks.metrics import check_metric

        n_labels = len(self.label_names) if self.label_names and self.task_type == "classification" else None
        check_metric(self.task_type, self.metric, n_labels)
        for role in ("positive_label", "negative_label"):
            value = getattr(self, role)
            if value is not None and self.label_names and value not in self.label_names:
                raise ConfigError(f"task {self.name!r}: {role}={value!r} is not one of its labels")
        if not 0.0 < self.dev_fraction < 1.0:
            raise ConfigError(f"dev_fraction={self.dev_fraction}; expected a value in (0, 1)")
        if self.eval_language is None:
            self.eval_language = self.language

    @property
    def is_pair(self) -> bool:
        return self.text_pair_col is not None and self.task_type in ("classification", "regression")

    @property
    def cross_lingual(self) -> bool:
        return self.eval_language != self.language


@dataclass
class MetaFeatures(Record):
    """What the recommender knows about a task before training on it (see ``metafeatures.py``)."""

    version: int
    fingerprint: str
    task_type: str
    n_train: int
    n_dev: int
    n_labels: int
    label_entropy: float
    imbalance_ratio: float
    is_pair: bool
    language: str
    eval_language: str
    cross_lingual: bool
    tokens_mean: float
    tokens_p95: float
    unk_rate: float
    fertility: float
    model_params: int
    model_name: str = ""


@dataclass
class Budget(Record):
    """When a training run stops; every limit is optional.

    ``max_seconds`` bounds the whole run (training, the final evaluation, and latency
    measurement): the trainer reserves time for what must happen after training.
    Call it with the run's status to ask whether to stop::

        budget = Budget(max_seconds=120, patience=3)
        budget.should_stop(elapsed=130.0, epoch=1.0, step=40, evals_since_best=0, best=None)
    """

    max_seconds: float | None = None
    max_epochs: float = 3.0
    max_steps: int | None = None
    patience: int | None = 3
    min_epochs: float = 0.0  # early stopping cannot trigger before this many epochs
    #: nor before this many while no evaluation has beaten the first by more than ``min_delta``
    #: (a run still at its starting score, e.g. the constant predictor, has not converged)
    flat_min_epochs: float = 0.0
    min_delta: float = 0.0  # an evaluation must beat the best by more than this to reset patience
    target_score: float | None = None
    eval_every_steps: int | None = None
    evals_per_epoch: float = 2.0

    def __post_init__(self) -> None:
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ConfigError(f"Budget.max_seconds={self.max_seconds}; expected a positive number")
        if self.max_epochs <= 0:
            raise ConfigError(f"Budget.max_epochs={self.max_epochs}; expected a positive number")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"Budget.max_steps={self.max_steps}; expected an integer >= 1")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"Budget.patience={self.patience}; expected an integer >= 1 or None")
        if self.eval_every_steps is not None and self.eval_every_steps < 1:
            raise ConfigError(f"Budget.eval_every_steps={self.eval_every_steps}; expected >= 1")
        if self.evals_per_epoch <= 0:
            raise ConfigError(f"Budget.evals_per_epoch={self.evals_per_epoch}; expected > 0")
        if not 0 <= self.min_epochs <= self.max_epochs:
            raise ConfigError(f"Budget.min_epochs={self.min_epochs}; expected 0 <= min_epochs <= max_epochs")
        if not 0 <= self.flat_min_epochs <= self.max_epochs:
            raise ConfigError(f"Budget.flat_min_epochs={self.flat_min_epochs}; expected 0 <= flat_min_epochs "
                              "<= max_epochs")
        if not 0 <= self.min_delta < 1:
            raise ConfigError(f"Budget.min_delta={self.min_delta}; expected a value in [0, 1)")
        for name in ("max_seconds", "max_epochs", "target_score", "evals_per_epoch", "min_epochs", "flat_min_epochs",
                     "min_delta"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"Budget.{name}={value}; expected a finite number")

    @classmethod
    def from_settings(cls, settings: Any, **given: Any) -> Budget:
        """The one way a configuration becomes a run's Budget: every limit ``settings`` (a
        ``SearchConfig``, a ``SweepConfig``) declares under a Budget field's name and does not
        leave ``None``, then ``given`` on top (``max_seconds``: what a search grants one trial).

        >>> Budget.from_settings(SimpleNamespace(patience=5, max_epochs=None), max_seconds=60.0)  # doctest: +SKIP
        """
        shared = {f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)
                  if getattr(settings, f.name, None) is not None}
        return cls(**{**shared, **given})

    def stop_reason(
        self, *, elapsed: float, step: int, total_steps: int, evals_since_best: int,
        best: float | None, epoch: float = math.inf, risen: bool = True,
    ) -> str | None:
        """Return why training must stop now, or None to go on (``risen``: whether an evaluation
        has beaten the first by more than ``min_delta``; see ``flat_min_epochs``)."""
        if self.max_seconds is not None and elapsed >= self.max_seconds:
            return "time_budget"
        if step >= total_steps:
            return "max_steps" if self.max_steps is not None and step >= self.max_steps else "epochs"
        floor = self.min_epochs if risen else max(self.min_epochs, self.flat_min_epochs)
        if self.patience is not None and evals_since_best >= self.patience and epoch >= floor:
            return "early_stopping"
        if self.target_score is not None and best is not None and best >= self.target_score:
            return "target_reached"
        return None


@dataclass
class EvalPoint(Record):
    """One evaluation on the dev set during training."""

    step: int
    epoch: float
    train_seconds: float
    wall_seconds: float
    examples: int
    tokens: int
    metric: float
    metrics: dict[str, float] = field(default_factory=dict)
    train_loss: float | None = None  # mean training loss since the previous evaluation
    flops: float | None = None  # training FLOPs so far (hardware-independent cost)


@dataclass
class LatencyStats(Record):
    """Inference latency of the trained model at one batch size and sequence length."""

    batch_size: int
    seq_len: int
    p50_ms: float
    p95_ms: float
    merged: bool = False
    repeats: int = 0
    precision: str = "fp32"  # the precision it was served in
    paired: bool = False  # timed pass for pass in turn with the base model (their ratio is not noise)


@dataclass
class Environment(Record):
    """Where a run happened: enough to compare runs across machines."""

    device: str
    cpu: str
    gpu: str | None
    threads: int
    platform: str
    python: str
    packages: dict[str, str]
    calibration: dict[str, float] = field(default_factory=dict)
    cpu_load: float | None = None


@dataclass
class RunResult(Record):
    """Everything measured about one (task, method, hyperparameters) training run."""

    _nested: ClassVar[dict[str, type]] = {"environment": Environment}
    _nested_lists: ClassVar[dict[str, type]] = {"curve": EvalPoint, "latency": LatencyStats}

    task: str
    method: str
    params: dict[str, Any]
    status: str
    metric_name: str
    best_metric: float | None = None  # the best checkpoint, scored on the whole dev set
    best_metrics: dict[str, Any] = field(default_factory=dict)
    metric_se: float | None = None  # bootstrap standard error of best_metric
    baseline_metric: float | None = None  # the constant predictor, same metric, same dev set
    baseline_metrics: dict[str, Any] = field(default_factory=dict)
    baseline: str = ""  # the constant predictor in words ("always predicting 'no'")
    precision: str = "fp32"  # training precision: fp32, bf16 (autocast) or fp16
    monitor_n: int | None = None  # dev examples the curve was evaluated on (None: all)
    curve: list[EvalPoint] = field(default_factory=list)
    stop_reason: str | None = None
    error: str | None = None
    time_to_best_s: float | None = None
    time_to_within_1pct_s: float | None = None
    steps_to_best: int | None = None
    examples_to_best: int | None = None
    tokens_to_best: int | None = None
    flops_to_best: float | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    wall_seconds: float = 0.0
    steps: int = 0
    epochs: float = 0.0
    examples_seen: int = 0
    tokens_seen: int = 0
    samples_per_second: float | None = None
    train_flops: float | None = None
    peak_memory_mb: float | None = None
    trainable_params: int | None = None
    head_params: int | None = None
    total_params: int | None = None
    artifact_bytes: int | None = None
    mergeable: bool | None = None
    merge_max_abs_diff: float | None = None
    latency: list[LatencyStats] = field(default_factory=list)
    base_latency: list[LatencyStats] = field(default_factory=list)
    n_train: int | None = None
    n_dev: int | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    environment: Environment | None = None
    #: wall seconds of each part of the run: setup (model, data, method), training (the loop and
    #: its evaluations), final_scoring, measurements (saving, merge check, latency)
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in RUN_STATUSES:
            raise ConfigError(f"RunResult.status={self.status!r}; expected one of {RUN_STATUSES}")
        self.latency = [LatencyStats.from_dict(x) if isinstance(x, dict) else x for x in self.latency]
        self.base_latency = [
            LatencyStats.from_dict(x) if isinstance(x, dict) else x for x in self.base_latency
        ]

    @property
    def has_metric(self) -> bool:
        return self.best_metric is not None and math.isfinite(self.best_metric)

    @property
    def gain(self) -> float | None:
        """How far the result is above the constant predictor (None without both)."""
        if not self.has_metric or self.baseline_metric is None:
            return None
        return float(self.best_metric) - self.baseline_metric  # type: ignore[arg-type]

    @property
    def learned(self) -> bool | None:
        """Beat the constant predictor by a clear margin: at least LEARNED_MARGIN and two
        standard errors. None where no baseline was recorded."""
        gain = self.gain
        if gain is None:
            return None
        return gain >= max(LEARNED_MARGIN, 2 * (self.metric_se or 0.0))

    def verdict(self) -> str:
        """One line: the score beside its baseline, and whether it learned, in plain words."""
        if not self.has_metric:
            return f"no {self.metric_name}: {self.status}"
        text = f"{self.best_metric:.3f} {self.metric_name}"
        if self.metric_se:
            text += f" (± {self.metric_se:.3f})"
        if self.baseline_metric is None:
            return text
        if self.learned:
            return f"{text}; baseline {self.baseline_metric:.3f} ({self.baseline})"
        return f"{text} = no better than {self.baseline} ({self.baseline_metric:.3f}): did not learn"

    def latency_ms(self, batch_size: int, *, merged: bool | None = None) -> float | None:
        """p50 latency at ``batch_size``: merged if measured and ``merged`` is not False."""
        rows = [x for x in self.latency if x.batch_size == batch_size]
        if merged is not False:
            best = [x for x in rows if x.merged]
            if best:
                return best[0].p50_ms
            if merged:
                return None
        rows = [x for x in rows if not x.merged]
        return rows[0].p50_ms if rows else None

    def base_latency_ms(self, batch_size: int) -> float | None:
        rows = [x for x in self.base_latency if x.batch_size == batch_size]
        return rows[0].p50_ms if rows else None


@dataclass
class UserBudgets(Record):
    """What a practitioner can afford; every budget is optional."""

    time_budget_s: float | None = None
    latency_budget_ms: float | None = None
    latency_batch: int = 1
    max_trainable_params: int | None = None
    n_tasks: int = 1
    storage_budget_mb: float | None = None
    hardware: str = "auto"

    def __post_init__(self) -> None:
        for name in ("time_budget_s", "latency_budget_ms", "storage_budget_mb"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"UserBudgets.{name}={value}; expected a positive number or None")
        if self.max_trainable_params is not None and self.max_trainable_params < 1:
            raise ConfigError(f"UserBudgets.max_trainable_params={self.max_trainable_params}; expected >= 1")
        if self.n_tasks < 1:
            raise ConfigError(f"UserBudgets.n_tasks={self.n_tasks}; expected >= 1")
        if self.latency_batch < 1:
            raise ConfigError(f"UserBudgets.latency_batch={self.latency_batch}; expected >= 1")


@dataclass
class Candidate(Record):
    """One recommended (method, hyperparameters) with predicted numbers and intervals.

    ``predicted_metric`` is the dev score predicted within the user's time budget (at
    convergence without one): below rank 1 it is the number the rank is based on; rank 1 is the
    regret-aware pick, which ``ranked_by`` names. ``predicted_gain`` is the same prediction minus
    the task's baseline (a constant predictor's score); ``predicted_gap`` is it minus the top
    pick's (positive only when the robust default keeps rank 1 though another configuration has
    a higher predicted metric; ``why`` then says so).
    """

    rank: int
    method: str
    params: dict[str, Any]
    predicted_metric: float
    metric_interval: list[float]
    predicted_gap: float
    predicted_time_s: float | None
    time_interval: list[float] | None
    predicted_latency_ms: float | None
    latency_interval: list[float] | None
    predicted_memory_mb: float | None
    trainable_params: int | None
    storage_mb: float
    add_task_cost: str
    p_meets: dict[str, float]
    feasible: bool
    why: str = ""
    predicted_gain: float | None = None
    robust_default: bool = False
    ranked_by: str = ""  # what put it at its rank, in words (recommend._ranked_by)

    def missed_budgets(self) -> dict[str, float]:
        """The budgets this candidate is not predicted to meet, with their probabilities."""
        return {k: p for k, p in self.p_meets.items() if p < MIN_P_MEETS}

    def budget_verdict(self, time_budget_s: float | None = None) -> str:
        """Whether it is predicted to meet the budgets set, with the probability that decides it:
        ``yes (P 0.93)``, ``no: latency (P 0.12)``, ``no budget set``, or, with only a time budget
        (``time_budget_s``; training stops there, so it is always met), ``yes: stops at the time
        budget``."""
        if not self.p_meets:
            return "no budget set" if time_budget_s is None else "yes: stops at the time budget"
        missed = self.missed_budgets()
        if missed:
            return "no: " + ", ".join(f"{k} (P {p:.2f})" for k, p in missed.items())
        return f"yes (P {min(self.p_meets.values()):.2f})"


@dataclass
class Recommendation(Record):
    """The ranked answer for a task under budgets, with the evidence behind it."""

    _nested: ClassVar[dict[str, type]] = {"metafeatures": MetaFeatures, "budgets": UserBudgets}
    _nested_lists: ClassVar[dict[str, type]] = {"candidates": Candidate}

    task: str
    metric_name: str
    metafeatures: MetaFeatures
    budgets: UserBudgets
    candidates: list[Candidate]
    feasible_found: bool
    binding_budget: str | None = None
    relax_advice: str | None = None
    nearest_tasks: list[dict[str, Any]] = field(default_factory=list)
    top_features: list[str] = field(default_factory=list)
    hardware: dict[str, Any] = field(default_factory=dict)
    n_runs: int = 0
    baseline_metric: float | None = None  # a constant predictor's score on this task
    quality_at_s: float | None = None  # the training time the predicted metrics are for (None: convergence)
    extrapolation: list[str] = field(default_factory=list)  # why the task is unlike the knowledge base
    warnings: list[str] = field(default_factory=list)
