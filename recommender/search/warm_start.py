"""Warm starts: configurations enqueued before the sampler takes over (``enqueue_trial``)."""

from __future__ import annotations

from typing import Any, Protocol

from recommender.search.spaces import default_trial_params


class WarmStartProvider(Protocol):
    """Anything that proposes first configurations (Optuna params dicts) for a task."""

    def configs(self, task: Any, metafeatures: Any, methods: list[str]) -> list[dict[str, Any]]: ...


class MethodDefaults:
    """Each candidate method once, with its default hyperparameters."""

    def configs(self, task: Any, metafeatures: Any, methods: list[str]) -> list[dict[str, Any]]:
        return [default_trial_params(m) for m in methods]


class MetaModelTopK:
    """The meta-model's top-k recommended configurations (falls back to method defaults when
    there is no knowledge base to learn from)."""

    def __init__(self, k: int = 5, storage: str | None = None) -> None:
        self.k = k
        self.storage = storage

    def configs(self, task: Any, metafeatures: Any, methods: list[str]) -> list[dict[str, Any]]:
        from recommender.errors import DataError
        from recommender.metamodel.predictor import load_predictor
        from recommender.metamodel.recommend import recommend
        from recommender.search.spaces import METHOD_PARAM, trial_params

        try:  # the same fitted predictor (and signed cache) as `recommend`, with the search's storage
            model = load_predictor(self.storage)
        except DataError:
            return MethodDefaults().configs(task, metafeatures, methods)
        rec = recommend(task, metafeatures=metafeatures, model=model, top=1000, explain=False)
        out: list[dict[str, Any]] = []
        covered: set[str] = set()
        for candidate in rec.candidates:  # best first; one configuration per method
            if candidate.method not in methods or candidate.method in covered:
                continue
            out.append(trial_params(candidate.method, candidate.params))
            covered.add(candidate.method)
        defaults = [c for c in MethodDefaults().configs(task, metafeatures, methods) if c[METHOD_PARAM] not in covered]
        return (out + defaults)[: max(self.k, 1)]
