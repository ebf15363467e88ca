"""Portfolio race: a few configurations the meta-model proposes, raced on the real task.

``recommender search --strategy race``. The portfolio holds the robust default for the budgets
(the best fixed rule on past tasks) and the meta-model's best other methods. They are raced by
successive halving inside the search's time budget: every configuration of a rung trains for
the same time, the best 1/eta go on (the meta-model's top pick credited a margin: a rival must
lead it clearly after a short rung), and the last survivor is trained again with the largest
share of the budget (:class:`~recommender.metamodel.replay_eval.RacePlan`, the split the replay
evaluation scores). Each rung's trials are Optuna trials enqueued in the search's own study
(``study.enqueue_trial``); :class:`RacePruner` stops a trial early once enough of its rung
already beat it, so the study, the dashboard and export see an ordinary search.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

from recommender.errors import ConfigError
from recommender.metamodel.replay_eval import MARGIN, RacePlan, rung_order
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.executor import trial_processes
from recommender.search.summary import SearchResult

RUNG_ATTR = "race_rung"
#: user attribute of the trials of the meta-model's top pick
TOP_PICK_ATTR = "top_pick"


@dataclass(frozen=True)
class RaceEntry:
    """One configuration of the portfolio: its Optuna params, and whether it is the
    meta-model's top pick (credited :data:`MARGIN` in every rung, :func:`race_credit`)."""

    params: dict[str, Any]
    top_pick: bool = False
    predicted_time_s: float | None = None  # to converge on this machine (the meta-model's median)


class RacePruner:
    """Successive halving within one rung: at each report, prune the trial when ``keep`` other
    trials of the same rung had already reached a better value by the same step (examples)."""

    def __init__(self, rung: int, keep: int) -> None:
        self.rung = rung
        self.keep = keep

    def prune(self, study: Any, trial: Any) -> bool:
        import optuna

        step = trial.last_step
        if step is None or self.keep < 1:
            return False
        value = trial.intermediate_values[step]
        rivals = 0
        for other in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                              optuna.trial.TrialState.PRUNED)):
            if other.user_attrs.get(RUNG_ATTR) != self.rung or other.number == trial.number:
                continue
            reached = [v for s, v in other.intermediate_values.items() if s <= step]
            if reached and max(reached) > value:
                rivals += 1
        return rivals >= self.keep


def _as_pruner(pruner: RacePruner) -> Any:
    import optuna

    class _Pruner(optuna.pruners.BasePruner):
        def prune(self, study: Any, trial: Any) -> bool:
            return pruner.prune(study, trial)

    return _Pruner()


def race_portfolio(task: Any, methods: list[str], config: SearchConfig, size: int,
                   storage: str | None = None) -> list[RaceEntry]:
    """The portfolio, best predicted first: the robust default for the budgets and the
    meta-model's best configurations of other methods (one per method); the first is the
    recommendation's top pick."""
    from recommender.errors import DataError
    from recommender.metamodel.recommend import recommend
    from recommender.search.spaces import default_trial_params, trial_params
    from recommender.types import UserBudgets

    budgets = UserBudgets(time_budget_s=config.time_budget, latency_budget_ms=config.latency_budget_ms,
                          latency_batch=config.latency_batch, max_trainable_params=config.max_trainable_params,
                          hardware=config.device)
    try:
        rec = recommend(task, budgets, top=1000, storage=storage, explain=False)
    except DataError:  # no knowledge base to learn from: each method's defaults
        return [RaceEntry(default_trial_params(m)) for m in methods[:size]]
    allowed = [c for c in rec.candidates if c.method in methods]
    ordered = sorted(allowed, key=lambda c: (not c.feasible, not c.robust_default, c.rank))
    chosen: list[Any] = []
    for c in ordered:
        if len(chosen) < size and c.method not in {x.method for x in chosen}:
            chosen.append(c)
    chosen.sort(key=lambda c: c.rank)
    out = [RaceEntry({**default_trial_params(c.method), **trial_params(c.method, c.params)}, top_pick=k == 0,
                     predicted_time_s=c.predicted_time_s)
           for k, c in enumerate(chosen)]
    return out or [RaceEntry(default_trial_params(m)) for m in methods[:size]]


def _trial_score(trial: Any) -> float:
    """A rung's ranking value: the final metric, else the best intermediate one (pruned)."""
    if not all(v <= 0 for v in trial.constraints.values()):
        return -math.inf
    metric = trial.user_attrs.get("metric")
    if metric is not None:
        return float(metric)
    values = list(trial.intermediate_values.values())
    return max(values) if values else -math.inf


def _progress_callback(progress: Any, start: float, deadline: float) -> Any:
    def after_trial(study: Any, trial: Any) -> None:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        scores = [t.user_attrs.get("metric") for t in done if t.state.name == "COMPLETE"]
        scores = [v for v in scores if v is not None]
        progress({"trial": trial.number, "state": trial.state.name, "method": trial.params.get("method"),
                  "metric": trial.user_attrs.get("metric"), "n_finished": len(done),
                  "elapsed_s": time.time() - start, "time_left_s": max(0.0, deadline - time.time()),
                  "best": max(scores) if scores else None})
    return after_trial


def run_race(task_ref: TaskRef | str, storage: str | None, study_name: str, config: SearchConfig, *,
             plan: RacePlan | None = None, progress: Any = None) -> SearchResult:
    """Race a meta-model portfolio by successive halving within ``config.time_budget``; returns
    the same :class:`~recommender.search.study.SearchResult` as :func:`run_search`."""
    from recommender.search.objective import (
        END_MARGIN_S,
        MIN_TRIAL_SECONDS,
        STARTUP_ESTIMATE,
    )
    from recommender.search.study import create_search_study, make_sampler
    from recommender.search.summary import summarize
    from recommender.study_record import read_record

    if config.time_budget is None:
        raise ConfigError("--strategy race needs a time budget (--time-budget): the race splits it")
    plan = plan or RacePlan()
    start = time.time()
    deadline = start + config.time_budget
    if isinstance(task_ref, str):
        task_ref = TaskRef(task_ref)
    study = create_search_study(task_ref, storage, study_name, config)
    record = read_record(study)
    methods = list(record.methods or ()) if record is not None else []
    per_trial_floor = STARTUP_ESTIMATE[config.isolation] + MIN_TRIAL_SECONDS / 2 + END_MARGIN_S + 1
    size = plan.portfolio
    left = deadline - time.time()
    while size > 1 and min(each for _, each in dataclasses.replace(plan, portfolio=size).rungs(left)) < per_trial_floor:
        size -= 1  # too little time for this many: race fewer
    plan = dataclasses.replace(plan, portfolio=size)
    alive = race_portfolio(task_ref.load(), methods, config, size, storage)
    if alive and not plan.affordable(left, alive[0].predicted_time_s):
        # the top pick is predicted to need more than 1/min_budget_ratio of the budget: racing
        # would take time it needs (the replay evaluation's finding); it trains alone
        alive, plan = alive[:1], dataclasses.replace(plan, portfolio=1)
    study.sampler = make_sampler(config)
    rungs = plan.rungs(left)
    with trial_processes():
        _run_rungs(study, task_ref, config, methods, plan, rungs, alive, deadline, start, progress)
    return summarize(study, config, time.time() - start)


def _run_rungs(study: Any, task_ref: TaskRef, config: SearchConfig, methods: list[str], plan: RacePlan,
               rungs: list[tuple[int, float]], alive: list[RaceEntry], deadline: float, start: float,
               progress: Any) -> None:
    """Each rung's trials, enqueued and optimized in turn; the best go on to the next rung."""
    from recommender.search.objective import END_MARGIN_S, Objective, TrialFailed

    for rung, (n, each) in enumerate(rungs):
        alive = alive[:n]
        final = rung == len(rungs) - 1
        # the final rung gets whatever the earlier ones left over
        each = max(each, (deadline - time.time() - END_MARGIN_S) / n) if final else each
        rung_config = dataclasses.replace(config, trial_time_budget=max(5.0, each))
        for entry in alive:
            study.enqueue_trial(entry.params, user_attrs={RUNG_ATTR: rung, TOP_PICK_ATTR: entry.top_pick},
                                skip_if_exists=False)
        keep = 0 if final else max(1, math.ceil(n / plan.eta))
        study.pruner = _as_pruner(RacePruner(rung, keep))
        objective = Objective(study, task_ref, rung_config, methods, deadline, progress)
        study.optimize(objective, n_trials=len(alive), catch=(TrialFailed,), gc_after_trial=True,
                       callbacks=[_progress_callback(progress, start, deadline)] if progress else None)
        if objective.stopped_for_budget or time.time() >= deadline - END_MARGIN_S:
            break
        trials = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(RUNG_ATTR) == rung]
        picks = [bool(t.user_attrs.get(TOP_PICK_ATTR)) for t in trials]
        ranked = rung_order(list(range(len(trials))), [_trial_score(t) for t in trials],
                            [-k for k in range(len(trials))], [MARGIN if p else 0.0 for p in picks])
        alive = [RaceEntry(dict(trials[k].params), picks[k])
                 for k in ranked if _trial_score(trials[k]) > -math.inf] or alive
