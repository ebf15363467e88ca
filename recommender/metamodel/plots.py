"""Predicted quality against training time, per method, for the app and reports.

The library draws; the app only shows (``st.plotly_chart(quality_figure(...))``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from recommender.types import Recommendation


def predicted_quality_curves(rec: Recommendation, seconds: Sequence[float] | None = None, *,
                             predictor: Any = None) -> dict[str, np.ndarray]:
    """Per method shown in ``rec`` (its best configuration): an array of rows
    ``(seconds, predicted metric, interval low, interval high)`` over ``seconds`` (default: 30
    points from 10 s to 10x the longest predicted time to convergence). Non-decreasing in time;
    at ``rec.quality_at_s`` it equals the candidate's ``predicted_metric``.

    >>> curves = predicted_quality_curves(recommend(task, UserBudgets(time_budget_s=600)))  # doctest: +SKIP
    """
    from recommender.metamodel.predictor import load_predictor
    from recommender.metamodel.quality import apply_extrapolation, to_metric

    predictor = predictor or load_predictor()
    gflops = float(rec.hardware.get("train_gflops") or 1.0)
    if seconds is None:
        longest = max((c.predicted_time_s or 0.0 for c in rec.candidates), default=0.0)
        high = max(600.0, 10 * longest, 2 * (rec.budgets.time_budget_s or 0.0))
        grid = np.geomspace(10.0, high, 30)
    else:
        grid = np.sort(np.array([float(x) for x in seconds]))
    if (grid <= 0).any() or not np.isfinite(grid).all():
        raise ValueError("seconds must be positive and finite")
    best: dict[str, Any] = {}
    for c in rec.candidates:
        best.setdefault(c.method, c)
    rows = [{"metafeatures": rec.metafeatures, "method": c.method, "params": c.params,
             "trainable_params": c.trainable_params} for c in best.values()]
    q = predictor.quality.predict(rows, np.log(grid * gflops))
    if rec.extrapolation:
        q = apply_extrapolation(q, 1.0 + 0.5 * len(rec.extrapolation))
    q = to_metric(q, rec.baseline_metric or 0.0, rec.metric_name)
    return {m: np.column_stack([grid, q[i, :, 1], q[i, :, 0], q[i, :, 2]]) for i, m in enumerate(best)}


def quality_figure(curves: dict[str, np.ndarray], *, time_budget_s: float | None = None,
                   metric_name: str = "metric", baseline: float | None = None) -> Any:
    """A plotly figure: one line with an 80 % band per method, the time budget as a vertical
    line and the constant predictor's score as a dotted horizontal one."""
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    for i, (method, arr) in enumerate(curves.items()):
        colour = palette[i % len(palette)]
        r, g, b = (int(colour[k:k + 2], 16) for k in (1, 3, 5))
        x = arr[:, 0] / 60
        fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([arr[:, 3], arr[::-1, 2]]),
                                 fill="toself", fillcolor=f"rgba({r},{g},{b},0.12)", line={"width": 0},
                                 hoverinfo="skip", showlegend=False, legendgroup=method))
        fig.add_trace(go.Scatter(x=x, y=arr[:, 1], mode="lines", name=method, line={"color": colour},
                                 legendgroup=method))
    if time_budget_s is not None and math.isfinite(time_budget_s):
        fig.add_vline(x=time_budget_s / 60, line_dash="dash", annotation_text="your budget")
    if baseline is not None:
        fig.add_hline(y=baseline, line_dash="dot", annotation_text="constant predictor")
    fig.update_layout(xaxis_title="training time here (minutes, log scale)", yaxis_title=f"predicted {metric_name}",
                      xaxis_type="log", legend_title="method", margin={"t": 30})
    return fig
