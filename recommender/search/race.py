"""Portfolio race: a few configurations the meta-model proposes, raced on the real task.

``recommender search --strategy race``. The portfolio holds the meta-model's top pick, the
robust default for the budgets (the best fixed rule on past tasks) and the meta-model's best
other methods. The top pick trains first, alone, with the whole time budget, and stops when it
converges (early stopping); the time it leaves is raced among the others by successive halving:
every configuration of a rung trains for the same time, the best 1/eta go on, and the last
survivor is trained again with the largest share (:class:`~recommender.metamodel.replay_eval.RacePlan`,
the plan the replay evaluation scores). The race never takes time the top pick would use, so
it does no worse than the top pick alone; the best trial is the answer. Each rung's trials are
Optuna trials enqueued in the search's own study (``study.enqueue_trial``); :class:`RacePruner`
stops a trial early once enough of its rung already beat it, so the study, the dashboard and
export see an ordinary search.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

from recommender.metamodel.replay_eval import RacePlan, rung_order
from recommender.search.config import SearchConfig, TaskRef, check_strategy
from recommender.search.executor import trial_processes
from recommender.search.summary import SearchResult

RUNG_ATTR = "race_rung"
#: user attribute of the trials of the meta-model's top pick
TOP_PICK_ATTR = "top_pick"


@dataclass(frozen=True)
class RaceEntry:
    """One configuration of the portfolio: its Optuna params, and whether it is the
    meta-model's top pick (trained first, alone, in rung 0)."""

    params: dict[str, Any]
    top_pick: bool = False


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
    out = [RaceEntry({**default_trial_params(c.method), **trial_params(c.method, c.params)}, top_pick=k == 0)
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
    """Train the meta-model's top pick, then race the rest of its portfolio by successive halving
    in the time the top pick left of ``config.time_budget``; returns the same
    :class:`~recommender.search.study.SearchResult` as :func:`run_search`."""
    from recommender.search.objective import END_MARGIN_S
    from recommender.search.study import create_search_study, make_sampler
    from recommender.search.summary import summarize
    from recommender.study_record import read_record

    check_strategy("race", config)
    plan = plan or RacePlan()
    start = time.time()
    deadline = start + (config.time_budget or 0.0)  # set: check_strategy
    if isinstance(task_ref, str):
        task_ref = TaskRef(task_ref)
    study = create_search_study(task_ref, storage, study_name, config)
    record = read_record(study)
    methods = list(record.methods or ()) if record is not None else []
    alive = race_portfolio(task_ref.load(), methods, config, plan.portfolio, storage)
    study.sampler = make_sampler(config)
    run = _RungRunner(study, task_ref, config, methods, deadline, start, progress)
    with trial_processes():
        # the top pick alone with the whole budget: it stops when it converges
        if alive and run.rung(0, alive[:1], deadline - time.time() - END_MARGIN_S, keep=0):
            _race_challengers(run, plan, alive[1:])
    return summarize(study, config, time.time() - start)


def _race_challengers(run: _RungRunner, plan: RacePlan, challengers: list[RaceEntry]) -> None:
    """Successive halving over ``challengers`` in the time left; as many as that time affords."""
    from recommender.search.objective import END_MARGIN_S, MIN_TRIAL_SECONDS, STARTUP_ESTIMATE

    floor = STARTUP_ESTIMATE[run.config.isolation] + MIN_TRIAL_SECONDS / 2 + END_MARGIN_S + 1
    left = run.deadline - time.time() - END_MARGIN_S
    rungs = plan.challenger_rungs(left, len(challengers))
    while challengers and min((each for _, each in rungs), default=0.0) < floor:
        challengers = challengers[:-1]  # too little time for this many: race fewer
        rungs = plan.challenger_rungs(left, len(challengers))
    alive = challengers
    for rung, (n, each) in enumerate(rungs, start=1):
        alive = alive[:n]
        final = rung == len(rungs)
        # the final rung gets whatever the earlier ones left over
        each = max(each, (run.deadline - time.time() - END_MARGIN_S) / n) if final else each
        if not run.rung(rung, alive, each, keep=0 if final else max(1, math.ceil(n / plan.eta))):
            break
        trials = [t for t in run.study.get_trials(deepcopy=False) if t.user_attrs.get(RUNG_ATTR) == rung]
        ranked = rung_order(list(range(len(trials))), [_trial_score(t) for t in trials],
                            [-k for k in range(len(trials))])
        alive = [RaceEntry(dict(trials[k].params)) for k in ranked if _trial_score(trials[k]) > -math.inf] or alive


@dataclass
class _RungRunner:
    """Runs one rung's trials in the race's study: enqueued, then optimized with its pruner."""

    study: Any
    task_ref: TaskRef
    config: SearchConfig
    methods: list[str]
    deadline: float
    start: float
    progress: Any

    def rung(self, rung: int, entries: list[RaceEntry], each: float, keep: int) -> bool:
        """Train ``entries`` for ``each`` seconds at most; False once the budget is spent."""
        from recommender.search.objective import END_MARGIN_S, Objective, TrialFailed

        for entry in entries:
            self.study.enqueue_trial(entry.params, user_attrs={RUNG_ATTR: rung, TOP_PICK_ATTR: entry.top_pick},
                                     skip_if_exists=False)
        self.study.pruner = _as_pruner(RacePruner(rung, keep))
        rung_config = dataclasses.replace(self.config, trial_time_budget=max(5.0, each))
        objective = Objective(self.study, self.task_ref, rung_config, self.methods, self.deadline, self.progress)
        self.study.optimize(objective, n_trials=len(entries), catch=(TrialFailed,), gc_after_trial=True,
                            callbacks=[_progress_callback(self.progress, self.start, self.deadline)]
                            if self.progress else None)
        return not objective.stopped_for_budget and time.time() < self.deadline - END_MARGIN_S
