"""The budgeted search: Optuna over (method, hyperparameters) with constraints, pruning,
a total time budget, warm starts and workers sharing one storage.

Flow: :func:`create_search_study` records the task, meta-features and config in the study
(any worker can join it from the storage alone) -> :func:`run_search` / :func:`run_worker`
run trials until the time budget or trial count is spent -> :func:`summarize` reports the
best feasible trial (or Pareto front), or, when nothing is feasible, the nearest trials and by
how much each constraint is missed.

The objective (sampling, pruning, recording a trial) is :mod:`recommender.search.objective`;
the report is :mod:`recommender.search.summary`; what keeps a search process well-behaved
(fresh seeds, failure streaks, interrupts) is :mod:`recommender.search.control`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from recommender.errors import BudgetError, SearchFailedError, SearchInterrupted, StorageError
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.control import (
    FailureStreak,
    is_late_tell,
    sampler_seed,
    trial_error,
    trial_log_filter,
)
from recommender.search.executor import trial_processes
from recommender.search.objective import MIN_TRIAL_SECONDS, Objective, Progress, TrialFailed, feasible
from recommender.search.spaces import METHOD_PARAM, get_space
from recommender.search.summary import SearchResult, TrialSummary, summarize
from recommender.store import (
    mask_url,
    open_existing_storage,
    open_storage,
    removed_if_failed,
    storage_exists,
    storage_url,
)
from recommender.studies import study_names
from recommender.study_record import StudyRecord, read_record, write_record

__all__ = ["SearchResult", "TrialSummary", "create_search_study", "join_study", "load_search", "make_pruner",
           "make_sampler", "run_search", "run_worker", "summarize"]
_log = logging.getLogger("recommender.search")


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
    """Create (or reopen) the study for this task and config; refuse to mix tasks in one study.

    Everything that can be refused is checked before a new store is written, and a new SQLite
    file is removed again when creating the study fails.
    """
    import optuna

    from recommender.metafeatures import compute_metafeatures
    from recommender.training.environment import describe_environment, resolve_device

    task = task_ref.load()
    methods = _methods_for(task, config)
    features = compute_metafeatures(task, config.model)
    url = storage_url(storage)
    existing = None
    if storage_exists(url):
        try:
            existing = optuna.load_study(study_name=study_name, storage=open_storage(url, heartbeat=False))
        except KeyError:
            existing = None
    if existing is not None:
        _check_same_search(existing, study_name, features.fingerprint, config)
        return existing
    if config.latency_budget_ms is not None:
        base = base_latency_ms(task, config)
        if config.latency_budget_ms < base:
            raise BudgetError(
                f"latency budget {config.latency_budget_ms:g} ms at batch {config.latency_batch} is below "
                f"the base model's own latency here ({base:.1f} ms, measured now): no method can meet it. "
                "Raise the budget, lower the batch size or use a faster device")
    with removed_if_failed(url):
        store = open_storage(url, heartbeat=False)
        directions: list[Any] = ["maximize", "minimize", "minimize"] if config.objective == "pareto" \
            else ["maximize"]
        try:
            study = optuna.create_study(study_name=study_name, storage=store, directions=directions,
                                        sampler=make_sampler(config))
        except optuna.exceptions.DuplicatedStudyError:  # another command created it meanwhile
            return optuna.load_study(study_name=study_name, storage=store)
        write_record(study, StudyRecord(
            kind="search", task_ref=task_ref, task=task.spec.to_dict(), task_name=task.name,
            metafeatures=features, config=config, methods=tuple(methods), metric_name=task.spec.metric,
            model=config.model or "bundled",
            environment=describe_environment(resolve_device(config.device), with_calibration=False).to_dict(),
            created_at=time.time()))
    if warm_start is not None or config.warm_start:
        from recommender.search.warm_start import MetaModelTopK

        provider = warm_start or MetaModelTopK(k=max(3, min(len(methods), 5)), storage=storage)
        for params in provider.configs(task, features, methods):
            study.enqueue_trial(params, user_attrs={"warm_start": True}, skip_if_exists=True)
    return study


def _check_same_search(existing: Any, study_name: str, fingerprint: str, config: SearchConfig) -> None:
    """Refuse to reopen a study of another task, or one searched for another objective."""
    record = read_record(existing)
    if record is None:
        return
    old = record.metafeatures.fingerprint if record.metafeatures is not None else None
    if old is not None and old != fingerprint:
        raise StorageError(
            f"study {study_name!r} already exists for task {record.task_label or None!r} "
            f"(data fingerprint {old}); this task's fingerprint is {fingerprint}. "
            "Use another --study name: one study holds one task")
    if record.config is not None and record.config.objective != config.objective:
        raise StorageError(f"study {study_name!r} was created with objective "
                           f"{record.config.objective!r}; use another --study name")


def join_study(storage: str | None, study_name: str) -> tuple[Any, SearchConfig, StudyRecord]:
    """Load a search study from an existing store with the heartbeat settings stored in it.

    Returns ``(study, stored config, study record)``; a missing store, study or an incompatible
    stored configuration is a :class:`StorageError` (nothing is created).
    """
    import optuna

    url = storage_url(storage)
    store = open_existing_storage(url, heartbeat=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=store)
    except KeyError:
        names = study_names(store)
        raise StorageError(f"no study {study_name!r} in {mask_url(url)}; existing: "
                           f"{', '.join(names) or 'none'}") from None
    record = read_record(study)
    if record is None or not record.is_search:
        raise StorageError(f"study {study_name!r} was not created by `recommender search`")
    if record.config is None or record.task_ref is None:
        missing = "search configuration" if record.config is None else "task reference"
        raise StorageError(f"study {study_name!r} holds no {missing}")
    config = record.config
    if "://" in url:  # RDB storages heartbeat; a journal file cannot
        store = open_storage(url, heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period)
        study = optuna.load_study(study_name=study_name, storage=store)
    return study, config, record


def make_sampler(config: SearchConfig, seed: int | None = None) -> Any:
    """The study's sampler, seeded with ``seed`` (default ``config.seed``); a process joining a
    study passes :func:`~recommender.search.control.sampler_seed` so its random start-up trials
    differ from those already run (constant liar only helps once TPE models the history)."""
    import optuna

    seed = config.seed if seed is None else seed
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    # constant_liar keeps parallel workers from sampling the same point
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                      n_startup_trials=5)


def make_pruner(config: SearchConfig) -> Any:
    import optuna

    if config.pruner == "none" or config.objective == "pareto":
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource="auto", reduction_factor=3)


# --- running -----------------------------------------------------------------------------
def _optimize(study: Any, config: SearchConfig, n_trials: int | None, time_budget: float | None,
              progress: Progress | None, start: float | None = None, seed_offset: int = 0) -> float:
    """Run trials until the trial count or time budget is spent.

    Raises :class:`SearchFailedError` after ``config.max_consecutive_failures`` failed trials in
    a row, and :class:`SearchInterrupted` after Ctrl-C / SIGTERM (the running trial is FAIL).
    """
    import optuna

    record = read_record(study)
    assert record is not None and record.task_ref is not None and record.methods is not None  # joined
    start = start or time.time()
    deadline = start + time_budget if time_budget is not None else None
    objective = Objective(study, record.task_ref, config, list(record.methods), deadline, progress)
    study.pruner = make_pruner(config)  # pruners are not stored; set for this process
    existing = study.get_trials(deepcopy=False)
    busy = any(t.state == optuna.trial.TrialState.RUNNING for t in existing)
    study.sampler = make_sampler(config, sampler_seed(config.seed, study.study_name, len(existing),
                                                      seed_offset or (os.getpid() if busy else 0)))
    target = n_trials
    streak = FailureStreak(config.max_consecutive_failures)

    def finished_enough() -> bool:
        if target is not None and sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
                                      for t in study.get_trials(deepcopy=False)) >= target:
            return True
        return deadline is not None and deadline - time.time() < MIN_TRIAL_SECONDS + objective.startup

    def after_trial(study: Any, trial: Any) -> None:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        if progress is not None and objective.interrupted is None:
            progress({"trial": trial.number, "state": trial.state.name, "method": trial.params.get(METHOD_PARAM),
                      "metric": trial.user_attrs.get("metric"), "n_finished": len(done),
                      "elapsed_s": time.time() - start,
                      "time_left_s": None if deadline is None else max(0.0, deadline - time.time()),
                      "best": _best_metric(study, config),
                      "error": trial_error(trial) if trial.state.name == "FAIL" else None})
        if streak.update(trial.state.name, trial.number, trial.user_attrs.get("error")) or finished_enough():
            study.stop()

    warned: set[int] = set()
    with trial_log_filter(objective.silenced, quiet=progress is not None), trial_processes():
        while not finished_enough() and objective.interrupted is None and streak.count < streak.limit:
            if deadline is not None and deadline - time.time() < MIN_TRIAL_SECONDS:
                break
            try:
                study.optimize(objective, callbacks=[after_trial], catch=(TrialFailed,), gc_after_trial=True)
                break
            except KeyboardInterrupt as exc:  # outside a trial (sampling, storage): nothing to fail
                raise SearchInterrupted(str(exc) or "interrupted") from None
            except Exception as exc:
                if not is_late_tell(exc) or objective.current is None:
                    raise
                objective.silenced.add(objective.current)
                if objective.current not in warned:
                    warned.add(objective.current)
                    _log.warning("warning: trial %s was failed by another worker (no heartbeat within %s s) "
                                 "before this worker finished it; its result is dropped", objective.current,
                                 config.grace_period)
    if objective.interrupted is not None:
        number, why = objective.interrupted
        raise SearchInterrupted(f"{str(why) or 'interrupted'}: trial {number} marked FAIL")
    if streak.count >= streak.limit:
        raise SearchFailedError(
            f"search stopped: {streak.count} trials in a row failed; the last (trial {streak.last_trial}) "
            f"failed with: {str(streak.last_error or 'no error recorded').splitlines()[0][:400]}")
    return time.time() - start


def _best_metric(study: Any, config: SearchConfig) -> float | None:
    import optuna

    values = [t.user_attrs.get("metric") for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if feasible(t)]
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
    create_search_study(task_ref, storage, study_name, config, warm_start)
    study, stored, _ = join_study(storage, study_name)  # with the heartbeat settings stored in it
    config = dataclasses.replace(config, heartbeat_interval=stored.heartbeat_interval,
                                 grace_period=stored.grace_period)
    elapsed = _optimize(study, config, config.n_trials, config.time_budget, progress, start)
    return summarize(study, config, elapsed)


def run_worker(storage: str | None, study_name: str, *, n_trials: int | None = None,
               time_budget: float | None = None, progress: Progress | None = None,
               heartbeat_interval: int | None = None, grace_period: int | None = None) -> SearchResult:
    """Join an existing study (created by ``search --create-only``) and run trials for it.

    Workers heartbeat through the storage with the settings stored in the study at creation: a
    trial whose worker stopped beating for ``grace_period`` seconds is marked FAIL by the next
    worker and re-queued once. ``heartbeat_interval`` / ``grace_period`` that differ from the
    study's are ignored with a warning (one worker must not judge another by other rules).
    """
    study, config, _ = join_study(storage, study_name)
    given = {"heartbeat_interval": heartbeat_interval, "grace_period": grace_period}
    differ = [f"{k}={v}" for k, v in given.items() if v is not None and v != getattr(config, k)]
    if differ:
        _log.warning("warning: ignoring %s: study %r uses heartbeat_interval=%s and grace_period=%s, set "
                     "when it was created, on every worker", ", ".join(differ), study_name,
                     config.heartbeat_interval, config.grace_period)
    elapsed = _optimize(study, config, n_trials if n_trials is not None else config.n_trials,
                        time_budget if time_budget is not None else config.time_budget, progress,
                        seed_offset=os.getpid())
    return summarize(study, config, elapsed)


def load_search(storage: str | None, study_name: str) -> tuple[Any, SearchConfig]:
    """A study and its stored configuration, for watching (nothing is created; a missing study, or
    one whose attributes are still being written, is a ``KeyError``)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=open_existing_storage(storage, heartbeat=False))
    record = read_record(study)
    if record is None or record.config is None:  # created a moment ago: its attributes are being written
        raise KeyError(f"study {study_name!r} holds no search configuration yet")
    return study, record.config


