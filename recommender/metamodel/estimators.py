"""scikit-learn estimators of the meta-model.

:class:`QuantileGradientBoosting` is a regressor following scikit-learn's conventions
(``__init__`` only stores, ``fit`` returns ``self``, learned attributes end in ``_``) that
predicts the median and, with :meth:`predict_quantiles`, an interval. :class:`MetaModel` fits
one per target on the knowledge base; it is cheap enough (seconds) to be refitted from data at
load, so nothing is ever unpickled.
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

from recommender.metamodel.features import TARGETS, design_matrix, training_table

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


class MetaModel:
    """One :class:`QuantileGradientBoosting` per target, fitted on knowledge-base runs.

    With ``method_prior=True`` the ``gap`` model learns the *residual* from each method's mean
    gap on the training tasks (shrunk towards the overall mean by ``prior_strength`` pseudo-runs)
    and adds it back at prediction: with few past tasks the trees fall back on "what usually
    wins" instead of on noise, and task features only move a method away from its average
    where the data say so.

    ``targets`` restricts which of :data:`~recommender.metamodel.features.TARGETS` are fitted
    (all by default).

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
        rows, targets = training_table(kb_rows)
        if len(rows) < 5:
            raise DataError(f"the meta-model needs at least 5 completed runs; got {len(rows)}")
        self.methods_ = sorted({r["method"] for r in rows})
        self.columns_, X = design_matrix(rows, self.methods_)
        self.gap_prior_ = self._method_means(rows, targets["gap"]) if self.method_prior else {}
        targets = {**targets, "gap": targets["gap"] - self._prior(rows)}
        self.models_: dict[str, QuantileGradientBoosting] = {}
        for name in (TARGETS if self.targets is None else [t for t in TARGETS if t in self.targets]):
            y = targets[name]
            mask = np.isfinite(y)
            if mask.sum() >= 5:
                self.models_[name] = QuantileGradientBoosting(
                    self.quantiles, max_iter=self._iterations(int(mask.sum())),
                    max_samples=self.max_samples, random_state=self.random_state).fit(X[mask], y[mask])
        self.rows_ = rows
        self.targets_ = targets  # what each model learned (for gap: the residual from the prior)
        self.n_runs_ = len(rows)
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
        return preds

    def feature_importance(self, target: str = "gap", n_rows: int = 500, seed: int = 0) -> dict[str, float]:
        """Permutation importance of each feature for ``target`` on (a sample of) the training runs."""
        from sklearn.inspection import permutation_importance

        model = self.models_[target]
        y = self.targets_[target]
        mask = np.flatnonzero(np.isfinite(y))
        rng = np.random.default_rng(seed)
        idx = rng.choice(mask, size=min(n_rows, len(mask)), replace=False)
        X = self.matrix([self.rows_[i] for i in idx])
        result = permutation_importance(model, X, y[idx], n_repeats=2, random_state=seed)
        return dict(sorted(zip(self.columns_, result.importances_mean, strict=True), key=lambda kv: -kv[1]))
