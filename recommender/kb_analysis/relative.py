"""The seed papers' question from the knowledge base: per method, over tasks, how fast does it
converge and how good is it relative to full fine-tuning, and what does it cost at inference?

Per task (a task at one training-set size) one run per method is compared with
:func:`recommender.report.relative_to_reference`: the method's default configuration
(``select="default"``, config ``<method>#0``) or its best configuration on that task
(``select="best"``, e.g. the best point of the learning-rate grid: what a tuned method gives,
tuning cost not counted). The per-task figures are then summarized per method by their median
and 25-75 % spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recommender.kb_analysis import PROTOCOL, task_label
from recommender.knowledge_base import KnowledgeBaseRow
from recommender.methods.base import REFERENCE_METHOD
from recommender.types import SERVING_BATCH, RunResult

SELECTIONS = ("best", "default")
REFERENCE = REFERENCE_METHOD


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of one figure over tasks."""

    median: float | None
    q25: float | None
    q75: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread:
        import numpy as np

        xs = [float(v) for v in values if v is not None]
        if not xs:
            return cls(None, None, None, 0)
        q25, med, q75 = (float(x) for x in np.percentile(xs, [25, 50, 75]))
        return cls(med, q25, q75, len(xs))


@dataclass(frozen=True)
class MethodSummary:
    """One method against the reference, over the tasks both ran on."""

    method: str
    tasks: int
    quality_points: Spread  # final metric minus the reference's, in points (x100)
    time_ratio: Spread  # time to best / the reference's
    flops_ratio: Spread  # FLOPs to best / the reference's (hardware-independent)
    latency_b1: Spread  # latency overhead over the base model at batch 1 (0.1 = +10 %)
    latency_bB: Spread  # ... at the serving batch
    merged: str  # latency measured merged: "yes", "no", "some", "-" (nothing to merge)


def _is_default(row: KnowledgeBaseRow) -> bool:
    return row.config_key == f"{row.result.method}#0"


def selected_runs(rows: Sequence[KnowledgeBaseRow], select: str = "best") -> dict[str, list[RunResult]]:
    """Per task label, one protocol-2 run per method (see the module docstring)."""
    from recommender.errors import ConfigError

    if select not in SELECTIONS:
        raise ConfigError(f"select={select!r}; expected one of {', '.join(SELECTIONS)}")
    chosen: dict[str, dict[str, RunResult]] = {}
    for row in rows:
        r = row.result
        if row.protocol != PROTOCOL or not r.has_metric or (select == "default" and not _is_default(row)):
            continue
        per_task = chosen.setdefault(task_label(row), {})
        old = per_task.get(r.method)
        if old is None or float(r.best_metric) > float(old.best_metric):  # type: ignore[arg-type]
            per_task[r.method] = r
    return {task: list(methods.values()) for task, methods in sorted(chosen.items())}


def per_task_relative(runs: dict[str, list[RunResult]], reference: str = REFERENCE) -> dict[str, list[dict[str, Any]]]:
    """:func:`relative_to_reference` per task, plus the FLOPs-to-best ratio; tasks without a
    reference run are left out."""
    from recommender.report import relative_to_reference

    out = {}
    for task, results in runs.items():
        rel = relative_to_reference(results, reference=reference, serving_batch=SERVING_BATCH)
        if not rel:
            continue
        by_method = {r.method: r for r in results}
        ref_flops = by_method[reference].flops_to_best
        for row in rel:
            own = by_method[row["method"]].flops_to_best
            row["flops_vs_full_ft"] = own / ref_flops if own and ref_flops else None
        out[task] = rel
    return out


def summarize(per_task: dict[str, list[dict[str, Any]]]) -> list[MethodSummary]:
    """Median and 25-75 % spread over tasks, per method (the reference first)."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for rows in per_task.values():
        for row in rows:
            by_method.setdefault(row["method"], []).append(row)
    out = []
    for method, rows in sorted(by_method.items(), key=lambda kv: (kv[0] != REFERENCE, kv[0])):
        merged = {r["merged"] for r in rows}
        out.append(MethodSummary(
            method=method, tasks=len(rows),
            quality_points=Spread.of([r["quality_vs_full_ft"] for r in rows]),
            time_ratio=Spread.of([r["time_vs_full_ft"] for r in rows]),
            flops_ratio=Spread.of([r["flops_vs_full_ft"] for r in rows]),
            latency_b1=Spread.of([r["latency_b1_overhead"] for r in rows]),
            latency_bB=Spread.of([r["latency_bB_overhead"] for r in rows]),
            merged="-" if merged == {None} else "yes" if merged == {True} else "no" if merged <= {False, None}
            else "some"))
    return out


def seed_paper_summary(rows: Sequence[KnowledgeBaseRow], select: str = "best") -> tuple[
        list[MethodSummary], dict[str, list[dict[str, Any]]]]:
    """Per-method summaries and the per-task rows they come from."""
    per_task = per_task_relative(selected_runs(rows, select))
    return summarize(per_task), per_task
