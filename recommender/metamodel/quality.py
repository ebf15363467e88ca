"""Quality at a budget: the metric a configuration reaches after a given training cost.

Learned from the knowledge base's learning curves. Each evaluation point of a run becomes one
training row: (task features, configuration, log training cost so far) -> best dev score so far
minus the task's *baseline* (a constant predictor's score on the same dev set). Training cost
is in GFLOP-equivalents: training seconds x the matmul GFLOP/s measured with the run, so that
dividing by *this* machine's GFLOP/s gives seconds here. The trees are constrained to be
non-decreasing in cost, and predictions take a running maximum over the cost grid, so more
budget never predicts less. One prediction gives both the rank and the number shown.

80 % intervals are conformalised (CQR): the 10 %/90 % quantile models are widened by the
80 % quantile of held-out nonconformity scores from a grouped K-fold over task groups, computed
per third of the training costs (Mondrian CQR): early in a curve every configuration is near the
baseline and the error is small, at convergence it is five times larger (on the 440 runs of
2026-12-06: 0.021, 0.077 and 0.113 for the three thirds against 0.076 for one width, which gave
0.94 coverage at 25 % of full fine-tuning's time and 0.83 at 100 %).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from recommender.metamodel.features import config_vector, run_gflops, task_vector
from recommender.tasks.metrics import metric_range
from recommender.types import MetaFeatures, RunResult

#: the fraction of peak matmul FLOP/s a training step reaches (measured: 0.30 for full FT on CPU);
#: only used to turn counted FLOPs into GFLOP-equivalents when a run has no calibration
UTILISATION = 0.3
COST_FEATURE = "log_cost_gflop"
#: protocol-2 rows carry per-point FLOPs, the baseline score and a standard error
CURRENT_PROTOCOL = 2


def row_protocol(row: Any) -> int:
    """The measurement protocol a knowledge-base row was recorded under (1 when unmarked)."""
    value = getattr(row, "protocol", None)
    if value is None:
        value = (getattr(row.result, "extra", None) or {}).get("protocol", 1)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


#: until protocol-2 runs cover this many tasks, older runs fill the (task, size) sets they miss
#: (20 of the bundled tasks: below that, whole task types -- extractive QA -- and languages
#: would have no runs to learn from)
MIN_TASKS_FOR_PROTOCOL = 20


def select_protocol(rows: Sequence[Any], min_protocol: int = CURRENT_PROTOCOL,
                    min_tasks: int = MIN_TASKS_FOR_PROTOCOL) -> tuple[list[Any], str | None]:
    """Rows recorded under ``min_protocol`` or later. While those cover fewer than ``min_tasks``
    tasks, rows of older protocols are kept for the (task, size) sets the newer ones have not
    measured yet (never beside them), and the second item says so (None: no fallback)."""
    chosen = [r for r in rows if row_protocol(r) >= min_protocol]
    covered_tasks = {r.task for r in chosen}
    if min_protocol <= 1 or len(covered_tasks) >= min_tasks:
        return chosen, None
    covered_sets = {(r.task, r.size) for r in chosen}
    older = [r for r in rows if row_protocol(r) < min_protocol and (r.task, r.size) not in covered_sets]
    if not older:
        return chosen, None
    found = sorted({row_protocol(r) for r in older})
    return chosen + older, (
        f"protocol-{min_protocol} runs cover {len(covered_tasks)} task(s) so far (fewer than {min_tasks}); "
        f"the other (task, size) sets come from protocol {', '.join(map(str, found))} runs (short budgets, "
        "no per-point FLOPs or measured baselines)")


def point_cost(result: RunResult, point: Any) -> float:
    """Training cost up to ``point`` in GFLOP-equivalents (seconds x GFLOP/s of the run's machine
    in the run's precision, :func:`~recommender.metamodel.features.run_gflops`).

    Fallbacks: counted FLOPs / :data:`UTILISATION`; else 6 x parameters x tokens (the usual
    forward + backward estimate) / :data:`UTILISATION`."""
    calib = run_gflops(result)
    if calib is not None and point.train_seconds is not None:
        return max(float(point.train_seconds), 1e-3) * calib
    flops = getattr(point, "flops", None)
    if flops:
        return float(flops) / 1e9 / UTILISATION
    params = result.total_params or 22_713_216
    return max(6.0 * params * float(point.tokens or 0) / 1e9 / UTILISATION, 1e-3)


def baseline_estimate(mf: MetaFeatures, metric: str) -> float:
    """A constant predictor's score estimated from the meta-features alone (the majority share
    from the number of labels and the imbalance ratio, the other classes assumed at the smallest
    one's size): that share for accuracy and micro-F1, the majority class's F1 over the number of
    labels for macro-F1, 0 for MCC, Pearson, F1 of one class and the rest. With the task's
    labels at hand, :meth:`~recommender.training.scoring.ConstantPredictor.metric` is exact."""
    if metric not in ("accuracy", "micro_f1", "macro_f1"):
        return 0.0
    n = max(int(mf.n_labels), 1)
    ratio = max(float(mf.imbalance_ratio), 1.0)
    share = ratio / (ratio + n - 1)
    return share if metric != "macro_f1" else 2 * share / (1 + share) / n


def kb_baselines(kb_rows: Sequence[Any]) -> dict[tuple[str, int], float]:
    """Baseline per (task fingerprint, size): the runs' measured ``baseline_metric`` when recorded,
    else the lower of the estimate and the lowest score any run on the task reported."""
    measured: dict[tuple[str, int], list[float]] = defaultdict(list)
    lowest: dict[tuple[str, int], float] = {}
    info: dict[tuple[str, int], tuple[MetaFeatures, str]] = {}
    for row in kb_rows:
        key = (row.metafeatures.fingerprint, row.size)
        info[key] = (row.metafeatures, row.result.metric_name)
        value = getattr(row.result, "baseline_metric", None)
        if value is not None and math.isfinite(value):
            measured[key].append(float(value))
        for p in row.result.curve:
            if p.metric is not None and math.isfinite(p.metric):
                lowest[key] = min(lowest.get(key, math.inf), float(p.metric))
    out = {}
    for key, (mf, metric) in info.items():
        if measured[key]:
            out[key] = float(np.median(measured[key]))
        else:
            out[key] = min(baseline_estimate(mf, metric), lowest.get(key, math.inf))
    return out


def running_curve(result: RunResult) -> tuple[np.ndarray, np.ndarray]:
    """(cost, best score so far) at each evaluation, in cost order, on the scale of the final
    score: the curve is measured on a fixed monitor subset of the dev set and the best
    checkpoint on the whole of it (``best_metric``), so the curve is shifted by their difference
    at the best checkpoint -- a run scores its ``best_metric`` once it has converged, whether a
    budget is given or not."""
    points = [(point_cost(result, p), float(p.metric)) for p in result.curve
              if p.metric is not None and math.isfinite(p.metric)]
    points.sort()
    if not points:
        return np.zeros(0), np.zeros(0)
    cost = np.array([c for c, _ in points])
    best = np.maximum.accumulate(np.array([m for _, m in points]))
    if result.has_metric and result.best_metric is not None:
        best = best + (result.best_metric - best[-1])
    return cost, best


def score_at(result: RunResult, cost: float, baseline: float, *, interpolate: bool = False) -> float:
    """The best dev score a run had reached by ``cost``: at its last evaluation by then (the
    baseline before its first), or with ``interpolate`` linearly between the evaluations around
    ``cost`` (from the lower of the baseline and its first score at cost 0) -- an estimate of
    what the trainer, which evaluates when a time budget ends, would have scored there."""
    costs, best = running_curve(result)
    if interpolate and len(costs):
        return float(np.interp(cost, np.r_[0.0, costs], np.r_[min(baseline, best[0]), best]))
    reached = np.flatnonzero(costs <= cost * (1 + 1e-9))
    return float(best[reached[-1]]) if len(reached) else baseline


def converged(result: RunResult) -> bool:
    """A run that ended on its own (epochs done, early stopping): its score stays beyond its end."""
    return result.status == "complete" and result.stop_reason != "time_budget"


def curve_table(kb_rows: Sequence[Any], baselines: dict[tuple[str, int], float] | None = None
                ) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray]:
    """Training rows, log costs, gains over baseline and task-group labels from the curves.

    Per run: a point at half its first evaluation's cost, halfway from the lower of the baseline
    and its first score to that score (as :func:`score_at` interpolates: the trainer evaluates
    when a time budget ends), one per evaluation (best so far), and for runs that ended on their
    own two more at 2x and 4x their last cost with the final best (the plateau)."""
    from recommender.metamodel.evaluate import task_group

    baselines = baselines if baselines is not None else kb_baselines(kb_rows)
    rows: list[dict[str, Any]] = []
    costs: list[float] = []
    gains: list[float] = []
    groups: list[str] = []
    for kb in kb_rows:
        res = kb.result
        if res.status in ("failed", "oom"):
            continue
        cost, best = running_curve(res)
        if not len(cost):
            continue
        base = baselines[(kb.metafeatures.fingerprint, kb.size)]
        pts = [(cost[0] / 2, score_at(res, cost[0] / 2, base, interpolate=True) - base)]
        pts += [(c, b - base) for c, b in zip(cost, best, strict=True)]
        if converged(res):
            pts += [(cost[-1] * 2, best[-1] - base), (cost[-1] * 4, best[-1] - base)]
        info = {"metafeatures": kb.metafeatures, "method": res.method, "params": res.params,
                "trainable_params": res.trainable_params}
        group = task_group(kb)
        for c, g in pts:
            rows.append(info)
            costs.append(math.log(max(c, 1e-3)))
            gains.append(g)
            groups.append(group)
    return rows, np.array(costs), np.array(gains), np.array(groups)


class QualityModel:
    """Predicts the gain over the baseline a configuration reaches at a training cost.

    >>> model = QualityModel().fit(kb_rows)                                  # doctest: +SKIP
    >>> model.predict(rows, np.log([1e4, 1e5]))  # (n_rows, n_costs, 3): lo, median, hi  # doctest: +SKIP
    """

    def __init__(self, max_iter: int = 120, coverage: float = 0.8, n_folds: int = 4, random_state: int = 0,
                 conformal: bool = True, width: float | None = None, n_width_bins: int = 3,
                 n_cost_grid: int = 32) -> None:
        self.max_iter = max_iter
        self.coverage = coverage
        self.n_folds = n_folds
        self.random_state = random_state
        self.conformal = conformal
        self.width = width  # one conformal width for every cost, known beforehand (None: compute them)
        self.n_width_bins = n_width_bins  # conformal widths per quantile bin of the training cost
        self.n_cost_grid = n_cost_grid  # fixed costs the prediction is read from (see predict)

    def _estimator(self, n_columns: int) -> Any:
        from recommender.metamodel.quantile_gbm import QuantileGradientBoosting

        alpha = (1 - self.coverage) / 2
        cst = [0] * n_columns
        cst[-1] = 1  # non-decreasing in the training cost (the last column)
        return QuantileGradientBoosting((alpha, 0.5, 1 - alpha), max_iter=self.max_iter, min_samples_leaf=10,
                                        monotonic_cst=cst, random_state=self.random_state)

    def fit(self, kb_rows: Sequence[Any]) -> QualityModel:
        from recommender.errors import DataError

        rows, log_cost, gain, groups = curve_table(kb_rows)
        if len(rows) < 10:
            raise DataError(f"the quality model needs learning curves; got {len(rows)} curve points")
        self.methods_ = sorted({r["method"] for r in rows})
        X = self._matrix(rows, log_cost)
        self.estimator_ = self._estimator(X.shape[1]).fit(X, gain)
        self.log_cost_range_ = (float(log_cost.min()), float(log_cost.max()))
        self.width_edges_ = np.zeros(0)
        if not self.conformal:
            self.widths_ = np.zeros(1)
        elif self.width is not None:
            self.widths_ = np.array([float(self.width)])
        else:
            self.width_edges_, self.widths_ = self._conformal_widths(X, gain, groups)
        return self

    def _matrix(self, rows: Sequence[dict[str, Any]], log_cost: np.ndarray) -> np.ndarray:
        vectors = [[*task_vector(r["metafeatures"]).values(),
                    *config_vector(r["method"], r["params"], self.methods_, r.get("trainable_params")).values()]
                   for r in rows]
        return np.column_stack([np.array(vectors, dtype=float).reshape(len(rows), -1), log_cost])

    def _conformal_widths(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CQR per cost bin: bin edges (log cost) and, per bin, the ``coverage`` quantile of
        max(lo - y, y - hi) over held-out task groups."""
        names = sorted(set(groups))
        if len(names) < 3:
            return np.zeros(0), np.zeros(1)
        rng = np.random.default_rng(self.random_state)
        fold_of = dict(zip(names, rng.permutation(len(names)) % min(self.n_folds, len(names)), strict=True))
        folds = np.array([fold_of[g] for g in groups])
        scores = np.empty(len(y))
        for k in np.unique(folds):
            test = folds == k
            q = self._estimator(X.shape[1]).fit(X[~test], y[~test]).predict_quantiles(X[test])
            scores[test] = np.maximum(q[:, 0] - y[test], y[test] - q[:, -1])
        cost = X[:, -1]
        edges = np.unique(np.quantile(cost, np.arange(1, self.n_width_bins) / self.n_width_bins))
        bins = np.digitize(cost, edges)
        widths = []
        for b in range(len(edges) + 1):
            mine = scores[bins == b]
            level = min(1.0, self.coverage * (1 + 1 / max(len(mine), 1)))
            widths.append(float(max(0.0, np.quantile(mine, level))) if len(mine) else 0.0)
        return edges, np.array(widths)

    def width_at(self, log_costs: Sequence[float] | np.ndarray) -> np.ndarray:
        """The conformal half-width added to each side of the interval at each log cost."""
        return self.widths_[np.digitize(np.asarray(log_costs, dtype=float), self.width_edges_)]

    def cost_grid(self) -> np.ndarray:
        """The fixed log costs every prediction is read from: evenly spaced over the range the
        knowledge base measured."""
        return np.linspace(*self.log_cost_range_, max(2, int(self.n_cost_grid)))

    def predict(self, rows: Sequence[dict[str, Any]], log_costs: Sequence[float]) -> np.ndarray:
        """(n_rows, n_costs, 3) gains (interval low, median, high) at each cost, non-decreasing
        in the cost and the same whichever other costs are asked for.

        Quantile trees are not monotone in the cost even when told to be: the quantile loss
        replaces each leaf's value by a quantile of its residuals after the constrained split
        (scikit-learn's HistGradientBoosting, as LightGBM #3371 reports for its own). So the
        quantiles are predicted on the fixed :meth:`cost_grid`, their running maximum taken
        along it (the best score so far only rises with the budget, so does each of its
        quantiles), and read at the asked costs by linear interpolation: a single budget and a
        whole curve give the same number at that budget (the rank and the plot agree)."""
        costs = np.asarray(log_costs, dtype=float)
        if not len(rows):
            return np.zeros((0, len(costs), 3))
        grid = self.cost_grid()
        base = self._matrix(rows, np.zeros(len(rows)))
        X = np.repeat(base, len(grid), axis=0)
        X[:, -1] = np.tile(grid, len(rows))
        q = self.estimator_.predict_quantiles(X).reshape(len(rows), len(grid), -1)
        width = self.width_at(grid)
        q[..., 0] -= width
        q[..., -1] += width
        q = np.maximum.accumulate(q, axis=1)
        # linear interpolation on the grid, held flat beyond its ends
        left = np.clip(np.searchsorted(grid, costs, side="right") - 1, 0, len(grid) - 2)
        frac = np.clip((costs - grid[left]) / (grid[left + 1] - grid[left]), 0.0, 1.0)[None, :, None]
        out = q[:, left, :] * (1.0 - frac) + q[:, left + 1, :] * frac
        # below the cheapest point measured (half a first evaluation) no run had been scored yet:
        # nothing is gained over the baseline, whatever the trees' lowest leaf says
        early = costs < self.log_cost_range_[0]
        out[:, early, :] = np.minimum(out[:, early, :], 0.0)
        return out

    def feature_importance(self, kb_rows: Sequence[Any], n_rows: int = 400, seed: int = 0) -> dict[str, float]:
        """Permutation importance of each task and configuration feature for the median quality."""
        from sklearn.inspection import permutation_importance

        if not hasattr(self.estimator_, "estimators_"):
            raise ValueError("feature_importance needs the fitted estimator; call it before compact()")
        rows, log_cost, gain, _ = curve_table(kb_rows)
        rng = np.random.default_rng(seed)
        idx = rng.choice(len(rows), size=min(n_rows, len(rows)), replace=False)
        X = self._matrix([rows[i] for i in idx], log_cost[idx])
        names = [*task_vector(rows[0]["metafeatures"]),
                 *config_vector(rows[0]["method"], rows[0]["params"], self.methods_, None), COST_FEATURE]
        result = permutation_importance(self.estimator_, X, gain[idx], n_repeats=1, random_state=seed)
        return dict(sorted(zip(names, result.importances_mean, strict=True), key=lambda kv: -kv[1]))

    def compact(self) -> QualityModel:
        """Keep only what predicting needs, as NumPy arrays: the same predictions without
        scikit-learn (:meth:`feature_importance` needs the fitted estimator: call it before)."""
        from recommender.metamodel.trees import compact

        self.estimator_ = compact(self.estimator_)
        return self

    def convergence_log_cost(self) -> float:
        """A cost at which every curve in the knowledge base had reached its plateau."""
        return self.log_cost_range_[1]


def to_metric(gains: np.ndarray, baseline: float, metric: str | None) -> np.ndarray:
    """Predicted gains over the baseline as metric values, inside the metric's range (an
    accuracy interval never reaches past 1)."""
    return np.clip(gains + baseline, *metric_range(metric))


def apply_extrapolation(q: np.ndarray, factor: float) -> np.ndarray:
    """Widen intervals around the median by ``factor`` (>= 1) for tasks unlike the knowledge base."""
    out = q.copy()
    out[..., 0] = q[..., 1] - (q[..., 1] - q[..., 0]) * factor
    out[..., -1] = q[..., 1] + (q[..., -1] - q[..., 1]) * factor
    return out


def extrapolation(mf: MetaFeatures, kb_features: Sequence[MetaFeatures]) -> list[str]:
    """Why ``mf`` lies outside what the knowledge base measured (empty when it does not)."""
    if not kb_features:
        return []
    notes = []
    ranges: dict[str, tuple[str, Callable[[MetaFeatures], float], str]] = {
        "n_train": ("training examples", lambda m: float(m.n_train), "{:,.0f}"),
        "tokens_mean": ("tokens per example on average", lambda m: float(m.tokens_mean), "{:,.0f}"),
        "n_labels": ("labels", lambda m: float(m.n_labels), "{:,.0f}")}
    for label, get, fmt in ranges.values():
        values = [get(m) for m in kb_features]
        lo, hi = min(values), max(values)
        value = get(mf)
        if value < lo * 0.8 or value > hi * 1.25:
            notes.append(f"{fmt.format(value)} {label}, the knowledge base has {fmt.format(lo)}-{fmt.format(hi)}")
    languages = sorted({m.language for m in kb_features})
    if mf.language not in languages:
        notes.append(f"language {mf.language!r}, the knowledge base has {', '.join(languages)}")
    types = {m.task_type for m in kb_features}
    if mf.task_type not in types:
        notes.append(f"task type {mf.task_type}, never measured")
    return notes
