"""The two ways to export: a measured trial from the run store, or a meta-model recommendation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recommender.errors import ConfigError
from recommender.export.build import measured_spec, predicted_spec, task_ref_dict
from recommender.export.errors import Progress
from recommender.export.method_section import check_mergeable, resolve_method
from recommender.export.safety import check_target
from recommender.export.source import read_trial
from recommender.export.spec import check_format
from recommender.export.write import write_bundle


def export_trial(storage: str | None, study: str, trial: int | str = "best", out: str | Path | None = None,
                 fmt: str = "json", with_weights: bool = False, merged: bool = False, force: bool = False,
                 *, progress: Progress | None = None) -> Path:
    """Export one measured trial of a search study as a bundle folder at ``out``; return its path.

    ``trial`` is ``"best"`` (the best feasible trial; for a Pareto search the front's best
    metric) or a trial number. ``with_weights`` retrains the configuration with the trial's
    seed and budget into ``out/weights``; ``merged`` (implies ``with_weights``) also writes
    ``out/weights/merged``, a plain transformers model, and is refused for methods whose merge
    is not implemented and verified exact.

    >>> export_trial("sqlite:///runs.db", "rte", out="bundle")       # doctest: +SKIP
    """
    if out is None:
        raise ConfigError("give the bundle's output folder (out=...)")
    check_format(fmt)
    from recommender.paths import default_storage_url
    from recommender.store import storage_file

    store_file = storage_file(storage or default_storage_url())
    target = check_target(Path(out), force, () if store_file is None else (store_file,))
    chosen = read_trial(storage, study, trial)
    method = resolve_method(chosen.result.method, chosen.result.params)
    if merged:
        check_mergeable(method, chosen.result)
    return write_bundle(target, measured_spec(chosen, method), fmt, force, with_weights=with_weights or merged,
                        merged=merged, progress=progress)


def export_recommendation(candidate: Any, task_ref: Any, metafeatures: Any,
                          out: str | Path, fmt: str = "json", force: bool = False) -> Path:
    """Export a meta-model recommendation (before any trial) in the bundle format.

    ``candidate`` holds ``method``, ``params`` and the predicted numbers (under ``"predicted"``
    or as its other keys; e.g. ``metric``, ``time_to_best_s``, ``latency_b1_ms``, intervals as
    ``[low, median, high]``), optionally ``budget`` (a :class:`~recommender.types.Budget` dict),
    ``model``, ``seed`` and ``rationale`` (or ``why``). A meta-model
    :class:`~recommender.types.Candidate` (or its dict) fits as it is. ``task_ref`` is a task
    name/path, a :class:`~recommender.search.config.TaskRef` or its dict.
    """
    check_format(fmt)
    if hasattr(candidate, "to_dict"):
        candidate = candidate.to_dict()
    target = check_target(Path(out), force)
    if not isinstance(candidate, dict) or "method" not in candidate:
        raise ConfigError("candidate must be a dict with at least 'method', 'params' and the predicted numbers")
    params = dict(candidate.get("params") or {})
    method = resolve_method(candidate["method"], params)
    ref = task_ref_dict(task_ref)
    features = metafeatures.to_dict() if hasattr(metafeatures, "to_dict") else dict(metafeatures or {})
    if features.get("task_type"):
        method.check_task(features["task_type"])
    spec = predicted_spec(candidate, params, method, ref, features)
    return write_bundle(target, spec, fmt, force, with_weights=False, merged=False, progress=None)
