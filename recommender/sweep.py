"""Sweep: every registered method (defaults, a learning-rate grid around them, and sampled
configurations) over bundled tasks at several training-set sizes, recorded in the run store.
Resumable: finished runs are skipped.

Protocol 2 (the default) trains to convergence: early stopping after ``patience`` evaluations
without ``min_delta`` improvement on a fixed monitor subset of the dev set, never before
``min_epochs`` (a quarter of the cap) and, while the run has not risen above its first score,
never before ``flat_min_epochs`` (half the cap: slow starters sit at the constant predictor for
epochs before they rise), with generous epoch caps (20 epochs at 500 examples, 8 from 2,000) and a
wall-clock cap far above what convergence needs; the best checkpoint is then scored on the
whole capped dev set with a bootstrap standard error, beside the constant predictor.

A cross-lingual task swept with its source (``xling_sst2_en_pt`` with ``glue_sst2``) is not
trained again: the source's runs evaluate its dev set too and record its rows
(:mod:`~recommender.training.transfer`; ``transfer=False`` trains it on its own).

One study per (task, size), named ``sweep:<task>:n<size>``. Each run is written with a single
``add_trial`` once it has finished, so an interrupted sweep leaves no half-written record.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from recommender.store import open_storage, result_attrs
from recommender.study_record import StudyRecord, read_record, write_record
from recommender.types import Budget, RunResult

PROTOCOL = 2


def epoch_cap(size: int) -> float:
    """Protocol 2's safety-net epoch cap: 20 epochs at 500 examples, 8 from 2,000."""
    return float(min(20.0, max(8.0, 10_000 / max(1, size))))


@dataclass(frozen=True)
class SweepConfig:
    """What a sweep runs, and the protocol every run follows (see the module docstring)."""

    tasks: tuple[str, ...]
    sizes: tuple[int, ...] = (500, 2000)
    methods: tuple[str, ...] | None = None
    n_sampled: int = 0
    lr_multipliers: tuple[float, ...] = ()  # learning-rate grid: multiples of each default
    max_dev: int = 1000
    monitor_size: int = 300
    trial_time_budget: float = 1800.0
    max_epochs: float | None = None  # None: epoch_cap(size)
    min_epochs: float | None = None  # None: a quarter of the epoch cap
    flat_min_epochs: float | None = None  # None: half the epoch cap (for a run still at its first score)
    patience: int = 4
    min_delta: float = 0.005
    evals_per_epoch: float = 2.0
    precision: str = "auto"
    seed: int = 0
    model: str | None = None
    device: str = "auto"
    protocol: int = PROTOCOL
    transfer: bool = True  # a task's runs also evaluate the sweep's tasks trained on the same rows

    def budget(self, size: int) -> Budget:
        """Each run's Budget at training-set ``size``: ``trial_time_budget`` as its time limit,
        the epoch cap and floor of protocol 2 where none is given, the other limits as set."""
        cap = self.max_epochs if self.max_epochs is not None else epoch_cap(size)
        floor = self.min_epochs if self.min_epochs is not None else cap / 4
        flat = self.flat_min_epochs if self.flat_min_epochs is not None else cap / 2
        return Budget.from_settings(self, max_seconds=self.trial_time_budget, max_epochs=cap,
                                    min_epochs=min(floor, cap), flat_min_epochs=min(flat, cap))


def config_key(method: str, k: int, config: SweepConfig) -> str:
    """``<method>#0`` defaults, ``<method>#lr<x>`` grid points, ``<method>#<k>`` sampled."""
    n_grid = len(config.lr_multipliers)
    if 1 <= k <= n_grid:
        return f"{method}#lr{config.lr_multipliers[k - 1]:g}"
    return f"{method}#{k if k == 0 else k - n_grid}"


def study_name(task: str, size: int, protocol: int = PROTOCOL) -> str:
    """``sweep:<task>:n<size>`` (protocol 1), ``sweep-p<k>:<task>:n<size>`` from protocol 2, so
    the run ids of different protocols never collide in the knowledge base."""
    return f"sweep:{task}:n{size}" if protocol == 1 else f"sweep-p{protocol}:{task}:n{size}"


def plan(config: SweepConfig) -> list[tuple[int, str, str, int]]:
    """(size, task, method, config index) in run order: all tasks at the first size with
    defaults first, so every task x method exists early; then the learning-rate grid points
    (in the order given), then sampled configurations."""
    from recommender.compare import resolve_methods
    from recommender.errors import ConfigError
    from recommender.tasks import bundled_spec

    methods = resolve_methods(list(config.methods) if config.methods else None)
    types = {task: bundled_spec(task)[0].task_type for task in config.tasks}
    # a listed method runs on the tasks of the types it supports (a sweep spans task types)
    supported = {t: set(resolve_methods(None, t)) for t in set(types.values())}
    unused = [m for m in methods if not any(m in names for names in supported.values())]
    if unused:
        raise ConfigError(f"method {unused[0]!r} supports none of the sweep's task types "
                          f"({', '.join(sorted(supported))})")
    order = []
    for k in range(1 + len(config.lr_multipliers) + config.n_sampled):
        for size in config.sizes:
            for task in config.tasks:
                order += [(size, task, m, k) for m in methods if m in supported[types[task]]]
    return order


def _already_in_knowledge_base(path: Any, protocol: int = PROTOCOL) -> set[tuple[str, str]]:
    """(study, config) pairs the knowledge base holds under ``protocol``. A run recorded on a
    busy machine is kept, not re-run: its quality does not depend on the load, and its row
    carries the load (``environment.cpu_load``) for analyses of time."""
    from recommender.knowledge_base import load_knowledge_base

    if path is None or not path.exists():
        return set()
    return {(row.study, row.config_key) for row in load_knowledge_base(path)
            if row.protocol == protocol and row.config_key}


def run_sweep(config: SweepConfig, storage: str | None = None,
              on_run: Callable[[int, int, str, RunResult | None], None] | None = None,
              skip_known_in: Any = None) -> int:
    """Run every planned (size, task, method, config) not yet in ``storage`` (nor in the
    knowledge base file ``skip_known_in``, so a sweep resumes from what was shipped).

    With ``config.transfer``, a task's run also evaluates the sweep's tasks that train on the
    same rows (the cross-lingual tasks of an English one: :mod:`~recommender.training.transfer`)
    and records their rows too, so they are not trained again."""
    from recommender.search.spaces import get_space
    from recommender.training import LatencyConfig, train_with_transfer
    from recommender.training.config import EvalConfig
    from recommender.training.transfer import transfer_targets

    runs = _SweepRecords(config, open_storage(storage, heartbeat=False),
                         _already_in_knowledge_base(skip_known_in, config.protocol))
    todo = plan(config)
    done_runs = 0
    for index, (size, task_name, method, k) in enumerate(todo, start=1):
        key = config_key(method, k, config)
        if runs.finished(task_name, size, key):
            continue
        targets = [t for t in (transfer_targets(task_name, config.tasks) if config.transfer else [])
                   if not runs.finished(t, size, key)]
        values, distributions = _configuration(config, method, k, key, task_name, size, runs.all_methods)
        params = {**get_space(method).constants, **values}
        started = time.time()
        budget = config.budget(size)
        run = train_with_transfer(runs.task(task_name, size), [runs.task(t, size) for t in targets], method,
                                  params=params, budget=budget, model=config.model, device=config.device,
                                  seed=config.seed, latency=LatencyConfig(), precision=config.precision,
                                  evaluation=EvalConfig(monitor_size=config.monitor_size, seed=config.seed))
        # the floors it could not stop before (rows before 2026-12-06 18:40 UTC: no flat minimum)
        floors = {"stopping": {"min_epochs": budget.min_epochs, "flat_min_epochs": budget.flat_min_epochs}}
        for name, result in zip([task_name, *targets], [run.source, *run.targets], strict=True):
            result = replace(result, extra={**result.extra, **floors})
            runs.add(name, size, key, method, values, distributions, result, started)
            done_runs += 1
            if on_run is not None:
                on_run(index, len(todo), f"{name} n={size} {key}", result)
    return done_runs


def _configuration(config: SweepConfig, method: str, k: int, key: str, task_name: str, size: int,
                   all_methods: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Configuration ``k`` of ``method`` (defaults, a learning-rate grid point or a sampled
    one) and the trial distributions that record it."""
    from recommender.search.spaces import fixed_distributions, get_space, sample_params

    space = get_space(method)
    values = space.defaults()
    distributions = fixed_distributions(method, all_methods)
    if 1 <= k <= len(config.lr_multipliers):
        values["learning_rate"] = values["learning_rate"] * config.lr_multipliers[k - 1]
        distributions = _widened(distributions, space.optuna_name("learning_rate"), values["learning_rate"])
    elif k > len(config.lr_multipliers):
        values = sample_params(space, random.Random(f"{config.seed}:{task_name}:{size}:{key}"))
    return values, distributions


class _SweepRecords:
    """The sweep's studies in the run store: which runs are finished, the subsampled tasks,
    and the recording of a finished run (one ``add_trial``)."""

    def __init__(self, config: SweepConfig, store: Any, known: set[tuple[str, str]]) -> None:
        from recommender.methods import method_names

        self.config, self.store, self.known = config, store, known
        self.all_methods = method_names()
        self.studies: dict[str, tuple[Any, set[str]]] = {}
        self.tasks: dict[tuple[str, int], Any] = {}

    def _study(self, task_name: str, size: int) -> tuple[Any, set[str]]:
        import optuna

        name = study_name(task_name, size, self.config.protocol)
        if name not in self.studies:
            study = optuna.create_study(study_name=name, storage=self.store, direction="maximize",
                                        load_if_exists=True)
            done = {str(t.user_attrs.get("config_key")) for t in study.get_trials(deepcopy=False)
                    if t.state.is_finished()}
            self.studies[name] = (study, done)
        return self.studies[name]

    def finished(self, task_name: str, size: int, key: str) -> bool:
        """Whether the run is in the store or in the knowledge base already."""
        return key in self._study(task_name, size)[1] or (
            study_name(task_name, size, self.config.protocol), key) in self.known

    def task(self, task_name: str, size: int) -> Any:
        """The task subsampled to ``size`` (the dev set capped), its study record written once."""
        from recommender.metafeatures import compute_metafeatures
        from recommender.tasks import load_task

        if (task_name, size) not in self.tasks:
            c = self.config
            task = load_task(task_name).subsample(size, c.max_dev, seed=c.seed)
            self.tasks[(task_name, size)] = task
            study = self._study(task_name, size)[0]
            if read_record(study) is None:
                write_record(study, StudyRecord(
                    kind="sweep", task=task.spec.to_dict(), task_name=task_name, size=size,
                    metafeatures=compute_metafeatures(task, c.model), sweep=asdict(c),
                    model=c.model or "bundled", protocol=c.protocol))
        return self.tasks[(task_name, size)]

    def add(self, task_name: str, size: int, key: str, method: str, values: dict[str, Any],
            distributions: dict[str, Any], result: RunResult, started: float) -> None:
        import optuna

        from recommender.search.spaces import METHOD_PARAM, get_space

        self.task(task_name, size)  # the study record exists before its first trial
        study, done = self._study(task_name, size)
        space = get_space(method)
        trial_params = {METHOD_PARAM: method, **{space.optuna_name(n): v for n, v in values.items()}}
        complete = result.has_metric and result.status in ("complete", "budget_exhausted")
        state = optuna.trial.TrialState.COMPLETE if complete else optuna.trial.TrialState.FAIL
        attrs = {**result_attrs(result), "config_key": key, "started_at": started}
        study.add_trial(optuna.trial.create_trial(
            params=trial_params, distributions=distributions, user_attrs=attrs, state=state,
            value=result.best_metric if complete else None))
        done.add(key)


def _widened(distributions: dict[str, Any], name: str, value: float) -> dict[str, Any]:
    """The distributions with ``name``'s range stretched to hold ``value`` (a grid point may lie
    outside the search space; the trial must still record it)."""
    from optuna.distributions import FloatDistribution

    old = distributions[name]
    return {**distributions, name: FloatDistribution(min(old.low, value), max(old.high, value), log=old.log)}


def default_sweep_tasks() -> Sequence[str]:
    from recommender.tasks import bundled_task_names

    return bundled_task_names()


