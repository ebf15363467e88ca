"""Sweep: every registered method (defaults plus sampled configurations) over bundled tasks at
several training-set sizes, recorded in the run store. Resumable: finished runs are skipped.

One study per (task, size), named ``sweep:<task>:n<size>``. Each run is written with a single
``add_trial`` once it has finished, so an interrupted sweep leaves no half-written record.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from recommender.store import SCHEMA_VERSION, STUDY_ATTR, open_storage, result_attrs
from recommender.types import Budget, RunResult


@dataclass(frozen=True)
class SweepConfig:
    tasks: tuple[str, ...]
    sizes: tuple[int, ...] = (500, 2000)
    methods: tuple[str, ...] | None = None
    n_sampled: int = 0
    max_dev: int = 300
    trial_time_budget: float = 120.0
    max_epochs: float = 4.0
    patience: int = 4
    evals_per_epoch: float = 2.0
    seed: int = 0
    model: str | None = None
    device: str = "auto"


def study_name(task: str, size: int) -> str:
    return f"sweep:{task}:n{size}"


def plan(config: SweepConfig) -> list[tuple[int, str, str, int]]:
    """(size, task, method, config index) in run order: all tasks at the first size with
    defaults first, so every task x method exists early; sampled configurations last."""
    from recommender.compare import resolve_methods
    from recommender.tasks import bundled_spec

    order = []
    for k in range(1 + config.n_sampled):
        for size in config.sizes:
            for task in config.tasks:
                task_type = bundled_spec(task)[0].task_type
                for method in resolve_methods(list(config.methods) if config.methods else None, task_type):
                    order.append((size, task, method, k))
    return order


#: runs recorded while the machine was busier than this (1-minute load per core) are re-run
MAX_CLEAN_LOAD = 1.25


def _already_in_knowledge_base(path: Any) -> set[tuple[str, str]]:
    """(study, config) pairs the knowledge base holds from a quiet machine."""
    from recommender.knowledge_base import load_knowledge_base

    if path is None or not path.exists():
        return set()
    known = set()
    for row in load_knowledge_base(path):
        load = row.result.environment.cpu_load if row.result.environment else None
        if row.config_key and (load is None or load <= MAX_CLEAN_LOAD):
            known.add((row.study, row.config_key))
    return known


def run_sweep(config: SweepConfig, storage: str | None = None,
              on_run: Callable[[int, int, str, RunResult | None], None] | None = None,
              skip_known_in: Any = None) -> int:
    """Run every planned (size, task, method, config) not yet in ``storage`` (nor in the
    knowledge base file ``skip_known_in``, so a sweep resumes from what was shipped)."""
    import optuna

    from recommender.metafeatures import compute_metafeatures
    from recommender.methods import method_names
    from recommender.search.spaces import METHOD_PARAM, fixed_distributions, get_space, sample_params
    from recommender.tasks import load_task
    from recommender.training import LatencyConfig, train

    store = open_storage(storage, heartbeat=False)
    all_methods = method_names()
    todo = plan(config)
    known = _already_in_knowledge_base(skip_known_in)
    done_runs = 0
    studies: dict[str, tuple[optuna.Study, set[str]]] = {}
    tasks: dict[tuple[str, int], Any] = {}
    for index, (size, task_name, method, k) in enumerate(todo, start=1):
        name = study_name(task_name, size)
        if name not in studies:
            study = optuna.create_study(study_name=name, storage=store, direction="maximize",
                                        load_if_exists=True)
            done = {str(t.user_attrs.get("config_key")) for t in study.get_trials(deepcopy=False)
                    if t.state.is_finished()}
            studies[name] = (study, done)
        study, done = studies[name]
        key = f"{method}#{k}"
        if key in done or (name, key) in known:
            continue
        if (task_name, size) not in tasks:
            full = load_task(task_name)
            task = full.subsample(size, config.max_dev, seed=config.seed)
            tasks[(task_name, size)] = task
            if STUDY_ATTR not in study.user_attrs:
                study.set_user_attr(STUDY_ATTR, {
                    "schema": SCHEMA_VERSION, "kind": "sweep", "task": task.spec.to_dict(),
                    "task_name": task_name, "size": size,
                    "metafeatures": compute_metafeatures(task, config.model).to_dict(),
                    "sweep": asdict(config), "model": config.model or "bundled",
                })
        task = tasks[(task_name, size)]
        space = get_space(method)
        defaults = space.defaults()
        if k == 0:
            values = defaults
        else:
            values = sample_params(space, random.Random(f"{config.seed}:{task_name}:{size}:{key}"))
        params = {**space.constants, **values}
        budget = Budget(max_seconds=config.trial_time_budget, max_epochs=config.max_epochs,
                        patience=config.patience, evals_per_epoch=config.evals_per_epoch)
        started = time.time()
        result = train(task, method, params=params, budget=budget, model=config.model,
                       device=config.device, seed=config.seed, latency=LatencyConfig())
        distributions = fixed_distributions(method, all_methods)
        trial_params = {METHOD_PARAM: method, **{space.optuna_name(n): v for n, v in values.items()}}
        state = optuna.trial.TrialState.COMPLETE if result.has_metric and result.status in (
            "complete", "budget_exhausted") else optuna.trial.TrialState.FAIL
        attrs = {**result_attrs(result), "config_key": key, "started_at": started}
        study.add_trial(optuna.trial.create_trial(
            params=trial_params, distributions=distributions, user_attrs=attrs, state=state,
            value=result.best_metric if state == optuna.trial.TrialState.COMPLETE else None))
        done.add(key)
        done_runs += 1
        if on_run is not None:
            on_run(index, len(todo), f"{task_name} n={size} {key}", result)
    return done_runs


def sweep_counts(storage: str | None = None) -> dict[str, Any]:
    """How many runs the storage's sweep studies hold, by status."""
    from recommender.store import iter_runs

    counts: dict[str, int] = {}
    tasks, methods = set(), set()
    for run in iter_runs(storage):
        if run.study_info.get("kind") != "sweep":
            continue
        counts[run.result.status] = counts.get(run.result.status, 0) + 1
        tasks.add(run.study_info.get("task_name"))
        methods.add(run.result.method)
    return {"by_status": counts, "tasks": len(tasks), "methods": len(methods)}


def default_sweep_tasks() -> Sequence[str]:
    from recommender.tasks import bundled_task_names

    return bundled_task_names()


