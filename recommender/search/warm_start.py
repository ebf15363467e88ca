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
