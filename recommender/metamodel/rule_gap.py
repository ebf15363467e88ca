"""The regret-aware top pick: how far each configuration lands from the best fixed rule.

Per scenario of :mod:`~recommender.metamodel.replay_eval` (a time budget of 25 / 50 / 100 % of
full fine-tuning's convergence, the latency, parameter and storage budgets), a quantile model
learns from every (task, size) set of the knowledge base how much each measured configuration's
outcome in that scenario lay above or below the fixed rule's run on the same set (outcomes as
the replay scores them, in metric units). Task effects cancel in the difference, which is what
the pick needs: :func:`pick` leaves the rule only for the configuration whose predicted
difference at the scenario's *gate* quantile is highest and above zero.

The gate is how sure the pick must be: a gain at the 10 % quantile (90 % confidence), the 25 %
or the median. ``fit`` chooses one for every scenario by cross-validation over the training task
groups: the level whose picks gained most over the rule on the groups held out, averaged over
the scenarios; a level that gains nothing more keeps the most cautious one. The replay
evaluation fits once per held-out group, so it scores the choice on groups it never saw. Chosen
per scenario instead, the gate changed from fold to fold (3 folds of ~29 groups are noisy) and
lost to the 10 % gate on average (README, "How well the meta-model recommends").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.metamodel.features import design_matrix

#: the quantiles predicted, each a level of confidence the pick may require (see ``gates_``)
GATES = (0.1, 0.25, 0.5)


@dataclass
class RuleGapModel:
    """Per scenario, (n, 3) quantiles of a configuration's outcome minus the fixed rule's, and the
    quantile (``gates_``) whose gain must be above zero to leave the rule.

    >>> model = RuleGapModel().fit(task_sets(kb_rows), rankings)         # doctest: +SKIP
    >>> model.lower_gain("time_25", rows)  # the gains at the scenario's gate  # doctest: +SKIP
    """

    max_iter: int = 100
    min_samples_leaf: int = 10
    n_folds: int = 3  # task-group folds that choose each scenario's gate
    random_state: int = 0
    methods_: list[str] = field(default_factory=list)
    models_: dict[str, Any] = field(default_factory=dict)
    gates_: dict[str, float] = field(default_factory=dict)

    def fit(self, sets: Sequence[Any], rankings: Mapping[str, Sequence[str]]) -> RuleGapModel:
        """``sets``: :class:`~recommender.metamodel.replay_eval.TaskSet`; ``rankings``: each
        scenario's fixed-rule ranking of methods (:func:`~recommender.metamodel.replay_eval.method_ranking`)."""
        from recommender.metamodel.evaluate import prediction_rows
        from recommender.metamodel.replay_eval import rule_run

        self.methods_ = sorted({r.result.method for s in sets for r in s.runs})
        self.models_, self.gates_ = {}, {}
        per_scenario: list[np.ndarray] = []
        for scenario, ranking in rankings.items():
            data: list[_SetGaps] = []
            for s in sets:
                fixed = rule_run(s, ranking)
                if fixed is None:
                    continue
                outcomes = s.outcomes(scenario)
                data.append(_SetGaps(s.group, self._matrix(prediction_rows(s.runs)), outcomes - outcomes[fixed],
                                     s.feasible(scenario), fixed))
            if len(data) < 3:
                continue  # too few sets to learn a difference from: the rule stands
            self.models_[scenario] = self._fit_quantiles(data)
            gains = self._held_out_gains(data)
            if gains is not None:
                per_scenario.append(gains)
        gate = most_cautious_best(np.mean(per_scenario, axis=0)) if per_scenario else GATES[0]
        self.gates_ = dict.fromkeys(self.models_, gate)
        return self

    def _fit_quantiles(self, data: Sequence[_SetGaps]) -> Any:
        from recommender.metamodel.quantile_gbm import QuantileGradientBoosting

        return QuantileGradientBoosting(
            GATES, max_iter=self.max_iter, learning_rate=0.1, max_leaf_nodes=31,
            min_samples_leaf=self.min_samples_leaf, random_state=self.random_state,
        ).fit(np.vstack([d.X for d in data]), np.concatenate([d.gain for d in data]))

    def _held_out_gains(self, data: Sequence[_SetGaps]) -> np.ndarray | None:
        """Per gate, the mean over held-out task groups of its picks' gain over the rule
        (None: fewer than 3 groups)."""
        names = sorted({d.group for d in data})
        if len(names) < 3:
            return None
        rng = np.random.default_rng(self.random_state)
        fold_of = dict(zip(names, rng.permutation(len(names)) % min(self.n_folds, len(names)), strict=True))
        gains: dict[str, list[list[float]]] = {g: [[] for _ in GATES] for g in names}
        for fold in sorted(set(fold_of.values())):
            model = self._fit_quantiles([d for d in data if fold_of[d.group] != fold])
            for d in (d for d in data if fold_of[d.group] == fold):
                q = model.predict_quantiles(d.X)
                for j in range(len(GATES)):
                    gains[d.group][j].append(float(d.gain[pick(q[:, j], d.allowed, d.fixed)]))
        return np.array([np.mean([np.mean(gains[g][j]) for g in names]) for j in range(len(GATES))])

    def _matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return design_matrix(rows, self.methods_)[1]

    def predict(self, scenario: str, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """(n_rows, 3) predicted differences to the rule's outcome at :data:`GATES` (None: no
        model for ``scenario``)."""
        model = self.models_.get(scenario)
        if model is None or not len(rows):
            return None
        return np.asarray(model.predict_quantiles(self._matrix(rows)))

    def gate(self, scenario: str) -> float:
        """The quantile of the difference that must be above zero to leave the rule here."""
        return float(getattr(self, "gates_", {}).get(scenario, GATES[0]))  # older fits: the 10 %

    def lower_gain(self, scenario: str, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """Each configuration's predicted gain over the rule at the scenario's gate."""
        q = self.predict(scenario, rows)
        return None if q is None else q[:, GATES.index(self.gate(scenario))]

    def compact(self) -> RuleGapModel:
        """The same predictions from NumPy arrays alone (:mod:`~recommender.metamodel.trees`)."""
        from recommender.metamodel.trees import compact

        self.models_ = {k: compact(v) for k, v in self.models_.items()}
        return self


@dataclass(frozen=True)
class _SetGaps:
    """One set's rows for one scenario: features, each run's gain over the rule's run, which
    runs meet the scenario's budget, and the rule's run."""

    group: str
    X: np.ndarray
    gain: np.ndarray
    allowed: np.ndarray
    fixed: int


def most_cautious_best(gains: Sequence[float] | np.ndarray) -> float:
    """The gate with the highest gain, the most cautious of those that tie."""
    best = 0
    for j in range(1, len(GATES)):
        if gains[j] > gains[best] + 1e-9:
            best = j
    return GATES[best]


def pick(lower_gain: np.ndarray | None, allowed: np.ndarray, default: int | None) -> int:
    """The top pick: the ``allowed`` configuration with the highest lower bound of its gain over
    the rule if that bound is above zero, else the rule's configuration ``default`` (else, with
    no default allowed, the highest lower bound; with neither a model nor a default, the first
    allowed configuration)."""
    idx = np.flatnonzero(allowed) if allowed.any() else np.arange(len(allowed))
    if lower_gain is None:
        return default if default is not None and default in idx else int(idx[0])
    best = int(idx[np.argmax(lower_gain[idx])])
    if default is None or default not in idx or lower_gain[best] > 0:
        return best
    return default
