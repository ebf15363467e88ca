"""The bundled tasks: one folder per task under ``data/tasks/`` with a ``task.json`` spec."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from recommender.errors import ConfigError, unknown_name
from recommender.paths import tasks_dir
from recommender.types import TaskSpec


@lru_cache(maxsize=1)
def _bundled_specs(root: str) -> dict[str, tuple[TaskSpec, Path]]:
    specs: dict[str, tuple[TaskSpec, Path]] = {}
    for spec_file in sorted(Path(root).glob("*/task.json")):
        try:
            spec = TaskSpec.from_dict(json.loads(spec_file.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ConfigError(f"{spec_file}: invalid task spec ({exc})") from None
        specs[spec.name] = (spec, spec_file.parent)
    return specs


def bundled_task_names() -> list[str]:
    """Names of the tasks shipped in ``data/tasks``."""
    return sorted(_bundled_specs(str(tasks_dir())))


def bundled_spec(name: str) -> tuple[TaskSpec, Path]:
    """The spec of a bundled task and its folder; unknown names list the valid ones."""
    specs = _bundled_specs(str(tasks_dir()))
    if name not in specs:
        raise unknown_name("task", name, list(specs))
    return specs[name]


def is_bundled(name: str) -> bool:
    return name in _bundled_specs(str(tasks_dir()))
