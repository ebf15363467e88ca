"""The report of a search: counts, the best feasible trial (or Pareto front), or, when nothing is
feasible, the nearest trials and by how much each constraint is missed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.search.config import SearchConfig
from recommender.search.objective import dominates
from recommender.search.spaces import METHOD_PARAM
from recommender.store import trial_result
from recommender.study_record import read_record


@dataclass
class TrialSummary:
    number: int
    state: str
    method: str | None
    params: dict[str, Any]
    metric: float | None
    time_to_best_s: float | None
    latency_ms: float | None
    trainable_params: int | None
    feasible: bool
    violations: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    baseline: float | None = None  # the constant predictor's score, same metric and dev set
    verdict: str = ""  # the score beside its baseline, in words (RunResult.verdict)


@dataclass
class SearchResult:
    """The report of a search: counts, the best feasible trial(s), or the nearest ones."""

    study_name: str
    objective: str
    metric_name: str
    counts: dict[str, int]
    best: list[TrialSummary]
    nearest: list[TrialSummary]
    trials: list[TrialSummary]
    elapsed_s: float | None = None
    time_budget_s: float | None = None

    @property
    def feasible_found(self) -> bool:
        return bool(self.best)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _summary(trial: Any, config: SearchConfig) -> TrialSummary:
    result = trial_result(trial)
    violations = {k: v for k, v in trial.constraints.items() if v > 0}
    return TrialSummary(
        number=trial.number, state=trial.state.name, method=trial.params.get(METHOD_PARAM),
        params={k.split(".", 1)[1]: v for k, v in trial.params.items() if "." in k},
        metric=trial.user_attrs.get("metric"), time_to_best_s=result.time_to_best_s if result else None,
        latency_ms=result.latency_ms(config.latency_batch) if result else None,
        trainable_params=result.trainable_params if result else None,
        feasible=trial.state.name == "COMPLETE" and not violations, violations=violations,
        error=trial.user_attrs.get("error"),
        baseline=result.baseline_metric if result else None, verdict=result.verdict() if result else "")


def summarize(study: Any, config: SearchConfig, elapsed: float | None = None) -> SearchResult:
    """Best feasible trial (quality) or feasible Pareto front; if none is feasible, the three
    nearest trials ranked by their relative constraint violation. ``counts`` also shows trials
    still RUNNING (on any worker) or WAITING (enqueued); ``trials`` lists the finished ones."""
    every = study.get_trials(deepcopy=False)
    trials = [_summary(t, config) for t in every if t.state.is_finished()]
    counts: dict[str, int] = {}
    for trial in every:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    complete = [t for t in trials if t.state == "COMPLETE" and t.metric is not None]
    feasible = [t for t in complete if t.feasible]
    if config.objective == "pareto":
        def values(t: TrialSummary) -> tuple[float, float, float]:
            return (t.metric or 0.0, t.time_to_best_s or 0.0, t.latency_ms or 1e9)
        best = [t for t in feasible if not any(dominates(values(o), values(t)) for o in feasible)]
        best.sort(key=lambda t: -(t.metric or 0))
    else:
        best = sorted(feasible, key=lambda t: -(t.metric or 0))[:1]
    nearest: list[TrialSummary] = []
    if not best and complete:
        scale = {"latency_ms": config.latency_budget_ms or 1.0, "trainable_params": config.max_trainable_params or 1}
        nearest = sorted(complete, key=lambda t: sum(v / scale.get(k, 1.0) for k, v in t.violations.items()))[:3]
    record = read_record(study)
    return SearchResult(study_name=study.study_name, objective=config.objective,
                        metric_name=record.metric_label if record else "metric", counts=counts, best=best,
                        nearest=nearest, trials=trials, elapsed_s=elapsed, time_budget_s=config.time_budget)
