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
from recommender.metamodel.features import SERVING_BATCH, params_key, task_vector
from recommender.methods.base import REFERENCE_METHOD
from recommender.types import MIN_P_MEETS, Candidate, MetaFeatures, Recommendation, UserBudgets

Z90 = 1.2816  # the 10 % / 90 % quantiles of a normal distribution
BUDGET_LABELS = {"latency": "latency", "params": "trainable parameters",
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
    from recommender.knowledge_base import default_path, protocol1_path

    paths = [Path(kb_path)] if kb_path else [default_path(), protocol1_path()]
    mtime = max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)
    version = storage_version(storage)
    return _fitted(storage if version else None, str(kb_path) if kb_path else None, mtime, version)


# --- candidates ----------------------------------------------------------------------------
def candidate_configs(model: MetaModel, task_type: str) -> list[dict[str, Any]]:
    """Distinct measured (method, params) supporting ``task_type``, with their parameter counts."""
    from recommender.methods import get_method_class, method_names
    from recommender.search.spaces import holds_defaults

    supports = {m: task_type in get_method_class(m).task_types for m in method_names()}
    seen: dict[str, dict[str, Any]] = {}
    for row in model.rows_:
        method = row["method"]
        if not supports.get(method, False):
            continue
        key = method + params_key(row["params"])
        entry = seen.setdefault(key, {"method": method, "params": row["params"], "trainable": []})
        if row["trainable_params"] is not None:
            entry["trainable"].append(row["trainable_params"])
        entry.setdefault("artifact", []).append(row["result"].artifact_bytes or 0)
        entry.setdefault("mergeable", []).append(bool(row["result"].mergeable))
    out = []
    for entry in seen.values():
        out.append({"method": entry["method"], "params": entry["params"],
                    "defaults": holds_defaults(entry["method"], entry["params"]),
                    "trainable_params": int(np.median(entry["trainable"])) if entry["trainable"] else None,
                    "artifact_mb": float(np.median(entry["artifact"])) / 1e6,
                    "mergeable": any(entry["mergeable"])})
    return out


def _p_below(limit: float, q10: float, q50: float, q90: float) -> float:
    """P(value <= limit) from three quantiles, assuming a normal shape."""
    sigma = max((q90 - q10) / (2 * Z90), 1e-9)
    return float(0.5 * (1 + math.erf((limit - q50) / (sigma * math.sqrt(2)))))


def _storage(method: str, model_mb: float, artifact_mb: float, n_tasks: int) -> tuple[float, str]:
    """Storage to serve ``n_tasks`` tasks, and what adding one more costs (the method knows)."""
    from recommender.methods import get_method_class

    return get_method_class(method).storage_mb(model_mb, artifact_mb, n_tasks)


def _scenario(budgets: UserBudgets, full_ft_time_s: float | None) -> str:
    """The evaluation scenario whose best fixed rule serves as the robust default here."""
    if budgets.max_trainable_params is not None and budgets.max_trainable_params <= 1_000_000:
        return "params_1m"
    if budgets.storage_budget_mb is not None and budgets.n_tasks > 1:
        return "storage_20"
    if budgets.latency_budget_ms is not None:
        return "latency_b1"
    if budgets.time_budget_s is not None and full_ft_time_s:
        ratio = budgets.time_budget_s / full_ft_time_s
        return "time_25" if ratio < 0.375 else "time_50" if ratio < 0.75 else "time_100"
    return "time_100"


def _baseline(task: Any, mf: MetaFeatures, metric_name: str) -> float:
    """The constant predictor's score on the task's dev split, as every run records it (the
    majority training class); estimated from the meta-features without the task's labels."""
    from recommender.metamodel.quality import baseline_estimate

    if mf.task_type == "classification" and hasattr(task, "column"):
        train, dev = task.column("train", "label"), task.column("dev", "label")
        if train and dev:
            from recommender.training.scoring import ConstantPredictor, ScoringSpec

            return ConstantPredictor.fit(ScoringSpec.from_task(task), train).metric(dev, metric_name)
    return baseline_estimate(mf, metric_name)


def recommend(task: Any, budgets: UserBudgets | None = None, *, top: int = 5, model: Any = None,
              metafeatures: MetaFeatures | None = None, storage: str | None = None,
              explain: bool = True) -> Recommendation:
    """Rank fine-tuning strategies for ``task`` (a Task, or None with ``metafeatures``).

    Quality is predicted at the time budget (at convergence without one); the same number ranks
    the candidates and is shown. Rank 1 is the robust default (the best fixed rule over the
    knowledge base for these budgets, in its default configuration) unless another configuration
    is predicted to beat it with 90 % probability (:mod:`~recommender.metamodel.pairwise`, what
    the replay evaluation chose); the other ranks follow the predicted metric. ``model``: a fitted :class:`~recommender.metamodel.predictor.Predictor`.
    ``explain=False`` skips the nearest tasks and feature importances (for warm starts).

    >>> recommend(load_task("glue_rte"), UserBudgets(latency_budget_ms=40))   # doctest: +SKIP
    """
    from recommender.metamodel.predictor import Predictor, load_predictor
    from recommender.metamodel.quality import apply_extrapolation, extrapolation, to_metric

    budgets = budgets or UserBudgets()
    predictor: Predictor = model if isinstance(model, Predictor) else load_predictor(storage)
    meta = predictor.meta
    mf = metafeatures or cached_metafeatures(task)
    metric_name = getattr(getattr(task, "spec", None), "metric", None) or _kb_metric(meta, mf.task_type)
    baseline = _baseline(task, mf, metric_name)
    configs = candidate_configs(meta, mf.task_type)
    seq_len = seq_bucket(mf.tokens_p95)
    batches = tuple(sorted({1, budgets.latency_batch, SERVING_BATCH}))
    hw = hardware_profile(budgets.hardware, seq_len, batches)
    gflops = hw["train_gflops"]
    base_latency = {int(b): v for b, v in hw["base_latency_ms"].items()}
    rows = [{"metafeatures": mf, "method": c["method"], "params": c["params"],
             "trainable_params": c["trainable_params"]} for c in configs]
    preds = meta.predict(rows) if rows else {}
    budget_log_cost = (math.log(budgets.time_budget_s * gflops) if budgets.time_budget_s is not None
                       else predictor.quality.convergence_log_cost())
    quality = predictor.quality.predict(rows, [budget_log_cost])[:, 0, :]
    notes = extrapolation(mf, predictor.kb_features)
    if notes:
        quality = apply_extrapolation(quality, 1.0 + 0.5 * len(notes))
    model_mb = mf.model_params * 4 / 1e6
    ratio_key = "latency_ratio_b1" if budgets.latency_batch == 1 else "latency_ratio_bB"
    candidates = []
    for i, config in enumerate(configs):
        time_q = np.exp(preds["log_cost"][i]) / gflops if "log_cost" in preds else None
        lat_q = preds[ratio_key][i] * base_latency[budgets.latency_batch] if ratio_key in preds else None
        memory = float(np.exp(preds["log_memory"][i][1])) if "log_memory" in preds else None
        storage_mb, add_cost = _storage(config["method"], model_mb, config["artifact_mb"], budgets.n_tasks)
        p_meets: dict[str, float] = {}
        if budgets.latency_budget_ms is not None and lat_q is not None:
            p_meets["latency"] = _p_below(budgets.latency_budget_ms, *lat_q)
        if budgets.max_trainable_params is not None:
            known = config["trainable_params"]
            p_meets["params"] = float(known is not None and known <= budgets.max_trainable_params)
        if budgets.storage_budget_mb is not None:
            p_meets["storage"] = float(storage_mb <= budgets.storage_budget_mb)
        q = to_metric(quality[i], baseline, metric_name)
        candidates.append(Candidate(
            rank=0, method=config["method"], params=config["params"], predicted_metric=float(q[1]),
            metric_interval=[float(q[0]), float(q[2])], predicted_gap=0.0,
            predicted_time_s=float(time_q[1]) if time_q is not None else None,
            time_interval=[float(time_q[0]), float(time_q[2])] if time_q is not None else None,
            predicted_latency_ms=float(lat_q[1]) if lat_q is not None else None,
            latency_interval=[float(lat_q[0]), float(lat_q[2])] if lat_q is not None else None,
            predicted_memory_mb=memory, trainable_params=config["trainable_params"], storage_mb=storage_mb,
            add_task_cost=add_cost, p_meets=p_meets, feasible=all(p >= MIN_P_MEETS for p in p_meets.values()),
            predicted_gain=float(q[1]) - baseline))
    full_time = [c.predicted_time_s for c in candidates if c.method == REFERENCE_METHOD and c.predicted_time_s]
    scenario = _scenario(budgets, min(full_time) if full_time else None)
    default = _robust_default(predictor.rankings.get(scenario, []), candidates,
                              [config["defaults"] for config in configs])
    if default is not None:
        default.robust_default = True
    first, lead = _top_pick(predictor, scenario, rows, candidates, default)

    # the top pick is the regret-aware choice; below it, the predicted metric alone orders
    candidates.sort(key=lambda c: (not c.feasible, -c.predicted_metric))
    if first is not None:
        candidates.remove(first)
        candidates.insert(0, first)
    best_per_method: list[Candidate] = []
    seen_methods: set[str] = set()
    for c in candidates:  # the best configuration of each method, then the rest
        if c.method not in seen_methods:
            seen_methods.add(c.method)
            best_per_method.append(c)
    chosen = set(map(id, best_per_method))
    ordered = best_per_method + [c for c in candidates if id(c) not in chosen]
    ordered.sort(key=lambda c: (not c.feasible, id(c) not in chosen))  # stable: keeps the rank order
    shown = ordered[:top]
    for rank, c in enumerate(shown, start=1):
        c.rank = rank
        c.predicted_gap = c.predicted_metric - shown[0].predicted_metric
        c.why = _why(c, budgets, shown[0], baseline, lead if c is first else None, default)
        c.ranked_by = _ranked_by(c, first, lead, metric_name)
    feasible_found = any(c.feasible for c in candidates)
    binding, advice = (None, None) if feasible_found else _binding_budget(candidates)
    warnings = _budget_warning(predictor, rows, candidates, budgets, gflops, baseline, metric_name)
    if notes:
        warnings.append("extrapolating: " + "; ".join(notes) + " (intervals widened)")
    neighbours = nearest_tasks(meta, mf, scenario=scenario if budgets.time_budget_s is not None else None) if explain else []
    return Recommendation(
        task=getattr(task, "name", "task"), metric_name=metric_name,
        metafeatures=mf, budgets=budgets, candidates=shown, feasible_found=feasible_found,
        binding_budget=binding, relax_advice=advice, nearest_tasks=neighbours,
        top_features=predictor.top_features if explain else [], hardware={"requested": budgets.hardware, "seq_len": seq_len, **hw},
        n_runs=predictor.n_runs, baseline_metric=baseline, quality_at_s=budgets.time_budget_s, extrapolation=notes,
        warnings=predictor.notes + warnings)


def cached_metafeatures(task: Any) -> MetaFeatures:
    """The task's meta-features (default model), kept as JSON in the user folder by data
    fingerprint: computing them loads a tokenizer (seconds), reading them takes milliseconds."""
    import hashlib

    from recommender.metafeatures import METAFEATURES_VERSION, compute_metafeatures
    from recommender.paths import user_dir

    key = hashlib.sha256(f"{task.fingerprint}|{METAFEATURES_VERSION}".encode()).hexdigest()[:24]
    path = user_dir() / "metafeatures" / f"{key}.json"
    try:
        mf = MetaFeatures.from_dict(json.loads(path.read_text(encoding="utf-8")))
        if mf.fingerprint == task.fingerprint and mf.version == METAFEATURES_VERSION:
            return mf
    except (OSError, ValueError, TypeError):
        pass  # absent or damaged: computed again
    mf = compute_metafeatures(task)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(mf.to_dict()), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass
    return mf


def _kb_metric(meta: MetaModel, task_type: str) -> str:
    names = [r["result"].metric_name for r in meta.rows_ if r["metafeatures"].task_type == task_type]
    return max(set(names), key=names.count) if names else "metric"


def _robust_default(ranking: Sequence[str], candidates: Sequence[Candidate],
                    defaults: Sequence[bool]) -> Candidate | None:
    """The fixed rule's pick: the first method of the scenario's ranking with a feasible
    candidate, in its default configuration (``defaults[i]``: candidate i holds its method's
    shipped defaults), else its best predicted configuration."""
    for method in ranking:
        mine = [(c, d) for c, d in zip(candidates, defaults, strict=True) if c.method == method and c.feasible]
        if mine:
            return next((c for c, d in mine if d), max((c for c, _ in mine), key=lambda c: c.predicted_metric))
    return None


#: a prediction "beats the constant predictor" by at least this much (metric units)
MIN_USEFUL_GAIN = 0.02


def _budget_warning(predictor: Any, rows: Sequence[dict[str, Any]], candidates: Sequence[Candidate],
                    budgets: UserBudgets, gflops: float, baseline: float, metric_name: str) -> list[str]:
    """A plain warning when nothing feasible is predicted to beat the constant predictor within the
    time budget, with the budget that would."""
    if budgets.time_budget_s is None or not rows:
        return []
    if any(c.feasible and (c.predicted_gain or 0.0) >= MIN_USEFUL_GAIN for c in candidates):
        return []
    feasible = np.array([c.feasible for c in candidates]) if any(c.feasible for c in candidates) else None
    # up to where every measured curve had plateaued (at least 200x the budget)
    longest = max(budgets.time_budget_s * 200, math.exp(predictor.quality.convergence_log_cost()) / gflops)
    seconds = np.geomspace(budgets.time_budget_s, longest, 60)
    gains = predictor.quality.predict(rows, np.log(seconds * gflops))[:, :, 1]
    if feasible is not None:
        gains = gains[feasible]
    enough = np.flatnonzero(gains.max(axis=0) >= MIN_USEFUL_GAIN)
    head = (f"nothing is predicted to beat a constant predictor ({metric_name} {baseline:.3f}) within "
            f"{_duration(budgets.time_budget_s)} of training")
    if not len(enough):
        return [head + "; more time is not predicted to help either"]
    return [head + f"; allow about {_duration(float(seconds[enough[0]]))}"]


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} second{'' if round(seconds) == 1 else 's'}"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def _why(c: Candidate, budgets: UserBudgets, top: Candidate, baseline: float, lead: str | None = None,
         default: Candidate | None = None) -> str:
    when = f"within {_duration(budgets.time_budget_s)}" if budgets.time_budget_s else "at convergence"
    parts = [f"predicted {c.predicted_metric:.3f} {when} ({c.predicted_metric - baseline:+.3f} over a "
             "constant predictor)"]
    if c.robust_default:
        parts.append("the robust default for these budgets (the best fixed rule on past tasks)")
        if c is top:
            parts.append("kept first: nothing else is predicted to beat it with 90 % probability")
    elif lead is not None and default is not None:
        parts.append(f"predicted to beat the robust default ({default.method}) {lead}")
    if c.predicted_time_s is not None:
        parts.append(f"~{c.predicted_time_s:.0f}s to converge here")
    if c.predicted_latency_ms is not None:
        parts.append(f"~{c.predicted_latency_ms:.1f} ms at batch {budgets.latency_batch}")
    missed = [BUDGET_LABELS[k] for k in c.missed_budgets()]
    if missed:
        parts.append("misses " + ", ".join(missed))
    return "; ".join(parts)


def _ranked_by(c: Candidate, first: Candidate | None, lead: str | None, metric_name: str) -> str:
    """What put ``c`` at its rank, in the words the tables show: rank 1 is the regret-aware
    pick (:func:`_top_pick`), the other ranks follow the predicted metric."""
    if c is first and c.robust_default:
        return "robust default"
    if c is first and lead is not None:
        return "predicted to beat the robust default"
    return f"predicted {metric_name}"


def _top_pick(predictor: Any, scenario: str, rows: Sequence[dict[str, Any]], candidates: Sequence[Candidate],
              default: Candidate | None) -> tuple[Candidate | None, str | None]:
    """The regret-aware first rank (:func:`~recommender.metamodel.rule_gap.pick` on the
    predictor's lead model) and, when it is not the robust default, why it beat it, in words.
    Without a lead model the pick leaves the default only for a predicted metric
    :data:`~recommender.metamodel.replay_eval.MARGIN` higher."""
    from recommender.metamodel.replay_eval import MARGIN
    from recommender.metamodel.rule_gap import pick

    if not candidates:
        return None, None
    d = next((i for i, c in enumerate(candidates) if c is default), None)
    model = getattr(predictor, "lead_model", None)
    lead = model.lead(scenario, rows, d) if model is not None else None
    if lead is None:
        metric = np.array([c.predicted_metric for c in candidates])
        lead = metric - (metric[d] + MARGIN if d is not None else 0.0)
        model = None
    i = pick(lead, np.array([c.feasible for c in candidates]), d)
    if i == d or d is None:  # kept, or no robust default to beat: the predicted metric decided
        return candidates[i], None
    words = model.describe(float(lead[i])) if model is not None else f"by more than {100 * MARGIN:.0f} points"
    return candidates[i], words


def _binding_budget(candidates: Sequence[Candidate]) -> tuple[str | None, str | None]:
    """Which budget, relaxed alone, admits the best candidate, and what that buys."""
    best: tuple[float, str, Candidate] | None = None
    for key in BUDGET_LABELS:
        admitted = [c for c in candidates if all(k == key for k in c.missed_budgets())]
        if admitted:
            top = max(admitted, key=lambda c: c.predicted_metric)
            if best is None or top.predicted_metric > best[0]:
                best = (top.predicted_metric, key, top)
    if best is None:
        return "several", "no single budget binds: relax at least two of them"
    _, key, c = best
    needed = {"time": f"{c.predicted_time_s:.0f}s of training" if c.predicted_time_s else "more time",
              "latency": f"{c.predicted_latency_ms:.1f} ms" if c.predicted_latency_ms else "more latency",
              "params": f"{c.trainable_params:,} trainable parameters" if c.trainable_params else "more parameters",
              "storage": f"{c.storage_mb:.0f} MB of storage"}[key]
    return key, (f"the {BUDGET_LABELS[key]} budget binds: allowing {needed} admits {c.method} "
                 f"(predicted {c.predicted_metric:.3f})")


def nearest_tasks(model: MetaModel, mf: MetaFeatures, k: int = 3, scenario: str | None = None) -> list[dict[str, Any]]:
    """The k most similar past tasks (standardised meta-features) and what won on each: under a
    time ``scenario`` of :mod:`~recommender.metamodel.replay_eval` (the user's time budget as a
    share of full fine-tuning's time to converge) the best run at that share of the task's own
    full fine-tuning time, scored as the replay evaluation scores it; otherwise (None: no time
    budget) the best at convergence."""
    tasks: dict[tuple[str, int], dict[str, Any]] = {}
    for row in model.rows_:
        key = (row["task"], row["size"])
        tasks.setdefault(key, {"task": row["task"], "size": row["size"], "vector": task_vector(row["metafeatures"]),
                               "results": []})["results"].append(row["result"])
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
             **scenario_winner(entries[i]["results"], scenario)} for i in order]


def scenario_winner(results: Sequence[Any], scenario: str | None) -> dict[str, Any]:
    """The best of one (task, size)'s runs under ``scenario`` (see :func:`nearest_tasks`):
    ``best_method``, ``best_metric``, ``when`` it was scored and a ``summary`` in words, which
    says so when no run was :data:`MIN_USEFUL_GAIN` above the constant predictor (the "winner"
    is then noise)."""
    from recommender.metamodel.quality import score_at
    from recommender.metamodel.replay_eval import TIME_FRACTIONS, scenario_budgets

    fraction = TIME_FRACTIONS.get(scenario or "")
    budget = (scenario_budgets(results) or {}).get(scenario or "") if fraction else None
    if budget is None or fraction is None:
        scores = [float(r.best_metric) for r in results]
        when = "at convergence"
    else:
        scores = [score_at(r, budget, math.inf if r.baseline_metric is None else r.baseline_metric, interpolate=True)
                  for r in results]
        when = f"at {100 * fraction:.0f} % of full FT's time to converge"
    i = int(np.argmax(scores))
    baselines = [r.baseline_metric for r in results if r.baseline_metric is not None]
    learned = not baselines or scores[i] >= float(np.median(baselines)) + MIN_USEFUL_GAIN
    summary = f"{results[i].method} won {when}" if learned else f"nothing beat the constant predictor {when}"
    return {"best_method": results[i].method, "best_metric": scores[i], "when": when, "summary": summary}


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
