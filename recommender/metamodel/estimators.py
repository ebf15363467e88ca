"""The meta-model: one quantile regressor per target (time, memory, latency, quality gap).

:class:`MetaModel` fits one :class:`~recommender.metamodel.quantile_gbm.QuantileGradientBoosting`
per target on the knowledge base; it is cheap enough (seconds) to be refitted from data at load,
and once fitted (:meth:`MetaModel.compact`) it predicts with NumPy alone, without importing
scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recommender.metamodel.features import TARGETS, design_matrix, params_key, training_table

#: log targets that grow with the training set: learned as log(value) - b log(n_train)
SIZE_SCALED_TARGETS = ("log_cost",)
#: b where the knowledge base holds no configuration measured at two sizes: cost per example
DEFAULT_SIZE_EXPONENT = 1.0


def __getattr__(name: str) -> Any:
    """``QuantileGradientBoosting`` and its constants, imported on demand (scikit-learn takes a
    second to import, and predicting does not need it)."""
    if name in ("QuantileGradientBoosting", "SINGLE_THREAD_ROWS"):
        from recommender.metamodel import quantile_gbm

        return getattr(quantile_gbm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class MetaModel:
    """One :class:`QuantileGradientBoosting` per target, fitted on knowledge-base runs.

    With ``method_prior=True`` the ``gap`` model learns the *residual* from each method's mean
    gap on the training tasks (shrunk towards the overall mean by ``prior_strength`` pseudo-runs)
    and adds it back at prediction: with few past tasks the trees fall back on "what usually
    wins" instead of on noise, and task features only move a method away from its average
    where the data say so.

    ``targets`` restricts which of :data:`~recommender.metamodel.features.TARGETS` are fitted
    (all by default).

    The targets in :data:`SIZE_SCALED_TARGETS` are learned as ``log(value) - b log(n_train)``
    and scaled back by the task's training-set size at prediction: trees cannot extrapolate, so
    a cost learned as such from 500-example runs would predict a 12,000-example task to converge
    as fast. ``b`` (``size_exponent_``) is the median slope of log cost against log size over
    the configurations measured at several sizes (:func:`size_exponent`; the README gives its
    value on the shipped knowledge base and how well it predicts held-out sizes).

    >>> model = MetaModel().fit(load_knowledge_base())     # doctest: +SKIP
    >>> model.predict(rows)["gap"]                          # doctest: +SKIP
    """

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), max_iter: int = 150,
                 max_samples: int | None = 20_000, method_prior: bool = True, prior_strength: float = 5.0,
                 random_state: int = 0, targets: Sequence[str] | None = None) -> None:
        self.quantiles = tuple(quantiles)
        self.targets = targets
        self.max_iter = max_iter
        self.max_samples = max_samples
        self.method_prior = method_prior
        self.prior_strength = prior_strength
        self.random_state = random_state

    def fit(self, kb_rows: Sequence[Any]) -> MetaModel:
        from recommender.errors import ConfigError, DataError

        if self.prior_strength < 0:
            raise ConfigError(f"MetaModel: prior_strength (pseudo-runs at the overall mean) must be >= 0; "
                              f"got {self.prior_strength}")
        from recommender.metamodel.quantile_gbm import QuantileGradientBoosting

        rows, targets = training_table(kb_rows)
        if len(rows) < 5:
            raise DataError(f"the meta-model needs at least 5 completed runs; got {len(rows)}")
        self.methods_ = sorted({r["method"] for r in rows})
        self.columns_, X = design_matrix(rows, self.methods_)
        self.gap_prior_ = self._method_means(rows, targets["gap"]) if self.method_prior else {}
        targets = {**targets, "gap": targets["gap"] - self._prior(rows)}
        self.size_exponent_ = size_exponent(rows, targets["log_cost"])
        scaled = self.size_exponent_ * _log_n_train(rows)
        targets.update({name: targets[name] - scaled for name in SIZE_SCALED_TARGETS if name in targets})
        self.models_: dict[str, Any] = {}
        for name in (TARGETS if self.targets is None else [t for t in TARGETS if t in self.targets]):
            y = targets[name]
            mask = np.isfinite(y)
            if mask.sum() >= 5:
                self.models_[name] = QuantileGradientBoosting(
                    self.quantiles, max_iter=self._iterations(int(mask.sum())),
                    max_samples=self.max_samples, random_state=self.random_state).fit(X[mask], y[mask])
        self.rows_ = rows
        self.targets_ = targets  # what each model learned (gap: the residual from the prior; costs size-scaled)
        self.n_runs_ = len(rows)
        return self

    def compact(self) -> MetaModel:
        """Keep only what predicting needs, as NumPy arrays (:mod:`~recommender.metamodel.trees`):
        the same predictions, without scikit-learn. :meth:`feature_importance` needs the fitted
        estimators, so call it before."""
        from recommender.metamodel.trees import compact

        self.models_ = {name: compact(model) for name, model in self.models_.items()}
        return self

    def _method_means(self, rows: Sequence[dict[str, Any]], gap: np.ndarray) -> dict[str, float]:
        finite = np.isfinite(gap)
        overall = float(gap[finite].mean()) if finite.any() else 0.0
        sums: dict[str, list[float]] = {}
        for row, value in zip(rows, gap, strict=True):
            if np.isfinite(value):
                sums.setdefault(row["method"], []).append(float(value))
        k = self.prior_strength
        means = {m: (sum(v) + k * overall) / (len(v) + k) for m, v in sums.items()}
        means[""] = overall  # a method the knowledge base has never seen
        return means

    def _prior(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """Each row's method prior for ``gap`` (zeros without ``method_prior``)."""
        if not self.gap_prior_:
            return np.zeros(len(rows))
        return np.array([self.gap_prior_.get(r["method"], self.gap_prior_[""]) for r in rows])

    def _iterations(self, n_rows: int) -> int:
        """Fewer boosting rounds on a small knowledge base: there is little to fit, and each
        round has a fixed cost."""
        return int(min(self.max_iter, 20 + n_rows // 2))

    def matrix(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        columns, X = design_matrix(rows, self.methods_)
        assert columns == self.columns_
        return X

    def predict(self, rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Quantile predictions per target: arrays of shape (n_rows, n_quantiles)."""
        X = self.matrix(rows)
        preds = {name: model.predict_quantiles(X) for name, model in self.models_.items()}
        if "gap" in preds:
            preds["gap"] = preds["gap"] + self._prior(rows)[:, None]
        for name in SIZE_SCALED_TARGETS:
            if name in preds:
                preds[name] = preds[name] + self.size_exponent_ * _log_n_train(rows)[:, None]
        return preds

    def feature_importance(self, target: str = "gap", n_rows: int = 500, seed: int = 0) -> dict[str, float]:
        """Permutation importance of each feature for ``target`` on (a sample of) the training runs."""
        from sklearn.inspection import permutation_importance

        model = self.models_[target]
        if not hasattr(model, "estimators_"):
            raise ValueError("feature_importance needs the fitted estimators; call it before compact()")
        y = self.targets_[target]
        mask = np.flatnonzero(np.isfinite(y))
        rng = np.random.default_rng(seed)
        idx = rng.choice(mask, size=min(n_rows, len(mask)), replace=False)
        X = self.matrix([self.rows_[i] for i in idx])
        result = permutation_importance(model, X, y[idx], n_repeats=2, random_state=seed)
        return dict(sorted(zip(self.columns_, result.importances_mean, strict=True), key=lambda kv: -kv[1]))


def _log_n_train(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """log of each row's training-set size (the task's, from its meta-features)."""
    return np.log(np.array([max(int(r["metafeatures"].n_train), 1) for r in rows], dtype=float))


def size_exponent(rows: Sequence[dict[str, Any]], log_cost: np.ndarray, default: float = DEFAULT_SIZE_EXPONENT) -> float:
    """How the cost to converge grows with the training set: the median over configurations
    (task, method, hyperparameters) measured at two or more sizes of the slope of log cost
    against log size, clipped to [0, 1.5]; ``default`` when no configuration was."""
    by_config: dict[tuple[str, str, str], dict[int, list[float]]] = {}
    for row, cost in zip(rows, log_cost, strict=True):
        if np.isfinite(cost):
            key = (row.get("task", ""), row["method"], params_key(row["params"]))
            by_config.setdefault(key, {}).setdefault(int(row["metafeatures"].n_train), []).append(float(cost))
    slopes = []
    for sizes in by_config.values():
        if len(sizes) < 2:
            continue
        x = np.log(sorted(sizes))
        y = np.array([np.mean(sizes[n]) for n in sorted(sizes)])
        slopes.append(float(np.polyfit(x, y, 1)[0]))
    return float(np.clip(np.median(slopes), 0.0, 1.5)) if slopes else default

