"""Recommend how to fine-tune a task under budgets, before spending any compute.

The candidates are the configurations the knowledge base has measured (every method's defaults
and sampled settings). For each, the meta-model predicts quality (absolute and relative to the
task's best), time to convergence on *this* machine, deployed latency and memory, with
intervals; budgets turn those into probabilities of being met. Feasible candidates rank first,
by predicted quality.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from recommender.metamodel.calibration import hardware_profile, seq_bucket
from recommender.metamodel.estimators import MetaModel
from recommender.metamodel.features import SERVING_BATCH, task_vector
from recommender.types import Candidate, MetaFeatures, Recommendation, UserBudgets

Z90 = 1.2816  # the 10 % / 90 % quantiles of a normal distribution
FULL_MODEL_METHODS = {"full_ft", "tapt_ft"}
BUDGET_LABELS = {"time": "training time", "latency": "latency", "params": "trainable parameters",
                 "storage": "storage"}


# --- fitting and caching -------------------------------------------------------------------
def knowledge_rows(storage: str | None = None, kb_path: Path | None = None) -> list[Any]:
    """The shipped knowledge base plus every run in the user's storage."""
    from recommender.knowledge_base import load_knowledge_base, rows_from_storage

    rows = {r.run_id: r for r in load_knowledge_base(kb_path)}
    if storage:
        for row in rows_from_storage(storage):
            rows[row.run_id] = row
    return list(rows.values())


@lru_cache(maxsize=4)
def _fitted(storage: str | None, kb_path: str | None, kb_mtime: float, storage_version: float) -> MetaModel:
    return MetaModel().fit(knowledge_rows(storage, Path(kb_path) if kb_path else None))


def storage_version(storage: str | None) -> float:
    """Changes whenever ``storage`` may hold new runs: a local file's modification time (0 when
    there is no file yet, so no runs); for a database server, the current time (never reuse a
    fit: other workers may have written)."""
    import time

    from recommender.store import storage_file

    if not storage:
        return 0.0
    path = storage_file(storage)
    if path is None:
        return time.time()
    return path.stat().st_mtime if path.exists() else 0.0


def load_metamodel(storage: str | None = None, kb_path: Path | None = None) -> MetaModel:
    """Fit the meta-model on the knowledge base (+ storage); cached while neither changes.

    A storage file that does not exist yet holds no runs: it is skipped, not created.
    Refitting takes seconds, so the model is rebuilt from data instead of being unpickled.
    """
    from recommender.knowledge_base import default_path

    path = Path(kb_path or default_path())
    mtime = path.stat().st_mtime if path.exists() else 0.0
    version = storage_version(storage)
    return _fitted(storage if version else None, str(path), mtime, version)


# --- candidates ----------------------------------------------------------------------------
def candidate_configs(model: MetaModel, task_type: str) -> list[dict[str, Any]]:
    """Distinct measured (method, params) supporting ``task_type``, with their parameter counts."""
    from recommender.methods import get_method_class, method_names

    known = set(method_names())
    seen: dict[str, dict[str, Any]] = {}
    for row in model.rows_:
        method = row["method"]
        if method not in known or task_type not in get_method_class(method).task_types:
            continue
        key = method + json.dumps(row["params"], sort_keys=True, default=str)
        entry = seen.setdefault(key, {"method": method, "params": row["params"], "trainable": []})
        if row["trainable_params"] is not None:
            entry["trainable"].append(row["trainable_params"])
        entry.setdefault("artifact", []).append(row["result"].artifact_bytes or 0)
        entry.setdefault("mergeable", []).append(bool(row["result"].mergeable))
    out = []
    for entry in seen.values():
        out.append({"method": entry["method"], "params": entry["params"],
                    "trainable_params": int(np.median(entry["trainable"])) if entry["trainable"] else None,
                    "artifact_mb": float(np.median(entry["artifact"])) / 1e6,
                    "mergeable": any(entry["mergeable"])})
    return out


def _p_below(limit: float, q10: float, q50: float, q90: float) -> float:
    """P(value <= limit) from three quantiles, assuming a normal shape."""
    sigma = max((q90 - q10) / (2 * Z90), 1e-9)
    return float(0.5 * (1 + math.erf((limit - q50) / (sigma * math.sqrt(2)))))


def _storage(method: str, model_mb: float, artifact_mb: float, n_tasks: int) -> tuple[float, str]:
    """Storage to serve ``n_tasks`` tasks, and what adding one more costs (first seed paper)."""
    if method in FULL_MODEL_METHODS:
        return n_tasks * model_mb, "train and store one more full model"
    if method == "multitask_ft":
        return model_mb, "retrain the shared model with the new task (replaying old tasks' data)"
    return model_mb + n_tasks * artifact_mb, "train one more small adapter; the base model is shared"


def recommend(task: Any, budgets: UserBudgets | None = None, *, top: int = 5, model: MetaModel | None = None,
              metafeatures: MetaFeatures | None = None, storage: str | None = None,
              explain: bool = True) -> Recommendation:
    """Rank fine-tuning strategies for ``task`` (a Task, or None with ``metafeatures``).

    ``explain=False`` skips the nearest tasks and feature importances (for warm starts).

    >>> recommend(load_task("glue_rte"), UserBudgets(latency_budget_ms=40))   # doctest: +SKIP
    """
    from recommender.metafeatures import compute_metafeatures

    budgets = budgets or UserBudgets()
    model = model or load_metamodel(storage)
    mf = metafeatures or compute_metafeatures(task)
    configs = candidate_configs(model, mf.task_type)
    seq_len = seq_bucket(mf.tokens_p95)
    batches = tuple(sorted({1, budgets.latency_batch, SERVING_BATCH}))
    hw = hardware_profile(budgets.hardware, seq_len, batches)
    gflops = hw["matmul_gflops"]
    base_latency = {int(b): v for b, v in hw["base_latency_ms"].items()}
    rows = [{"metafeatures": mf, "method": c["method"], "params": c["params"],
             "trainable_params": c["trainable_params"]} for c in configs]
    preds = model.predict(rows) if rows else {}
    model_mb = mf.model_params * 4 / 1e6
    ratio_key = "latency_ratio_b1" if budgets.latency_batch == 1 else "latency_ratio_bB"
    candidates = []
    for i, config in enumerate(configs):
        metric = preds["metric"][i] if "metric" in preds else np.array([math.nan] * 3)
        gap = preds["gap"][i] if "gap" in preds else np.zeros(3)
        time_q = np.exp(preds["log_cost"][i]) / gflops if "log_cost" in preds else None
        lat_q = preds[ratio_key][i] * base_latency[budgets.latency_batch] if ratio_key in preds else None
        memory = float(np.exp(preds["log_memory"][i][1])) if "log_memory" in preds else None
        storage_mb, add_cost = _storage(config["method"], model_mb, config["artifact_mb"], budgets.n_tasks)
        p_meets: dict[str, float] = {}
        if budgets.time_budget_s is not None and time_q is not None:
            p_meets["time"] = _p_below(math.log(budgets.time_budget_s), *np.log(time_q))
        if budgets.latency_budget_ms is not None and lat_q is not None:
            p_meets["latency"] = _p_below(budgets.latency_budget_ms, *lat_q)
        if budgets.max_trainable_params is not None:
            known = config["trainable_params"]
            p_meets["params"] = float(known is not None and known <= budgets.max_trainable_params)
        if budgets.storage_budget_mb is not None:
            p_meets["storage"] = float(storage_mb <= budgets.storage_budget_mb)
        candidates.append(Candidate(
            rank=0, method=config["method"], params=config["params"], predicted_metric=float(metric[1]),
            metric_interval=[float(metric[0]), float(metric[2])], predicted_gap=float(gap[1]),
            predicted_time_s=float(time_q[1]) if time_q is not None else None,
            time_interval=[float(time_q[0]), float(time_q[2])] if time_q is not None else None,
            predicted_latency_ms=float(lat_q[1]) if lat_q is not None else None,
            latency_interval=[float(lat_q[0]), float(lat_q[2])] if lat_q is not None else None,
            predicted_memory_mb=memory, trainable_params=config["trainable_params"], storage_mb=storage_mb,
            add_task_cost=add_cost, p_meets=p_meets, feasible=all(p >= 0.5 for p in p_meets.values())))
    candidates.sort(key=lambda c: (not c.feasible, -c.predicted_gap, -c.predicted_metric))
    best_per_method: list[Candidate] = []
    seen_methods: set[str] = set()
    for c in candidates:  # the best configuration of each method, then the rest
        if c.method not in seen_methods:
            seen_methods.add(c.method)
            best_per_method.append(c)
    ordered = best_per_method + [c for c in candidates if c not in best_per_method]
    ordered.sort(key=lambda c: (not c.feasible, c not in best_per_method, -c.predicted_gap))
    shown = ordered[:top]
    for rank, c in enumerate(shown, start=1):
        c.rank = rank
        c.why = _why(c, budgets)
    feasible_found = any(c.feasible for c in candidates)
    binding, advice = (None, None) if feasible_found else _binding_budget(candidates)
    neighbours = nearest_tasks(model, mf) if explain else []
    return Recommendation(
        task=getattr(task, "name", "task"), metric_name=getattr(getattr(task, "spec", None), "metric", "metric"),
        metafeatures=mf, budgets=budgets, candidates=shown, feasible_found=feasible_found,
        binding_budget=binding, relax_advice=advice, nearest_tasks=neighbours,
        top_features=top_features(model) if explain else [], hardware={"device": budgets.hardware, "seq_len": seq_len, **hw},
        n_runs=model.n_runs_)


def _why(c: Candidate, budgets: UserBudgets) -> str:
    parts = [f"predicted {c.predicted_metric:.3f} ({c.predicted_gap:+.3f} vs the task's best)"]
    if c.predicted_time_s is not None:
        parts.append(f"~{c.predicted_time_s:.0f}s to converge here")
    if c.predicted_latency_ms is not None:
        parts.append(f"~{c.predicted_latency_ms:.1f} ms at batch {budgets.latency_batch}")
    missed = [BUDGET_LABELS[k] for k, p in c.p_meets.items() if p < 0.5]
    if missed:
        parts.append("misses " + ", ".join(missed))
    return "; ".join(parts)


def _binding_budget(candidates: Sequence[Candidate]) -> tuple[str | None, str | None]:
    """Which budget, relaxed alone, admits the best candidate, and what that buys."""
    best: tuple[float, str, Candidate] | None = None
    for key in BUDGET_LABELS:
        admitted = [c for c in candidates if all(p >= 0.5 for k, p in c.p_meets.items() if k != key)]
        if admitted:
            top = max(admitted, key=lambda c: c.predicted_gap)
            if best is None or top.predicted_gap > best[0]:
                best = (top.predicted_gap, key, top)
    if best is None:
        return "several", "no single budget binds: relax at least two of them"
    _, key, c = best
    needed = {"time": f"{c.predicted_time_s:.0f}s of training" if c.predicted_time_s else "more time",
              "latency": f"{c.predicted_latency_ms:.1f} ms" if c.predicted_latency_ms else "more latency",
              "params": f"{c.trainable_params:,} trainable parameters" if c.trainable_params else "more parameters",
              "storage": f"{c.storage_mb:.0f} MB of storage"}[key]
    return key, (f"the {BUDGET_LABELS[key]} budget binds: allowing {needed} admits {c.method} "
                 f"(predicted {c.predicted_metric:.3f})")


def nearest_tasks(model: MetaModel, mf: MetaFeatures, k: int = 3) -> list[dict[str, Any]]:
    """The k most similar past tasks (standardised meta-features) and what won on each."""
    tasks: dict[tuple[str, int], dict[str, Any]] = {}
    for row in model.rows_:
        key = (row["task"], row["size"])
        entry = tasks.setdefault(key, {"task": row["task"], "size": row["size"],
                                       "vector": task_vector(row["metafeatures"]), "best": None})
        if entry["best"] is None or row["result"].best_metric > entry["best"][1]:
            entry["best"] = (row["method"], row["result"].best_metric)
    if not tasks:
        return []
    names = list(task_vector(mf))
    matrix = np.array([[t["vector"][n] for n in names] for t in tasks.values()])
    scale = matrix.std(axis=0)
    scale[scale == 0] = 1.0
    target = np.array([task_vector(mf)[n] for n in names])
    distances = np.sqrt((((matrix - target) / scale) ** 2).sum(axis=1))
    order = np.argsort(distances)[:k]
    entries = list(tasks.values())
    return [{"task": entries[i]["task"], "size": entries[i]["size"], "distance": float(distances[i]),
             "best_method": entries[i]["best"][0], "best_metric": entries[i]["best"][1]} for i in order]


@lru_cache(maxsize=8)
def _importance(model_id: int, model: MetaModel) -> tuple[str, ...]:
    try:
        ranked = model.feature_importance("gap")
    except KeyError:
        return ()
    return tuple(name for name, value in ranked.items() if value > 0)[:5]


def top_features(model: MetaModel) -> list[str]:
    """The meta-features that weigh most in the quality ranking (permutation importance)."""
    return list(_importance(id(model), model))
