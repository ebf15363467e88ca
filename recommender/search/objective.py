"""The objective one search process optimizes: sample a method and its hyperparameters, run
the training job (in a fresh process by default), prune on the dev metric, record the result.

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
import time
from collections.abc import Callable
from typing import Any

from recommender import interrupts
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.executor import Outcome, run_in_process, run_in_subprocess
from recommender.search.job import TrialJob
from recommender.search.spaces import METHOD_PARAM, suggest
from recommender.store import result_attrs
from recommender.types import EvalPoint

MIN_TRIAL_SECONDS = 20.0
END_MARGIN_S = 2.0  # recording a trial in the storage after it ends
STARTUP_ESTIMATE = {"process": 8.0, "none": 1.0}
Progress = Callable[[dict[str, Any]], None]


class TrialFailed(Exception):
    """Raised inside the objective so Optuna records FAIL and the search goes on."""


class Objective:
    def __init__(self, study: Any, task_ref: TaskRef, config: SearchConfig, methods: list[str],
                 deadline: float | None, progress: Progress | None) -> None:
        self.study, self.task_ref, self.config, self.methods = study, task_ref, config, methods
        self.deadline, self.progress = deadline, progress
        self.startup = STARTUP_ESTIMATE[config.isolation]
        self.stopped_for_budget = False
        self.interrupted: tuple[int, KeyboardInterrupt] | None = None  # (trial, why)
        # trials reported by the search itself (interrupted, or failed by another worker before this
        # one told): Optuna's own log lines about them are dropped (see TrialLogFilter)
        self.silenced: set[int] = set()
        self.current: int | None = None

    def trial_time_budget(self) -> float:
        """Seconds the next trial may take, start-up of its process included: the configured
        ``trial_time_budget``, cut to what the search's own budget has left. The one place it is
        decided; it becomes the trial's ``Budget.max_seconds``."""
        granted = self.config.trial_time_budget
        if self.deadline is not None:
            granted = min(granted, self.deadline - time.time() - END_MARGIN_S)
        return granted

    def __call__(self, trial: Any) -> Any:
        try:
            return self._run(trial)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM via SearchInterrupted
            why = str(exc) or "interrupted"
            self.interrupted = (trial.number, exc)
            self.silenced.add(trial.number)
            self.study.stop()
            try:
                trial.set_user_attr("status", "failed")
                trial.set_user_attr("error", why)
            except Exception:  # noqa: S110 - already finished elsewhere; the FAIL is what matters
                pass
            raise TrialFailed(why) from None

    def _run(self, trial: Any) -> Any:
        import optuna

        self.current = trial.number

        method, params = suggest(trial, self.methods)
        trial_time_budget = self.trial_time_budget()
        # only the *total* budget can run out; a short trial budget alone never stops the search
        if self.deadline is not None and trial_time_budget - self.startup < MIN_TRIAL_SECONDS / 2:
            self.stopped_for_budget = True
            self.study.stop()
            raise optuna.TrialPruned("no time left in the search budget for this trial")
        job = TrialJob.for_trial(self.task_ref, self.config, method, params, trial_time_budget)
        trial.set_user_attr("trial_time_budget_s", trial_time_budget)
        check = self._prune_check(trial, method)
        interrupts.check()
        if self.config.isolation == "process":
            outcome = run_in_subprocess(job, check)
        else:
            outcome = run_in_process(job, check)
        interrupts.check()  # dropped while the trial ended (evaluation, latency): it still fails
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
            return any(dominates(values, optimistic) for values in self._front_values())
        return check_pareto

    def _front_values(self) -> list[tuple[float, float, float]]:
        import optuna

        trials = self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return [tuple(t.values) for t in trials if t.values and feasible(t)]

    def _min_latency(self, method: str) -> float:
        import optuna

        values = [t.values[2] for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                  if t.params.get(METHOD_PARAM) == method and t.values]
        return min(values) if values else 0.0

    def _record(self, trial: Any, method: str, outcome: Outcome) -> Any:
        import optuna

        # ask the database, not Optuna's per-process cache (which still thinks the trial is ours)
        storage = self.study._storage
        state = getattr(storage, "_backend", storage).get_trial(trial._trial_id).state
        if state.is_finished():  # another worker failed it (stale heartbeat): its result is dropped
            self.silenced.add(trial.number)
            raise TrialFailed(f"trial {trial.number} was already {state.name}")
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


def feasible(trial: Any) -> bool:
    return all(v <= 0 for v in trial.constraints.values())


def dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """a dominates b for (metric up, time down, latency down)."""
    signs = (1, -1, -1)
    no_worse = all(s * x >= s * y for s, x, y in zip(signs, a, b, strict=True))
    better = any(s * x > s * y for s, x, y in zip(signs, a, b, strict=True))
    return no_worse and better
