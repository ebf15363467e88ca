"""Tuned defaults from the learning-rate sweep.

The sweep runs every method at its default learning rate (config ``<method>#0``) and at
multiples of it (``<method>#lr<x>``). Each run is scored by its *normalized gain* on its task,
``(metric - baseline) / (best on the task - baseline)``: 1 for the best run of any method on
that task, 0 for the constant predictor (a run that failed, e.g. diverged, counts 0). Tasks where
no run beat the constant predictor say nothing about learning rates and are left out. Per method
and multiplier the mean over tasks is the evidence; the winner is the multiplier with the highest
mean, called only where every grid point of the method covers the same tasks (else the method is
"incomplete"). Ties go to the multiplier nearest the current default.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.kb_analysis import PROTOCOL, task_label
from recommender.knowledge_base import KnowledgeBaseRow

_GRID_KEY = re.compile(r"^([a-z0-9_]+)#(?:0|lr([0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?))$")
_TIE = 1e-9


def grid_multiplier(config_key: str | None, method: str) -> float | None:
    """The learning-rate multiplier of a grid configuration key of ``method`` (1 for the
    default ``<method>#0``), or None for any other key (sampled configurations, other methods)."""
    match = _GRID_KEY.match(config_key or "")
    if match is None or match.group(1) != method:
        return None
    if match.group(2) is None:
        return 1.0
    value = float(match.group(2))
    return value if math.isfinite(value) and value > 0 else None


@dataclass(frozen=True)
class GridPoint:
    """One method at one learning-rate multiplier, over the tasks it ran on."""

    method: str
    multiplier: float
    tasks: tuple[str, ...]
    mean_gain: float  # mean normalized gain over ``tasks``
    failed: int  # runs without a metric, counted as gain 0
    learning_rate: float | None  # the rate the runs used (None where they disagree)


@dataclass(frozen=True)
class MethodVerdict:
    """The evidence for one method and, where it is complete, the winning learning rate."""

    method: str
    points: tuple[GridPoint, ...]  # sorted by multiplier
    winner: float | None  # the winning multiplier
    status: str  # "ok", or why there is no winner

    @property
    def learning_rate(self) -> float | None:
        """The winner's learning rate, rounded to 3 significant digits."""
        point = next((p for p in self.points if p.multiplier == self.winner), None)
        if point is None or point.learning_rate is None:
            return None
        return float(f"{point.learning_rate:.3g}")


@dataclass(frozen=True)
class LrEvidence:
    verdicts: tuple[MethodVerdict, ...]
    tasks: tuple[str, ...]  # the informative tasks
    flat_tasks: tuple[str, ...]  # tasks where no run beat the constant predictor
    runs: int  # grid runs read

    @property
    def multipliers(self) -> list[float]:
        return sorted({p.multiplier for v in self.verdicts for p in v.points})


def _normalized_gains(rows: Sequence[KnowledgeBaseRow]) -> tuple[dict[str, float], list[str]]:
    """Per task: the best metric of any protocol-2 run; and the tasks nothing learned on."""
    best: dict[str, float] = {}
    gain: dict[str, float] = {}
    for row in rows:
        r = row.result
        if row.protocol != PROTOCOL or not r.has_metric or r.baseline_metric is None:
            continue
        label = task_label(row)
        best[label] = max(best.get(label, -math.inf), float(r.best_metric))  # type: ignore[arg-type]
        gain[label] = best[label] - r.baseline_metric
    return gain, sorted(t for t, g in gain.items() if not g > 0)


def lr_evidence(rows: Sequence[KnowledgeBaseRow]) -> LrEvidence:
    """The evidence table and the winners, from the protocol-2 grid runs among ``rows``: only
    tasks the grid was run on (some run away from x1), so later runs at the tuned defaults on
    other tasks do not pass for grid points."""
    grid_tasks = {task_label(row) for row in rows
                  if row.protocol == PROTOCOL and grid_multiplier(row.config_key, row.result.method) not in (None, 1.0)}
    rows = [row for row in rows if task_label(row) in grid_tasks]
    spread, flat = _normalized_gains(rows)
    cells: dict[tuple[str, float], dict[str, list[tuple[float, bool, float | None]]]] = {}
    baselines: dict[str, float] = {}
    n_runs = 0
    for row in rows:
        r = row.result
        mult = grid_multiplier(row.config_key, r.method)
        if row.protocol != PROTOCOL or mult is None:
            continue
        n_runs += 1
        label = task_label(row)
        if r.baseline_metric is not None:
            baselines[label] = r.baseline_metric
        if not spread.get(label, 0.0) > 0:
            continue
        if r.has_metric and r.baseline_metric is not None:
            g = (float(r.best_metric) - r.baseline_metric) / spread[label]  # type: ignore[arg-type]
            failed = False
        elif r.status in ("failed", "oom"):
            g, failed = 0.0, True
        else:
            continue
        lr = r.params.get("learning_rate")
        lr = float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None
        cells.setdefault((r.method, mult), {}).setdefault(label, []).append((g, failed, lr))
    by_method: dict[str, list[GridPoint]] = {}
    for (method, mult), per_task in cells.items():
        gains = [sum(x[0] for x in v) / len(v) for v in per_task.values()]
        rates = [x[2] for v in per_task.values() for x in v]
        first = rates[0]
        lr = first if first is not None and all(
            x is not None and math.isclose(x, first, rel_tol=1e-6) for x in rates) else None
        by_method.setdefault(method, []).append(GridPoint(
            method=method, multiplier=mult, tasks=tuple(sorted(per_task)), mean_gain=sum(gains) / len(gains),
            failed=sum(x[1] for v in per_task.values() for x in v), learning_rate=lr))
    verdicts = [_verdict(method, sorted(points, key=lambda p: p.multiplier))
                for method, points in sorted(by_method.items())]
    return LrEvidence(tuple(verdicts), tuple(sorted(spread.keys() - set(flat))), tuple(flat), n_runs)


def _verdict(method: str, points: list[GridPoint]) -> MethodVerdict:
    if len(points) < 2:
        return MethodVerdict(method, tuple(points), None, "incomplete: one grid point")
    tasks = set(points[0].tasks)
    if any(set(p.tasks) != tasks for p in points):
        most = max(len(p.tasks) for p in points)
        short = ", ".join(f"x{p.multiplier:g} {len(p.tasks)}/{most}" for p in points if len(p.tasks) < most)
        return MethodVerdict(method, tuple(points), None, f"incomplete: {short} tasks")
    top = max(p.mean_gain for p in points)
    tied = [p for p in points if p.mean_gain >= top - _TIE]
    winner = min(tied, key=lambda p: abs(math.log(p.multiplier)))
    if winner.learning_rate is None:
        return MethodVerdict(method, tuple(points), winner.multiplier,
                             "inconsistent: the winner's runs used different learning rates")
    return MethodVerdict(method, tuple(points), winner.multiplier, "ok")


@dataclass(frozen=True)
class AppliedDefault:
    method: str
    learning_rate: float
    previous: float | None  # the file's previous default (None: the class attribute was used)
    widened: tuple[float, float] | None  # the searched learning-rate range, where it grew


def apply_defaults(evidence: LrEvidence, folder: Path | None = None) -> list[AppliedDefault]:
    """Write each winning learning rate into ``<folder>/<method>.json`` ``"defaults"``
    (default folder: ``search_spaces/``), keeping the rest of the file; the searched
    learning-rate range is widened where the winner lies outside it. Methods without a
    winner, or not registered here, are left alone."""
    from recommender.methods import method_names
    from recommender.paths import search_spaces_dir
    from recommender.search import spaces

    folder = folder or search_spaces_dir()
    known = set(method_names())
    applied = []
    for verdict in evidence.verdicts:
        lr = verdict.learning_rate
        if verdict.status != "ok" or lr is None or verdict.method not in known:
            continue
        path = folder / f"{verdict.method}.json"
        if not path.is_file():
            continue
        applied.append(_write_default(path, verdict.method, lr))
    spaces._load_all.cache_clear()
    return applied


def _write_default(path: Path, method: str, lr: float) -> AppliedDefault:
    from recommender.defaults import DEFAULTS_KEY, parse_defaults
    from recommender.errors import ConfigError

    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ConfigError(f"search space {path}: expected a JSON object")
    old = parse_defaults(data, f"search space {path}")
    data[DEFAULTS_KEY] = {**old, "learning_rate": lr}
    widened = None
    spec = data.get("params", {}).get("learning_rate")
    if isinstance(spec, dict) and spec.get("type") == "float" and not spec["low"] <= lr <= spec["high"]:
        spec["low"], spec["high"] = min(spec["low"], lr), max(spec["high"], lr)
        widened = (spec["low"], spec["high"])
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{method}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=4) + "\n")
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return AppliedDefault(method, lr, old.get("learning_rate"), widened)
