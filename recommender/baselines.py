"""The constant predictor's score for knowledge-base rows recorded before runs stored it.

Protocol-1 rows (the first knowledge base) have no ``baseline_metric``; their dev subsets were
drawn with :meth:`Task.subsample` (seed 0), so the constant predictor's score can be recomputed
exactly from the bundled data: the majority training class (or the training mean, no
entities, an empty answer) scored on the same dev subset, in every metric the row recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from recommender.knowledge_base import KnowledgeBaseRow


def constant_baseline(task: Any) -> tuple[dict[str, float], str]:
    """The constant predictor's metrics on ``task``'s dev split, and its description."""
    from recommender.training.scoring import ConstantPredictor, ScoringSpec

    spec = ScoringSpec.from_task(task)
    train_labels = list(task.train["label"]) if task.task_type in ("classification", "regression") else []
    constant = ConstantPredictor.fit(spec, train_labels)
    if task.task_type == "token_classification":
        names = task.label_names or []
        gold: list[Any] = [[names[t] for t in tags] for tags in task.dev["tags"]]
    elif task.task_type == "extractive_qa":
        gold = [list(a["text"]) for a in task.dev["answers"]]
    else:
        gold = list(task.dev["label"])
    return constant.score(gold).metrics(), constant.describe()


def backfill_baselines(rows: Iterable[KnowledgeBaseRow], seed: int = 0) -> list[KnowledgeBaseRow]:
    """Rows with ``result.baseline_metric`` filled in (in the row's own metric) where missing."""
    from recommender.tasks import load_task

    cache: dict[tuple[str, int, int], tuple[dict[str, float], str]] = {}
    out = []
    for row in rows:
        result = row.result
        if result.baseline_metric is not None:
            out.append(row)
            continue
        key = (row.task, row.size, row.metafeatures.n_dev)
        if key not in cache:
            task = load_task(row.task).subsample(row.size, row.metafeatures.n_dev, seed=seed)
            cache[key] = constant_baseline(task)
        metrics, described = cache[key]
        baseline = metrics.get(result.metric_name)
        out.append(replace(row, result=replace(result, baseline_metric=baseline, baseline_metrics=metrics,
                                               baseline=described)))
    return out
