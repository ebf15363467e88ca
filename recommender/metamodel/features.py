"""Turn runs (task meta-features + method + hyperparameters) into a numeric design matrix and
the targets the meta-model learns.

Targets (all per run, NaN when not measured):

- ``metric``: the best dev metric;
- ``gap``: metric minus the best metric seen on the same task and size (<= 0; ranks methods);
- ``log_cost``: log of time-to-best x the machine's matmul GFLOP/s measured with the run (in the
  precision it trained in, :func:`run_gflops`), i.e.
  the time to convergence in *GFLOP-equivalents*: divided by another machine's GFLOP/s it
  gives seconds there (the hardware-independent cost the issue asks for). Only for runs that
  learned (see :func:`learned`): a run whose best dev score is its first evaluation never
  converged, and its "time to best" is only when it was first evaluated;
- ``log_memory``: log peak memory (MB);
- ``latency_ratio_b1`` / ``latency_ratio_bB``: deployed latency (merged where exact) over the
  base model's latency measured in the same run, at batch 1 and at the serving batch; exactly 1
  for a deployment that runs the base model's own computation (:func:`~recommender.report.latency_ratio`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recommender.metamodel.calibration import peak_gflops
from recommender.report import latency_ratio
from recommender.types import SERVING_BATCH, TASK_TYPES, MetaFeatures, RunResult  # noqa: F401

#: method-specific hyperparameters with a numeric meaning (others are one-hot or ignored)
NUMERIC_PARAMS = ("learning_rate", "batch_size", "warmup_ratio", "weight_decay", "r", "alpha", "dropout",
                  "reduction_factor", "prefix_length", "prompt_length", "phm_dim", "lora_r", "lora_alpha",
                  "bottleneck_size", "scaling", "tapt_steps", "n_auto")
LOG_PARAMS = {"learning_rate", "r", "alpha", "reduction_factor", "prefix_length", "prompt_length", "lora_r",
              "lora_alpha", "bottleneck_size", "tapt_steps", "batch_size", "phm_dim"}
TARGETS = ("metric", "gap", "log_cost", "log_memory", "latency_ratio_b1", "latency_ratio_bB")
#: a run learned when its best dev metric beats its first evaluation by more than this
LEARNED_MIN_GAIN = 0.01


def task_vector(mf: MetaFeatures) -> dict[str, float]:
    """Numeric task features (shared by every run on the task)."""
    out = {
        "log_n_train": math.log(max(mf.n_train, 1)), "log_n_labels": math.log(max(mf.n_labels, 1)),
        "label_entropy": mf.label_entropy, "log_imbalance": math.log(max(mf.imbalance_ratio, 1.0)),
        "is_pair": float(mf.is_pair), "cross_lingual": float(mf.cross_lingual),
        "log_tokens_mean": math.log(max(mf.tokens_mean, 1.0)), "log_tokens_p95": math.log(max(mf.tokens_p95, 1.0)),
        "unk_rate": mf.unk_rate, "log_fertility": math.log(max(mf.fertility, 1e-3)),
        "english": float(mf.language == "en"), "eval_english": float(mf.eval_language == "en"),
    }
    for t in TASK_TYPES:
        out[f"type={t}"] = float(mf.task_type == t)
    return out


def config_vector(method: str, params: dict[str, Any], methods: Sequence[str],
                  trainable_params: int | None) -> dict[str, float]:
    """Numeric features of (method, hyperparameters)."""
    out: dict[str, float] = {f"method={m}": float(method == m) for m in methods}
    for name in NUMERIC_PARAMS:
        value = params.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            out[f"p:{name}"] = math.nan
        else:
            out[f"p:{name}"] = math.log(value) if name in LOG_PARAMS and value > 0 else float(value)
    out["log_trainable_params"] = math.log1p(trainable_params) if trainable_params is not None else math.nan
    return out


def learned(result: RunResult) -> bool:
    """Whether the run's dev metric rose above its first evaluation (by ``LEARNED_MIN_GAIN``).

    Measured on the 386-run knowledge base: 124 runs learned; the others (a frozen majority
    class, a span F1 stuck at 0) have no time to convergence to predict, and training the time
    model on them as well took its median error on the runs that learned from 0.24 to 0.40.
    """
    metrics = [p.metric for p in result.curve if p.metric is not None and math.isfinite(p.metric)]
    return bool(metrics) and max(metrics) - metrics[0] > LEARNED_MIN_GAIN


def params_key(params: dict[str, Any]) -> str:
    """Hyperparameters as a key that names one configuration: sorted, floats to 10 significant
    digits (a learning-rate grid stored 3 x 5e-5 as 0.00015000000000000001, the tuned default as
    0.00015; :meth:`~recommender.search.spaces.SearchSpace.holds_defaults` compares them alike)."""
    def norm(value: Any) -> Any:
        return float(f"{value:.10g}") if isinstance(value, float) else value

    return json.dumps({k: norm(v) for k, v in params.items()}, sort_keys=True, default=str)


def run_gflops(result: RunResult) -> float | None:
    """The GFLOP/s a training second of ``result`` is worth: its machine's matmul speed in the
    precision it trained in (:func:`~recommender.metamodel.calibration.peak_gflops`)."""
    env = result.environment
    return peak_gflops(env.calibration, result.precision) if env is not None else None


def run_targets(result: RunResult) -> dict[str, float]:
    nan = math.nan
    calib = run_gflops(result)
    cost = nan
    if result.time_to_best_s is not None and calib and learned(result):
        cost = math.log(max(result.time_to_best_s, 1e-3) * calib)

    def ratio(batch: int) -> float:
        value = latency_ratio(result, batch)
        return nan if value is None else value

    return {
        "metric": result.best_metric if result.best_metric is not None and result.has_metric else nan,
        "log_cost": cost,
        "log_memory": math.log(result.peak_memory_mb) if result.peak_memory_mb else nan,
        "latency_ratio_b1": ratio(1), "latency_ratio_bB": ratio(SERVING_BATCH),
    }


def design_matrix(rows: Sequence[Mapping[str, Any]], methods: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """``rows`` hold ``metafeatures``, ``method``, ``params``, ``trainable_params``."""
    vectors = [{**task_vector(r["metafeatures"]),
                **config_vector(r["method"], r["params"], methods, r.get("trainable_params"))} for r in rows]
    columns = list(vectors[0]) if vectors else []
    return columns, np.array([[v[c] for c in columns] for v in vectors], dtype=float)


def training_table(kb_rows: Sequence[Any]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Rows and targets from knowledge-base rows; ``gap`` is relative to each (task, size)'s best."""
    rows: list[dict[str, Any]] = []
    targets: dict[str, list[float]] = {t: [] for t in TARGETS}
    best: dict[tuple[str, int], float] = {}
    for kb in kb_rows:
        if kb.result.has_metric:
            key = (kb.metafeatures.fingerprint, kb.size)
            best[key] = max(best.get(key, -math.inf), kb.result.best_metric)
    for kb in kb_rows:
        res = kb.result
        if res.status in ("failed", "oom") or not res.has_metric:
            continue
        rows.append({"metafeatures": kb.metafeatures, "method": res.method, "params": res.params,
                     "trainable_params": res.trainable_params, "task": kb.task, "size": kb.size,
                     "fingerprint": kb.metafeatures.fingerprint, "result": res})
        values = run_targets(res)
        values["gap"] = res.best_metric - best[(kb.metafeatures.fingerprint, kb.size)]
        for t in TARGETS:
            targets[t].append(values[t])
    return rows, {t: np.array(v, dtype=float) for t, v in targets.items()}
