"""How far each configuration lands from the best fixed rule: the regret-aware pick's first model.

Per scenario of :mod:`~recommender.metamodel.replay_eval` (a time budget of 25 / 50 / 100 % of
full fine-tuning's convergence, the latency, parameter and storage budgets), a quantile model
learns from every (task, size) set of the knowledge base how much each measured configuration's
outcome in that scenario lay above or below the fixed rule's run on the same set (outcomes as
the replay scores them, in metric units). Task effects cancel in the difference, which is what
the pick needs: :func:`pick` leaves the rule only for the configuration whose 10 % quantile of
the difference is highest and above zero, a gain predicted with 90 % confidence.

Compared by the replay evaluation with keeping the rule unless another configuration's predicted
metric is 5 points higher: a tie within noise on three knowledge bases (README, "How well the
meta-model recommends"); shipped until 2026-12-07, when the pairwise model
(:mod:`~recommender.metamodel.pairwise`) did better by the same replay. :func:`pick` serves both:
it reads any model's ``lead``.

``neighbours=k`` (off in the shipped model, compared by the benchmark) adds one feature: the
configuration's method's mean difference to the rule on the k task groups nearest to the task
(standardised task features; a group is as near as its nearest set), computed without the set's
own group when fitting, so a row never sees its own outcome.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.metamodel.features import design_matrix

#: the quantiles predicted; the pick reads the first (a gain with 90 % confidence)
QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class RuleGapModel:
    """Per scenario, (n, 3) quantiles of a configuration's outcome minus the fixed rule's.

    >>> model = RuleGapModel().fit(task_sets(kb_rows), rankings)         # doctest: +SKIP
    >>> model.predict("time_25", rows)[:, 0]  # the gains with 90 % confidence  # doctest: +SKIP
    """

    max_iter: int = 100
    min_samples_leaf: int = 10
    random_state: int = 0
    neighbours: int = 0  # k nearest task groups whose differences become a feature (0: none)
    methods_: list[str] = field(default_factory=list)
    models_: dict[str, Any] = field(default_factory=dict)
    vectors_: np.ndarray | None = None  # (n_sets, d) standardised task features of the training sets
    scaling_: tuple[np.ndarray, np.ndarray] | None = None  # (mean, scale) that standardised them
    set_groups_: list[str] = field(default_factory=list)
    differences_: dict[str, np.ndarray] = field(default_factory=dict)  # scenario: (n_sets, n_methods)

    def fit(self, sets: Sequence[Any], rankings: Mapping[str, Sequence[str]]) -> RuleGapModel:
        """``sets``: :class:`~recommender.metamodel.replay_eval.TaskSet`; ``rankings``: each
        scenario's fixed-rule ranking of methods (:func:`~recommender.metamodel.replay_eval.method_ranking`)."""
        from recommender.metamodel.evaluate import prediction_rows
        from recommender.metamodel.quantile_gbm import QuantileGradientBoosting
        from recommender.metamodel.replay_eval import rule_run

        self.methods_ = sorted({r.result.method for s in sets for r in s.runs})
        self.models_ = {}
        if self.neighbours:
            self._fit_neighbours(sets, rankings)
        for scenario, ranking in rankings.items():
            X, y = [], []
            for s in sets:
                fixed = rule_run(s, ranking)
                if fixed is None:
                    continue
                outcomes = s.outcomes(scenario)
                X.append(self._features(scenario, prediction_rows(s.runs), exclude=s.group))
                y.append(outcomes - outcomes[fixed])
            if len(X) < 3:
                continue  # too few sets to learn a difference from: the rule stands
            self.models_[scenario] = QuantileGradientBoosting(
                QUANTILES, max_iter=self.max_iter, learning_rate=0.1, max_leaf_nodes=31,
                min_samples_leaf=self.min_samples_leaf, random_state=self.random_state,
            ).fit(np.vstack(X), np.concatenate(y))
        return self

    def _fit_neighbours(self, sets: Sequence[Any], rankings: Mapping[str, Sequence[str]]) -> None:
        """Remember each training set's standardised task features, group and, per scenario, each
        method's (default configuration's) outcome minus the rule's there."""
        from recommender.metamodel.replay_eval import _method_run, rule_run

        vectors = np.array([self._task_vector(s.runs[0].metafeatures) for s in sets])
        mean, scale = vectors.mean(axis=0), vectors.std(axis=0)
        scale[scale == 0] = 1.0
        self.scaling_, self.vectors_ = (mean, scale), (vectors - mean) / scale
        self.set_groups_ = [s.group for s in sets]
        self.differences_ = {}
        for scenario, ranking in rankings.items():
            diff = np.full((len(sets), len(self.methods_)), np.nan)
            for k, s in enumerate(sets):
                fixed = rule_run(s, ranking)
                if fixed is None:
                    continue
                outcomes = s.outcomes(scenario)
                for j, method in enumerate(self.methods_):
                    run = _method_run(s, method)
                    if run is not None:
                        diff[k, j] = outcomes[run] - outcomes[fixed]
            self.differences_[scenario] = diff

    @staticmethod
    def _task_vector(mf: Any) -> list[float]:
        from recommender.metamodel.features import task_vector

        return list(task_vector(mf).values())

    def _neighbour_differences(self, scenario: str, mf: Any, exclude: str | None) -> dict[str, float]:
        """Per method: its mean difference to the rule over the ``neighbours`` nearest task groups
        (each group's sets averaged first), ``exclude`` left out."""
        assert self.vectors_ is not None and self.scaling_ is not None
        diff = self.differences_.get(scenario)
        if diff is None:
            return {}
        mean, scale = self.scaling_
        distance = np.linalg.norm(self.vectors_ - (np.array(self._task_vector(mf)) - mean) / scale, axis=1)
        nearest: dict[str, float] = {}
        for d, g in zip(distance, self.set_groups_, strict=True):
            if g != exclude:
                nearest[g] = min(nearest.get(g, np.inf), float(d))
        chosen = sorted(nearest, key=lambda g: nearest[g])[: self.neighbours]
        out = {}
        for j, method in enumerate(self.methods_):
            per_group = [diff[[k for k, g in enumerate(self.set_groups_) if g == group], j] for group in chosen]
            means = [float(np.nanmean(v)) for v in per_group if np.isfinite(v).any()]
            out[method] = float(np.mean(means)) if means else np.nan
        return out

    def _features(self, scenario: str, rows: Sequence[Mapping[str, Any]], exclude: str | None = None) -> np.ndarray:
        X = design_matrix(rows, self.methods_)[1]
        if not self.neighbours:
            return X
        by_task: dict[str, dict[str, float]] = {}
        column = []
        for r in rows:
            mf = r["metafeatures"]
            if mf.fingerprint not in by_task:
                by_task[mf.fingerprint] = self._neighbour_differences(scenario, mf, exclude)
            column.append(by_task[mf.fingerprint].get(r["method"], np.nan))
        return np.hstack([X, np.array(column, dtype=float)[:, None]])

    def predict(self, scenario: str, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """(n_rows, 3) predicted differences to the rule's outcome (None: no model for ``scenario``)."""
        model = self.models_.get(scenario)
        if model is None or not len(rows):
            return None
        return np.asarray(model.predict_quantiles(self._features(scenario, rows)))

    def lead(self, scenario: str, rows: Sequence[Mapping[str, Any]], reference: int | None = None) -> np.ndarray | None:
        """The gains with 90 % confidence (the 10 % quantile): above zero where a row beats the
        rule's outcome (:func:`pick` reads it). ``reference`` (the rule's row) is not needed: the
        model learned the difference to the rule's run itself."""
        q = self.predict(scenario, rows)
        return None if q is None else q[:, 0]

    def describe(self, lead: float) -> str:
        """The pick's reason in words, for a configuration whose :meth:`lead` is ``lead``."""
        return f"by at least {100 * lead:.1f} points with 90 % confidence"

    def compact(self) -> RuleGapModel:
        """The same predictions from NumPy arrays alone (:mod:`~recommender.metamodel.trees`)."""
        from recommender.metamodel.trees import compact

        self.models_ = {k: compact(v) for k, v in self.models_.items()}
        return self


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
