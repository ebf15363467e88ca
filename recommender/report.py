"""Turn run results into flat rows, text tables and plots (shared by the CLI and the app)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from recommender.methods.base import REFERENCE_METHOD
from recommender.types import SERVING_BATCH, RunResult

COLUMNS = ("method", "status", "metric", "time_to_best_s", "time_to_1pct_s", "train_s",
           "latency_b1_ms", "latency_bB_ms", "merged", "trainable_params", "peak_mem_mb")


def base_equivalent(result: RunResult, batch: int) -> bool:
    """Whether the deployed model runs the base model's own computation at ``batch``: a method
    without adapters (full, multi-task, TAPT fine-tuning, head only) or adapters merged exactly."""
    from recommender.methods import get_method_class

    if any(x.merged and x.batch_size == batch for x in result.latency):
        return True
    try:
        return not get_method_class(result.method).uses_adapters
    except (KeyError, ValueError):
        return False


def latency_ratio(result: RunResult, batch: int) -> float | None:
    """Deployed latency over the base model's at ``batch`` (None when either is missing).

    1 by construction for a :func:`base_equivalent` deployment: timed minutes apart from its
    base (before :func:`~recommender.training.latency.measure_latency_paired`), such runs of the
    knowledge base measured 0.60-1.65x (5th-95th percentile of 396 on 2026-12-06), which is noise;
    the meta-model, the replay evaluation and the method comparisons read this ratio."""
    deployed, base = result.latency_ms(batch), result.base_latency_ms(batch)
    if not (deployed and base):
        return None
    return 1.0 if base_equivalent(result, batch) else deployed / base


def metric_line(task: Any) -> str:
    """``metric: macro_f1 (classes are imbalanced: 93 % / 7 %)``: which metric and why."""
    reason = task.spec.metric_reason
    return f"metric: {task.spec.metric}" + (f" ({reason})" if reason else "")


def result_row(result: RunResult, serving_batch: int = SERVING_BATCH) -> dict[str, Any]:
    """One flat row per run: what people compare."""
    # None (printed "-"): a method without adapters has nothing to merge
    merged = None if result.mergeable is None else bool(result.mergeable)
    return {
        "task": result.task, "method": result.method, "status": result.status,
        "metric_name": result.metric_name, "metric": result.best_metric, "metric_se": result.metric_se,
        "baseline": result.baseline_metric, "learned": result.learned, "precision": result.precision,
        "time_to_best_s": result.time_to_best_s, "time_to_1pct_s": result.time_to_within_1pct_s,
        "train_s": result.train_seconds, "wall_s": result.wall_seconds, "steps": result.steps,
        "latency_b1_ms": result.latency_ms(1), "latency_bB_ms": result.latency_ms(serving_batch),
        "latency_b1_unmerged_ms": result.latency_ms(1, merged=False),
        "latency_bB_unmerged_ms": result.latency_ms(serving_batch, merged=False),
        "base_latency_b1_ms": result.base_latency_ms(1),
        "base_latency_bB_ms": result.base_latency_ms(serving_batch),
        "merged": merged, "trainable_params": result.trainable_params,
        "head_params": result.head_params, "artifact_mb": (result.artifact_bytes or 0) / 1e6,
        "peak_mem_mb": result.peak_memory_mb, "tokens_to_best": result.tokens_to_best,
        "flops_to_best": result.flops_to_best, "error": (result.error or "").splitlines()[0] if result.error else "",
    }


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Iterable[str] = COLUMNS) -> str:
    """A plain-text table with aligned columns."""
    cols = [c for c in columns if any(c in r for r in rows)] or list(columns)
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def quality_vs_time_figure(rows: Sequence[dict[str, Any]], title: str = "") -> Any:
    """Plotly bubble chart: quality vs time to convergence, bubble size = batch-1 latency."""
    import plotly.graph_objects as go

    ok = [r for r in rows if r.get("metric") is not None and r.get("time_to_best_s") is not None]
    lat = [r.get("latency_b1_ms") or 1.0 for r in ok]
    top = max(lat) if lat else 1.0
    fig = go.Figure(go.Scatter(
        x=[r["time_to_best_s"] for r in ok], y=[r["metric"] for r in ok], mode="markers+text",
        text=[r["method"] for r in ok], textposition="top center",
        marker={"size": [12 + 30 * v / top for v in lat], "sizemode": "diameter", "opacity": 0.7},
        customdata=[[r.get("latency_b1_ms"), r.get("trainable_params")] for r in ok],
        hovertemplate="%{text}<br>metric %{y:.3f}<br>time to best %{x:.1f}s<br>"
                      "latency b1 %{customdata[0]:.1f} ms<br>params %{customdata[1]:,}<extra></extra>",
    ))
    fig.update_layout(title=title, xaxis_title="time to convergence (s, training)",
                      yaxis_title=ok[0]["metric_name"] if ok else "metric", template="plotly_white")
    return fig


def save_quality_vs_time_png(rows: Sequence[dict[str, Any]], path: Path, title: str = "") -> None:
    """The same chart as a static PNG (matplotlib), for reports and READMEs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("metric") is not None and r.get("time_to_best_s") is not None]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    lat = [r.get("latency_b1_ms") or 1.0 for r in ok]
    top = max(lat) if lat else 1.0
    ax.scatter([r["time_to_best_s"] for r in ok], [r["metric"] for r in ok],
               s=[40 + 400 * v / top for v in lat], alpha=0.6)
    for r in ok:
        ax.annotate(r["method"], (r["time_to_best_s"], r["metric"]), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("time to convergence (s, training)")
    ax.set_ylabel(ok[0]["metric_name"] if ok else "metric")
    ax.set_title(title or "quality vs time to convergence (bubble = batch-1 latency)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


RELATIVE_COLUMNS = ("method", "quality_vs_full_ft", "time_vs_full_ft", "latency_b1_overhead",
                    "latency_bB_overhead", "merged", "trainable_params")


def relative_to_reference(results: Sequence[RunResult], reference: str = REFERENCE_METHOD,
                          serving_batch: int = SERVING_BATCH) -> list[dict[str, Any]]:
    """The seed papers' comparison for one task: per method, final quality minus the
    reference's (points), time to convergence as a multiple of the reference's, and inference
    latency overhead over the base model at batch 1 and the serving batch (merged where the
    merge was verified exact). Empty without a reference run that has a metric."""
    ref = next((r for r in results if r.method == reference and r.has_metric), None)
    if ref is None:
        return []
    rows = []
    for r in results:
        if not r.has_metric:
            continue
        row: dict[str, Any] = {"method": r.method, "metric_name": r.metric_name,
                               "quality_vs_full_ft": 100 * (float(r.best_metric) - float(ref.best_metric)),  # type: ignore[arg-type]
                               "time_vs_full_ft": None, "merged": r.mergeable,
                               "trainable_params": r.trainable_params}
        if r.time_to_best_s and ref.time_to_best_s:
            row["time_vs_full_ft"] = r.time_to_best_s / ref.time_to_best_s
        for key, batch in (("latency_b1_overhead", 1), ("latency_bB_overhead", serving_batch)):
            ratio = latency_ratio(r, batch)
            row[key] = None if ratio is None else ratio - 1
        rows.append(row)
    return rows
