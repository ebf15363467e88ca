"""Small helpers shared by the pages: cached library resources, upload parsing, error display.

Everything here calls the library; nothing decides anything the library should decide.
Heavy modules (scikit-learn, optuna, datasets) are imported inside the functions so the first
paint does not wait for them.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from recommender.errors import DataError, RecommenderError
from recommender.paths import user_dir
from recommender.types import MAX_UPLOAD_MB

UPLOAD_TYPES = ("csv", "tsv", "jsonl")
UPLOAD_FORMATS = {"csv": "csv", "tsv": "tsv", "jsonl": "jsonl"}
T = TypeVar("T")
#: 16 colours told apart at a glance (tab10, then the darker tab20b/c hues)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#ad494a", "#637939", "#e7ba52", "#6b6ecf", "#ce6dbd")


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
    """The knowledge base files and their latest modification time."""
    from recommender.knowledge_base import default_path, protocol1_path

    paths = [p for p in (default_path(), protocol1_path()) if p.exists()]
    return ",".join(str(p) for p in paths), max((p.stat().st_mtime for p in paths), default=0.0)


def knowledge_key() -> tuple[str, float, str, tuple[int, int]]:
    """What the meta-model learns from: the knowledge base file (and its version) and the app's
    run store with its count of finished trials. A new sweep result or a finished trial refits
    the model; a running search that only reports progress does not."""
    from recommender.fingerprints import storage_fingerprint

    storage = default_storage()
    return (*knowledge_base_key(), storage, storage_fingerprint(storage))


_FIT_LOCK = threading.Lock()


@st.cache_resource(max_entries=2, show_spinner="Fitting the meta-model on the knowledge base and your runs...")
def _metamodel(key: tuple[str, float, str, tuple[int, int]]) -> Any:
    from recommender import pipeline

    _, _, storage, fingerprint = key
    with _FIT_LOCK:  # one fit at a time in this server, whichever session or thread asks
        # a run store without a finished trial adds nothing (and is not created by reading it)
        return pipeline.learn(storage if fingerprint[1] else None)


def metamodel() -> Any:
    """The fitted meta-model, shared by every session until the knowledge base or the run store
    gains runs."""
    return _metamodel(knowledge_key())


@st.cache_resource(max_entries=8, show_spinner="Loading the task...")
def bundled_task(name: str) -> Any:
    from recommender.tasks import load_task

    return load_task(name)


@st.cache_data(max_entries=256, show_spinner="Computing the task's meta-features...")
def bundled_metafeatures(name: str) -> Any:
    """Meta-features of a bundled task: from the disk cache (filled by the warm-up process), else
    computed (loading the task only then)."""
    from recommender.feature_cache import bundled_fingerprint, cached_metafeatures

    return cached_metafeatures(bundled_fingerprint(name), lambda: bundled_task(name))


@st.cache_data(max_entries=64, show_spinner="Computing the task's meta-features...")
def upload_metafeatures(key: str, _task: Any) -> Any:
    """Meta-features of an uploaded task; ``key`` hashes the file's bytes and the column mapping,
    so the same file uploaded again (in any session, after a restart) is not recomputed."""
    from recommender.feature_cache import cached_metafeatures, fingerprint

    return cached_metafeatures(fingerprint("upload", key), _task)


_CALIBRATION_LOCK = threading.Lock()


def calibrate(hardware: str, tokens_p95: float, latency_batch: int) -> None:
    """Measure this machine for a task's sequence length (once; cached on disk by the library)
    before a recommendation needs it, one measurement at a time in this server."""
    from recommender.metamodel.calibration import hardware_profile, seq_bucket
    from recommender.metamodel.features import SERVING_BATCH

    with _CALIBRATION_LOCK:
        hardware_profile(hardware, seq_bucket(tokens_p95), tuple(sorted({1, latency_batch, SERVING_BATCH})))


@st.cache_data(show_spinner=False)
def device_label(hardware: str) -> str:
    """The device a hardware choice resolves to, in words (what times are calibrated on)."""
    from recommender.training.environment import resolve_device

    device = resolve_device(hardware)
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"this machine's CPU ({len(os.sched_getaffinity(0))} cores)"


# --- warm-up ---------------------------------------------------------------------------------
WARMUP_ENV = "RECOMMENDER_APP_WARMUP"  # "0": compute everything on demand (tests)
log = logging.getLogger("recommender.app")


def _warm() -> None:
    """Fit the meta-model and read the knowledge base's runs (this server's caches), then start a
    process that fills the meta-feature cache and the calibration for every bundled task at the
    lowest CPU priority (its own process: it never holds this server's interpreter lock)."""
    try:
        metamodel()
        from app.runs_data import knowledge_base_tables

        knowledge_base_tables(knowledge_base_key())  # the Runs page's big table
        import plotly.express  # noqa: F401  (the Runs page's plots)

        log_path = user_dir() / "cache" / "warm-up.log"
        log_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            subprocess.Popen([sys.executable, "-m", "recommender.feature_cache", "--warm"], stdin=subprocess.DEVNULL,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                                  "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    except Exception as exc:  # a warm-up is an optimisation: the pages compute on demand instead
        log.warning("warm-up stopped: %s: %s", type(exc).__name__, exc)


@st.cache_resource(show_spinner=False)
def _warmup(home: str) -> threading.Thread:
    thread = threading.Thread(target=_warm, name="recommender-warmup", daemon=True)
    thread.start()
    return thread


def start_warmup() -> None:
    """Start the warm-up once per server and user folder (off the script thread)."""
    if os.environ.get(WARMUP_ENV, "1") != "0":
        _warmup(str(user_dir()))


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


def _readable_candidate(candidate: dict[str, Any]) -> dict[str, Any]:
    """The candidate without empty predictions (no budget set: no probabilities to report)."""
    return {k: v for k, v in candidate.items() if k == "params" or v not in (None, {}, [], "")}


def bundle_data_name(file_name: str) -> str:
    """The uploaded file's name inside a bundle: letters, digits, ``_ - .`` and its extension."""
    stem, _, suffix = Path(file_name).name.rpartition(".")
    name = f"{safe_name(stem or 'data', 60)}.{suffix.lower() if suffix.lower() in UPLOAD_TYPES else 'csv'}"
    # a relative source that exists in the server's working folder would be made absolute by the
    # export: keep the name unique to the bundle
    return name if not Path(name).exists() else f"uploaded-{name}"


@st.cache_data(max_entries=32, show_spinner=False)
def recommendation_zip(candidate: dict[str, Any], task_ref: dict[str, Any], features: dict[str, Any],
                       fmt: str = "json", data_file: str | None = None, _data: bytes | None = None,
                       data_digest: str | None = None) -> bytes:
    """Bundle of a recommended candidate (predicted numbers), zipped.

    With ``data_file`` (an upload), the bundle carries the uploaded bytes under that name and its
    configuration and ``train.py`` point at it, relative to the bundle (``data_digest`` keys the
    cache on the bytes)."""
    from recommender import pipeline

    ref = dict(task_ref) if data_file is None else {**task_ref, "source": data_file}

    def export(out: Path) -> Path:
        path = pipeline.export_recommendation(_readable_candidate(candidate), ref, features, out, fmt=fmt)
        if data_file is not None and _data is not None:
            (path / data_file).write_bytes(_data)
            with open(path / "README.md", "a", encoding="utf-8") as readme:
                readme.write(f"\n## Data\n\n`{data_file}` is the uploaded file this recommendation was made for "
                             f"({len(_data) / 1024:,.1f} kB). Run `python train.py` from this folder to train on it; "
                             "`--data` trains on another file.\n")
        return path

    return export_zip(export, f"recommendation-{candidate['method']}")


def recommendation_bundle(rec: dict[str, Any], index: int, fmt: str = "json") -> bytes:
    """The zipped bundle of candidate ``index`` of a session's recommendation. For an upload the
    bundle carries the uploaded file (its only copy of the data) and refers to it relatively."""
    candidate = rec["candidates"][index]
    if rec.get("task_ref") is not None:
        return recommendation_zip(candidate, rec["task_ref"], rec["metafeatures"], fmt)
    upload = st.session_state.get("upload")
    if not upload or upload.get("id") != rec.get("task_id"):
        raise DataError("the uploaded file of this recommendation is no longer in this session; upload it again")
    ref = {"source": upload["file_name"], "overrides": dict(upload["overrides"]), "max_train": None,
           "max_dev": None, "seed": 0}
    return recommendation_zip(candidate, ref, rec["metafeatures"], fmt, bundle_data_name(upload["file_name"]),
                              upload["raw"], upload["raw_key"])


def safe_name(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:limit] or "task"


# --- the current task (shared by Recommend, Search and Export) -------------------------------
def upload_task_ref() -> dict[str, Any] | None:
    """TaskRef dict for the uploaded task in this session, writing its rows to a private file once."""
    from recommender.search.background import write_task_rows

    upload = st.session_state.get("upload")
    if not upload or not upload.get("id"):
        return None
    if upload.get("path") is None:
        upload["path"] = str(write_task_rows(upload["rows"], upload["name"]))
    return {"source": upload["path"], "overrides": dict(upload["overrides"]), "max_train": None,
            "max_dev": None, "seed": 0}


def default_storage() -> str:
    from recommender.paths import default_storage_url

    return default_storage_url()


# --- presentation ----------------------------------------------------------------------------
def md(text: str) -> str:
    """``text`` (e.g. a user's file name) shown literally inside Markdown: no links, no markup."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", str(text).replace("\n", " "))


def human(column: str) -> str:
    """A column header for people: ``time_to_best_s`` -> ``Time to best (s)``."""
    words = column.replace("_", " ").strip()
    for unit in ("s", "ms", "mb", "pct"):
        if words.endswith(" " + unit):
            shown = {"mb": "MB", "pct": "%"}.get(unit, unit)
            words = f"{words[: -len(unit) - 1]} ({shown})"
    return words[:1].upper() + words[1:]


@st.cache_data(show_spinner=False)
def method_colours() -> dict[str, str]:
    """One distinct colour per registered method, the same on every plot."""
    from recommender.methods import method_names

    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(method_names())}
