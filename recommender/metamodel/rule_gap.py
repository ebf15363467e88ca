"""The regret-aware top pick: how far each configuration lands from the best fixed rule.

Per scenario of :mod:`~recommender.metamodel.replay_eval` (a time budget of 25 / 50 / 100 % of
full fine-tuning's convergence, the latency, parameter and storage budgets), a quantile model
learns from every (task, size) set of the knowledge base how much each measured configuration's
outcome in that scenario lay above or below the fixed rule's run on the same set (outcomes as
the replay scores them, in metric units). Task effects cancel in the difference, which is what
the pick needs: :func:`pick` leaves the rule only for the configuration whose 10 % quantile of
the difference is highest and above zero, a gain predicted with 90 % confidence.

Compared by the replay evaluation with keeping the rule unless another configuration's predicted
metric is 5 points higher: a tie within noise on three knowledge bases (README, "How well the
meta-model recommends"); shipped because its one threshold was not chosen on the evaluation's folds.
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
    methods_: list[str] = field(default_factory=list)
    models_: dict[str, Any] = field(default_factory=dict)

    def fit(self, sets: Sequence[Any], rankings: Mapping[str, Sequence[str]]) -> RuleGapModel:
        """``sets``: :class:`~recommender.metamodel.replay_eval.TaskSet`; ``rankings``: each
        scenario's fixed-rule ranking of methods (:func:`~recommender.metamodel.replay_eval.method_ranking`)."""
        from recommender.metamodel.evaluate import prediction_rows
        from recommender.metamodel.quantile_gbm import QuantileGradientBoosting
        from recommender.metamodel.replay_eval import rule_run

        self.methods_ = sorted({r.result.method for s in sets for r in s.runs})
        self.models_ = {}
        for scenario, ranking in rankings.items():
            X, y = [], []
            for s in sets:
                fixed = rule_run(s, ranking)
                if fixed is None:
                    continue
                outcomes = s.outcomes(scenario)
                X.append(self._matrix(prediction_rows(s.runs)))
                y.append(outcomes - outcomes[fixed])
            if len(X) < 3:
                continue  # too few sets to learn a difference from: the rule stands
            self.models_[scenario] = QuantileGradientBoosting(
                QUANTILES, max_iter=self.max_iter, learning_rate=0.1, max_leaf_nodes=31,
                min_samples_leaf=self.min_samples_leaf, random_state=self.random_state,
            ).fit(np.vstack(X), np.concatenate(y))
        return self

    def _matrix(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return design_matrix(rows, self.methods_)[1]

    def predict(self, scenario: str, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
        """(n_rows, 3) predicted differences to the rule's outcome (None: no model for ``scenario``)."""
        model = self.models_.get(scenario)
        if model is None or not len(rows):
            return None
        return np.asarray(model.predict_quantiles(self._matrix(rows)))

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
