"""Building a :class:`BundleSpec`: from a measured trial, or from a meta-model recommendation."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from recommender.config_utils import redact_url
from recommender.errors import ConfigError, RecommenderError
from recommender.export.method_section import method_section
from recommender.export.sections import (
    BundleBudget,
    MeasuredNumbers,
    RecommendationSource,
    RetrainLatency,
    RunnerUp,
    TaskSection,
    TrialSource,
)
from recommender.export.source import ChosenTrial, complete_trials, runner_up
from recommender.export.spec import MEASURED, PREDICTED, BundleSpec, jsonable
from recommender.types import SERVING_BATCH

#: candidate keys that are not predicted numbers
RESERVED_CANDIDATE_KEYS = {"method", "params", "predicted", "budget", "model", "seed", "device", "rationale",
                           "reason", "explanation", "why", "notes", "rank"}
ENVIRONMENT_PACKAGES = ("recommender", "torch", "transformers", "adapters", "peft", "optuna", "datasets", "numpy")


def measured_spec(chosen: ChosenTrial, method: Any) -> BundleSpec:
    """The record of a measured trial: where it comes from, its budgets and what it measured."""
    from recommender.search.spaces import get_space

    record, result, frozen = chosen.record, chosen.result, chosen.frozen
    assert record.config is not None and record.task_ref is not None  # open_study checked both
    search = record.config
    complete = complete_trials(chosen.study)
    rank = next((i + 1 for i, t in enumerate(complete) if t.number == frozen.number), None)
    try:
        searched = get_space(result.method).params_from_trial(frozen.params)
    except RecommenderError:
        searched = {}
    model = record.model or search.model or "bundled"
    runner = runner_up(complete, frozen.number)
    source = TrialSource(
        storage=redact_url(chosen.url), study=chosen.study.study_name, trial=frozen.number,
        selected_as=chosen.selected_as, objective=search.objective, rank_by_metric=rank,
        n_complete_trials=len(complete), runner_up=None if runner is None else RunnerUp(**runner),
        constraint_violations={k: v for k, v in frozen.constraints.items() if v > 0},
        warm_start=bool(frozen.user_attrs.get("warm_start", False)))
    task = record.task or {}
    features = record.metafeatures.to_dict() if record.metafeatures else {}
    return BundleSpec(
        kind=MEASURED, exported_at=_now(), exported_by=_exported_by(), source=source,
        method=method_section(method, result.params, searched, model, task.get("task_type"), merge_result=result),
        model=str(model), model_name=features.get("model_name", ""), seed=result.seed,
        device=result.environment.device if result.environment else "cpu",
        task=TaskSection(ref=portable_ref(record.task_ref.to_dict()), spec=task, metafeatures=features),
        budget=_trial_budget(frozen, search, result),
        search=search.to_dict(), measured=measured_numbers(result, search.latency_batch),
        environment={"trial": result.environment.to_dict() if result.environment else None,
                     "search": record.environment, "export": export_environment()})


def _trial_budget(frozen: Any, search: Any, result: Any) -> BundleBudget:
    """The trial's budget; a retrain keeps its time limit only where the limit stopped it."""
    from recommender.types import Budget

    trial_seconds = frozen.user_attrs.get("trial_time_budget_s", search.trial_time_budget)
    trial = Budget(max_seconds=trial_seconds, max_epochs=search.max_epochs, patience=search.patience,
                   evals_per_epoch=search.evals_per_epoch)
    binding = time_limit_binding(result)
    retrain = Budget(**{**trial.to_dict(), "max_seconds": trial_seconds if binding else None})
    note = (("the trial was stopped by its time limit, so a retrain keeps the limit and may stop at a "
             "different step on another machine") if binding else
            (f"the trial's time limit did not stop it (it stopped by {result.stop_reason}), so a retrain "
             "runs without it and repeats the same steps on any machine"))
    latency = RetrainLatency(enabled=bool(binding), batch_sizes=tuple(sorted({1, search.latency_batch})),
                             max_seconds=1.0)
    return BundleBudget(retrain=retrain, latency=latency, time_limit_binding=binding, trial=trial, note=note)


def time_limit_binding(result: Any) -> bool:
    """The time limit stopped training, or cut short a stage the method runs first."""
    from recommender.methods import get_method_class

    if result.stop_reason == "time_budget":
        return True
    stage = get_method_class(result.method).budgeted_stage
    if stage is None:
        return False
    done = result.extra.get(stage[0])
    return done is not None and done < int(result.params.get(stage[1], done))


def measured_numbers(result: Any, serving_batch: int) -> MeasuredNumbers:
    """A ``RunResult``'s numbers as the bundle records them."""
    seq_len = result.latency[0].seq_len if result.latency else None

    def lat(batch: int) -> dict[str, float | None]:
        return {"unmerged": result.latency_ms(batch, merged=False), "merged": result.latency_ms(batch, merged=True),
                "base": result.base_latency_ms(batch)}

    return MeasuredNumbers(
        status=result.status, stop_reason=result.stop_reason,
        metric_name=result.metric_name, metric=result.best_metric, metrics=result.best_metrics,
        time_to_best_s=result.time_to_best_s, time_to_within_1pct_s=result.time_to_within_1pct_s,
        steps_to_best=result.steps_to_best, examples_to_best=result.examples_to_best,
        tokens_to_best=result.tokens_to_best, flops_to_best=result.flops_to_best,
        train_seconds=result.train_seconds, eval_seconds=result.eval_seconds,
        wall_seconds=result.wall_seconds, steps=result.steps, epochs=result.epochs,
        latency={"seq_len": seq_len, "serving_batch": serving_batch, "b1_ms": lat(1),
                 "bB_ms": lat(serving_batch),
                 "rows": [x.to_dict() for x in result.latency],
                 "base_rows": [x.to_dict() for x in result.base_latency]},
        trainable_params=result.trainable_params, head_params=result.head_params,
        total_params=result.total_params, peak_memory_mb=result.peak_memory_mb,
        artifact_bytes=result.artifact_bytes, mergeable=result.mergeable,
        merge_max_abs_diff=result.merge_max_abs_diff, n_train=result.n_train, n_dev=result.n_dev,
        curve=[p.to_dict() for p in result.curve], extra=result.extra)


def predicted_spec(candidate: dict[str, Any], params: dict[str, Any], method: Any, ref: dict[str, Any],
                   features: dict[str, Any]) -> BundleSpec:
    """The record of a recommendation: every number under ``predicted``, nothing measured."""
    from recommender.training import split_params
    from recommender.types import Budget

    budget = Budget.from_dict(dict(candidate.get("budget") or {}))
    training, _ = split_params(method.name, params)
    full = {**method.config.to_dict(), **vars(training),
            "learning_rate": training.learning_rate or method.default_lr()}
    predicted = dict(candidate.get("predicted") or {})
    predicted.update({k: v for k, v in candidate.items() if k not in RESERVED_CANDIDATE_KEYS})
    model = candidate.get("model") or "bundled"
    rationale = (candidate.get("rationale") or candidate.get("why") or candidate.get("reason")
                 or candidate.get("explanation"))
    return BundleSpec(
        kind=PREDICTED, exported_at=_now(), exported_by=_exported_by(),
        source=RecommendationSource(rank=candidate.get("rank"), rationale=rationale, notes=candidate.get("notes")),
        method=method_section(method, full, params, model, features.get("task_type"), merge_result=None),
        model=str(model), model_name=features.get("model_name", ""), seed=int(candidate.get("seed", 0)),
        device=candidate.get("device", "auto"),
        task=TaskSection(ref=portable_ref(ref), spec=None, metafeatures=features),
        budget=BundleBudget(retrain=budget, time_limit_binding=False,
                            latency=RetrainLatency(enabled=False, batch_sizes=(1, SERVING_BATCH), max_seconds=1.0)),
        predicted=jsonable(predicted), environment={"export": export_environment()})


def task_ref_dict(task_ref: Any) -> dict[str, Any]:
    """A task name or path, a ``TaskRef`` or its dict, as a ``TaskRef`` dict."""
    from recommender.search.config import TaskRef

    if isinstance(task_ref, (str, Path)):
        task_ref = TaskRef(str(task_ref))
    if isinstance(task_ref, TaskRef):
        return task_ref.to_dict()
    if isinstance(task_ref, dict) and "source" in task_ref:
        return TaskRef.from_dict(dict(task_ref)).to_dict()
    raise ConfigError(f"task_ref {task_ref!r}; expected a task name or path, a TaskRef or its dict")


def portable_ref(ref: dict[str, Any]) -> dict[str, Any]:
    """A task reference usable from any folder: a relative data path becomes absolute."""
    from recommender.tasks import bundled_task_names

    ref = dict(ref)
    source = str(ref.get("source", ""))
    if source not in bundled_task_names() and Path(source).expanduser().exists():
        ref["source"] = str(Path(source).expanduser().resolve())
    return ref


def export_environment() -> dict[str, Any]:
    packages = {}
    for name in ENVIRONMENT_PACKAGES:
        version = _version(name)
        if version:
            packages[name] = version
    return {"python": platform.python_version(), "platform": platform.platform(), "packages": packages,
            "cpu_count": os.cpu_count()}


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _exported_by() -> str:
    return f"recommender {_version('recommender') or '?'}"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
