"""The quantile regressor of the meta-model: gradient-boosted trees, one per quantile.

:class:`QuantileGradientBoosting` follows scikit-learn's conventions (``__init__`` only
stores, ``fit`` returns ``self``, learned attributes end in ``_``); it predicts the median and,
with :meth:`~QuantileGradientBoosting.predict_quantiles`, an interval. Fitted, it converts to
:class:`~recommender.metamodel.trees.CompactQuantiles` for predicting without scikit-learn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

#: below this many rows, one thread is faster than paying OpenMP's start-up per tree (measured on
#: 2 cores, benchmarks/metamodel.py: 6 targets x 3 quantiles on 20,000 rows each fit in 17 s on
#: one thread and 32 s on two)
SINGLE_THREAD_ROWS = 100_000


class QuantileGradientBoosting(RegressorMixin, BaseEstimator):
    """Gradient-boosted trees for several quantiles; ``predict`` returns the median.

    Handles missing values (NaN) natively, so method-specific hyperparameters can be absent.
    ``max_samples`` caps the rows each quantile's trees see (a seeded random subset, as
    ``RandomForestRegressor(max_samples=...)`` does): beyond a few ten thousand runs more rows
    barely move a quantile but cost fit time linearly. ``None`` uses every row.
    ``monotonic_cst`` (one of -1, 0, 1 per feature) constrains every quantile's trees, as in
    ``HistGradientBoostingRegressor`` (quality never falls with more training budget).
    ``n_jobs`` threads fit the quantiles side by side (None: one per core; the result does not
    depend on it).
    """

    def __init__(self, quantiles: Sequence[float] = (0.1, 0.5, 0.9), max_iter: int = 150,
                 learning_rate: float = 0.08, max_leaf_nodes: int = 15, min_samples_leaf: int = 5,
                 max_samples: int | None = 20_000, monotonic_cst: Sequence[int] | None = None,
                 random_state: int | None = 0, n_jobs: int | None = None) -> None:
        self.quantiles = quantiles
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.max_samples = max_samples
        self.monotonic_cst = monotonic_cst
        self.random_state = random_state
        self.n_jobs = n_jobs

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing hyperparameters are NaN by design
        return tags

    def fit(self, X: Any, y: Any) -> QuantileGradientBoosting:
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", y_numeric=True)
        # a feature never observed (all NaN) carries nothing; it also trips sklearn's binning
        self.empty_features_ = np.isnan(X).all(axis=0)
        X = self._fill(X)
        quantiles = sorted(self.quantiles)
        if 0.5 not in quantiles:
            quantiles = sorted([*quantiles, 0.5])
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None; got {self.max_samples}")
        leaf = max(1, min(self.min_samples_leaf, len(y) // 4))
        self.quantiles_ = np.array(quantiles)
        rng = check_random_state(self.random_state)
        subsets = [self._subsample(len(y), rng) for _ in quantiles]  # drawn in order: seeded

        def fit_one(q: float, idx: np.ndarray | None) -> HistGradientBoostingRegressor:
            Xq, yq = (X, y) if idx is None else (X[idx], y[idx])
            # set in the thread that fits: OpenMP's thread count is per calling thread
            with threadpool_limits(1 if len(yq) < SINGLE_THREAD_ROWS else None):
                return HistGradientBoostingRegressor(
                    loss="quantile", quantile=q, max_iter=self.max_iter, learning_rate=self.learning_rate,
                    max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=leaf,
                    monotonic_cst=None if self.monotonic_cst is None else list(self.monotonic_cst),
                    random_state=self.random_state).fit(Xq, yq)

        self.estimators_ = _map_threads(fit_one, quantiles, subsets,
                                        workers=self._workers(len(y), len(quantiles)))
        self.n_iter_ = max(e.n_iter_ for e in self.estimators_)
        return self

    def _workers(self, n_rows: int, n_fits: int) -> int:
        """Threads for the per-quantile fits: each fit is single-threaded below
        :data:`SINGLE_THREAD_ROWS` rows, so the quantiles run side by side on the cores instead
        (the trees' Cython releases the GIL); above it each fit uses every core itself."""
        if n_rows >= SINGLE_THREAD_ROWS:
            return 1
        cores = os.cpu_count() or 1
        wanted = cores if self.n_jobs is None else (cores + 1 + self.n_jobs if self.n_jobs < 0 else self.n_jobs)
        return max(1, min(n_fits, wanted))

    def _subsample(self, n_rows: int, rng: np.random.RandomState) -> np.ndarray | None:
        if self.max_samples is None or n_rows <= self.max_samples:
            return None
        return np.sort(rng.choice(n_rows, size=self.max_samples, replace=False))

    def _fill(self, X: np.ndarray) -> np.ndarray:
        if self.empty_features_.any():
            X = X.copy()
            X[:, self.empty_features_] = 0.0
        return X

    def predict_quantiles(self, X: Any) -> np.ndarray:
        """(n_samples, n_quantiles) predictions, sorted across quantiles (no crossing)."""
        check_is_fitted(self)
        X = self._fill(validate_data(self, X, reset=False, ensure_all_finite="allow-nan"))
        with threadpool_limits(1 if len(X) < SINGLE_THREAD_ROWS else None):
            preds = np.column_stack([e.predict(X) for e in self.estimators_])
        return np.sort(preds, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        q = self.predict_quantiles(X)
        return q[:, int(np.argmin(np.abs(self.quantiles_ - 0.5)))]


def _map_threads(fn: Any, *iterables: Sequence[Any], workers: int = 1) -> list[Any]:
    """``[fn(*args) for args in zip(*iterables)]``, on ``workers`` threads when more than one."""
    if workers <= 1:
        return [fn(*args) for args in zip(*iterables, strict=True)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, *iterables))
