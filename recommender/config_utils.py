"""Helpers for config dataclasses: validated fields, ``key=value`` parsing, typed coercion."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from pathlib import Path
from typing import Any, TypeVar

from recommender.errors import ConfigError, unknown_name

C = TypeVar("C")


def check_range(owner: str, name: str, value: float, low: float | None = None,
                high: float | None = None, *, low_open: bool = False) -> None:
    """Raise :class:`ConfigError` naming the field, value and allowed range when out of range.

    NaN and infinities are always out of range (NaN compares false with every bound).
    """
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{owner}.{name}={value!r} is not a finite number")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        bracket = "(" if low_open else "["
        raise ConfigError(f"{owner}.{name}={value!r} is out of range; allowed {bracket}{lo}, {hi}]")


def check_choice(owner: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{owner}.{name}={value!r}; expected one of {list(choices)}")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def coerce(cls: type, name: str, value: Any) -> Any:
    """Convert ``value`` (often a CLI string) to the declared type of ``cls.name``."""
    hints = typing.get_type_hints(cls)
    hint = hints[name]
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("none", "null") and type(None) in typing.get_args(hint):
            return None
        target = args[0] if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args else hint
        try:
            if target is bool:
                if text.lower() in ("1", "true", "yes", "on"):
                    return True
                if text.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if target is int:
                number = float(text)
                if not math.isfinite(number):
                    raise ConfigError(f"{cls.__name__}.{name}={value!r}; expected an integer")
                return int(number) if number.is_integer() else int(text)
            if target is float:
                number = float(text)
                if not math.isfinite(number):
                    raise ConfigError(f"{cls.__name__}.{name}={value!r}; expected a finite number")
                return number
            if target is str:
                return text
            if typing.get_origin(target) in (tuple, list):
                items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t]
                return tuple(items)
        except ConfigError:
            raise
        except ValueError:
            raise ConfigError(f"{cls.__name__}.{name}={value!r}; expected {getattr(target, '__name__', target)}") from None
    if isinstance(value, list):
        return tuple(value)
    return value


def build_config(cls: type[C], values: dict[str, Any]) -> C:
    """Instantiate ``cls`` from ``values``; unknown keys raise listing the valid ones."""
    names = field_names(cls)
    for key in values:
        if key not in names:
            raise unknown_name(f"{cls.__name__} field", key, names)
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()})


def parse_assignments(items: list[str] | None) -> dict[str, str]:
    """``["lr=1e-4", "r=8"]`` -> ``{"lr": "1e-4", "r": "8"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


#: Optuna RDB storages this package supports (a ``+driver`` suffix is allowed, e.g. postgresql+psycopg2)
STORAGE_SCHEMES = ("sqlite", "postgresql")
JOURNAL_SUFFIXES = (".log", ".jsonl")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    # up to the last "@" before the path: a password may itself hold an "@"
    return re.sub(r"://([^:/@]+):[^/]*@", r"://\1:***@", url)


def check_storage_url(url: str) -> str:
    """Check a run-store URL before anything opens it; return it unchanged.

    Accepted: ``sqlite:///path/runs.db``, ``postgresql://user@host:5432/db`` (optionally with a
    driver, ``postgresql+psycopg2://``) and an Optuna journal file (``runs.log``/``runs.jsonl``).
    Syntax only (and that a local path is not a folder); whether a store must already exist is
    :func:`recommender.store.require_storage`'s job.
    """
    shown = redact_url(str(url))
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("storage is empty; give sqlite:///path/to/runs.db or postgresql://user@host:5432/db")
    path: Path | None = None
    if "://" not in url:
        if not url.endswith(JOURNAL_SUFFIXES):
            raise ConfigError(f"storage {shown!r} is not a URL; use sqlite:///path/to/runs.db or "
                              "postgresql://user@host:5432/dbname (or a journal file ending in .log)")
        path = Path(url).expanduser()
    else:
        scheme = url.split("://", 1)[0].lower()
        if scheme.split("+", 1)[0] not in STORAGE_SCHEMES:
            raise ConfigError(f"storage {shown!r}: unsupported scheme {scheme!r}; supported schemes: "
                              f"{', '.join(STORAGE_SCHEMES)} (sqlite:///path/to/runs.db, "
                              "postgresql://user@host:5432/dbname)")
        if scheme.startswith("sqlite"):
            rest = url.split("://", 1)[1]
            if not rest.startswith("/"):
                raise ConfigError(f"storage {shown!r}: a SQLite URL needs three slashes and a path, e.g. "
                                  "sqlite:///runs.db or sqlite:////abs/path/runs.db")
            file = rest[1:].split("?", 1)[0]
            if file and file != ":memory:":
                path = Path(file).expanduser()
    if path is not None:
        if path.exists() and not path.is_file():
            raise ConfigError(f"storage {shown!r}: {path} is not a regular file")
    return url
