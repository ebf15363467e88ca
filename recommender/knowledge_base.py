"""The portable knowledge base: one JSON line per past run, schema-versioned.

Shipped in ``data/knowledge_base/runs.jsonl``; exported from any run store with
:func:`export_knowledge_base` (by default into the user's folder, never into the installed
package) and read back with :func:`load_knowledge_base`. Each row::

    {"schema_version": 1, "protocol": 2, "run_id": "<study>#<trial>", "study": ...,
     "kind": "sweep"|"search", "task": <task name>, "size": <n_train used>,
     "metafeatures": {...}, "result": {RunResult}}

``protocol`` says how the run was trained and scored: 1 for the short budgeted runs of the
first knowledge base (kept in ``runs_protocol1.jsonl``), 2 for runs to convergence scored on
the whole dev set beside the constant predictor (:mod:`recommender.sweep`). Runs of a user's
own searches carry protocol 0 (their budget is whatever the user chose).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.errors import DataError
from recommender.paths import knowledge_base_dir, user_dir
from recommender.types import MetaFeatures, RunResult

KB_SCHEMA_VERSION = 1
KB_FILE = "runs.jsonl"
PROTOCOL1_FILE = "runs_protocol1.jsonl"


@dataclass
class KnowledgeBaseRow:
    run_id: str
    study: str
    kind: str
    task: str
    size: int
    metafeatures: MetaFeatures
    result: RunResult
    config_key: str | None = None  # sweep runs: "<method>#<configuration index>"
    protocol: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": KB_SCHEMA_VERSION, "protocol": self.protocol, "run_id": self.run_id,
                "study": self.study,
                "kind": self.kind, "task": self.task, "size": self.size, "config_key": self.config_key,
                "metafeatures": self.metafeatures.to_dict(), "result": self.result.to_dict()}


def default_path() -> Path:
    """The shipped knowledge base (read-only for this package)."""
    return knowledge_base_dir() / KB_FILE


def protocol1_path() -> Path:
    """The shipped protocol-1 runs (short budgets), kept apart from the current protocol's."""
    return knowledge_base_dir() / PROTOCOL1_FILE


def user_export_path() -> Path:
    """Where :func:`export_knowledge_base` writes by default: the user's folder."""
    return user_dir(create=False) / "knowledge_base" / KB_FILE


def rows_from_storage(storage: str | None = None) -> list[KnowledgeBaseRow]:
    """Every finished run of every study of ours in ``storage`` (sweeps and searches)."""
    from recommender.studies import iter_runs

    rows = []
    for run in iter_runs(storage):
        features = run.record.metafeatures
        if features is None:
            continue
        # sweep runs are named by their configuration, so re-running one replaces it
        rows.append(KnowledgeBaseRow(
            run_id=f"{run.study}#{run.config_key or run.trial_number}", study=run.study, kind=run.record.kind,
            task=run.record.task_label, size=int(features.n_train), metafeatures=features, result=run.result,
            config_key=run.config_key, protocol=run.record.run_protocol))
    return rows


def write_rows(rows: list[KnowledgeBaseRow], path: Path) -> None:
    """Write atomically (temp file + rename): a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r.run_id)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".runs.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
        # mkstemp makes the file 0600: keep an existing file's mode, else the usual umask mode
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_knowledge_base(storage: str | None = None, path: Path | None = None,
                          merge_existing: bool = True) -> tuple[Path, int]:
    """Export the runs of ``storage`` to ``path`` (merged with rows already there, by run id).

    ``storage`` must exist (a mistyped path is an error, not a new empty database); ``path``
    defaults to :func:`user_export_path`.
    """
    from recommender.paths import default_storage_url
    from recommender.store import require_storage

    require_storage(storage or default_storage_url(create=False))
    path = path or user_export_path()
    if path.exists() and not path.is_file():
        raise DataError(f"knowledge base output {path} is not a regular file")
    rows = {r.run_id: r for r in (load_knowledge_base(path) if merge_existing and path.exists() else [])}
    for row in rows_from_storage(storage):
        rows[row.run_id] = row
    write_rows(list(rows.values()), path)
    return path, len(rows)


def load_knowledge_base(path: Path | None = None) -> list[KnowledgeBaseRow]:
    """Read a knowledge base file; a bad row is reported with its file and line number.

    Without ``path``: the shipped knowledge base, ``runs.jsonl`` and the older protocol's
    ``runs_protocol1.jsonl`` together (the meta-model picks protocols, see ``select_protocol``)."""
    if path is None:
        files = [p for p in (default_path(), protocol1_path()) if p.exists()]
        if not files:
            raise DataError(f"knowledge base not found: {default_path()}")
        return [row for p in files for row in load_knowledge_base(p)]
    if not path.exists():
        raise DataError(f"knowledge base not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
            version = data.get("schema_version")
            if not isinstance(version, int) or version > KB_SCHEMA_VERSION:
                raise DataError(
                    f"{path}: line {number} has schema_version {version!r}; this package reads up to "
                    f"{KB_SCHEMA_VERSION}. Upgrade the package to read it")
            try:
                rows.append(KnowledgeBaseRow(
                    run_id=data["run_id"], study=data["study"], kind=data["kind"], task=data["task"],
                    size=int(data["size"]), metafeatures=MetaFeatures.from_dict(data["metafeatures"]),
                    result=RunResult.from_dict(data["result"]), config_key=data.get("config_key"),
                    protocol=int(data.get("protocol", 1))))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}: line {number} is not a valid run record ({exc})") from None
    if not rows:
        raise DataError(f"knowledge base {path} is empty")
    return rows


#: a (task, size) set "learned" when its best run ends this far above its own first evaluation
SET_LEARNED_RISE = 0.03


@dataclass
class CoverageRow:
    """What a knowledge base holds for one (task, size, protocol): for ``kb status``."""

    task: str
    size: int
    protocol: int
    runs: int
    methods: int
    configs_per_method: float
    learned_runs: int  # runs above the constant predictor (or, without one, above their start)
    set_learned: bool  # the best run rose >= 3 points above its own first evaluation
    precision: str


def _run_learned(result: RunResult) -> bool:
    if result.learned is not None:
        return result.learned
    curve = result.curve
    return bool(curve) and result.has_metric and float(result.best_metric) > curve[0].metric + 0.01  # type: ignore[arg-type]


def _rise(result: RunResult) -> float:
    if not result.curve or not result.has_metric:
        return 0.0
    return max(p.metric for p in result.curve) - result.curve[0].metric


def coverage(rows: list[KnowledgeBaseRow]) -> list[CoverageRow]:
    """Counts per (task, size, protocol), sorted by protocol, size and task."""
    groups: dict[tuple[str, int, int], list[KnowledgeBaseRow]] = {}
    for row in rows:
        groups.setdefault((row.task, row.size, row.protocol), []).append(row)
    out = []
    for (task, size, protocol), members in sorted(groups.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])):
        methods = {r.result.method for r in members}
        precisions = sorted({r.result.precision for r in members})
        out.append(CoverageRow(
            task=task, size=size, protocol=protocol, runs=len(members), methods=len(methods),
            configs_per_method=len(members) / max(1, len(methods)),
            learned_runs=sum(_run_learned(r.result) for r in members),
            set_learned=max(_rise(r.result) for r in members) >= SET_LEARNED_RISE,
            precision="/".join(precisions)))
    return out
