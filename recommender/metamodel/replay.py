"""Warm-started vs cold search, replayed on the knowledge base (a tabular benchmark).

For each held-out task and size (leave-one-group-out, as in :mod:`~recommender.metamodel.evaluate`),
an Optuna TPE search chooses among the configurations measured on that task; a trial returns the
measured metric instead of training again. *Warm*: the meta-model, fitted without the task's
group, enqueues its top-k configurations first (what ``recommender search --warm-start`` does).
*Cold*: TPE alone. Reported: trials until a result within ``tolerance`` of the task's best
measured result, averaged over seeds. Replaying measured runs isolates the search policy from
run-to-run noise and takes seconds instead of hours; it does not retrain anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from recommender.errors import ConfigError
from recommender.metamodel.evaluate import held_out_folds, prediction_rows, scored_runs


def trials_to_target(values: dict[str, float], target: float, *, enqueue: Sequence[str] = (), seed: int = 0,
                     max_trials: int | None = None) -> int:
    """Trials a TPE search over ``values``' keys needs to reach ``target``; ``max_trials + 1``
    when it never does (censored)."""
    import optuna

    keys = sorted(values)
    cap = max_trials or 3 * len(keys)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    for key in enqueue:
        study.enqueue_trial({"config": key})
    for n in range(1, cap + 1):
        trial = study.ask()
        value = values[trial.suggest_categorical("config", keys)]
        study.tell(trial, value)
        if value >= target:
            return n
    return cap + 1


def warm_start_replay(kb_rows: Sequence[Any], *, k: int = 5, tolerance: float = 0.01, n_seeds: int = 10,
                      max_iter: int = 200, min_configs: int = 4,
                      folds: Sequence[tuple[str, Any, list[Any], list[Any]]] | None = None) -> dict[str, Any]:
    """Mean trials to within ``tolerance`` of the best, warm vs cold, per held-out (task, size).

    ``folds``: precomputed ``list(held_out_folds(kb_rows))``, shared with ``evaluate``."""
    if k < 0:
        raise ConfigError(f"warm_start_replay: k (configurations the warm start enqueues) must be >= 0; got {k}")
    per_set = []
    for group, model, _, test in (held_out_folds(kb_rows, max_iter) if folds is None else folds):
        for (_, size), runs in scored_runs(test).items():
            if len(runs) < min_configs:
                continue
            values = {r.run_id: float(r.result.best_metric) for r in runs}
            gap = model.predict(prediction_rows(runs))["gap"][:, 1]
            enqueue = [runs[i].run_id for i in np.argsort(-gap)[:k]]
            target = max(values.values()) - tolerance
            cold = [trials_to_target(values, target, seed=s) for s in range(n_seeds)]
            warm = [trials_to_target(values, target, enqueue=enqueue, seed=s) for s in range(n_seeds)]
            per_set.append({"task": runs[0].task, "size": size, "group": group, "n_configs": len(values),
                            "cold_trials": float(np.mean(cold)), "warm_trials": float(np.mean(warm)),
                            "ratio": float(np.mean(warm) / np.mean(cold))})
    summary: dict[str, Any] = {"k": k, "tolerance": tolerance, "n_seeds": n_seeds, "n_sets": len(per_set),
                               "sets": per_set}
    if per_set:
        summary["mean_cold_trials"] = float(np.mean([s["cold_trials"] for s in per_set]))
        summary["mean_warm_trials"] = float(np.mean([s["warm_trials"] for s in per_set]))
        summary["median_ratio"] = float(np.median([s["ratio"] for s in per_set]))
        summary["ratio_of_means"] = summary["mean_warm_trials"] / summary["mean_cold_trials"]
    return summary
