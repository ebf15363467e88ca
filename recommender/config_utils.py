"""Helpers for config dataclasses: validated fields, ``key=value`` parsing, typed coercion."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, TypeVar

from recommender.errors import ConfigError, unknown_name

C = TypeVar("C")


def check_range(owner: str, name: str, value: float, low: float | None = None,
                high: float | None = None, *, low_open: bool = False) -> None:
    """Raise :class:`ConfigError` naming the field, value and allowed range when out of range."""
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
                return int(float(text)) if float(text).is_integer() else int(text)
            if target is float:
                return float(text)
            if target is str:
                return text
            if typing.get_origin(target) in (tuple, list):
                items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t]
                return tuple(items)
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
