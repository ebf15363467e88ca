"""The study record: what a search or a sweep stores about its study (user attribute
``recommender``), so any process can read the task, meta-features and configuration back.

A search writes the task reference, the search configuration, the methods searched, the metric
name, the environment and its creation time; a sweep writes the training-set size, its sweep
configuration and protocol. Both write the task spec, the task name, the meta-features, the
model and the schema. :meth:`StudyRecord.from_dict` reads exactly what both have written since
schema 1 and names any field that does not fit (see
:func:`recommender.search.config.from_stored`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_choice, check_range
from recommender.errors import StorageError
from recommender.search.config import SearchConfig, TaskRef, from_stored
from recommender.store import SCHEMA_VERSION, STUDY_ATTR
from recommender.types import MetaFeatures

if TYPE_CHECKING:
    import optuna

KINDS = ("search", "sweep")
#: protocol of a run whose study does not record one: sweeps before protocol 2 were protocol 1
#: and searches follow none
UNRECORDED_PROTOCOL = {"sweep": 1, "search": 0}


@dataclass(frozen=True)
class StudyRecord:
    """One study's stored record; fields a kind does not write are ``None``.

    ``task`` is the task spec and ``sweep`` / ``environment`` the sweep configuration and
    hardware as stored (dicts: they are shown and exported as they are, never rebuilt).
    """

    kind: str
    task_name: str = ""
    task: dict[str, Any] | None = None
    metafeatures: MetaFeatures | None = None
    model: str | None = None
    schema: int = SCHEMA_VERSION
    # a search's
    task_ref: TaskRef | None = None
    config: SearchConfig | None = None
    methods: tuple[str, ...] | None = None
    metric_name: str | None = None
    environment: dict[str, Any] | None = None
    created_at: float | None = None
    # a sweep's
    size: int | None = None
    sweep: dict[str, Any] | None = None
    protocol: int | None = None

    def __post_init__(self) -> None:
        check_choice("StudyRecord", "kind", self.kind, KINDS)
        if self.size is not None:
            check_range("StudyRecord", "size", self.size, 1, None)

    @property
    def is_search(self) -> bool:
        return self.kind == "search"

    @property
    def task_label(self) -> str:
        """The task's name: the stored name, else the spec's."""
        return self.task_name or str((self.task or {}).get("name", ""))

    @property
    def metric_label(self) -> str:
        return self.metric_name or "metric"

    @property
    def run_protocol(self) -> int:
        """The protocol its runs followed (see :data:`UNRECORDED_PROTOCOL` when none is stored)."""
        return self.protocol if self.protocol is not None else UNRECORDED_PROTOCOL[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """The stored form: JSON-ready, without the fields this kind does not write."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, (MetaFeatures, TaskRef, SearchConfig)):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> StudyRecord:
        """Rebuild a stored record (one without ``schema`` is read as this version's); a field
        that does not fit is one :class:`StorageError` naming it and both versions."""
        if not isinstance(data, dict):
            return from_stored(cls, data, "study record")
        schema = data.get("schema", SCHEMA_VERSION)
        data = dict(data)
        try:
            if isinstance(data.get("metafeatures"), dict):
                data["metafeatures"] = MetaFeatures.from_dict(data["metafeatures"])
        except (TypeError, ValueError) as exc:
            raise StorageError(f"the stored study record has invalid metafeatures: {exc}") from None
        if isinstance(data.get("task_ref"), dict):
            data["task_ref"] = TaskRef.from_dict(data["task_ref"], schema)
        if isinstance(data.get("config"), dict):
            data["config"] = SearchConfig.from_dict(data["config"])
        if isinstance(data.get("methods"), list):
            data["methods"] = tuple(data["methods"])
        return from_stored(cls, data, "study record", schema, missing_defaults=True)


def read_record(study: optuna.Study | Any) -> StudyRecord | None:
    """The record of ``study`` (an Optuna study or study summary); ``None`` when the study is not
    one of ours (or was created a moment ago and its record is still being written)."""
    data = study.user_attrs.get(STUDY_ATTR)
    return StudyRecord.from_dict(data) if data else None


def write_record(study: optuna.Study, record: StudyRecord) -> None:
    study.set_user_attr(STUDY_ATTR, record.to_dict())
