"""What a bundle is: :class:`BundleSpec`, the typed record a bundle's ``config.json`` (or
``config.yaml``) holds (its sections are in :mod:`recommender.export.sections`).

``to_dict`` gives the file's JSON form, key for key and in order; ``from_dict`` reads it back and
says which field is missing or wrong. Sections that are recorded as they were (the search config,
meta-features, environment, predicted numbers, curves) stay plain JSON mappings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.errors import ConfigError
from recommender.export.sections import (
    BundleBudget,
    BundleFiles,
    MeasuredNumbers,
    MethodSection,
    RecommendationSource,
    TaskSection,
    TrialSource,
    WeightsInfo,
    as_mapping,
)

SCHEMA_VERSION = 1
FORMATS = ("json", "yaml")
MEASURED, PREDICTED = "measured", "predicted"
KINDS = (MEASURED, PREDICTED)

def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r}; expected one of {list(FORMATS)}")


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars and arrays, tuples, paths; NaN/inf become null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if hasattr(value, "tolist"):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"cannot store {type(value).__name__} value {value!r} in a bundle")


# --- the bundle --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BundleSpec:
    """Everything a bundle records about one chosen configuration.

    ``kind`` is ``"measured"`` (a trial: :class:`TrialSource`, ``search`` and ``measured`` set) or
    ``"predicted"`` (a recommendation: :class:`RecommendationSource` and ``predicted`` set).
    ``files`` and ``weights`` are filled in while the bundle is written.

    >>> spec = BundleSpec.from_dict(json.loads(Path("bundle/config.json").read_text()))  # doctest: +SKIP
    >>> spec.method.name, spec.seed                                                        # doctest: +SKIP
    """

    kind: str
    exported_at: str
    exported_by: str
    source: TrialSource | RecommendationSource
    method: MethodSection
    model: str
    model_name: str
    seed: int
    device: str
    task: TaskSection
    budget: BundleBudget
    environment: dict[str, Any]
    search: dict[str, Any] | None = None
    measured: MeasuredNumbers | None = None
    predicted: dict[str, Any] | None = None
    files: BundleFiles | None = None
    weights: WeightsInfo | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"bundle kind={self.kind!r}; expected one of {list(KINDS)}")
        if not isinstance(self.schema_version, int) or not 1 <= self.schema_version <= SCHEMA_VERSION:
            raise ConfigError(f"bundle schema_version={self.schema_version!r}; this package reads 1 to "
                              f"{SCHEMA_VERSION}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"bundle seed={self.seed!r}; expected an integer")
        measured = self.kind == MEASURED
        expected = TrialSource if measured else RecommendationSource
        if not isinstance(self.source, expected):
            raise ConfigError(f"a {self.kind} bundle's source must be a {expected.__name__}, got "
                              f"{type(self.source).__name__}")
        for name in ("search", "measured"):
            if (getattr(self, name) is not None) != measured:
                raise ConfigError(f"bundle {name}: {'required' if measured else 'not allowed'} in a {self.kind} "
                                  "bundle")
        if (self.predicted is not None) == measured:
            raise ConfigError(f"bundle predicted: {'not allowed' if measured else 'required'} in a {self.kind} "
                              "bundle")

    @property
    def is_measured(self) -> bool:
        return self.kind == MEASURED

    def with_files(self, files: BundleFiles, weights: WeightsInfo | None = None) -> BundleSpec:
        return dataclasses.replace(self, files=files, weights=weights)

    def to_dict(self) -> dict[str, Any]:
        """The record as written to ``config.json``, key for key."""
        out: dict[str, Any] = {"schema_version": self.schema_version, "kind": self.kind,
                               "exported_at": self.exported_at, "exported_by": self.exported_by,
                               "source": self.source.to_dict(), **self.method.to_dict(), "model": self.model,
                               "model_name": self.model_name, "seed": self.seed, "device": self.device,
                               "task": self.task.to_dict(), "budget": self.budget.to_dict()}
        if self.measured is not None:
            out.update(search=self.search, measured=self.measured.to_dict())
        if self.predicted is not None:
            out["predicted"] = self.predicted
        out["environment"] = self.environment
        if self.files is not None:
            out["files"] = self.files.to_dict()
        if self.weights is not None:
            out["weights"] = self.weights.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> BundleSpec:
        """Read a bundle's record; a missing or wrong field raises :class:`ConfigError` naming it."""
        data = as_mapping(data, "record")
        for key in ("kind", "source", "model", "seed", "device", "task", "budget"):
            if key not in data:
                raise ConfigError(f"bundle record lacks {key}")
        measured = data["kind"] == MEASURED
        source = (TrialSource if measured else RecommendationSource).from_dict(data["source"])
        files, weights, numbers = data.get("files"), data.get("weights"), data.get("measured")
        return cls(schema_version=data.get("schema_version", SCHEMA_VERSION), kind=data["kind"],
                   exported_at=str(data.get("exported_at", "")), exported_by=str(data.get("exported_by", "")),
                   source=source, method=MethodSection.from_dict(data), model=str(data["model"]),
                   model_name=str(data.get("model_name") or ""), seed=data["seed"], device=str(data["device"]),
                   task=TaskSection.from_dict(data["task"]), budget=BundleBudget.from_dict(data["budget"]),
                   environment=dict(data.get("environment") or {}), search=data.get("search"),
                   measured=None if numbers is None else MeasuredNumbers.from_dict(numbers),
                   predicted=data.get("predicted"), files=None if files is None else BundleFiles.from_dict(files),
                   weights=None if weights is None else WeightsInfo.from_dict(weights))
