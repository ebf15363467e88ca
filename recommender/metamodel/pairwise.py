"""The regret-aware top pick: how likely a configuration beats the best fixed rule's, learned pairwise.

Per scenario of :mod:`~recommender.metamodel.replay_eval`, a gradient-boosted classifier learns
from every (task, size) set of the knowledge base which of two measured configurations reached
the better outcome in that scenario (outcomes as the replay scores them; pairs closer than
:data:`TIE` are left out), from the task's features and both configurations'. Every pair of a
set counts, not only the pairs with the fixed rule's run, so each set teaches what beats what
among all methods; each set weighs the same. :meth:`PairwiseRuleModel.lead` is the symmetrised
probability that a configuration beats the rule's minus ``confidence``: the pick
(:func:`~recommender.metamodel.rule_gap.pick`) leaves the rule only where it is above zero, for a
configuration predicted to beat it with that probability.

The issue's "pairwise ranking model", shipped since 2026-12-07 (the predictor's ``lead_model``),
chosen over the difference model (:class:`~recommender.metamodel.rule_gap.RuleGapModel`) by the
replay evaluation; its current figures, where rank 1 left the rule and why it seldom does
(:func:`~recommender.metamodel.replay_eval.pairwise_diagnostics`) are in the README and
``evaluation.json``. Every pair is learned, but only pairs with the rule's run are read: a
ranking by the mean probability of beating every other configuration (Borda) did worse than the
rule in a throwaway replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.metamodel.features import design_matrix, task_vector

#: outcomes closer than this (metric units) are a tie: the pair teaches nothing
TIE = 0.005


@dataclass
class PairwiseRuleModel:
    """Per scenario, P(configuration a's outcome > configuration b's) on the same task.

    >>> model = PairwiseRuleModel().fit(task_sets(kb_rows), rankings)            # doctest: +SKIP
    >>> model.beats("time_50", rows, reference=rule_index)  # P(each row beats the rule's) # doctest: +SKIP
    """

    confidence: float = 0.9
    max_iter: int = 150
    learning_rate: float = 0.1
    min_samples_leaf: int = 20
    max_pairs_per_set: int = 400
    random_state: int = 0
    methods_: list[str] = field(default_factory=list)
    n_task_features_: int = 0
    empty_features_: np.ndarray | None = None  # pair features never measured (set to 0: trees cannot bin them)
    models_: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")

    def fit(self, sets: Sequence[Any], rankings: Mapping[str, Sequence[str]]) -> PairwiseRuleModel:
        """``sets``: :class:`~recommender.metamodel.replay_eval.TaskSet`; ``rankings``: the scenarios
        to learn (their fixed-rule rankings are not needed: every pair of a set counts)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        from recommender.metamodel.evaluate import prediction_rows

        self.methods_ = sorted({r.result.method for s in sets for r in s.runs})
        self.n_task_features_ = len(task_vector(sets[0].runs[0].metafeatures)) if sets else 0
        self.models_ = {}
        matrices = [design_matrix(prediction_rows(s.runs), self.methods_)[1] for s in sets]
        empty = np.isnan(np.vstack(matrices)).all(axis=0) if matrices else np.zeros(0, dtype=bool)
        self.empty_features_ = np.concatenate([empty, empty[self.n_task_features_:]])
        for scenario in rankings:
            rng = np.random.default_rng(self.random_state)
            X, y, weight = [], [], []
            for s, features in zip(sets, matrices, strict=True):
                outcomes = s.outcomes(scenario)
                first, second = self._pairs(outcomes, rng)
                if len(first):
                    X.append(self._pair_features(features, first, second))
                    y.append(outcomes[first] > outcomes[second])
                    weight.append(np.full(len(first), 1.0 / len(first)))
            labels = np.concatenate(y) if y else np.zeros(0, dtype=bool)
            if len(X) < 3 or labels.all() or not labels.any():
                continue  # too few sets to learn from: the rule stands
            self.models_[scenario] = HistGradientBoostingClassifier(
                max_iter=self.max_iter, learning_rate=self.learning_rate, min_samples_leaf=self.min_samples_leaf,
                random_state=self.random_state,
            ).fit(np.vstack(X), labels.astype(int), sample_weight=np.concatenate(weight))
        return self

    def _pairs(self, outcomes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Ordered pairs (i, j), i != j, whose outcomes differ by more than :data:`TIE`, at most
        ``max_pairs_per_set`` of them (a seeded sample)."""
        first, second = np.divmod(np.arange(len(outcomes) ** 2), len(outcomes))
        keep = (first != second) & (np.abs(outcomes[first] - outcomes[second]) > TIE)
        first, second = first[keep], second[keep]
        if len(first) > self.max_pairs_per_set:
            chosen = np.sort(rng.choice(len(first), self.max_pairs_per_set, replace=False))
            first, second = first[chosen], second[chosen]
        return first, second

    def _pair_features(self, features: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """The task's features and the first configuration's (one row of the design matrix), then
        the second configuration's."""
        X = np.hstack([features[first], features[second][:, self.n_task_features_:]])
        if self.empty_features_ is not None and self.empty_features_.any():
            X[:, self.empty_features_] = 0.0
        return X

    def beats(self, scenario: str, rows: Sequence[Mapping[str, Any]], reference: int) -> np.ndarray | None:
        """(n_rows,) the probability that each row's outcome beats row ``reference``'s, averaged
        over both orders of the pair (0.5 for the reference itself); None without a model."""
        model = self.models_.get(scenario)
        if model is None or not len(rows):
            return None
        features = design_matrix(rows, self.methods_)[1]
        others = np.arange(len(rows))
        ref = np.full(len(rows), reference)
        forward = model.predict_proba(self._pair_features(features, others, ref))[:, 1]
        backward = model.predict_proba(self._pair_features(features, ref, others))[:, 1]
        p = (forward + 1.0 - backward) / 2
        p[reference] = 0.5
        return np.asarray(p)

    def lead(self, scenario: str, rows: Sequence[Mapping[str, Any]], reference: int | None) -> np.ndarray | None:
        """Above zero where a row beats row ``reference`` (the rule's) with probability above
        ``confidence`` (:func:`~recommender.metamodel.rule_gap.pick` reads it); None without a
        model or a reference."""
        if reference is None:
            return None
        p = self.beats(scenario, rows, reference)
        return None if p is None else p - self.confidence

    def describe(self, lead: float) -> str:
        """The pick's reason in words, for a configuration whose :meth:`lead` is ``lead``."""
        return f"with probability {lead + self.confidence:.2f} (rank 1 needs {self.confidence:.2f})"

    def compact(self) -> PairwiseRuleModel:
        """The same probabilities from NumPy arrays alone (:mod:`~recommender.metamodel.trees`)."""
        from recommender.metamodel.trees import compact

        self.models_ = {k: compact(v) for k, v in self.models_.items()}
        return self
