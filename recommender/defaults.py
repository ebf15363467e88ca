"""Each method's tuned defaults: the ``"defaults"`` object of ``search_spaces/<method>.json``.

One source of truth for the trainer (the learning rate used when none is given) and for
:meth:`recommender.search.spaces.SearchSpace.defaults` (warm starts, sweep defaults). The file
wins over the method's ``default_learning_rate`` class attribute; ``recommender kb defaults
--apply`` writes the winner of the learning-rate sweep there. This module imports neither the
methods nor the search package, so both can use it.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from recommender.errors import ConfigError
from recommender.paths import search_spaces_dir

DEFAULTS_KEY = "defaults"
#: hyperparameters a "defaults" object may set, with their allowed (low, high] range
DEFAULT_RANGES: dict[str, tuple[float, float]] = {"learning_rate": (0.0, 1.0), "batch_size": (0.0, 4096.0)}


def parse_defaults(data: Any, where: str) -> dict[str, Any]:
    """The validated ``"defaults"`` object of one search space file's parsed JSON (or ``{}``)."""
    if not isinstance(data, dict) or DEFAULTS_KEY not in data:
        return {}
    raw = data[DEFAULTS_KEY]
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'defaults' must be an object, got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in DEFAULT_RANGES:
            raise ConfigError(f"{where}: defaults.{name} is not supported; expected one of "
                              f"{', '.join(DEFAULT_RANGES)}")
        low, high = DEFAULT_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low < value <= high:
            raise ConfigError(f"{where}: defaults.{name}={value!r} is out of range; "
                              f"expected a finite number in ({low:g}, {high:g}]")
        if name == "batch_size":
            if int(value) != value:
                raise ConfigError(f"{where}: defaults.batch_size={value!r} must be an integer")
            value = int(value)
        out[name] = float(value) if name == "learning_rate" else value
    return out


@lru_cache(maxsize=64)
def _read(path: str, mtime_ns: int) -> dict[str, Any]:
    # keyed on the modification time, so a file rewritten by `kb defaults --apply` is re-read
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"search space {path}: invalid JSON at line {exc.lineno} ({exc.msg})") from None
    return parse_defaults(data, f"search space {path}")


def method_defaults(method: str, folder: Path | None = None) -> dict[str, Any]:
    """The ``"defaults"`` of ``<folder>/<method>.json`` (default folder: ``search_spaces/``);
    ``{}`` where the file or the object is missing."""
    path = (folder or search_spaces_dir()) / f"{method}.json"
    try:
        stat = path.stat()
    except OSError:
        return {}
    if not path.is_file():
        raise ConfigError(f"search space {path} is not a regular file")
    return dict(_read(str(path), stat.st_mtime_ns))
