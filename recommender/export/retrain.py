"""Retraining a bundle's configuration: the exact ``train()`` arguments it records, and the
retrain that gives a bundle its weights (``with_weights``)."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recommender.errors import NotMergeableError
from recommender.export.errors import ExportError, Progress
from recommender.export.sections import WeightsInfo
from recommender.export.spec import BundleSpec

#: trial results whose metric a retrain must reproduce (on CPU, same seed and budget)
REPRODUCE_TOLERANCE = 1e-6


def retrain_kwargs(config: BundleSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The exact ``train()`` arguments a bundle describes (also what its train.py uses).

    ``config`` is a :class:`BundleSpec` or the bundle's config file as read (a dict)."""
    from recommender.training import LatencyConfig

    spec = config if isinstance(config, BundleSpec) else BundleSpec.from_dict(config)
    latency = spec.budget.latency
    return {"method": spec.method.name, "params": dict(spec.method.hyperparameters),
            "budget": dataclasses.replace(spec.budget.retrain),  # a copy: training may adjust it
            "model": None if spec.model == "bundled" else spec.model, "device": spec.device, "seed": spec.seed,
            "latency": LatencyConfig(enabled=latency.enabled, batch_sizes=latency.batch_sizes,
                                     max_seconds=latency.max_seconds)}


def load_bundle_task(ref: dict[str, Any]) -> Any:
    """The task a bundle's ``TaskRef`` dict points at, subsampled as recorded."""
    from recommender.search.config import TaskRef

    return TaskRef.from_dict(ref).load()


def retrain(spec: BundleSpec, save_dir: Path, merged: bool, progress: Progress | None) -> WeightsInfo:
    """Retrain ``spec`` into ``save_dir`` (``artifact/``, and ``merged/`` where asked and exact)."""
    from recommender.training import train

    kwargs = retrain_kwargs(spec)
    task = load_bundle_task(spec.task.ref)
    name = spec.method.name
    if progress is not None:
        progress(f"retraining {name} on {task.name} (seed {spec.seed}) for the weights ...")
    start = time.perf_counter()
    result = train(task, kwargs.pop("method"), save_dir=save_dir, **kwargs)
    if result.status not in ("complete", "budget_exhausted") or not result.has_metric:
        why = (result.error or result.status).splitlines()[0]
        raise ExportError(f"retraining {name} for the weights failed ({result.status}: {why}); "
                          "nothing was written")
    merged_dir = save_dir / "merged"
    if merged and not merged_dir.is_dir():
        reason = result.extra.get("merge_error") or (
            f"merging changed the outputs by {result.merge_max_abs_diff:.2e}" if result.merge_max_abs_diff
            else "the merge could not be verified")
        raise NotMergeableError(f"cannot export a merged model for {name}: {reason}; nothing was written")
    if not merged and merged_dir.exists():
        shutil.rmtree(merged_dir)
    expected = spec.measured.metric if spec.measured is not None else None
    retrained = result.best_metric  # set: has_metric was checked above
    diff = None if expected is None or retrained is None else abs(retrained - expected)
    return WeightsInfo(
        artifact="weights/artifact", merged="weights/merged" if merged else None,
        artifact_kind="adapter (adapters save_adapter) + head.safetensors + tokenizer"
        if spec.method.uses_adapters else "full transformers model + tokenizer",
        retrained_metric=retrained, trial_metric=expected, abs_diff=diff,
        reproduced=None if diff is None else diff <= REPRODUCE_TOLERANCE,
        merge_max_abs_diff=result.merge_max_abs_diff, steps=result.steps,
        stop_reason=result.stop_reason, retrain_seconds=time.perf_counter() - start)
