"""The budgeted search: Optuna over (method, hyperparameters) with constraints, pruning,
a total time budget, warm starts and workers sharing one storage.

Flow: :func:`create_search_study` records the task, meta-features and config in the study
(any worker can join it from the storage alone) -> :func:`run_search` / :func:`run_worker`
run trials until the time budget or trial count is spent -> :func:`summarize` reports the
best feasible trial (or Pareto front), or, when nothing is feasible, the nearest trials and by
how much each constraint is missed.

Pruning. Single objective: an Optuna pruner (successive halving by default) on the dev metric
reported at each evaluation, with training examples seen as the step. Pareto objective (where
Optuna has no pruner): after its second evaluation a trial is pruned when a completed feasible
trial dominates its *optimistic projection* -- metric = best so far + the gain made so far
(it may improve as much again), time to convergence = the training time of its best evaluation
so far (it cannot converge sooner), latency = the lowest latency any finished trial of the same
method measured (0, i.e. never dominated, until one has finished).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import BudgetError, StorageError
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.executor import Outcome, run_in_process, run_in_subprocess
from recommender.search.spaces import METHOD_PARAM, get_space, suggest
from recommender.store import SCHEMA_VERSION, STUDY_ATTR, open_storage, result_attrs, trial_result
from recommender.types import Budget, EvalPoint

MIN_TRIAL_SECONDS = 20.0
END_MARGIN_S = 2.0  # recording a trial in the storage after it ends
STARTUP_ESTIMATE = {"process": 8.0, "none": 1.0}
Progress = Callable[[dict[str, Any]], None]


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records FAIL and the search goes on."""


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


# --- study creation ----------------------------------------------------------------------
def _methods_for(task: Any, config: SearchConfig) -> list[str]:
    from recommender.compare import resolve_methods

    methods = resolve_methods(list(config.methods) if config.methods else None, task.task_type)
    for m in methods:
        get_method_class_check(m, task.task_type)
        get_space(m)
    return methods


def get_method_class_check(method: str, task_type: str) -> None:
    from recommender.methods import get_method_class

    get_method_class(method)().check_task(task_type)


def base_latency_ms(task: Any, config: SearchConfig) -> float:
    """Median latency of the untouched base model at the budget's batch size and the task's
    p95 token length (what no method can beat)."""
    from recommender.metafeatures import compute_metafeatures
    from recommender.models import load_model, resolve_model_path
    from recommender.training.environment import resolve_device
    from recommender.training.latency import measure_latency

    features = compute_metafeatures(task, config.model)
    seq_len = max(8, min(128, int(features.tokens_p95)))
    device = resolve_device(config.device)
    model = load_model(resolve_model_path(config.model), task.task_type, task.num_labels).to(device)
    stats = measure_latency(model, batch_size=config.latency_batch, seq_len=seq_len,
                            vocab_size=model.config.vocab_size, device=device, max_seconds=1.0)
    return stats.p50_ms


def create_search_study(task_ref: TaskRef, storage: str | None, study_name: str, config: SearchConfig,
                        warm_start: Any = None) -> Any:
    """Create (or reopen) the study for this task and config; refuse to mix tasks in one study."""
    import optuna

    from recommender.metafeatures import compute_metafeatures
    from recommender.training.environment import describe_environment, resolve_device

    task = task_ref.load()
    methods = _methods_for(task, config)
    store = open_storage(storage)
    features = compute_metafeatures(task, config.model)
    try:
        existing = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        existing = None
    if existing is not None:
        info = existing.user_attrs.get(STUDY_ATTR, {})
        old = info.get("metafeatures", {}).get("fingerprint")
        if old is not None and old != features.fingerprint:
            raise StorageError(
                f"study {study_name!r} already exists for task {info.get('task', {}).get('name')!r} "
                f"(data fingerprint {old}); this task's fingerprint is {features.fingerprint}. "
                "Use another --study name: one study holds one task")
        if info.get("config", {}).get("objective", config.objective) != config.objective:
            raise StorageError(f"study {study_name!r} was created with objective "
                               f"{info['config']['objective']!r}; use another --study name")
        return existing
    if config.latency_budget_ms is not None:
        base = base_latency_ms(task, config)
        if config.latency_budget_ms < base:
            raise BudgetError(
                f"latency budget {config.latency_budget_ms:g} ms at batch {config.latency_batch} is below "
                f"the base model's own latency here ({base:.1f} ms, measured now): no method can meet it. "
                "Raise the budget, lower the batch size or use a faster device")
    if config.objective == "pareto":
        study = optuna.create_study(study_name=study_name, storage=store,
                                    directions=["maximize", "minimize", "minimize"], sampler=make_sampler(config))
    else:
        study = optuna.create_study(study_name=study_name, storage=store, direction="maximize",
                                    sampler=make_sampler(config))
    study.set_user_attr(STUDY_ATTR, {
        "schema": SCHEMA_VERSION, "kind": "search", "task_ref": task_ref.to_dict(),
        "task": task.spec.to_dict(), "task_name": task.name, "metafeatures": features.to_dict(),
        "config": config.to_dict(), "methods": methods, "metric_name": task.spec.metric,
        "model": config.model or "bundled",
        "environment": describe_environment(resolve_device(config.device), with_calibration=False).to_dict(),
        "created_at": time.time(),
    })
    if warm_start is not None or config.warm_start:
        from recommender.search.warm_start import MetaModelTopK

        provider = warm_start or MetaModelTopK(k=max(3, min(len(methods), 5)))
        for params in provider.configs(task, features, methods):
            study.enqueue_trial(params, user_attrs={"warm_start": True}, skip_if_exists=True)
    return study


def make_sampler(config: SearchConfig, seed_offset: int = 0) -> Any:
    """The study's sampler; workers pass distinct ``seed_offset`` so their random start-up
    trials differ (constant liar only helps once TPE models the history)."""
    import optuna

    config = SearchConfig.from_dict({**config.to_dict(), "seed": config.seed + seed_offset})

    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=config.seed, population_size=8)
    # constant_liar keeps parallel workers from sampling the same point
    return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, group=True, constant_liar=True,
                                      n_startup_trials=5)


def make_pruner(config: SearchConfig) -> Any:
    import optuna

    if config.pruner == "none" or config.objective == "pareto":
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource="auto", reduction_factor=3)


# --- the objective -----------------------------------------------------------------------
class _Objective:
    def __init__(self, study: Any, task_ref: TaskRef, config: SearchConfig, methods: list[str],
                 deadline: float | None, progress: Progress | None) -> None:
        self.study, self.task_ref, self.config, self.methods = study, task_ref, config, methods
        self.deadline, self.progress = deadline, progress
        self.startup = STARTUP_ESTIMATE[config.isolation]
        self.stopped_for_budget = False

    def trial_budget(self) -> float | None:
        """Seconds this trial may take, start-up of its process included."""
        budget = self.config.trial_time_budget
        if self.deadline is not None:
            budget = min(budget, self.deadline - time.time() - END_MARGIN_S)
        return budget

    def __call__(self, trial: Any) -> Any:
        import optuna

        method, params = suggest(trial, self.methods)
        seconds = self.trial_budget()
        # only the *total* budget can run out; a short trial budget alone never stops the search
        if self.deadline is not None and seconds is not None and seconds - self.startup < MIN_TRIAL_SECONDS / 2:
            self.stopped_for_budget = True
            self.study.stop()
            raise optuna.TrialPruned("no time left in the search budget for this trial")
        job = {
            "task": self.task_ref.to_dict(), "method": method, "params": params,
            "budget": Budget(max_seconds=seconds, max_epochs=self.config.max_epochs, patience=self.config.patience,
                             evals_per_epoch=self.config.evals_per_epoch).to_dict(),
            "model": self.config.model, "device": self.config.device, "seed": self.config.seed,
            "latency": {"batch_sizes": sorted({1, self.config.latency_batch}), "max_seconds": 1.0},
            # absolute deadline: the trial process's start-up time comes out of its budget
            "deadline": None if seconds is None else time.time() + seconds,
        }
        trial.set_user_attr("trial_time_budget_s", seconds)
        check = self._prune_check(trial, method)
        if self.config.isolation == "process":
            outcome = run_in_subprocess(job, check, kill_after=(seconds or 3600) * 2 + 120)
        else:
            outcome = run_in_process(job, check)
        return self._record(trial, method, outcome)

    def _prune_check(self, trial: Any, method: str) -> Callable[[EvalPoint], bool]:
        if self.config.objective == "quality":
            def check(point: EvalPoint) -> bool:
                trial.report(point.metric, step=point.examples)
                return bool(trial.should_prune())
            return check
        first: list[float] = []
        best = {"metric": -math.inf, "time": 0.0}

        def check_pareto(point: EvalPoint) -> bool:
            first.append(point.metric)
            if point.metric > best["metric"]:
                best.update(metric=point.metric, time=point.train_seconds)
            if len(first) < 2:
                return False
            optimistic = (best["metric"] + max(0.0, best["metric"] - first[0]), best["time"],
                          self._min_latency(method))
            return any(_dominates(values, optimistic) for values in self._front_values())
        return check_pareto

    def _front_values(self) -> list[tuple[float, float, float]]:
        import optuna

        trials = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return [tuple(t.values) for t in trials if t.values and _feasible(t)]

    def _min_latency(self, method: str) -> float:
        import optuna

        values = [t.values[2] for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                  if t.params.get(METHOD_PARAM) == method and t.values]
        return min(values) if values else 0.0

    def _record(self, trial: Any, method: str, outcome: Outcome) -> Any:
        import optuna

        result = outcome.result
        if result is None:
            trial.set_user_attr("status", "failed")
            trial.set_user_attr("error", outcome.error)
            raise TrialFailed(outcome.error)
        if outcome.wall_seconds > result.wall_seconds:
            self.startup = 0.5 * self.startup + 0.5 * (outcome.wall_seconds - result.wall_seconds)
        for key, value in result_attrs(result, self.config.latency_batch).items():
            trial.set_user_attr(key, value)
        latency = result.latency_ms(self.config.latency_batch)
        if self.config.latency_budget_ms is not None:
            trial.set_constraint("latency_ms", (latency if latency is not None else 1e9) - self.config.latency_budget_ms)
        if self.config.max_trainable_params is not None:
            trial.set_constraint("trainable_params", float((result.trainable_params or 0) - self.config.max_trainable_params))
        if result.status == "pruned":
            raise optuna.TrialPruned(f"pruned at step {result.steps}")
        if not result.has_metric or result.status in ("failed", "oom"):
            raise TrialFailed(f"{result.status}: {result.error or 'no evaluation finished within the trial budget'}")
        if self.config.objective == "pareto":
            return result.best_metric, result.time_to_best_s or 0.0, latency if latency is not None else 1e9
        return result.best_metric


def _feasible(trial: Any) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """a dominates b for (metric up, time down, latency down)."""
    signs = (1, -1, -1)
    no_worse = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
    better = any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))
    return no_worse and better


# --- running -----------------------------------------------------------------------------
def _optimize(study: Any, config: SearchConfig, n_trials: int | None, time_budget: float | None,
              progress: Progress | None, start: float | None = None, seed_offset: int = 0) -> float:
    import optuna

    info = study.user_attrs[STUDY_ATTR]
    task_ref = TaskRef.from_dict(info["task_ref"])
    start = start or time.time()
    deadline = start + time_budget if time_budget is not None else None
    objective = _Objective(study, task_ref, config, list(info["methods"]), deadline, progress)
    study.pruner = make_pruner(config)  # pruners are not stored; set for this process
    study.sampler = make_sampler(config, seed_offset)
    target = n_trials

    def after_trial(study: Any, trial: Any) -> None:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if progress is not None:
            progress({"trial": trial.number, "state": trial.state.name, "method": trial.params.get(METHOD_PARAM),
                      "metric": trial.user_attrs.get("metric"), "n_finished": len(done),
                      "elapsed_s": time.time() - start,
                      "time_left_s": None if deadline is None else max(0.0, deadline - time.time()),
                      "best": _best_metric(study, config)})
        if target is not None and sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                                      for t in done) >= target:
            study.stop()
        if deadline is not None and deadline - time.time() < MIN_TRIAL_SECONDS + objective.startup:
            study.stop()

    if deadline is None or deadline - time.time() >= MIN_TRIAL_SECONDS:
        study.optimize(objective, callbacks=[after_trial], catch=(TrialFailed,), gc_after_trial=True)
    return time.time() - start


def _best_metric(study: Any, config: SearchConfig) -> float | None:
    import optuna

    values = [t.user_attrs.get("metric") for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if _feasible(t)]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def run_search(task_ref: TaskRef | str, storage: str | None, study_name: str, config: SearchConfig,
               *, progress: Progress | None = None, warm_start: Any = None) -> SearchResult:
    """Create or resume the study and run it within ``config``'s budgets; return the report.

    >>> run_search("glue_rte", "sqlite:///runs.db", "rte", SearchConfig(time_budget=1800))  # doctest: +SKIP
    """
    start = time.time()  # the time budget covers study creation too
    if isinstance(task_ref, str):
        task_ref = TaskRef(task_ref)
    study = create_search_study(task_ref, storage, study_name, config, warm_start)
    elapsed = _optimize(study, config, config.n_trials, config.time_budget, progress, start)
    return summarize(study, config, elapsed)


def run_worker(storage: str, study_name: str, *, n_trials: int | None = None, time_budget: float | None = None,
               progress: Progress | None = None, heartbeat_interval: int | None = None,
               grace_period: int | None = None) -> SearchResult:
    """Join an existing study (created by ``search --create-only``) and run trials for it.

    Workers heartbeat through the storage: a trial whose worker stopped beating for
    ``grace_period`` seconds is marked FAIL by the next worker and re-queued once.
    """
    import optuna

    store = open_storage(storage, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    try:
        study = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        names = [s.study_name for s in optuna.study.get_all_study_summaries(store, include_best_trial=False)]
        raise StorageError(f"no study {study_name!r} in {storage}; existing: {', '.join(names) or 'none'}") from None
    info = study.user_attrs.get(STUDY_ATTR)
    if not info or info.get("kind") != "search":
        raise StorageError(f"study {study_name!r} was not created by `recommender search`")
    config = SearchConfig.from_dict(info["config"])
    elapsed = _optimize(study, config, n_trials if n_trials is not None else config.n_trials,
                        time_budget if time_budget is not None else config.time_budget, progress,
                        seed_offset=os.getpid())
    return summarize(study, config, elapsed)


def load_search(storage: str | None, study_name: str) -> tuple[Any, SearchConfig]:
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage, heartbeat=False))
    return study, SearchConfig.from_dict(study.user_attrs[STUDY_ATTR]["config"])


# --- reporting ---------------------------------------------------------------------------
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
        error=trial.user_attrs.get("error"))


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
        best = [t for t in feasible if not any(_dominates(values(o), values(t)) for o in feasible)]
        best.sort(key=lambda t: -(t.metric or 0))
    else:
        best = sorted(feasible, key=lambda t: -(t.metric or 0))[:1]
    nearest: list[TrialSummary] = []
    if not best and complete:
        scale = {"latency_ms": config.latency_budget_ms or 1.0, "trainable_params": config.max_trainable_params or 1}
        nearest = sorted(complete, key=lambda t: sum(v / scale.get(k, 1.0) for k, v in t.violations.items()))[:3]
    info = study.user_attrs.get(STUDY_ATTR, {})
    return SearchResult(study_name=study.study_name, objective=config.objective,
                        metric_name=info.get("metric_name", "metric"), counts=counts, best=best,
                        nearest=nearest, trials=trials, elapsed_s=elapsed, time_budget_s=config.time_budget)
