"""Small helpers shared by the pages: cached library resources, upload parsing, error display.

Everything here calls the library; nothing decides anything the library should decide.
Heavy modules (scikit-learn, optuna, datasets) are imported inside the functions so the first
paint does not wait for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from recommender.errors import DataError, RecommenderError

MAX_UPLOAD_MB = 20
UPLOAD_TYPES = ("csv", "tsv", "jsonl")
UPLOAD_FORMATS = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl"}
T = TypeVar("T")


# --- errors ----------------------------------------------------------------------------------
def show_error(exc: BaseException, prefix: str = "") -> None:
    """One line for the user: the library's message, never a traceback."""
    st.error(f"{prefix}{exc}" if isinstance(exc, RecommenderError) else f"{prefix}{type(exc).__name__}: {exc}")


def attempt(func: Callable[[], T], prefix: str = "") -> T | None:
    """Run ``func``; on a library error show it inline and return None."""
    try:
        return func()
    except RecommenderError as exc:
        show_error(exc, prefix)
        return None


# --- uploads ---------------------------------------------------------------------------------
def upload_format(filename: str) -> str:
    """The parser to use for an upload, from its extension only (the name is never a path)."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix not in UPLOAD_FORMATS:
        raise DataError(f"{filename}: unsupported file type {('.' + suffix) if suffix else '(none)'}; "
                        f"upload one of {', '.join('.' + s for s in UPLOAD_TYPES)}")
    return UPLOAD_FORMATS[suffix]


def parse_upload(filename: str, raw: bytes, max_mb: float = MAX_UPLOAD_MB) -> list[dict[str, Any]]:
    """Parse an uploaded file in memory into rows; oversized, non-UTF-8 or malformed files raise."""
    from recommender.tasks.reader import decode_bytes, parse_rows

    if len(raw) > max_mb * 1024 * 1024:
        raise DataError(f"{filename} is {len(raw) / 1024 / 1024:.1f} MB, over the {max_mb:g} MB upload limit; "
                        "subsample it first")
    fmt = upload_format(filename)
    display = Path(filename).name or "upload"
    return parse_rows(decode_bytes(raw, display), fmt, display)


def digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


# --- cached library resources ----------------------------------------------------------------
def knowledge_base_key() -> tuple[str, float]:
    """The knowledge base file and its modification time."""
    from recommender.knowledge_base import default_path

    path = default_path()
    return str(path), path.stat().st_mtime if path.exists() else 0.0


def knowledge_key() -> tuple[str, float, str, float]:
    """What the meta-model learns from, with versions: the knowledge base file and the app's run
    store (the searches run here). A new sweep result or a finished search refits the model."""
    from recommender.metamodel.recommend import storage_version

    storage = default_storage()
    return (*knowledge_base_key(), storage, storage_version(storage))


@st.cache_resource(max_entries=2, show_spinner="Fitting the meta-model on the knowledge base and your runs...")
def _metamodel(key: tuple[str, float, str, float]) -> Any:
    from recommender.metamodel.recommend import load_metamodel

    kb_path, _, storage, _ = key
    return load_metamodel(storage=storage, kb_path=Path(kb_path))


def metamodel() -> Any:
    """The fitted meta-model, shared by every session until the knowledge base or the run store
    changes."""
    return _metamodel(knowledge_key())


@st.cache_resource(max_entries=8, show_spinner="Loading the task...")
def bundled_task(name: str) -> Any:
    from recommender.tasks import load_task

    return load_task(name)


@st.cache_data(max_entries=64, show_spinner="Computing the task's meta-features...")
def metafeatures(key: str, _task: Any) -> Any:
    """Meta-features of a task; ``key`` identifies it (a bundled name or an upload digest)."""
    from recommender.metafeatures import compute_metafeatures

    return compute_metafeatures(_task)


@st.cache_data(show_spinner=False)
def bundled_tasks() -> list[dict[str, Any]]:
    """One row per bundled task (as ``recommender tasks`` lists them)."""
    from recommender.tasks import bundled_spec, bundled_task_names

    rows = []
    for name in bundled_task_names():
        spec, _ = bundled_spec(name)
        language = spec.language if not spec.cross_lingual else f"{spec.language}->{spec.eval_language}"
        rows.append({"name": name, "task_type": spec.task_type, "pair": spec.is_pair, "language": language,
                     "domain": spec.domain, "n_train": spec.n_train, "metric": spec.metric})
    return rows


def task_label(name: str) -> str:
    row = next((r for r in bundled_tasks() if r["name"] == name), None)
    if row is None:
        return name
    return f"{name} ({row['task_type']}, {row['language']}, {row['n_train']:,} train)"


@st.cache_data(show_spinner=False)
def methods_for(task_type: str) -> list[str]:
    """Registered tuning methods that support ``task_type``."""
    from recommender.methods import get_method_class, method_names

    return [m for m in method_names() if task_type in get_method_class(m).task_types]


@st.cache_data(show_spinner=False)
def method_descriptions() -> dict[str, str]:
    from recommender.methods import get_method_class, method_names

    return {m: get_method_class(m).description for m in method_names()}


# --- export --------------------------------------------------------------------------------
def zip_folder(folder: Path) -> bytes:
    """The folder as an in-memory zip (entries under the folder's name)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, Path(folder.name) / path.relative_to(folder))
    return buffer.getvalue()


def export_zip(export: Callable[[Path], Path], name: str) -> bytes:
    """Run an export into a temporary folder and return the bundle zipped in memory."""
    with tempfile.TemporaryDirectory(prefix="recommender-export-") as tmp:
        return zip_folder(export(Path(tmp) / name))


@st.cache_data(max_entries=32, show_spinner=False)
def recommendation_zip(candidate: dict[str, Any], task_ref: dict[str, Any], features: dict[str, Any],
                       fmt: str = "json") -> bytes:
    """Bundle of a recommended candidate (predicted numbers), zipped."""
    from recommender.export import export_recommendation

    return export_zip(lambda out: export_recommendation(candidate, task_ref, features, out, fmt=fmt),
                      f"recommendation-{candidate['method']}")


def safe_name(text: str, limit: int = 40) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:limit] or "task"


# --- the current task (shared by Recommend, Search and Export) -------------------------------
def upload_task_ref() -> dict[str, Any] | None:
    """TaskRef dict for the uploaded task in this session, writing its rows to a private file once."""
    from recommender.search.background import write_task_rows

    upload = st.session_state.get("upload")
    if not upload:
        return None
    if upload.get("path") is None:
        upload["path"] = str(write_task_rows(upload["rows"], upload["name"]))
    return {"source": upload["path"], "overrides": dict(upload["overrides"]), "max_train": None,
            "max_dev": None, "seed": 0}


def default_storage() -> str:
    from recommender.paths import default_storage_url

    return default_storage_url()
