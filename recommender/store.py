"""The run store: an Optuna storage (SQLite by default, PostgreSQL for many workers).

A study's user attribute ``recommender`` holds the task spec, meta-features, budgets, model and
hardware; each trial's user attribute ``result`` holds its full :class:`RunResult`, plus a few
flat attributes (``status``, ``metric``, ...) that optuna-dashboard shows as columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.errors import StorageError
from recommender.paths import default_storage_url
from recommender.types import RunResult

if TYPE_CHECKING:
    import optuna

SCHEMA_VERSION = 1
STUDY_ATTR = "recommender"
RESULT_ATTR = "result"


HEARTBEAT_INTERVAL = 30
GRACE_PERIOD = 90


def storage_file(url: str) -> Path | None:
    """The local file behind a SQLite URL or a journal path; ``None`` for a database server."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///"):].split("?", 1)[0])
    if "://" not in url:
        return Path(url)
    return None


def open_storage(url: str | None = None, *, heartbeat: bool = True, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> optuna.storages.BaseStorage:
    """Open (and create if needed) the storage at ``url``; errors say which URL failed and why.

    RDB storages get heartbeats and a retry callback, so a killed worker's trial is marked FAIL
    and re-queued once.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    url = url or default_storage_url()
    if url.endswith((".log", ".jsonl")) and "://" not in url:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url))
    if "://" not in url:
        raise StorageError(
            f"storage {url!r} is not a URL; use sqlite:///path/to/runs.db or "
            "postgresql://user@host:5432/dbname"
        )
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = {"heartbeat_interval": heartbeat_interval or HEARTBEAT_INTERVAL,
                  "grace_period": grace_period or GRACE_PERIOD,
                  "failed_trial_callback": RetryFailedTrialCallback(max_retry=1)}
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        return RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except ImportError as exc:
        raise StorageError(f"storage {url!r}: a database driver is missing ({exc}); "
                           "install psycopg2-binary for PostgreSQL") from None
    except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use it"
        reason = str(exc).splitlines()[0][:300]
        raise StorageError(f"cannot open storage {url!r}: {reason}") from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_info(study: optuna.Study) -> dict[str, Any]:
    return dict(study.user_attrs.get(STUDY_ATTR, {}))


def result_attrs(result: RunResult, serving_batch: int = 32) -> dict[str, Any]:
    """User attributes written for one trial: the full result and flat columns."""
    return {
        RESULT_ATTR: result.to_dict(),
        "status": result.status,
        "metric": result.best_metric,
        "time_to_best_s": result.time_to_best_s,
        "latency_b1_ms": result.latency_ms(1),
        "latency_bB_ms": result.latency_ms(serving_batch),
        "trainable_params": result.trainable_params,
        "error": (result.error or "").splitlines()[0][:500] if result.error else None,
    }


def trial_result(trial: optuna.trial.FrozenTrial) -> RunResult | None:
    data = trial.user_attrs.get(RESULT_ATTR)
    return RunResult.from_dict(data) if isinstance(data, dict) else None


@dataclass
class StoredRun:
    """A run found in a storage, with the study it belongs to."""

    study: str
    trial_number: int
    state: str
    result: RunResult
    study_info: dict[str, Any]
    config_key: str | None = None


def iter_runs(storage: str | optuna.storages.BaseStorage | None = None,
              study_names: list[str] | None = None) -> Iterator[StoredRun]:
    """Every trial with a recorded result, across the studies of a storage."""
    import optuna

    store = open_storage(storage, heartbeat=False) if storage is None or isinstance(storage, str) else storage
    summaries = optuna.study.get_all_study_summaries(store, include_best_trial=False)
    for summary in summaries:
        if study_names is not None and summary.study_name not in study_names:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=store)
        info = study_info(study)
        if not info:
            continue  # not one of ours
        for trial in study.get_trials(deepcopy=False):
            result = trial_result(trial)
            if result is not None:
                yield StoredRun(summary.study_name, trial.number, trial.state.name, result, info,
                                trial.user_attrs.get("config_key"))
