"""Export a chosen configuration as a reproducible bundle.

A bundle is a folder that says what was chosen, why, and how to get it again::

    config.json        schema-versioned record: method, its full ``adapters`` config, every
                       hyperparameter, model, task, meta-features, budgets, search config, the
                       measured (or predicted) numbers and the environment  (config.yaml with fmt="yaml")
    peft_config.json   the equivalent Hugging Face PEFT config, where one exists (and the same file
                       as peft/adapter_config.json, the name ``PeftConfig.from_pretrained`` reads)
    train.py           retrains exactly this configuration with this package
    README.md          the choice in one paragraph, with its numbers
    weights/           with ``with_weights``: artifact/ (adapter + head, or the whole model) and,
                       with ``merged``, merged/ (a plain transformers model)

:func:`export_trial` exports a measured trial from the run store; :func:`export_recommendation`
exports a meta-model recommendation (every number under ``"predicted"``). Nothing is written
unless the whole bundle is: files go to a temporary folder next to the target, renamed into
place at the end.
"""

from __future__ import annotations

import json
import math
import os
import platform
import pprint
import re
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recommender.errors import ConfigError, NotMergeableError, RecommenderError, StorageError

SCHEMA_VERSION = 1
FORMATS = ("json", "yaml")
#: trial results whose metric a retrain must reproduce (on CPU, same seed and budget)
REPRODUCE_TOLERANCE = 1e-6
PEFT_TASK_TYPES = {"classification": "SEQ_CLS", "regression": "SEQ_CLS",
                   "token_classification": "TOKEN_CLS", "extractive_qa": "QUESTION_ANS"}
BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: why a method has no Hugging Face PEFT equivalent
PEFT_REASONS = {
    "full_ft": "full fine-tuning trains every weight: the artifact is a whole transformers model, not an adapter",
    "head_only": "only the task head is trained: the artifact is a whole transformers model, not an adapter",
    "tapt_ft": "task-adaptive pre-training followed by full fine-tuning: the artifact is a whole transformers "
               "model, not an adapter",
    "multitask_ft": "multi-task full fine-tuning: the artifact is a whole transformers model, not an adapter",
    "seq_bn": "PEFT has no bottleneck (Houlsby/Pfeiffer) adapters; load the artifact with the `adapters` library",
    "double_seq_bn": "PEFT has no bottleneck (Houlsby/Pfeiffer) adapters; load the artifact with the "
                     "`adapters` library",
    "par_bn": "PEFT has no parallel bottleneck adapters; load the artifact with the `adapters` library",
    "compacter": "PEFT has no Compacter (PHM) adapters; load the artifact with the `adapters` library",
    "unipelt": "PEFT has no gated UniPELT combination; load the artifact with the `adapters` library",
    "unipelt_prompt": "PEFT has no gated UniPELT combination; load the artifact with the `adapters` library",
}
RESERVED_CANDIDATE_KEYS = {"method", "params", "predicted", "budget", "model", "seed", "device", "rationale",
                           "reason", "explanation", "why", "notes", "rank"}
#: README labels of predicted numbers (the meta-model's Candidate fields and short names)
PREDICTED_LABELS = {
    "metric": "dev metric", "predicted_metric": "dev metric", "metric_interval": "dev metric interval",
    "gap": "gap to the task's best method", "predicted_gap": "gap to the task's best method",
    "time_to_best_s": "time to convergence (s)", "predicted_time_s": "time to convergence (s)",
    "time_interval": "time to convergence interval (s)", "latency_b1_ms": "latency at batch 1 (ms)",
    "latency_bB_ms": "latency at the serving batch (ms)", "predicted_latency_ms": "latency (ms)",
    "latency_interval": "latency interval (ms)", "peak_memory_mb": "peak memory (MB)",
    "predicted_memory_mb": "peak memory (MB)", "trainable_params": "trainable parameters",
    "storage_mb": "storage (MB)", "add_task_cost": "cost of adding a task", "p_meets": "probability of meeting",
    "feasible": "meets every budget",
}

Progress = Callable[[str], None]


class ExportError(RecommenderError, RuntimeError):
    """A bundle cannot be exported as asked (the message says why; nothing was written)."""


# --- public API --------------------------------------------------------------------------
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
    target = _check_target(Path(out), force)
    url, st = _open_study(storage, study)
    frozen, how = _select_trial(st, trial)
    info = dict(st.user_attrs.get("recommender", {}))
    from recommender.store import trial_result

    result = trial_result(frozen)
    if result is None:
        raise ExportError(f"trial #{frozen.number} of study {study!r} is COMPLETE but holds no recorded result; "
                          f"pick another: {_best_list(st)}")
    method = _method(result.method, result.params)
    with_weights = with_weights or merged
    if merged:
        check_mergeable(method, result)
    config = _measured_config(url, st, frozen, how, info, result, method)
    return _write_bundle(target, config, fmt, force, with_weights=with_weights, merged=merged,
                         progress=progress)


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
    target = _check_target(Path(out), force)
    if not isinstance(candidate, dict) or "method" not in candidate:
        raise ConfigError("candidate must be a dict with at least 'method', 'params' and the predicted numbers")
    params = dict(candidate.get("params") or {})
    method = _method(candidate["method"], params)
    ref = _task_ref_dict(task_ref)
    features = metafeatures.to_dict() if hasattr(metafeatures, "to_dict") else dict(metafeatures or {})
    if features.get("task_type"):
        method.check_task(features["task_type"])
    config = _predicted_config(candidate, params, method, ref, features)
    return _write_bundle(target, config, fmt, force, with_weights=False, merged=False, progress=None)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r}; expected one of {list(FORMATS)}")


def check_mergeable(method: Any, result: Any = None) -> None:
    """Refuse a merged export unless the method's merge is implemented and verified exact."""
    reason = getattr(method, "not_mergeable_reason", None)
    if not method.uses_adapters:
        raise NotMergeableError(
            f"cannot export a merged model for {method.name}: it trains the model's own weights, so there is "
            "no adapter to merge; --with-weights already gives a plain transformers model (weights/artifact)")
    if reason is not None:
        raise NotMergeableError(f"cannot export a merged model for {method.name}: {reason}")
    if result is not None and result.mergeable is False:
        drift = "" if result.merge_max_abs_diff is None else f" (max |logit difference| {result.merge_max_abs_diff:.2e})"
        raise NotMergeableError(f"cannot export a merged model for trial of {method.name}: merging it did not "
                                f"reproduce the unmerged outputs when measured{drift}")


# --- reading the run store -----------------------------------------------------------------
def _open_study(storage: str | None, study: str) -> tuple[str, Any]:
    import optuna

    from recommender.paths import default_storage_url
    from recommender.store import STUDY_ATTR, open_storage

    url = storage or default_storage_url()
    _check_storage_exists(url)
    store = open_storage(url, heartbeat=False)
    try:
        st = optuna.load_study(study_name=study, storage=store)
    except KeyError:
        names = sorted(s.study_name for s in optuna.study.get_all_study_summaries(store, include_best_trial=False))
        raise StorageError(f"no study {study!r} in {_redact(url)}; existing studies: "
                           f"{', '.join(names) or 'none'}") from None
    info = st.user_attrs.get(STUDY_ATTR)
    if not info or info.get("kind") != "search":
        raise StorageError(f"study {study!r} was not created by `recommender search`: it has no task or config "
                           "to export")
    return url, st


def _check_storage_exists(url: str) -> None:
    """Exporting reads: do not let a mistyped SQLite path create an empty database."""
    from recommender.store import storage_file

    path = storage_file(url)
    if path is not None and not path.is_file():
        raise StorageError(f"storage {url!r}: no such database file {path}")


def _complete(st: Any) -> list[Any]:
    import optuna

    trials = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sorted((t for t in trials if t.user_attrs.get("metric") is not None),
                  key=lambda t: -float(t.user_attrs["metric"]))


def _best_list(st: Any, n: int = 3) -> str:
    metric = st.user_attrs.get("recommender", {}).get("metric_name", "metric")
    rows = [f"#{t.number} {t.params.get('method', '?')} {metric}={float(t.user_attrs['metric']):.4f}"
            for t in _complete(st)[:n]]
    return "best complete trials: " + ", ".join(rows) if rows else "the study has no complete trial yet"


def _select_trial(st: Any, trial: int | str) -> tuple[Any, str]:
    from recommender.search.config import SearchConfig
    from recommender.search.study import summarize

    if isinstance(trial, str) and trial.strip().lower() == "best":
        config = SearchConfig.from_dict(st.user_attrs["recommender"]["config"])
        summary = summarize(st, config)
        if not summary.best:
            if _complete(st):
                raise ExportError(f"no complete trial of study {st.study_name!r} meets every constraint, so there "
                                  f"is no best one; pass a trial number to export one anyway ({_best_list(st)})")
            raise ExportError(f"study {st.study_name!r} has no complete trial to export "
                              f"({summary.counts or 'no trials'})")
        number = summary.best[0].number
        how = "best feasible trial" if config.objective == "quality" else \
            f"best metric on the Pareto front ({len(summary.best)} trials)"
    else:
        try:
            number = int(trial)
        except (TypeError, ValueError):
            raise ConfigError(f"trial {trial!r}; expected 'best' or a trial number") from None
        how = "chosen by number"
    trials = {t.number: t for t in st.get_trials(deepcopy=False)}
    if number not in trials:
        span = f"#0..#{max(trials)}" if trials else "none"
        raise ExportError(f"study {st.study_name!r} has no trial #{number} (trials: {span}); {_best_list(st)}")
    frozen = trials[number]
    if frozen.state.name != "COMPLETE":
        why = frozen.user_attrs.get("error") or ""
        why = f": {str(why).splitlines()[0][:200]}" if why else ""
        raise ExportError(f"trial #{number} of study {st.study_name!r} is {frozen.state.name}{why}; only complete "
                          f"trials can be exported; {_best_list(st)}")
    return frozen, how


def _method(name: str, params: dict[str, Any]) -> Any:
    from recommender.training import split_params

    _, method = split_params(name, params)  # validates every hyperparameter
    return method


# --- building config.json ----------------------------------------------------------------
def _measured_config(url: str, st: Any, frozen: Any, how: str, info: dict[str, Any], result: Any,
                     method: Any) -> dict[str, Any]:
    from recommender.search.config import SearchConfig
    from recommender.search.spaces import get_space
    from recommender.types import Budget

    search = SearchConfig.from_dict(info["config"])
    complete = _complete(st)
    rank = next((i + 1 for i, t in enumerate(complete) if t.number == frozen.number), None)
    trial_seconds = frozen.user_attrs.get("trial_time_budget_s", search.trial_time_budget)
    trial_budget = Budget(max_seconds=trial_seconds, max_epochs=search.max_epochs, patience=search.patience,
                          evals_per_epoch=search.evals_per_epoch)
    binding = _time_limit_binding(result)
    retrain_budget = Budget(**{**trial_budget.to_dict(), "max_seconds": trial_seconds if binding else None})
    latency = {"enabled": bool(binding), "batch_sizes": sorted({1, search.latency_batch}), "max_seconds": 1.0}
    try:
        searched = get_space(result.method).params_from_trial(frozen.params)
    except RecommenderError:
        searched = {}
    model = info.get("model") or search.model or "bundled"
    device = result.environment.device if result.environment else "cpu"
    config: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "measured",
        "exported_at": _now(),
        "exported_by": f"recommender {_version('recommender') or '?'}",
        "source": {
            "storage": _redact(url), "study": st.study_name, "trial": frozen.number, "selected_as": how,
            "objective": search.objective, "rank_by_metric": rank, "n_complete_trials": len(complete),
            "runner_up": _runner_up(complete, frozen.number),
            "constraint_violations": {k: v for k, v in frozen.constraints.items() if v > 0},
            "warm_start": bool(frozen.user_attrs.get("warm_start", False)),
        },
        **_method_section(method, result.params, searched, model, info.get("task", {}).get("task_type"),
                          merge_result=result),
        "model": str(model),
        "model_name": info.get("metafeatures", {}).get("model_name", ""),
        "seed": result.seed,
        "device": device,
        "task": {"ref": _portable_ref(info["task_ref"]), "spec": info.get("task", {}),
                 "metafeatures": info.get("metafeatures", {})},
        "budget": {
            "trial": trial_budget.to_dict(), "retrain": retrain_budget.to_dict(), "latency": latency,
            "time_limit_binding": binding,
            "note": ("the trial was stopped by its time limit, so a retrain keeps the limit and may stop at a "
                     "different step on another machine") if binding else
                    (f"the trial's time limit did not stop it (it stopped by {result.stop_reason}), so a retrain "
                     "runs without it and repeats the same steps on any machine"),
        },
        "search": search.to_dict(),
        "measured": _measured(result, search.latency_batch),
        "environment": {"trial": result.environment.to_dict() if result.environment else None,
                        "search": info.get("environment"), "export": _export_environment()},
    }
    return config


def _time_limit_binding(result: Any) -> bool:
    if result.stop_reason == "time_budget":
        return True
    tapt = result.extra.get("tapt_steps")
    return tapt is not None and tapt < int(result.params.get("tapt_steps", tapt))


def _runner_up(complete: list[Any], number: int) -> dict[str, Any] | None:
    for t in complete:
        if t.number != number:
            return {"trial": t.number, "method": t.params.get("method"), "metric": float(t.user_attrs["metric"])}
    return None


def _predicted_config(candidate: dict[str, Any], params: dict[str, Any], method: Any, ref: dict[str, Any],
                      features: dict[str, Any]) -> dict[str, Any]:
    from recommender.training import split_params
    from recommender.types import Budget

    budget = Budget.from_dict(dict(candidate.get("budget") or {}))
    training, _ = split_params(method.name, params)
    full = {**method.config.to_dict(), **vars(training),
            "learning_rate": training.learning_rate or method.default_learning_rate}
    predicted = dict(candidate.get("predicted") or {})
    predicted.update({k: v for k, v in candidate.items() if k not in RESERVED_CANDIDATE_KEYS})
    model = candidate.get("model") or "bundled"
    rationale = (candidate.get("rationale") or candidate.get("why") or candidate.get("reason")
                 or candidate.get("explanation"))
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "predicted",
        "exported_at": _now(),
        "exported_by": f"recommender {_version('recommender') or '?'}",
        "source": {"kind": "meta-model recommendation", "rank": candidate.get("rank"), "rationale": rationale,
                   "notes": candidate.get("notes")},
        **_method_section(method, full, params, model, features.get("task_type"), merge_result=None),
        "model": str(model),
        "model_name": features.get("model_name", ""),
        "seed": int(candidate.get("seed", 0)),
        "device": candidate.get("device", "auto"),
        "task": {"ref": _portable_ref(ref), "spec": None, "metafeatures": features},
        "budget": {"retrain": budget.to_dict(),
                   "latency": {"enabled": False, "batch_sizes": [1, 32], "max_seconds": 1.0},
                   "time_limit_binding": False},
        "predicted": _jsonable(predicted),
        "environment": {"export": _export_environment()},
    }


def _method_section(method: Any, params: dict[str, Any], searched: dict[str, Any], model: str,
                    task_type: str | None, merge_result: Any) -> dict[str, Any]:
    peft = _peft_config(method, model, task_type) if method.peft_equivalent else None
    reason = getattr(method, "not_mergeable_reason", None)
    if not method.uses_adapters:
        reason = "no adapter to merge: the artifact already is a plain transformers model"
    merge = {"implemented": method.merge_supported and reason is None, "reason": reason}
    if merge_result is not None:
        merge.update(verified=merge_result.mergeable, max_abs_diff=merge_result.merge_max_abs_diff)
    out: dict[str, Any] = {
        "method": method.name,
        "method_description": method.description,
        "uses_adapters": method.uses_adapters,
        "adapters_config": method.adapter_config_dict(),
        "method_params": method.config.to_dict(),
        "hyperparameters": dict(params),
        "searched_hyperparameters": dict(searched),
        "peft_equivalent": peft is not None,
        "merge": merge,
    }
    if peft is not None:
        out["peft_config"] = peft
    else:
        out["peft_reason"] = PEFT_REASONS.get(
            method.name, f"Hugging Face PEFT has no equivalent of {method.name}; load the artifact with this package")
    return out


def _peft_config(method: Any, model: str, task_type: str | None) -> dict[str, Any] | None:
    """The method's PEFT config in PEFT's ``adapter_config.json`` schema."""
    model_config = _model_config(model)
    peft = method.peft_config(model_config.get("model_type", "bert"))
    if peft is None:
        return None
    from recommender.models import BUNDLED_ALIASES

    bundled = model is None or str(model).lower() in BUNDLED_ALIASES
    base = BUNDLED_HUB_ID if bundled else str(Path(model).expanduser().resolve())
    out = {"base_model_name_or_path": base, "task_type": PEFT_TASK_TYPES.get(task_type or "", "SEQ_CLS"),
           "inference_mode": True, "revision": None, **peft}
    if out["peft_type"] in ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING") and model_config:
        out.setdefault("token_dim", model_config.get("hidden_size"))
        out.setdefault("num_layers", model_config.get("num_hidden_layers"))
        out.setdefault("num_attention_heads", model_config.get("num_attention_heads"))
        out.setdefault("num_transformer_submodules", 1)
    return out


def _model_config(model: str) -> dict[str, Any]:
    from recommender.models import resolve_model_path

    try:
        return json.loads((resolve_model_path(None if model == "bundled" else model) / "config.json").read_text())
    except (RecommenderError, OSError, ValueError):
        return {}


def _measured(result: Any, serving_batch: int) -> dict[str, Any]:
    seq_len = result.latency[0].seq_len if result.latency else None

    def lat(batch: int) -> dict[str, float | None]:
        return {"unmerged": result.latency_ms(batch, merged=False), "merged": result.latency_ms(batch, merged=True),
                "base": result.base_latency_ms(batch)}

    return {
        "status": result.status, "stop_reason": result.stop_reason,
        "metric_name": result.metric_name, "metric": result.best_metric, "metrics": result.best_metrics,
        "time_to_best_s": result.time_to_best_s, "time_to_within_1pct_s": result.time_to_within_1pct_s,
        "steps_to_best": result.steps_to_best, "examples_to_best": result.examples_to_best,
        "tokens_to_best": result.tokens_to_best, "flops_to_best": result.flops_to_best,
        "train_seconds": result.train_seconds, "eval_seconds": result.eval_seconds,
        "wall_seconds": result.wall_seconds, "steps": result.steps, "epochs": result.epochs,
        "latency": {"seq_len": seq_len, "serving_batch": serving_batch, "b1_ms": lat(1),
                    "bB_ms": lat(serving_batch),
                    "rows": [x.to_dict() for x in result.latency],
                    "base_rows": [x.to_dict() for x in result.base_latency]},
        "trainable_params": result.trainable_params, "head_params": result.head_params,
        "total_params": result.total_params, "peak_memory_mb": result.peak_memory_mb,
        "artifact_bytes": result.artifact_bytes, "mergeable": result.mergeable,
        "merge_max_abs_diff": result.merge_max_abs_diff, "n_train": result.n_train, "n_dev": result.n_dev,
        "curve": [p.to_dict() for p in result.curve], "extra": result.extra,
    }


def _task_ref_dict(task_ref: Any) -> dict[str, Any]:
    from recommender.search.config import TaskRef

    if isinstance(task_ref, (str, Path)):
        task_ref = TaskRef(str(task_ref))
    if isinstance(task_ref, TaskRef):
        return task_ref.to_dict()
    if isinstance(task_ref, dict) and "source" in task_ref:
        return TaskRef.from_dict(dict(task_ref)).to_dict()
    raise ConfigError(f"task_ref {task_ref!r}; expected a task name or path, a TaskRef or its dict")


def _portable_ref(ref: dict[str, Any]) -> dict[str, Any]:
    """A task reference usable from any folder: a relative data path becomes absolute."""
    from recommender.tasks import bundled_task_names

    ref = dict(ref)
    source = str(ref.get("source", ""))
    if source not in bundled_task_names() and Path(source).expanduser().exists():
        ref["source"] = str(Path(source).expanduser().resolve())
    return ref


def _export_environment() -> dict[str, Any]:
    packages = {}
    for name in ("recommender", "torch", "transformers", "adapters", "peft", "optuna", "datasets", "numpy"):
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


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _redact(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays, tuples, paths; NaN/inf become null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return _jsonable(value.to_dict())
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"cannot store {type(value).__name__} value {value!r} in a bundle")


# --- writing the bundle ---------------------------------------------------------------------
def _check_target(out: Path, force: bool) -> Path:
    out = out.expanduser()
    if out.is_file() or (out.is_symlink() and not out.is_dir()):
        raise ExportError(f"output {out} is a file; give a folder path for the bundle")
    if out.exists() and not force:
        raise ExportError(f"output folder {out} already exists; choose another or pass --force to replace it")
    return out.absolute()


def _write_bundle(out: Path, config: dict[str, Any], fmt: str, force: bool, *, with_weights: bool, merged: bool,
                  progress: Progress | None) -> Path:
    """Write every file into a temporary folder next to ``out``, then rename it into place."""
    created = _first_missing_ancestor(out.parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
        tmp.mkdir()  # not mkdtemp: the bundle gets ordinary (umask) permissions
    except OSError as exc:
        _remove(created)
        raise ExportError(f"cannot write the bundle to {out}: {exc.strerror or exc}") from None
    try:
        files = {"config": f"config.{fmt}", "train_script": "train.py", "readme": "README.md"}
        if "peft_config" in config:
            files.update(peft_config="peft_config.json", peft_dir="peft/adapter_config.json")
        config["files"] = files
        if "peft_config" in config:
            peft_text = json.dumps(config["peft_config"], indent=2) + "\n"
            (tmp / "peft_config.json").write_text(peft_text, encoding="utf-8")
            (tmp / "peft").mkdir()
            (tmp / "peft" / "adapter_config.json").write_text(peft_text, encoding="utf-8")
        (tmp / "train.py").write_text(render_train_script(config), encoding="utf-8")
        if with_weights:
            config["weights"] = _retrain(config, tmp / "weights", merged, progress)
            files["weights"] = "weights/"
        _dump_config(config, tmp / files["config"], fmt)
        (tmp / "README.md").write_text(render_readme(config), encoding="utf-8")
        _commit(tmp, out, force)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove(created)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write the bundle to {out}: {exc.strerror or exc}; nothing was "
                              "written") from None
        raise
    return out


def _first_missing_ancestor(path: Path) -> Path | None:
    missing = None
    while not path.exists():
        missing, path = path, path.parent
        if path == path.parent:
            break
    return missing


def _remove(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _commit(tmp: Path, out: Path, force: bool) -> None:
    backup = None
    if out.exists() or out.is_symlink():
        if not force or not out.is_dir():
            raise ExportError(f"output folder {out} appeared while exporting; nothing was written")
        backup = out.parent / f".{out.name}.{os.getpid()}.{int(time.time() * 1000)}.old"
        os.replace(out, backup)
    try:
        os.replace(tmp, out)
    except OSError:
        if backup is not None:
            os.replace(backup, out)
        raise
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _dump_config(config: dict[str, Any], path: Path, fmt: str) -> None:
    data = _jsonable(config)
    if fmt == "yaml":
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")


# --- retraining (--with-weights) -------------------------------------------------------------
def retrain_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The exact ``train()`` arguments a bundle's config describes (also what train.py uses)."""
    from recommender.training import LatencyConfig
    from recommender.types import Budget

    latency = dict(config["budget"]["latency"])
    latency["batch_sizes"] = tuple(latency["batch_sizes"])
    model = config["model"]
    return {"method": config["method"], "params": dict(config["hyperparameters"]),
            "budget": Budget.from_dict(config["budget"]["retrain"]),
            "model": None if model == "bundled" else model, "device": config["device"], "seed": config["seed"],
            "latency": LatencyConfig(**latency)}


def load_bundle_task(ref: dict[str, Any]) -> Any:
    from recommender.search.config import TaskRef

    return TaskRef.from_dict(ref).load()


def _retrain(config: dict[str, Any], save_dir: Path, merged: bool, progress: Progress | None) -> dict[str, Any]:
    from recommender.training import train

    kwargs = retrain_kwargs(config)
    task = load_bundle_task(config["task"]["ref"])
    if progress is not None:
        progress(f"retraining {config['method']} on {task.name} (seed {config['seed']}) for the weights ...")
    start = time.perf_counter()
    result = train(task, kwargs.pop("method"), save_dir=save_dir, **kwargs)
    if result.status not in ("complete", "budget_exhausted") or not result.has_metric:
        why = (result.error or result.status).splitlines()[0]
        raise ExportError(f"retraining {config['method']} for the weights failed ({result.status}: {why}); "
                          "nothing was written")
    merged_dir = save_dir / "merged"
    if merged and not merged_dir.is_dir():
        reason = result.extra.get("merge_error") or (
            f"merging changed the outputs by {result.merge_max_abs_diff:.2e}" if result.merge_max_abs_diff
            else "the merge could not be verified")
        raise NotMergeableError(f"cannot export a merged model for {config['method']}: {reason}; nothing was written")
    if not merged and merged_dir.exists():
        shutil.rmtree(merged_dir)
    expected = (config.get("measured") or {}).get("metric")
    diff = None if expected is None else abs(result.best_metric - expected)
    return {
        "artifact": "weights/artifact",
        "merged": "weights/merged" if merged else None,
        "artifact_kind": "adapter (adapters save_adapter) + head.safetensors + tokenizer"
        if config["uses_adapters"] else "full transformers model + tokenizer",
        "retrained_metric": result.best_metric, "trial_metric": expected, "abs_diff": diff,
        "reproduced": None if diff is None else diff <= REPRODUCE_TOLERANCE,
        "merge_max_abs_diff": result.merge_max_abs_diff, "steps": result.steps,
        "stop_reason": result.stop_reason, "retrain_seconds": time.perf_counter() - start,
    }


# --- train.py ------------------------------------------------------------------------------
def _literal(value: Any, indent: int = 0) -> str:
    text = pprint.pformat(_jsonable(value), sort_dicts=False, width=100 - indent)
    return text.replace("\n", "\n" + " " * indent)


def render_train_script(config: dict[str, Any]) -> str:
    ref = config["task"]["ref"]
    model = config["model"]
    measured = config.get("measured") or {}
    source = config.get("source", {})
    if config["kind"] == "measured":
        origin = f"trial #{source.get('trial')} of study {source.get('study')!r}"
        expect = f"The trial reached dev {measured.get('metric_name')} = {_fmt(measured.get('metric'), 6)}; "
        expect += ("it was stopped by its time limit, so a retrain may stop at another step and differ."
                   if config["budget"].get("time_limit_binding") else
                   "on CPU with the same data, seed and budget this script gives the same number.")
    else:
        origin = "a meta-model recommendation (predicted, not yet measured)"
        expect = "Nothing has been measured for this configuration yet: this script measures it."
    subsample = ""
    if ref.get("max_train") or ref.get("max_dev"):
        subsample = (f" (subsample: {ref.get('max_train') or 'all'} train / {ref.get('max_dev') or 'all'} dev "
                     f"examples, seed {ref.get('seed', 0)})")
    return f'''#!/usr/bin/env python
"""Retrain {config["method"]} exactly as {origin} configured it.

Exported by `recommender export` (bundle schema {config["schema_version"]}). {expect}

    python train.py                                  # the original data: {ref["source"]}{subsample}
    python train.py --data my.csv --text-col review --label-col stars --max-train 0 --max-dev 0

It prints the dev metric and saves the weights to --out: artifact/ (the adapter and head, or the
whole model, with the tokenizer), merged/ (a plain transformers model, only where merging was
verified exact) and result.json (everything measured).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recommender.tasks import load_task
from recommender.training import LatencyConfig, train
from recommender.types import Budget

METHOD = {config["method"]!r}
PARAMS = {_literal(config["hyperparameters"], 9)}
BUDGET = {_literal(config["budget"]["retrain"], 9)}
LATENCY = {_literal(config["budget"]["latency"], 10)}
SEED = {config["seed"]!r}
MODEL = {None if model == "bundled" else model!r}  # None: the bundled all-MiniLM-L6-v2
DEVICE = {config["device"]!r}
TASK = {_literal(ref, 7)}


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=f"Retrain {{METHOD}} with the exported configuration.")
    parser.add_argument("--data", default=TASK["source"], help="a bundled task name or a CSV/TSV/JSONL file "
                        "(default: the original task, %(default)s)")
    parser.add_argument("--out", default=str(here / "retrained"), help="where to save the weights (%(default)s)")
    parser.add_argument("--text-col", help="text column of a user file")
    parser.add_argument("--text-pair-col", help="second text column (sentence pairs)")
    parser.add_argument("--label-col", help="label column of a user file")
    parser.add_argument("--max-train", type=int, default=TASK["max_train"], help="training examples (0: all)")
    parser.add_argument("--max-dev", type=int, default=TASK["max_dev"], help="dev examples (0: all)")
    parser.add_argument("--seed", type=int, default=SEED, help="training seed (%(default)s)")
    parser.add_argument("--device", default=DEVICE, help="cpu, cuda or auto (%(default)s)")
    args = parser.parse_args(argv)

    overrides = dict(TASK["overrides"]) if args.data == TASK["source"] else {{}}
    overrides.update({{k: v for k, v in {{"text_col": args.text_col, "text_pair_col": args.text_pair_col,
                                        "label_col": args.label_col}}.items() if v}})
    task = load_task(args.data, **overrides)
    if args.max_train or args.max_dev:
        task = task.subsample(args.max_train or None, args.max_dev or None, seed=TASK["seed"])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = train(task, METHOD, params=PARAMS, budget=Budget(**BUDGET), model=MODEL, device=args.device,
                   seed=args.seed, latency=LatencyConfig(**LATENCY), save_dir=out)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    if result.best_metric is None:
        print(f"training {{result.status}}: {{(result.error or 'no evaluation finished').splitlines()[0]}}")
        return 1
    print(f"dev {{result.metric_name}}: {{result.best_metric:.6f}} ({{result.status}}, {{result.steps}} steps, "
          f"stopped by {{result.stop_reason}})")
    print(f"weights saved to {{out}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


# --- README.md -----------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return f"{_fmt(value[1], digits)} (range {_fmt(value[0], digits)} to {_fmt(value[2], digits)})"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{_fmt(value[0], digits)} to {_fmt(value[1], digits)}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v, digits)}" for k, v in value.items())
    return str(value)


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _bytes(value: Any) -> str:
    if value is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _params_text(config: dict[str, Any]) -> str:
    shown = config.get("searched_hyperparameters") or config["hyperparameters"]
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _task_text(config: dict[str, Any]) -> str:
    mf = config["task"].get("metafeatures") or {}
    spec = config["task"].get("spec") or {}
    name = spec.get("name") or config["task"]["ref"].get("source")
    kind = mf.get("task_type") or spec.get("task_type") or "?"
    sizes = f"{_fmt(mf.get('n_train'))} train / {_fmt(mf.get('n_dev'))} dev examples" if mf else "unknown size"
    return f"{name} ({kind}, {sizes}, model {config.get('model_name') or config['model']})"


def render_readme(config: dict[str, Any]) -> str:
    return _readme_measured(config) if config["kind"] == "measured" else _readme_predicted(config)


def _files_section(config: dict[str, Any]) -> list[str]:
    files = config["files"]
    lines = ["## Files", "",
             f"- `{files['config']}`: the full record (schema {config['schema_version']}, kind "
             f"`{config['kind']}`): method, its `adapters` config, every hyperparameter, model, task, "
             "meta-features, budgets, " + ("the measured numbers" if config["kind"] == "measured"
                                           else "the predicted numbers") + " and the environment.",
             "- `train.py`: retrains this configuration with the `recommender` package "
             "(`python train.py [--data PATH_OR_TASK] [--out DIR]`)."]
    if config["peft_equivalent"]:
        lines.append("- `peft_config.json` (also `peft/adapter_config.json`): the equivalent Hugging Face PEFT "
                     f"config (`{config['peft_config']['peft_type']}`); "
                     "`peft.PeftConfig.from_pretrained(\"peft\")` loads it.")
    else:
        lines.append(f"- No PEFT config: **{config['method']} has no Hugging Face PEFT equivalent** "
                     f"({config['peft_reason']}).")
    weights = config.get("weights")
    if weights:
        lines.append(f"- `weights/artifact/`: {weights['artifact_kind']}.")
        if weights.get("merged"):
            lines.append("- `weights/merged/`: a plain transformers model with the adapter folded in (loads with "
                         "transformers' `AutoModelFor...from_pretrained`, no adapters code; merge verified to change logits "
                         f"by at most {weights.get('merge_max_abs_diff') or 0:.1e}).")
    lines.append("")
    return lines


def _merge_line(config: dict[str, Any]) -> str:
    merge = config["merge"]
    if merge["implemented"]:
        return "Merging into the base weights is implemented and verified exact for this method."
    return f"Merging is not available for {config['method']}: {merge['reason']}."


def _readme_measured(config: dict[str, Any]) -> str:
    m = config["measured"]
    src = config["source"]
    lat = m["latency"]
    metric = m["metric_name"]
    b = lat["serving_batch"]
    runner = src.get("runner_up")
    if src["selected_as"].startswith("best"):
        why = f"It is the {src['selected_as']} of {src['n_complete_trials']} complete trial(s)"
        why += (f"; the runner-up, trial #{runner['trial']} ({runner['method']}), reached {_fmt(runner['metric'])}"
                if runner else "")
    else:
        why = (f"It was chosen by number; it ranks {src.get('rank_by_metric')} of {src['n_complete_trials']} "
               "complete trial(s) by metric")
    if src.get("constraint_violations"):
        why += f" and misses the search's constraints ({_fmt(src['constraint_violations'], 1)})"

    def latency(key: str, batch: int) -> str:
        row = lat[key]
        parts = []
        if row.get("merged") is not None:
            parts.append(f"{_ms(row['merged'])} merged")
        parts.append(f"{_ms(row['unmerged'])} unmerged")
        base = f", base model {_ms(row['base'])}" if row.get("base") is not None else ""
        return f"{' / '.join(parts)} at batch {batch}{base}"

    lat_text = latency("b1_ms", 1) + ("" if b == 1 else "; " + latency("bB_ms", b))
    para = (
        f"This bundle records **{config['method']}** ({_params_text(config)}) for {_task_text(config)}, "
        f"exported from trial #{src['trial']} of study `{src['study']}` ({src['objective']} objective). "
        f"{why}. Measured: dev {metric} **{_fmt(m['metric'])}**; time to convergence "
        f"{_fmt(m['time_to_best_s'], 1)} s of training ({_fmt(m['steps_to_best'])} steps; within 1 % of the best "
        f"after {_fmt(m['time_to_within_1pct_s'], 1)} s; stopped by {m['stop_reason']}); latency (p50, "
        f"sequence length {lat['seq_len']}) {lat_text}; {_fmt(m['trainable_params'])} trainable parameters "
        f"(+{_fmt(m['head_params'])} in the head) of {_fmt(m['total_params'])}; peak memory "
        f"{_fmt(m['peak_memory_mb'], 0)} MB; artifact {_bytes(m['artifact_bytes'])}."
    )
    lines = [f"# {config['method']} for {_task_text(config).split(' (')[0]}: measured configuration", "", para, ""]
    lines += _files_section(config)
    budget = config["budget"]
    lines += ["## Reproduce", "",
              f"`python train.py` retrains with seed {config['seed']} on `{config['task']['ref']['source']}` "
              f"with the same subsample, on device `{config['device']}`: {budget['note']}.", ""]
    weights = config.get("weights")
    if weights:
        state = ("reproduced the trial's metric exactly" if weights.get("reproduced")
                 else f"**differs** from the trial's metric by {_fmt(weights.get('abs_diff'), 6)}")
        lines += [f"The exported weights come from such a retrain: dev {metric} "
                  f"{_fmt(weights['retrained_metric'], 6)}, which {state}.", ""]
    lines += ["## Merging", "", _merge_line(config), ""]
    if not config["peft_equivalent"]:
        lines += ["## PEFT", "", f"{config['method']} has no Hugging Face PEFT equivalent: {config['peft_reason']}. "
                  "`config.json` says `\"peft_equivalent\": false`.", ""]
    return "\n".join(lines)


def _readme_predicted(config: dict[str, Any]) -> str:
    predicted = config["predicted"]
    precise = ("metric", "gap", "predicted_metric", "predicted_gap", "metric_interval", "p_meets")
    numbers = "; ".join(f"predicted {PREDICTED_LABELS.get(k, k)} {_fmt(v, 4 if k in precise else 1)}"
                        for k, v in predicted.items() if v is not None) or "no numbers"
    rationale = str(config["source"].get("rationale") or "").strip()
    if rationale and not rationale.endswith((".", "!", "?")):
        rationale += "."
    para = (
        f"**PREDICTED, NOT MEASURED.** This bundle records the meta-model's recommendation of "
        f"**{config['method']}** ({_params_text(config)}) for {_task_text(config)}, made before any training "
        f"run on this task. {numbers}. Every number here is a prediction from past runs on other tasks "
        f"(in `{config['files']['config']}` under `predicted`); none was measured on this task. "
        + (f"Why: {rationale} " if rationale else "")
        + "Run `python train.py` to measure it."
    )
    lines = [f"# {config['method']} for {_task_text(config).split(' (')[0]}: PREDICTED configuration", "", para, ""]
    lines += _files_section(config)
    lines += ["## Merging", "", _merge_line(config), ""]
    if not config["peft_equivalent"]:
        lines += ["## PEFT", "", f"{config['method']} has no Hugging Face PEFT equivalent: {config['peft_reason']}. "
                  "`config.json` says `\"peft_equivalent\": false`.", ""]
    return "\n".join(lines)
