"""The portable knowledge base: one JSON line per past run, schema-versioned.

Shipped in ``data/knowledge_base/runs.jsonl``; exported from any run store with
:func:`export_knowledge_base` and read back with :func:`load_knowledge_base`. Each row::

    {"schema_version": 1, "run_id": "<study>#<trial>", "study": ..., "kind": "sweep"|"search",
     "task": <task name>, "size": <n_train used>, "metafeatures": {...}, "result": {RunResult}}
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recommender.errors import DataError
from recommender.paths import knowledge_base_dir
from recommender.types import MetaFeatures, RunResult

KB_SCHEMA_VERSION = 1
KB_FILE = "runs.jsonl"


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

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": KB_SCHEMA_VERSION, "run_id": self.run_id, "study": self.study,
                "kind": self.kind, "task": self.task, "size": self.size, "config_key": self.config_key,
                "metafeatures": self.metafeatures.to_dict(), "result": self.result.to_dict()}


def default_path() -> Path:
    return knowledge_base_dir() / KB_FILE


def rows_from_storage(storage: str | None = None) -> list[KnowledgeBaseRow]:
    """Every finished run of every study of ours in ``storage`` (sweeps and searches)."""
    from recommender.store import iter_runs

    rows = []
    for run in iter_runs(storage):
        info = run.study_info
        if "metafeatures" not in info:
            continue
        task = info.get("task_name") or info.get("task", {}).get("name", "")
        # sweep runs are named by their configuration, so re-running one replaces it
        rows.append(KnowledgeBaseRow(
            run_id=f"{run.study}#{run.config_key or run.trial_number}", study=run.study, kind=info.get("kind", "search"),
            task=task, size=int(info["metafeatures"]["n_train"]),
            metafeatures=MetaFeatures.from_dict(info["metafeatures"]), result=run.result,
            config_key=run.config_key))
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
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_knowledge_base(storage: str | None = None, path: Path | None = None,
                          merge_existing: bool = True) -> tuple[Path, int]:
    """Export the runs of ``storage`` to ``path`` (merged with rows already there, by run id)."""
    path = path or default_path()
    rows = {r.run_id: r for r in (load_knowledge_base(path) if merge_existing and path.exists() else [])}
    for row in rows_from_storage(storage):
        rows[row.run_id] = row
    write_rows(list(rows.values()), path)
    return path, len(rows)


def load_knowledge_base(path: Path | None = None) -> list[KnowledgeBaseRow]:
    """Read a knowledge base file; a bad row is reported with its file and line number."""
    path = path or default_path()
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
                    result=RunResult.from_dict(data["result"]), config_key=data.get("config_key")))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{path}: line {number} is not a valid run record ({exc})") from None
    if not rows:
        raise DataError(f"knowledge base {path} is empty")
    return rows
