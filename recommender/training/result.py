"""Assembling a :class:`RunResult` from what the run measured: the curve, time and cost to
convergence, the final scoring, parameters and latency."""

from __future__ import annotations

from typing import Any

from recommender.types import Environment, RunResult


def assemble_result(*, task: Any, method: str, params: dict[str, Any], status: str, stop_reason: str | None,
                    error: str | None, state: Any, final: dict[str, Any], measurements: dict[str, Any],
                    peak_mb: float, flops_per_token: float | None, steps_per_epoch: int,
                    wall_seconds: float, precision: str, monitor_n: int | None, seed: int,
                    extra: dict[str, Any], environment: Environment | None,
                    phase_seconds: dict[str, float] | None = None) -> RunResult:
    """The run's record. Time to convergence is training time to the best monitored score and
    to the first score within 1 % of it; the best checkpoint's score is ``final``'s (the whole
    dev set) where the run got that far, else the best monitored one."""
    st = state
    curve = st.curve
    best_point = max(curve, key=lambda p: p.metric) if curve else None
    within = None
    if best_point is not None:
        tolerance = 0.01 * abs(best_point.metric)
        within = next(p for p in curve if p.metric >= best_point.metric - tolerance)
    return RunResult(
        task=task.name, method=method, params=params, status=status,
        metric_name=task.spec.metric, best_metric=final.get("metric", st.best),
        best_metrics=final.get("metrics", st.best_metrics), metric_se=final.get("se"),
        baseline_metric=final.get("baseline_metric"), baseline_metrics=final.get("baseline_metrics", {}),
        baseline=final.get("baseline", ""), precision=precision, monitor_n=monitor_n,
        curve=curve, stop_reason=stop_reason, error=error,
        time_to_best_s=best_point.train_seconds if best_point else None,
        time_to_within_1pct_s=within.train_seconds if within else None,
        steps_to_best=best_point.step if best_point else None,
        examples_to_best=best_point.examples if best_point else None,
        tokens_to_best=best_point.tokens if best_point else None,
        flops_to_best=(best_point.tokens * flops_per_token) if best_point and flops_per_token else None,
        train_seconds=st.train_seconds, eval_seconds=st.eval_seconds, wall_seconds=wall_seconds,
        steps=st.step, epochs=st.step / max(1, steps_per_epoch),
        examples_seen=st.examples, tokens_seen=st.tokens,
        samples_per_second=st.examples / st.train_seconds if st.train_seconds else None,
        train_flops=st.tokens * flops_per_token if flops_per_token else None,
        peak_memory_mb=peak_mb, trainable_params=measurements.get("trainable"),
        head_params=measurements.get("head"), total_params=measurements.get("total"),
        artifact_bytes=measurements.get("artifact_bytes"),
        mergeable=measurements.get("mergeable"), merge_max_abs_diff=measurements.get("merge_max_abs_diff"),
        latency=measurements.get("latency", []), base_latency=measurements.get("base_latency", []),
        n_train=task.spec.n_train, n_dev=task.spec.n_dev, seed=seed, extra=extra, environment=environment,
        phase_seconds={k: round(v, 3) for k, v in (phase_seconds or {}).items()},
    )
