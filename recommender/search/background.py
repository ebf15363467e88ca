"""Searches that run outside the caller's process (the app starts them, a page reload loses nothing).

:func:`start_search_process` writes the task and the :class:`SearchConfig` as one
:class:`~recommender.search.job.SearchJob` (``<user_dir>/searches/<study>.job``), spawns
``python -m recommender.cli search --job <file> --study <name> --json`` in its own session (it
outlives the app), logs to ``<user_dir>/searches/<study>.log`` and records what is needed to
find it again in ``<user_dir>/searches/<study>.json``. :func:`search_status` reads
that record, whether the process is alive, and the trials from the storage;
:func:`stop_search` ends the process and everything it started::

    pid = start_search_process(TaskRef("glue_rte"), None, "rte-1", SearchConfig(time_budget=600))
    search_status("rte-1").state      # "starting", "running", "finished", "failed" or "stopped"

An uploaded data set becomes a search's task through :func:`write_task_rows`: a private JSONL
file whose path is the :class:`~recommender.search.config.TaskRef` source.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recommender.errors import ConfigError, DataError, StorageError, StorageNotFoundError
from recommender.paths import user_dir
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.job import SearchJob
from recommender.store import STORAGE_ENV, mask_url, remember_url, storage_url

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
STATES = ("starting", "running", "finished", "failed", "stopped")
STOP_WAIT_S = 5.0

#: processes started by this process: polled so finished ones are reaped (no zombies)
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass
class SearchStatus:
    """Where a background search stands; ``result`` is the storage's summary when it exists."""

    study: str
    storage: str
    pid: int
    state: str
    started_at: float
    time_budget: float | None
    task: str
    log_path: str
    elapsed_s: float
    time_left_s: float | None
    result: Any = None  # a recommender.search.study.SearchResult, once the study exists
    config: SearchConfig | None = None
    error: str | None = None
    log_tail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.state in ("starting", "running")


def searches_dir() -> Path:
    path = user_dir() / "searches"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def check_study_name(study: str) -> str:
    """Study names become file names: letters, digits, ``_ . -``, at most 100 characters."""
    if not isinstance(study, str) or not STUDY_NAME.match(study):
        raise ConfigError(f"study name {study!r}; expected 1-100 letters, digits, '_', '.' or '-' "
                          "(starting with a letter or digit)")
    return study


def _record_path(study: str) -> Path:
    return searches_dir() / f"{check_study_name(study)}.json"


def _read_record(study: str) -> dict[str, Any]:
    path = _record_path(study)
    if not path.is_file():
        known = ", ".join(r["study"] for r in _records()) or "none"
        raise ConfigError(f"no background search named {study!r}; known: {known}")
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read the record of search {study!r} ({path}): {exc}") from None


def _write_record(record: dict[str, Any]) -> None:
    path = _record_path(record["study"])
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
    os.replace(tmp, path)


def _records() -> list[dict[str, Any]]:
    out = []
    for path in searches_dir().glob("*.json"):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a damaged record is not a search we can show
    return sorted(out, key=lambda r: -float(r.get("started_at", 0)))


# --- starting ------------------------------------------------------------------------------
def job_path(study: str) -> Path:
    """Where the :class:`~recommender.search.job.SearchJob` of a background search is written
    (not ``*.json``: that is a search's record)."""
    return searches_dir() / f"{check_study_name(study)}.job"


def search_command(job_file: Path, study_name: str) -> list[str]:
    """The ``recommender search`` command line that runs the search ``job_file`` describes.

    The task and the configuration travel as one record in the file, not flag by flag; the
    command names no storage: :func:`start_search_process` passes it in the child's environment
    (``RECOMMENDER_STORAGE``), where no other user can read a password.
    """
    return [sys.executable, "-m", "recommender.cli", "search", "--job", str(job_file),
            "--study", check_study_name(study_name), "--json"]


def start_search_process(task_ref: TaskRef, storage: str | None, study_name: str, config: SearchConfig,
                         strategy: str = "optuna") -> int:
    """Start a budgeted search (``strategy``: :data:`~recommender.search.config.STRATEGIES`) in a
    detached process and record it; return its pid.

    Refuses a study name whose search is still running. Starting a finished study's name again
    resumes that study (same task) in the storage.
    """
    check_study_name(study_name)
    storage = storage_url(storage)
    source = task_ref.source
    if Path(source).expanduser().exists():  # the child may run from another folder
        task_ref = TaskRef(str(Path(source).expanduser().resolve()), dict(task_ref.overrides), task_ref.max_train,
                           task_ref.max_dev, task_ref.seed)
    if _record_path(study_name).is_file():
        previous = search_status(study_name, with_result=False)
        if previous.alive:
            raise ConfigError(f"a search named {study_name!r} is already running (pid {previous.pid}); "
                              "stop it or choose another name")
    cmd = search_command(SearchJob(task_ref, config, strategy).write(job_path(study_name)), study_name)
    log_path = searches_dir() / f"{study_name}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", STORAGE_ENV: storage}
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        with os.fdopen(fd, "ab") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting search {study_name}\n".encode())
            log.flush()
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                    start_new_session=True, close_fds=True)
    except OSError as exc:
        raise StorageError(f"cannot start the search process: {exc}") from None
    _children[proc.pid] = proc
    remember_url(storage)  # the record holds the masked URL; this process can still open it
    _write_record({"pid": proc.pid, "study": study_name, "storage": mask_url(storage), "started_at": time.time(),
                   "time_budget": config.time_budget, "task": Path(task_ref.source).stem
                   if Path(task_ref.source).exists() else task_ref.source, "task_ref": task_ref.to_dict(),
                   "config": config.to_dict(), "strategy": strategy, "log": str(log_path), "stopped": False,
                   "ended_at": None})
    return proc.pid


def write_task_rows(rows: list[dict[str, Any]], name: str = "uploaded") -> Path:
    """Write in-memory rows (e.g. an upload) to a private JSONL file usable as a TaskRef source.

    The folder is created with ``tempfile.mkdtemp`` (mode 0o700) under ``<user_dir>/uploads``;
    ``name`` only names the file (the task), after removing anything but letters, digits, ``_`` and ``-``.
    """
    if not rows:
        raise DataError("no rows to write")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(name)).stem)[:60].strip("_") or "uploaded"
    parent = user_dir() / "uploads"
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
    path = folder / f"{stem}.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return path


# --- watching ------------------------------------------------------------------------------
def _alive(pid: int, study: str) -> bool:
    """Is ``pid`` still the search process of ``study`` (not a zombie, not a recycled pid)?"""
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return "search" in cmdline and study in cmdline


def _log_tail(path: str, max_bytes: int = 20_000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _outcome_from_log(tail: str) -> tuple[str, str | None]:
    """'finished' when the run's JSON report was printed, else 'failed' with the error line."""
    lines = tail.splitlines()
    session = lines[max((i for i, ln in enumerate(lines) if ln.startswith("--- ")), default=0):]
    for line in reversed(session):
        if line.startswith("{"):
            try:
                if "study_name" in json.loads(line):
                    return "finished", None
            except ValueError:
                pass
    errors = [ln for ln in session if ln.startswith("error: ")]
    if errors:
        return "failed", errors[-1][len("error: "):]
    last = [ln for ln in session if ln.strip()][-3:]
    return "failed", "the search process ended without a result" + (f": {' / '.join(last)}" if last else "")


def _summary(storage: str, study: str) -> tuple[Any, SearchConfig | None]:
    from recommender.search.study import load_search, summarize

    try:
        st, config = load_search(storage, study)
    except (KeyError, StorageNotFoundError):  # not created yet (the task is being prepared)
        return None, None
    return summarize(st, config), config


def search_status(study: str, *, with_result: bool = True) -> SearchStatus:
    """The state of a background search: process, elapsed and remaining time, trials so far."""
    record = _read_record(study)
    alive = _alive(int(record["pid"]), study)
    tail = _log_tail(record["log"])
    now = time.time()
    error = None
    if alive:
        state = "running"
        ended = now
    else:
        if record.get("stopped"):
            state = "stopped"
        else:
            state, error = _outcome_from_log(tail)
        if record.get("ended_at") is None or record.get("state") != state:
            try:
                record["ended_at"] = record.get("ended_at") or os.path.getmtime(record["log"])
            except OSError:
                record["ended_at"] = now
            record["state"] = state
            _write_record(record)
        ended = float(record["ended_at"])
    result, config = _summary(record["storage"], study) if with_result else (None, None)
    if state == "running" and result is None and with_result:
        state = "starting"
    elapsed = max(0.0, ended - float(record["started_at"]))
    budget = record.get("time_budget")
    left = max(0.0, float(budget) - elapsed) if budget is not None and alive else None
    if config is None and record.get("config"):
        config = SearchConfig.from_dict(record["config"])
    return SearchStatus(study=study, storage=record["storage"], pid=int(record["pid"]), state=state,
                        started_at=float(record["started_at"]), time_budget=budget, task=record.get("task", ""),
                        log_path=record["log"], elapsed_s=elapsed, time_left_s=left, result=result, config=config,
                        error=error, log_tail=tail[-4000:],
                        extra={"task_ref": record.get("task_ref"), "strategy": record.get("strategy", "optuna")})


def list_searches() -> list[dict[str, Any]]:
    """Every recorded background search, newest first, with ``alive`` (cheap: no storage access)."""
    out = []
    for record in _records():
        try:
            study = check_study_name(str(record.get("study")))
        except ConfigError:
            continue
        alive = _alive(int(record.get("pid", -1)), study)
        state = "running" if alive else ("stopped" if record.get("stopped") else record.get("state") or "ended")
        out.append({**record, "alive": alive, "state": state})
    return out


def stop_search(study: str) -> SearchStatus:
    """SIGTERM the search's process group and every process it started; mark it stopped."""
    import psutil

    record = _read_record(study)
    pid = int(record["pid"])
    if _alive(pid, study):
        try:
            family = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            family = []
        try:
            os.killpg(pid, signal.SIGTERM)  # start_new_session=True: the group id is the pid
        except ProcessLookupError:
            pass
        for proc in family:  # trial workers run in sessions of their own
            try:
                proc.terminate()
            except psutil.Error:
                pass
        deadline = time.time() + STOP_WAIT_S
        while time.time() < deadline and (_alive(pid, study) or any(_running(p) for p in family)):
            time.sleep(0.1)
        for proc in family:
            try:
                proc.kill()
            except psutil.Error:
                pass
        if _alive(pid, study):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _alive(pid, study)
        record["stopped"] = True
        record["state"] = "stopped"
        record["ended_at"] = time.time()
        _write_record(record)
    return search_status(study)


def _running(proc: Any) -> bool:
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
