"""Leave-one-task-out evaluation of the meta-model against simple baselines.

Tasks built from the same data (all sizes of a dataset, and cross-lingual variants of a GLUE
set) are held out together. For each held-out (task, size): top-1 regret = best measured metric
minus the measured metric of the configuration ranked first; hit@3 = the measured best is among
the top three; Spearman correlation between predicted and measured metrics; median relative
error of predicted time to convergence (over the runs that learned, see
:func:`~recommender.metamodel.features.learned`) and latency ratio.
"""

from __future__ import annotations

import math
import random
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from recommender.metamodel.estimators import MetaModel
from recommender.metamodel.features import run_targets

BASELINES = ("always_full_ft", "always_lora", "best_on_average", "random")


def task_group(row: Any) -> str:
    """Held-out unit: the task's source data (``xling_sst2_en_pt`` goes with ``glue_sst2``)."""
    from recommender.tasks import bundled_spec
    from recommender.tasks.bundled import is_bundled

    if is_bundled(row.task):
        source = bundled_spec(row.task)[0].source
        return source.split(",")[0].split("+")[0].strip() or row.task
    return row.task


def scored_runs(rows: Sequence[Any]) -> dict[tuple[str, int], list[Any]]:
    """Runs with a usable metric, by (task fingerprint, training-set size)."""
    by_key: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for r in rows:
        if r.result.has_metric and r.result.status not in ("failed", "oom"):
            by_key[(r.metafeatures.fingerprint, r.size)].append(r)
    return by_key


def held_out_folds(kb_rows: Sequence[Any], max_iter: int = 200) -> Iterator[tuple[str, MetaModel, list[Any], list[Any]]]:
    """(group, model fitted without it, training runs, held-out runs) for every task group that
    leaves at least two other tasks to learn from."""
    for group in sorted({task_group(r) for r in kb_rows}):
        train = [r for r in kb_rows if task_group(r) != group]
        test = [r for r in kb_rows if task_group(r) == group]
        if len({r.metafeatures.fingerprint for r in train}) < 2:
            continue
        yield group, MetaModel(max_iter=max_iter).fit(train), train, test


def prediction_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """The meta-model's input for measured runs (task features, method, hyperparameters)."""
    return [{"metafeatures": r.metafeatures, "method": r.result.method, "params": r.result.params,
             "trainable_params": r.result.trainable_params} for r in runs]


def evaluate(kb_rows: Sequence[Any], *, seed: int = 0, max_iter: int = 200,
             folds: Sequence[tuple[str, MetaModel, list[Any], list[Any]]] | None = None) -> dict[str, Any]:
    """Leave-one-group-out over the knowledge base; returns per-method and baseline figures.

    ``folds``: ``list(held_out_folds(kb_rows))`` computed once, to share with
    :func:`~recommender.metamodel.replay.warm_start_replay` instead of fitting twice."""
    groups = sorted({task_group(r) for r in kb_rows})
    results: dict[str, list[float]] = defaultdict(list)
    hits: dict[str, list[float]] = defaultdict(list)
    spearman, time_err, lat_err = [], [], []
    rng = random.Random(seed)
    for _, model, train, test in (held_out_folds(kb_rows, max_iter) if folds is None else folds):
        avg = _average_gap_by_method(train)
        for (_, _size), runs in scored_runs(test).items():
            if len(runs) < 2:
                continue
            measured = np.array([r.result.best_metric for r in runs])
            best = measured.max()
            preds = model.predict(prediction_rows(runs))
            gap = preds["gap"][:, 1] if "gap" in preds else np.zeros(len(runs))
            order = np.argsort(-gap)
            results["metamodel"].append(best - measured[order[0]])
            hits["metamodel"].append(float(np.argmax(measured) in order[:3]))
            if len(runs) >= 3:
                from scipy.stats import spearmanr

                with warnings.catch_warnings():  # all-tied metrics: rho is NaN and skipped below
                    warnings.simplefilter("ignore", RuntimeWarning)
                    rho = spearmanr(gap, measured)[0]
                if np.isfinite(rho):
                    spearman.append(float(rho))
            for i, r in enumerate(runs):
                truth = run_targets(r.result)
                if "log_cost" in preds and math.isfinite(truth["log_cost"]):
                    time_err.append(abs(math.exp(preds["log_cost"][i, 1] - truth["log_cost"]) - 1))
                if "latency_ratio_b1" in preds and math.isfinite(truth["latency_ratio_b1"]):
                    lat_err.append(abs(preds["latency_ratio_b1"][i, 1] / truth["latency_ratio_b1"] - 1))
            for name in BASELINES:
                pick = _baseline_pick(name, runs, avg, rng)
                if pick is not None:
                    results[name].append(best - measured[pick])
    summary: dict[str, Any] = {name: {"top1_regret": float(np.mean(v)), "n_tasks": len(v)}
                               for name, v in results.items()}
    for name, v in hits.items():
        summary[name]["hit_at_3"] = float(np.mean(v))
    if "metamodel" in summary:
        summary["metamodel"]["spearman"] = float(np.mean(spearman)) if spearman else None
        summary["metamodel"]["time_median_rel_error"] = float(np.median(time_err)) if time_err else None
        summary["metamodel"]["latency_median_rel_error"] = float(np.median(lat_err)) if lat_err else None
    always = [summary[b]["top1_regret"] for b in ("always_full_ft", "always_lora", "best_on_average") if b in summary]
    if always and "metamodel" in summary:
        best_baseline = min(always)
        summary["metamodel"]["vs_best_always_baseline"] = (
            1 - summary["metamodel"]["top1_regret"] / best_baseline if best_baseline > 0 else None)
    summary["n_groups"] = len(groups)
    summary["n_runs"] = len(kb_rows)
    return summary


def _average_gap_by_method(rows: Sequence[Any]) -> dict[str, float]:
    gaps: dict[str, list[float]] = defaultdict(list)
    for runs in scored_runs(rows).values():
        best = max(r.result.best_metric for r in runs)
        for r in runs:
            gaps[r.result.method].append(r.result.best_metric - best)
    return {m: float(np.mean(v)) for m, v in gaps.items()}


def _baseline_pick(name: str, runs: Sequence[Any], avg: dict[str, float], rng: random.Random) -> int | None:
    methods = [r.result.method for r in runs]
    if name == "random":
        return rng.randrange(len(runs))
    if name.startswith("always_"):  # a fixed rule: always the named method
        target = name[len("always_"):]
    else:
        ranked = sorted((m for m in set(methods) if m in avg), key=lambda m: -avg[m])
        if not ranked:
            return None
        target = ranked[0]
    candidates = [i for i, m in enumerate(methods) if m == target]
    if not candidates:
        return None
    # "always X" means X with its defaults: the sweep's configuration 0
    defaults = [i for i in candidates if (runs[i].config_key or "").endswith("#0")]
    return (defaults or candidates)[0]
