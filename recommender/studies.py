"""The studies of a run store, and their runs: the one place that lists them (the CLI, the
knowledge-base export and the app all read a store through here)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from recommender.errors import StorageError
from recommender.store import open_existing_storage, trial_result
from recommender.study_record import StudyRecord, read_record
from recommender.types import RunResult

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class StudySummary:
    """A study of a store: its name, trial count, start and record (``None``: not one of ours)."""

    name: str
    n_trials: int
    started: datetime | None
    record: StudyRecord | None

    @property
    def kind(self) -> str:
        return self.record.kind if self.record is not None else "other"


@dataclass
class StoredRun:
    """A run found in a storage, with the record of the study it belongs to."""

    study: str
    trial_number: int
    state: str
    result: RunResult
    record: StudyRecord
    config_key: str | None = None


def _open(storage: str | optuna.storages.BaseStorage | None) -> optuna.storages.BaseStorage:
    if storage is None or isinstance(storage, str):
        return open_existing_storage(storage, heartbeat=False)
    return storage


def study_names(storage: str | optuna.storages.BaseStorage | None = None) -> list[str]:
    """The names of every study of ``storage`` (records unread: for messages naming them)."""
    return [s.study_name for s in _open(storage).get_all_studies()]


def study_summaries(storage: str | optuna.storages.BaseStorage | None = None) -> list[StudySummary]:
    """Every study of ``storage`` with its record; a record that does not fit is a
    :class:`StorageError` naming the study."""
    import optuna

    out = []
    for summary in optuna.study.get_all_study_summaries(_open(storage), include_best_trial=False):
        try:
            record = read_record(summary)
        except StorageError as exc:
            raise StorageError(f"study {summary.study_name!r}: {exc}") from None
        out.append(StudySummary(summary.study_name, summary.n_trials, summary.datetime_start, record))
    return out


def iter_runs(storage: str | optuna.storages.BaseStorage | None = None,
              study_names: list[str] | None = None) -> Iterator[StoredRun]:
    """Every trial with a recorded result, across the studies of ours in a storage."""
    import optuna

    store = _open(storage)
    for summary in study_summaries(store):
        if summary.record is None or (study_names is not None and summary.name not in study_names):
            continue
        study = optuna.load_study(study_name=summary.name, storage=store)
        for trial in study.get_trials(deepcopy=False):
            result = trial_result(trial)
            if result is not None:
                yield StoredRun(summary.name, trial.number, trial.state.name, result, summary.record,
                                trial.user_attrs.get("config_key"))
