"""Fitted boosted trees as plain NumPy arrays: predictions without importing scikit-learn.

A recommendation on a warm cache only *predicts*; importing scikit-learn (and SciPy through it)
takes longer than everything else it does. :class:`CompactQuantiles` holds what a fitted
:class:`~recommender.metamodel.quantile_gbm.QuantileGradientBoosting` needs to predict (each
tree's split features, thresholds, missing-value directions, children and leaf values) and
predicts exactly as scikit-learn's ``HistGradientBoostingRegressor`` does: same traversal, same
order of summation, so the predictions are identical (tested);
:class:`CompactBinaryClassifier` does the same for a binary ``HistGradientBoostingClassifier``
(the pairwise model's, :mod:`~recommender.metamodel.pairwise`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TreeEnsemble:
    """One quantile's boosted trees: all nodes concatenated, ``roots`` where each tree starts."""

    baseline: float
    roots: np.ndarray  # (n_trees,) index of each tree's first node
    feature: np.ndarray  # split feature per node
    threshold: np.ndarray  # go left when x <= threshold
    missing_left: np.ndarray  # where NaN goes
    left: np.ndarray  # absolute child indices
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    max_depth: int

    @classmethod
    def from_histgradientboosting(cls, model: Any) -> TreeEnsemble:
        """From a fitted single-output ``HistGradientBoostingRegressor`` without categorical
        features (what :class:`QuantileGradientBoosting` fits)."""
        if getattr(model, "is_categorical_", None) is not None and np.any(model.is_categorical_):
            raise ValueError("categorical splits are not supported")
        parts, roots, offset = [], [], 0
        for (predictor,) in model._predictors:  # one tree per iteration (single output)
            nodes = predictor.nodes
            roots.append(offset)
            parts.append((nodes, offset))
            offset += len(nodes)

        def column(name: str, dtype: Any, shift: bool = False) -> np.ndarray:
            if not parts:
                return np.zeros(0, dtype)
            return np.concatenate([nodes[name].astype(dtype) + off if shift else nodes[name].astype(dtype)
                                   for nodes, off in parts])

        return cls(baseline=float(np.asarray(model._baseline_prediction).ravel()[0]),
                   roots=np.asarray(roots, dtype=np.int64),
                   feature=column("feature_idx", np.int64), threshold=column("num_threshold", np.float64),
                   missing_left=column("missing_go_to_left", bool),
                   left=column("left", np.int64, shift=True), right=column("right", np.int64, shift=True),
                   is_leaf=column("is_leaf", bool), value=column("value", np.float64),
                   max_depth=int(max((int(nodes["depth"].max()) for nodes, _ in parts), default=0)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        n, n_trees = len(X), len(self.roots)
        raw = np.full(n, self.baseline, dtype=np.float64)
        if not n_trees or not n:
            return raw
        # a leaf is its own child, so every path simply takes ``depth`` steps
        loop = np.arange(len(self.left))
        left = np.where(self.is_leaf, loop, self.left)
        right = np.where(self.is_leaf, loop, self.right)
        node = np.tile(self.roots, n)  # sample-major: (sample, tree) flattened
        cell = np.repeat(np.arange(n) * X.shape[1], n_trees)
        flat = X.ravel()
        for _ in range(self.depth):
            x = flat.take(cell + self.feature.take(node))
            go_left = np.where(np.isnan(x), self.missing_left.take(node), x <= self.threshold.take(node))
            node = np.where(go_left, left.take(node), right.take(node))
        leaves = self.value.take(node).reshape(n, n_trees)
        for t in range(n_trees):  # tree by tree, as scikit-learn adds them
            raw += leaves[:, t]
        return raw

    @property
    def depth(self) -> int:
        """The longest root-to-leaf path (in splits)."""
        return int(self.max_depth)


@dataclass(frozen=True)
class CompactQuantiles:
    """The predicting half of a fitted ``QuantileGradientBoosting``: same ``predict`` and
    ``predict_quantiles``, NumPy only."""

    quantiles_: np.ndarray
    empty_features_: np.ndarray
    n_features_in_: int
    ensembles: tuple[TreeEnsemble, ...]

    @classmethod
    def from_fitted(cls, model: Any) -> CompactQuantiles:
        return cls(np.asarray(model.quantiles_), np.asarray(model.empty_features_), int(model.n_features_in_),
                   tuple(TreeEnsemble.from_histgradientboosting(e) for e in model.estimators_))

    def predict_quantiles(self, X: Any) -> np.ndarray:
        """(n_samples, n_quantiles) predictions, sorted across quantiles (no crossing)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; expected (n, {self.n_features_in_})")
        if self.empty_features_.any():
            X = X.copy()
            X[:, self.empty_features_] = 0.0
        preds = np.column_stack([e.predict(X) for e in self.ensembles])
        return np.sort(preds, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        q = self.predict_quantiles(X)
        return q[:, int(np.argmin(np.abs(self.quantiles_ - 0.5)))]


@dataclass(frozen=True)
class CompactBinaryClassifier:
    """The predicting half of a fitted binary ``HistGradientBoostingClassifier``: the same
    ``predict_proba``, NumPy only."""

    n_features_in_: int
    ensemble: TreeEnsemble

    @classmethod
    def from_fitted(cls, model: Any) -> CompactBinaryClassifier:
        if len(model.classes_) != 2:
            raise ValueError("only binary classifiers are supported")
        return cls(int(model.n_features_in_), TreeEnsemble.from_histgradientboosting(model))

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n_samples, 2): the probabilities of the first and the second class."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; expected (n, {self.n_features_in_})")
        positive = 1.0 / (1.0 + np.exp(-self.ensemble.predict(X)))
        return np.column_stack([1.0 - positive, positive])


def compact(model: Any) -> Any:
    """``model`` as :class:`CompactQuantiles` when it is a fitted quantile model, as
    :class:`CompactBinaryClassifier` when it is a fitted binary boosted classifier, else as is."""
    if hasattr(model, "estimators_") and hasattr(model, "quantiles_"):
        return CompactQuantiles.from_fitted(model)
    if hasattr(model, "_predictors") and len(getattr(model, "classes_", ())) == 2:
        return CompactBinaryClassifier.from_fitted(model)
    return model
