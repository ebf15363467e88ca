"""Evaluation by replay: budgeted scenarios, leave-one-task-group-out, no new training.

Every (task, size) set in a held-out task group is a user with a budget. A policy picks one
measured configuration (or, for the race, several in turn); its outcome is the best dev score
that configuration's *recorded* learning curve had reached within the budget, on the scale of
its final score (:func:`~recommender.metamodel.quality.running_curve`), interpolated between
the evaluations around the budget -- the trainer evaluates when a time budget ends, and curves
are evaluated every half epoch, so the last evaluation before the budget (``interpolate=False``)
scored a method whose first evaluation came after the budget at the constant predictor however
far it had learned -- and the baseline when the pick misses a hard constraint. Regret
= the oracle's outcome minus the policy's, in metric points (x 100). Scenarios:

- ``time_25`` / ``time_50`` / ``time_100``: a training budget of 25 / 50 / 100 % of full
  fine-tuning's time to convergence (within 1 % of its best) on that set, in the machine-neutral
  cost of :func:`~recommender.metamodel.quality.point_cost`;
- ``latency_b1``: deployed latency at batch 1 within 10 % of the base model's (at convergence;
  :func:`~recommender.report.latency_ratio`: 1 for the base model's own computation);
- ``params_1m``: at most 1 M trainable parameters (at convergence);
- ``storage_20``: 20 tasks to serve from :data:`STORAGE_20_MB` of disk (at convergence).

Policies: ``metamodel`` (the recommendation's top pick), ``race`` (the top pick trained first,
then the rest of a portfolio from the meta-model raced by successive halving in the time it left
of the same budget, :class:`RacePlan`; in the scenarios without a time budget it gets 100 % of
full fine-tuning's time to convergence),
``race_ceiling`` (the best of the race's portfolio trained alone with the whole budget: a race
that picks perfectly at no cost, the most any race over that portfolio could reach),
``best_fixed_rule`` (the one method with the lowest mean regret on the training groups in that
scenario), ``always_full_ft`` (where full fine-tuning can be feasible), ``random`` (expected
outcome of a uniformly random feasible configuration) and ``oracle``. Per scenario: mean regret
over held-out groups with a paired-bootstrap 90 % interval, the share of the
fixed-rule-to-oracle gap closed, the coverage of the 80 % quality intervals, and where the
meta-model's pick left the rule (``departures``: how often, better or worse, by how much).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from recommender.metamodel.pairwise import TIE, PairwiseRuleModel
from recommender.metamodel.quality import (
    QualityModel,
    converged,
    kb_baselines,
    running_curve,
    score_at,
    to_metric,
)
from recommender.metamodel.rule_gap import RuleGapModel, pick
from recommender.methods.base import REFERENCE_METHOD
from recommender.report import latency_ratio
from recommender.search.spaces import holds_defaults

SCENARIOS = ("time_25", "time_50", "time_100", "latency_b1", "params_1m", "storage_20")
TIME_FRACTIONS = {"time_25": 0.25, "time_50": 0.5, "time_100": 1.0}
POLICIES = ("metamodel", "race", "race_ceiling", "best_fixed_rule", "always_full_ft", "random", "oracle")
LATENCY_SLACK = 1.10
MAX_PARAMS = 1_000_000
N_TASKS = 20
STORAGE_20_MB = 500.0
MODEL_MB = 22_713_216 * 4 / 1e6
#: the margin on the predicted metric by which a pick left the robust default before
#: :mod:`~recommender.metamodel.rule_gap` (still the fallback where no difference model could be fitted)
MARGIN = 0.05
#: which latency quantile must meet the budget (0: 10 %, 1: median, 2: 90 %); a hard budget is
#: better met with confidence: on the 334 runs of 2026-12-06 the 90 % quantile lowered the
#: meta-model's regret under the latency budget from 15.6 to 11.8 points (the rule: 13.1), as a
#: pick predicted just inside 1.1x that measured above it scores as the constant predictor
LATENCY_QUANTILE = 2


@dataclass(frozen=True)
class RacePlan:
    """The top pick first, alone, with the whole budget: it stops when it converges (early
    stopping). The time it leaves is raced among the rest of the ``portfolio`` by successive
    halving: each rung keeps the best 1/``eta``, the last survivor is trained again with
    ``final_fraction`` of that time and the earlier rungs share the rest equally (every trial in a
    rung gets the same time). The race never takes time the top pick would use."""

    portfolio: int = 3
    eta: int = 3
    final_fraction: float = 0.9

    def rungs(self, budget: float) -> list[tuple[int, float]]:
        """(configurations, budget each) per rung, the final one included, for ``portfolio``
        configurations raced over ``budget``."""
        sizes = [self.portfolio]
        while sizes[-1] > 1:
            sizes.append(max(1, math.ceil(sizes[-1] / self.eta)))
        if len(sizes) == 1:
            return [(1, budget)]
        share = budget * (1 - self.final_fraction) / (len(sizes) - 1)
        return [(n, share / n) for n in sizes[:-1]] + [(1, budget * self.final_fraction)]

    def challenger_rungs(self, left: float, challengers: int) -> list[tuple[int, float]]:
        """The rungs of ``challengers`` configurations (at most the portfolio but the top pick)
        raced in the time ``left`` by the top pick; none when nothing is left."""
        n = min(challengers, self.portfolio - 1)
        return replace(self, portfolio=n).rungs(left) if n > 0 and left > 0 else []


def shipped_lead_model() -> PairwiseRuleModel:
    """What decides when rank 1 leaves the rule, unfitted: the predictor's, and the replay's
    ``metamodel`` policy (chosen over :class:`RuleGapModel` by this evaluation)."""
    return PairwiseRuleModel()


# --- the sets -----------------------------------------------------------------------------
@dataclass
class TaskSet:
    """One (task, size) with its measured runs, baseline and per-scenario budgets. A run is
    scored at a budget by interpolating its curve between evaluations (``interpolate``, as the
    trainer evaluates when a time budget ends), or at its last evaluation before the budget."""

    group: str
    key: tuple[str, int]
    runs: list[Any]
    baseline: float
    budgets: dict[str, float | None] = field(default_factory=dict)
    interpolate: bool = True

    def score(self, i: int, cost: float) -> float:
        """Run ``i``'s score after training for ``cost`` (:func:`~recommender.metamodel.quality.score_at`)."""
        return score_at(self.runs[i].result, cost, self.baseline, interpolate=self.interpolate)

    def feasible(self, scenario: str) -> np.ndarray:
        return np.array([feasible_run(r.result, scenario) for r in self.runs])

    def outcomes(self, scenario: str) -> np.ndarray:
        """Each run's score within the scenario's budget (the baseline when infeasible)."""
        budget = self.budgets.get(scenario)
        out = []
        for i, (run, ok) in enumerate(zip(self.runs, self.feasible(scenario), strict=True)):
            if not ok:
                out.append(self.baseline)
            elif budget is None:
                out.append(float(run.result.best_metric))
            else:
                out.append(self.score(i, budget))
        return np.array(out)


def storage_mb(result: Any, n_tasks: int = N_TASKS) -> float:
    """Disk to serve ``n_tasks`` tasks with this method: a full model each, one shared model
    (multi-task), or one base model plus an adapter per task (the method knows which)."""
    from recommender.methods import get_method_class

    return get_method_class(result.method).storage_mb(MODEL_MB, (result.artifact_bytes or 0) / 1e6, n_tasks)[0]


def feasible_run(result: Any, scenario: str) -> bool:
    """Whether a measured run meets the scenario's hard constraint."""
    if scenario == "latency_b1":
        ratio = latency_ratio(result, 1)
        return ratio is not None and ratio <= LATENCY_SLACK
    if scenario == "params_1m":
        return result.trainable_params is not None and result.trainable_params <= MAX_PARAMS
    if scenario == "storage_20":
        return storage_mb(result) <= STORAGE_20_MB
    return True


def _convergence_cost(result: Any) -> float | None:
    """Cost at which a run first came within 1 % (relative) of its best score."""
    costs, best = running_curve(result)
    if not len(costs):
        return None
    close = np.flatnonzero(best >= best[-1] - 0.01 * abs(best[-1]))
    return float(costs[close[0]])


def scenario_budgets(results: Sequence[Any]) -> dict[str, float | None] | None:
    """Each scenario's training budget on one (task, size)'s runs: the time scenarios' share of
    full fine-tuning's cost to converge there (the yardstick), None for the others; None
    altogether without a full fine-tuning run to measure it by."""
    full = [r for r in results if r.method == REFERENCE_METHOD]
    yardstick = _convergence_cost(full[0]) if full else None
    if yardstick is None:
        return None
    budgets: dict[str, float | None] = {s: None for s in SCENARIOS}
    budgets.update({s: f * yardstick for s, f in TIME_FRACTIONS.items()})
    return budgets


def task_sets(kb_rows: Sequence[Any], min_runs: int = 3, interpolate: bool = True) -> list[TaskSet]:
    """The evaluation units: (task, size) sets with a full fine-tuning run (the budgets' yardstick);
    ``interpolate``: how a run is scored at a budget (:class:`TaskSet`)."""
    from recommender.metamodel.evaluate import scored_runs, task_group

    baselines = kb_baselines(kb_rows)
    out = []
    for key, runs in sorted(scored_runs(kb_rows).items()):
        budgets = scenario_budgets([r.result for r in runs]) if len(runs) >= min_runs else None
        if budgets is not None:
            out.append(TaskSet(task_group(runs[0]), key, list(runs), baselines[key], budgets, interpolate))
    return out


# --- policies -----------------------------------------------------------------------------
def method_ranking(sets: Sequence[TaskSet], scenario: str) -> list[str]:
    """Methods by the mean regret of their default configuration over the task groups of
    ``sets`` (a group's sets averaged first, as the evaluation weighs them: SST-2 at three sizes
    and its cross-lingual variants count once), lowest first; only methods measured on at least
    80 % of the groups."""
    regrets: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in sets:
        outcomes = s.outcomes(scenario)
        best = outcomes.max()
        for method in {r.result.method for r in s.runs}:
            regrets[method][s.group].append(best - outcomes[_method_run(s, method)])
    n_groups = len({s.group for s in sets})
    eligible = {m: float(np.mean([np.mean(v) for v in by_group.values()]))
                for m, by_group in regrets.items() if len(by_group) >= 0.8 * n_groups}
    return sorted(eligible, key=lambda m: (eligible[m], m))


def _method_run(s: TaskSet, method: str | None) -> int | None:
    """The run of ``method``'s default configuration on ``s``: the one with its shipped
    (tuned) defaults -- on the four tasks of the learning-rate sweep a grid point, not the
    ``#0`` run measured before tuning -- else the sweep's first (``#0``), else any."""
    idx = [i for i, r in enumerate(s.runs) if r.result.method == method]
    tuned = [i for i in idx if holds_defaults(s.runs[i].result.method, s.runs[i].result.params)]
    first = [i for i in idx if (s.runs[i].config_key or "#0").endswith("#0")]
    return (tuned or first or idx)[0] if idx else None


def rule_for(s: TaskSet, ranking: Sequence[str]) -> str | None:
    """What the fixed rule ``ranking`` does on ``s``: its first method measured there (a rule
    whose first method cannot train the task type -- multi-task FT on token classification --
    falls back to its next, as :func:`~recommender.metamodel.recommend.recommend` does)."""
    measured = {r.result.method for r in s.runs}
    return next((m for m in ranking if m in measured), None)


def rule_run(s: TaskSet, ranking: Sequence[str]) -> int | None:
    """The index of the fixed rule's run on ``s`` (:func:`rule_for`, :func:`_method_run`)."""
    return _method_run(s, rule_for(s, ranking))


def predicted_feasible(s: TaskSet, scenario: str, latency_ratio: np.ndarray | None) -> np.ndarray:
    """What the recommender knows before training: parameter counts and storage exactly,
    latency from the meta-model's prediction (its :data:`LATENCY_QUANTILE` of the ratio)."""
    if scenario == "latency_b1":
        if latency_ratio is None:
            return np.ones(len(s.runs), dtype=bool)
        return latency_ratio <= LATENCY_SLACK
    return s.feasible(scenario)


def choose(predicted: np.ndarray, allowed: np.ndarray, default: int | None, margin: float = 0.0) -> int:
    """The top pick by a margin on the predicted metric: the robust default (the fixed rule's
    configuration, index ``default``) unless another is predicted better by more than
    ``margin`` (the approach :mod:`~recommender.metamodel.rule_gap` replaced; kept to compare)."""
    if default is None:
        return pick(predicted, allowed, None)
    return pick(predicted - predicted[default] - margin, allowed, default)


def race_outcome(s: TaskSet, scenario: str, order: Sequence[int], plan: RacePlan, budget: float,
                 priority: np.ndarray) -> float:
    """Replay a race over ``order`` (the top pick first, :class:`RacePlan`): the top pick trains
    with the whole budget and stops where its recorded run stopped, or at the budget; the
    challengers restart from scratch in the time it left, a rung ranked by :func:`rung_order`.
    Returns the best score of any trial that meets the scenario's constraints (the baseline when
    none does), as :meth:`TaskSet.outcomes` scores a single pick."""
    feasible = s.feasible(scenario)
    used = min(budget, stop_cost(s.runs[order[0]].result))
    best = s.score(order[0], used) if feasible[order[0]] else -math.inf
    alive = list(order[1: plan.portfolio])
    for n, each in plan.challenger_rungs(budget - used, len(alive)):
        alive = alive[:n]
        scores = {i: s.score(i, each) if feasible[i] else -math.inf for i in alive}
        best = max([best, *scores.values()])
        alive = rung_order(alive, [scores[i] for i in alive], [priority[i] for i in alive])
    return best if best > -math.inf else s.baseline  # no trial met the constraints


def probe_race_outcome(s: TaskSet, scenario: str, order: Sequence[int], plan: RacePlan, budget: float,
                       priority: np.ndarray, *, probe: float = 0.05, switch: float = 0.0) -> float:
    """A race variant compared by the benchmark, not shipped: every configuration of the
    portfolio trains for ``probe`` of the budget; the best probe (the top pick unless another beat
    it by more than ``switch``) goes on from where it stopped, without a restart, in the time left.
    Scored as :func:`race_outcome` (same signature; ``priority`` unused: the order decides ties)."""
    feasible = s.feasible(scenario)
    alive = list(order[: plan.portfolio])
    spent, scores = 0.0, {}
    for i in alive:
        cost = min(probe * budget, stop_cost(s.runs[i].result))
        spent += cost
        scores[i] = s.score(i, cost) if feasible[i] else -math.inf
    survivor = alive[0]
    for i in alive[1:]:
        if scores[i] > scores[survivor] + switch:
            survivor = i
    own = min(probe * budget, stop_cost(s.runs[survivor].result)) + budget - spent
    final = s.score(survivor, own) if feasible[survivor] else -math.inf
    best = max(final, *scores.values())
    return best if best > -math.inf else s.baseline


def stop_cost(result: Any) -> float:
    """The cost at which a recorded run stopped on its own (its last evaluation); infinite for a
    run cut off by its time budget, which would have gone on."""
    costs, _ = running_curve(result)
    return float(costs[-1]) if len(costs) and converged(result) else math.inf


def rung_order(items: Sequence[Any], scores: Sequence[float], priority: Sequence[float]) -> list[Any]:
    """The order a race's rung passes on: by measured score, ties broken by the meta-model's priority."""
    ranked = sorted(range(len(items)), key=lambda k: (-scores[k], -priority[k]))
    return [items[k] for k in ranked]


def portfolio(predicted: np.ndarray, allowed: np.ndarray, methods: Sequence[str], first: Sequence[int | None],
              size: int) -> list[int]:
    """Distinct methods: ``first`` (the top pick, then the robust default) in that order, then
    the best predicted others."""
    order = [int(i) for i in np.argsort(-predicted) if allowed[i]] or [int(i) for i in np.argsort(-predicted)]
    chosen: list[int] = []
    for i in [*(int(f) for f in first if f is not None), *order]:
        if len(chosen) < size and methods[i] not in {methods[c] for c in chosen}:
            chosen.append(i)
    return chosen


# --- the evaluation -----------------------------------------------------------------------
def _latency_model(train_rows: Sequence[Any]) -> Any:
    from recommender.metamodel.estimators import MetaModel

    try:
        return MetaModel(max_iter=60).fit(train_rows)
    except Exception:  # noqa: BLE001 - too few runs to learn latency: predict nothing
        return None


@dataclass
class Prediction:
    """What the recommender, fitted without a set's task group, predicted for it in a scenario."""

    set: TaskSet
    scenario: str
    quality: np.ndarray  # (n_runs, 3) predicted score: interval low, median, high
    allowed: np.ndarray  # predicted to meet the scenario's constraint
    rule: str | None  # the best fixed rule on the training groups, as applied to this set (:func:`rule_for`)
    lead: np.ndarray | None = None  # (n_runs,) above zero where the pick may leave the rule (shipped_lead_model)


def replay_predictions(kb_rows: Sequence[Any], *, quality_kwargs: dict[str, Any] | None = None,
                       latency: bool = True, interpolate: bool = True) -> list[Prediction]:
    """Fit the models once per held-out task group and predict every held-out set in every
    scenario; ``interpolate``: how runs are scored at a budget (:class:`TaskSet`)."""
    from recommender.metamodel.evaluate import prediction_rows

    sets = task_sets(kb_rows, interpolate=interpolate)
    out: list[Prediction] = []
    for group in sorted({s.group for s in sets}):
        train_rows = [r for r in kb_rows if _group_of(r) != group]
        train_sets = [s for s in sets if s.group != group]
        if len({r.metafeatures.fingerprint for r in train_rows}) < 2 or not train_sets:
            continue
        quality = QualityModel(**(quality_kwargs or {})).fit(train_rows)
        meta = _latency_model(train_rows) if latency else None
        rankings = {sc: method_ranking(train_sets, sc) for sc in SCENARIOS}
        leads = shipped_lead_model().fit(train_sets, rankings)
        for s in (s for s in sets if s.group == group):
            rows = prediction_rows(s.runs)
            ratio = None
            if meta is not None:
                predicted = meta.predict(rows)
                ratio = predicted["latency_ratio_b1"][:, LATENCY_QUANTILE] if "latency_ratio_b1" in predicted else None
            for sc in SCENARIOS:
                budget = s.budgets[sc]
                log_cost = math.log(budget) if budget is not None else quality.convergence_log_cost()
                q = to_metric(quality.predict(rows, [log_cost])[:, 0, :], s.baseline, s.runs[0].result.metric_name)
                out.append(Prediction(s, sc, q, predicted_feasible(s, sc, ratio), rule_for(s, rankings[sc]),
                                      leads.lead(sc, rows, rule_run(s, rankings[sc]))))
    return out


def refit_gaps(predictions: Sequence[Prediction], kb_rows: Sequence[Any], model: Any = None,
               **gap_kwargs: Any) -> list[Prediction]:
    """``predictions`` with the model of the pick's lead refitted per held-out group: a fresh copy
    of ``model`` (anything with ``fit(sets, rankings)`` and ``lead(scenario, rows, rule_index)``,
    e.g. :class:`~recommender.metamodel.pairwise.PairwiseRuleModel`), by default
    ``RuleGapModel(**gap_kwargs)`` -- to compare them without refitting the quality model."""
    from recommender.metamodel.evaluate import prediction_rows

    sets = task_sets(kb_rows, interpolate=predictions[0].set.interpolate) if predictions else []
    groups = {p.set.group for p in predictions}
    out: list[Prediction] = []
    for group, rankings, fitted in _held_out_fits(sets, model if model is not None else RuleGapModel(**gap_kwargs), groups):
        for p in (p for p in predictions if p.set.group == group):
            lead = fitted.lead(p.scenario, prediction_rows(p.set.runs), rule_run(p.set, rankings[p.scenario]))
            out.append(replace(p, lead=lead))
    return out


def _held_out_fits(sets: Sequence[TaskSet], model: Any,
                   groups: set[str] | None = None) -> Iterator[tuple[str, dict[str, list[str]], Any]]:
    """Per held-out task group (all of ``sets``' unless ``groups``): the fixed-rule rankings and a
    fresh copy of ``model`` fitted on the other groups' sets, as ``(group, rankings, fitted)``."""
    from copy import deepcopy

    for group in sorted(groups if groups is not None else {s.group for s in sets}):
        train_sets = [s for s in sets if s.group != group]
        rankings = {sc: method_ranking(train_sets, sc) for sc in SCENARIOS}
        yield group, rankings, deepcopy(model).fit(train_sets, rankings)


def pairwise_diagnostics(kb_rows: Sequence[Any], model: PairwiseRuleModel | None = None) -> dict[str, Any]:
    """How well the pairwise model (the shipped lead model by default), fitted without a task
    group, orders that group's configurations: per scenario the ROC AUC of its probability over
    every held-out pair of feasible configurations whose outcomes differ by more than
    :data:`TIE`, and over the pairs with the fixed rule's run (the only ones the pick reads): how
    often the other configuration won, the AUC, and how many it gave a probability above its
    ``confidence`` and how many of those won. Says why the pick seldom leaves the rule."""
    from sklearn.metrics import roc_auc_score

    from recommender.metamodel.evaluate import prediction_rows

    model = model if model is not None else shipped_lead_model()
    sets = task_sets(kb_rows)
    pairs: dict[str, dict[str, list[Any]]] = {sc: defaultdict(list) for sc in SCENARIOS}
    for group, rankings, fitted in _held_out_fits(sets, model):
        for s in (s for s in sets if s.group == group):
            rows = prediction_rows(s.runs)
            for sc in SCENARIOS:
                outcomes, feasible, rule = s.outcomes(sc), s.feasible(sc), rule_run(s, rankings[sc])
                for ref in np.flatnonzero(feasible):
                    p = fitted.beats(sc, rows, int(ref))
                    if p is None:
                        continue
                    keep = feasible & (np.abs(outcomes - outcomes[ref]) > TIE)
                    won, prob = outcomes[keep] > outcomes[ref], p[keep]
                    pairs[sc]["p"].extend(prob)
                    pairs[sc]["won"].extend(won)
                    if ref == rule:
                        pairs[sc]["rule_p"].extend(prob)
                        pairs[sc]["rule_won"].extend(won)

    def auc(won: np.ndarray, p: np.ndarray) -> float | None:
        return _r(roc_auc_score(won, p)) if len(set(won.tolist())) > 1 else None

    out: dict[str, Any] = {}
    for sc in SCENARIOS:
        p, won = np.array(pairs[sc]["p"]), np.array(pairs[sc]["won"], dtype=bool)
        rule_p, rule_won = np.array(pairs[sc]["rule_p"]), np.array(pairs[sc]["rule_won"], dtype=bool)
        sure = rule_p > model.confidence
        out[sc] = {"pairs": int(len(p)), "auc": auc(won, p),
                   "vs_rule": {"pairs": int(len(rule_p)), "won": _r(rule_won.mean()) if len(rule_won) else None,
                               "auc": auc(rule_won, rule_p),
                               "max_probability": _r(rule_p.max()) if len(rule_p) else None,
                               "confident": int(sure.sum()), "confident_won": int(rule_won[sure].sum())}}
    return {"confidence": model.confidence, "scenarios": out}


def evaluate_scenarios(kb_rows: Sequence[Any], *, plan: RacePlan | None = None, margin: float | None = None,
                       n_boot: int = 2000, seed: int = 0, quality_kwargs: dict[str, Any] | None = None,
                       latency: bool = True, predictions: Sequence[Prediction] | None = None,
                       race: Callable[..., float] = race_outcome) -> dict[str, Any]:
    """Leave-one-task-group-out replay of every policy in every scenario (see the module doc).

    Returns ``{"scenarios": [{"name", "policies": {policy: {"regret", "ci90"}}, "gap_closed",
    "coverage80", ...}], ...}`` with regrets in metric points. ``predictions``: from
    :func:`replay_predictions`, to score several plans or margins without refitting. ``margin``
    None: the top pick of :func:`~recommender.metamodel.rule_gap.pick`; a number: :func:`choose`.
    ``race``: how a race is replayed (:func:`race_outcome`; :func:`probe_race_outcome` to compare)."""
    plan = plan or RacePlan()
    if predictions is None:
        predictions = replay_predictions(kb_rows, quality_kwargs=quality_kwargs, latency=latency)
    regrets: dict[str, dict[str, dict[str, list[float]]]] = {
        sc: defaultdict(lambda: defaultdict(list)) for sc in SCENARIOS}
    covered: dict[str, list[float]] = defaultdict(list)
    rules: dict[str, list[str]] = defaultdict(list)
    departures: dict[str, list[float]] = defaultdict(list)  # the pick's gain over the rule where they differ
    for p in predictions:
        s, sc, q = p.set, p.scenario, p.quality
        outcomes = s.outcomes(sc)
        feasible = s.feasible(sc)
        if not feasible.any():
            continue
        rules[sc].append(p.rule or "-")
        methods = [r.result.method for r in s.runs]
        oracle = float(outcomes[feasible].max())
        fixed = _method_run(s, p.rule)
        top = (pick(p.lead, p.allowed, fixed) if margin is None
               else choose(q[:, 1], p.allowed, fixed, margin))
        budget = s.budgets[sc]
        race_budget = budget if budget is not None else s.budgets["time_100"]
        order = portfolio(q[:, 1], p.allowed, methods, (top, fixed), plan.portfolio)
        ceiling = max(race_outcome(s, sc, [i], RacePlan(portfolio=1), float(race_budget or 0.0), q[:, 1])
                      for i in order)
        raced = race(s, sc, order, plan, float(race_budget or 0.0), q[:, 1])
        full = _method_run(s, REFERENCE_METHOD)
        if fixed is not None and top != fixed:
            departures[sc].append(100 * float(outcomes[top] - outcomes[fixed]))
        row = regrets[sc][s.group]
        row["oracle"].append(0.0)
        row["metamodel"].append(100 * (oracle - outcomes[top]))
        row["race"].append(100 * (oracle - raced))
        row["race_ceiling"].append(100 * (oracle - ceiling))
        row["random"].append(100 * (oracle - float(outcomes[feasible].mean())))
        row["best_fixed_rule"].append(100 * (oracle - (outcomes[fixed] if fixed is not None else s.baseline)))
        if full is not None and _full_ft_possible(sc):
            row["always_full_ft"].append(100 * (oracle - outcomes[full]))
        covered[sc].extend(interval_hits(outcomes, q)[feasible].astype(float).tolist())
    rng = np.random.default_rng(seed)
    scenarios = [{**_summarise(sc, regrets[sc], covered[sc], rules[sc], n_boot, rng),
                  "departures": _departures(departures[sc])} for sc in SCENARIOS]
    return {"scenarios": scenarios, "n_sets": len({id(p.set) for p in predictions}),
            "n_groups": len({p.set.group for p in predictions}),
            "race_plan": {"portfolio": plan.portfolio, "eta": plan.eta, "final_fraction": plan.final_fraction},
            "margin": margin}


def _departures(gains: Sequence[float]) -> dict[str, Any]:
    """Where the meta-model's pick left the fixed rule: on how many sets, how often it did better
    or worse by more than half a point, and its mean gain over the rule there (points)."""
    g = np.asarray(gains, dtype=float)
    return {"sets": int(len(g)), "better": int((g > 100 * TIE).sum()), "worse": int((g < -100 * TIE).sum()),
            "mean_gain": _r(g.mean()) if len(g) else None}


def interval_hits(outcomes: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Whether each measured outcome lies inside its predicted interval (ends included)."""
    return (outcomes >= quality[:, 0] - 1e-9) & (outcomes <= quality[:, -1] + 1e-9)


def _group_of(row: Any) -> str:
    from recommender.metamodel.evaluate import task_group

    return task_group(row)


def _full_ft_possible(scenario: str) -> bool:
    """Full fine-tuning can never meet the parameter or the 20-task storage budget."""
    return scenario not in ("params_1m", "storage_20")


def _summarise(name: str, by_group: dict[str, dict[str, list[float]]], covered: list[float], rules: list[str],
               n_boot: int, rng: np.random.Generator) -> dict[str, Any]:
    groups = sorted(by_group)
    per_group = {p: np.array([np.mean(by_group[g][p]) if by_group[g][p] else np.nan for g in groups])
                 for p in POLICIES}
    idx = rng.integers(0, len(groups), size=(n_boot, len(groups))) if groups else np.zeros((0, 0), dtype=int)
    policies: dict[str, Any] = {}
    for p, values in per_group.items():
        if not len(values) or np.isnan(values).all():
            policies[p] = None
            continue
        boot = np.nanmean(values[idx], axis=1)
        policies[p] = {"regret": _r(np.nanmean(values)), "ci90": [_r(np.nanpercentile(boot, 5)),
                                                                   _r(np.nanpercentile(boot, 95))]}
    fixed = per_group["best_fixed_rule"]
    for p in ("metamodel", "race"):
        if policies.get(p) is None or not len(fixed):
            continue
        diff = per_group[p] - fixed
        boot = np.nanmean(diff[idx], axis=1)
        policies[p]["vs_best_fixed_rule"] = {
            "diff": _r(np.nanmean(diff)), "ci90": [_r(np.percentile(boot, 5)), _r(np.percentile(boot, 95))]}
    gap = policies["best_fixed_rule"]["regret"] if policies.get("best_fixed_rule") else None
    gap_closed = {p: (None if not gap or policies.get(p) is None else _r(1 - policies[p]["regret"] / gap))
                  for p in ("metamodel", "race", "race_ceiling")}
    common = max(set(rules), key=rules.count) if rules else None
    return {"name": name, "policies": policies, "gap_closed": gap_closed,
            "coverage80": _r(float(np.mean(covered))) if covered else None,
            "best_fixed_rule_method": common, "n_groups": len(groups),
            "n_sets": int(sum(len(by_group[g]["oracle"]) for g in groups))}


def _r(x: float) -> float:
    return round(float(x), 4)
