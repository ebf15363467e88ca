"""The run store: an Optuna storage (SQLite by default, PostgreSQL for many workers).

A study's user attribute ``recommender`` holds its :class:`~recommender.study_record.StudyRecord`
(task spec, meta-features, configuration, model, hardware; listed by
:func:`recommender.studies.study_summaries`); each trial's user attribute ``result`` holds its
full :class:`RunResult`, plus a few flat attributes (``status``, ``metric``, ...) that
optuna-dashboard shows as columns.

Storage URLs. ``sqlite:///path/runs.db``, ``postgresql://user@host:5432/db`` (psycopg 3, the
driver SQLAlchemy picks for the plain scheme), ``postgresql+psycopg2://...`` or a journal file
``runs.log``. A password never has to be typed on a command line: libpq reads ``PGPASSWORD`` and
``~/.pgpass``, and the whole URL may come from the ``RECOMMENDER_STORAGE`` environment variable.
Every URL this package shows is rendered by :func:`mask_url` (password as ``***``).

Opening. :func:`open_storage` creates a missing store (commands that write: ``search``,
``kb sweep``); :func:`open_existing_storage` refuses to (commands that only read: ``worker``,
``export``, ``meta fit``, ``recommend``, ``kb export``). A failure to connect is one
:class:`~recommender.errors.StorageError` line naming the cause, host:port and database.
"""

from __future__ import annotations

import os
import random
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.config_utils import JOURNAL_SUFFIXES, check_storage_url
from recommender.errors import ConfigError, StorageError, StorageNotFoundError
from recommender.types import SERVING_BATCH, RunResult

if TYPE_CHECKING:
    import optuna

#: version of what a study stores; 2: search configurations gained heartbeat settings and
#: ``max_consecutive_failures`` (see ``recommender.search.config.from_stored``)
SCHEMA_VERSION = 2
STUDY_ATTR = "recommender"
RESULT_ATTR = "result"
#: environment variable holding the whole storage URL (so a password stays off command lines)
STORAGE_ENV = "RECOMMENDER_STORAGE"

HEARTBEAT_INTERVAL = 30
GRACE_PERIOD = 90
CONNECT_TIMEOUT_S = 5  # a server that does not answer is reported, not waited on
CREATE_RETRIES = 8  # concurrent first opens of one new store race on its tables

# driver message fragment -> the cause we name (psycopg 3 and psycopg2 word them differently)
_CAUSES = (
    (("connection refused",), "connection refused (is the server running and listening there?)"),
    (("could not translate host name", "failed to resolve host", "name or service not known",
      "nodename nor servname", "temporary failure in name resolution"), "unknown host"),
    (("password authentication failed", "authentication failed", "no password supplied",
      "role ", "pg_hba.conf"), "authentication failed (check the user, PGPASSWORD or ~/.pgpass)"),
    (("does not exist",), "the database does not exist"),
    (("timeout expired", "timed out", "connection timeout"),
     f"no answer within {CONNECT_TIMEOUT_S} s (connect timeout)"),
    (("network is unreachable", "no route to host"), "network unreachable"),
)
_RACE = ("already exists", "unique constraint", "duplicate key", "database is locked")


#: masked URL -> the URL with its password, for URLs this process was given (never written anywhere)
_known_urls: dict[str, str] = {}
MASK = "***"


def storage_url(url: str | None = None) -> str:
    """The storage to use: ``url``, else ``$RECOMMENDER_STORAGE``, else the user folder's SQLite file.

    A masked URL (one this package showed or recorded) is resolved back to the URL this process
    was given, or ``$RECOMMENDER_STORAGE`` when it masks the same, or else the URL without a
    password (libpq then reads ``PGPASSWORD`` / ``~/.pgpass``).
    """
    from recommender.paths import default_storage_url

    url = url or os.environ.get(STORAGE_ENV) or default_storage_url()
    if _password(url) != MASK:
        return url
    env = os.environ.get(STORAGE_ENV)
    if url in _known_urls:
        return _known_urls[url]
    if env and mask_url(env) == url:
        return env
    return without_password(url)


def remember_url(url: str) -> str:
    """Let this process resolve ``mask_url(url)`` back to ``url`` (see :func:`storage_url`); returns the mask."""
    masked = mask_url(url)
    if masked != url:
        _known_urls[masked] = url
    return masked


def mask_url(url: str | None) -> str:
    """``url`` as it may be shown: any password replaced by ``***``."""
    if not url:
        return ""
    if "://" not in url:  # not a URL, but "user:secret@host/db" must not be echoed either
        return re.sub(r"^([^/:@]*):[^@/]*@", r"\1:***@", url)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: mask anything between "user:" and "@"
        return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def without_password(url: str) -> str:
    """``url`` with any password (or its ``***`` mask) removed."""
    if "://" not in url:
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except Exception:
        return re.sub(r"(//[^/:@]*):[^@/]*@", r"\1@", url)


def _password(url: str) -> str | None:
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).password
    except Exception:
        return None


def _scrub(text: str, url: str) -> str:
    password = _password(url)
    return text.replace(password, "***") if password else text


def storage_file(url: str) -> Path | None:
    """The local file behind a SQLite URL or a journal path; ``None`` for a database server."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///"):].split("?", 1)[0])
    if "://" not in url:
        return Path(url)
    return None


def _is_journal(url: str) -> bool:
    return "://" not in url and url.endswith(JOURNAL_SUFFIXES)


def _check_url(url: str) -> None:
    """The one syntax check of a storage URL (:func:`check_storage_url`), as a storage error."""
    try:
        check_storage_url(url)
    except ConfigError as exc:
        raise StorageError(str(exc)) from None


def _check_file(url: str, must_exist: bool) -> Path | None:
    """Local-file checks made before any driver touches the path (which would create it)."""
    path = storage_file(url)
    if path is None:
        return None
    shown = mask_url(url)
    if path.exists():
        if not path.is_file():
            raise StorageError(f"storage {shown!r}: {path} is not a regular file")
        return path
    if must_exist:
        raise StorageNotFoundError(f"no run store at {path} (storage {shown!r}); check the path, or "
                                   "create one with `recommender search`")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise StorageError(f"storage {shown!r}: folder {parent} does not exist; create it first")
    return path


def storage_exists(url: str | None = None) -> bool:
    """Whether ``url`` already holds a run store (a SQLite/journal file, or a database with Optuna's
    tables); never creates anything. Connection failures raise :class:`StorageError`."""
    url = storage_url(url)
    _check_url(url)
    path = storage_file(url)
    if path is not None:
        return path.is_file()
    return _has_tables(url)


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if "connect_timeout" not in url:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    return kwargs


def _where(url: str) -> str:
    """``host:port, database 'db'`` of a server URL, for messages."""
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        return f"{parsed.host or 'localhost'}:{parsed.port or 5432}, database {parsed.database!r}"
    except Exception:
        return mask_url(url)


def _explain(url: str, exc: BaseException) -> StorageError:
    """One line naming why ``url`` could not be used."""
    shown = mask_url(url)
    text = _scrub(" ".join(str(exc).split()), url)
    lowered = text.lower()
    if isinstance(exc, ImportError) or "can't load plugin" in lowered:
        driver = "psycopg (pip install 'psycopg[binary]')" if "+psycopg2" not in url else "psycopg2-binary"
        return StorageError(f"storage {shown!r}: its database driver is not installed ({exc}); install {driver}")
    if storage_file(url) is None:
        for fragments, cause in _CAUSES:
            if any(f in lowered for f in fragments):
                return StorageError(f"cannot connect to PostgreSQL at {_where(url)}: {cause} "
                                    f"(storage {shown!r})")
    reason = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", text)[:300]
    return StorageError(f"cannot open storage {shown!r}: {reason}")


def _has_tables(url: str) -> bool:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
    try:
        return bool(sqlalchemy.inspect(engine).has_table("studies"))
    except ImportError as exc:
        raise _explain(url, exc) from None
    except Exception as exc:
        raise _explain(url, exc) from None
    finally:
        engine.dispose()


def _remove_new_file(path: Path | None) -> None:
    """Remove a SQLite file this process created but could not finish (and its side files)."""
    if path is None:
        return
    for candidate in (path, Path(f"{path}-journal"), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            candidate.unlink()
        except OSError:
            pass


def open_storage(url: str | None = None, *, heartbeat: bool = True, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, create: bool = True) -> optuna.storages.BaseStorage:
    """Open the storage at ``url`` (see :func:`storage_url`), creating it unless ``create=False``.

    RDB storages get heartbeats (``heartbeat_interval`` / ``grace_period`` seconds) and a retry
    callback, so a killed worker's trial is marked FAIL and re-queued once. Errors are one line,
    with the password masked; a store this call started to create but could not finish is removed.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    url = storage_url(url)
    _check_url(url)
    path = _check_file(url, must_exist=not create)
    if _is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url))
    if not create:
        require_storage(url)
    new_file = path is not None and not path.exists()
    kwargs: dict[str, Any] = {}
    if heartbeat:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryHeartbeatStaleTrialCallback(max_retry=1)
        kwargs = {"heartbeat_interval": heartbeat_interval or HEARTBEAT_INTERVAL,
                  "grace_period": grace_period or GRACE_PERIOD, "heartbeat_stale_trial_callback": retry}
    try:
        for attempt in range(CREATE_RETRIES):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return RDBStorage(url, engine_kwargs=_engine_kwargs(url), **kwargs)
            except Exception as exc:  # sqlalchemy raises many kinds; all mean "cannot use it"
                raced = any(f in str(exc).lower() for f in _RACE)
                if not raced or attempt == CREATE_RETRIES - 1:
                    if new_file and not raced and not _holds_studies(path):
                        _remove_new_file(path)
                    raise _explain(url, exc) from None
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))  # another process is creating it
        raise AssertionError("unreachable")
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _holds_studies(path: Path | None) -> bool:
    """Whether a SQLite file holds a study (then another process made it: never remove it)."""
    import sqlite3

    if path is None or not path.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            return bool(conn.execute("SELECT count(*) FROM studies").fetchone()[0])
    except sqlite3.Error:
        return False


@contextmanager
def removed_if_failed(url: str) -> Iterator[None]:
    """Remove the SQLite file behind ``url`` if it is new and the block fails before a study is in it."""
    path = storage_file(url) if not _is_journal(url) else None
    new = path is not None and not path.exists()
    try:
        yield
    except BaseException:
        if new and not _holds_studies(path):
            _remove_new_file(path)
        raise


def open_existing_storage(url: str | None = None, **kwargs: Any) -> optuna.storages.BaseStorage:
    """Open a store that must already exist (commands that only read); a missing one is a
    :class:`~recommender.errors.StorageNotFoundError` naming its path, and nothing is created."""
    return open_storage(url, create=False, **kwargs)


def require_storage(url: str | None = None) -> str:
    """Check that ``url`` holds a run store without opening Optuna on it; return the URL."""
    url = storage_url(url)
    _check_url(url)
    path = _check_file(url, must_exist=True)
    if _is_journal(url) or _has_tables(url):
        return url
    where = str(path) if path is not None else _where(url)
    raise StorageNotFoundError(f"no run store in {where} (storage {mask_url(url)!r}): it holds no Optuna "
                               "tables; create one with `recommender search`")


def result_attrs(result: RunResult, serving_batch: int = SERVING_BATCH) -> dict[str, Any]:
    """User attributes written for one trial: the full result and flat columns."""
    return {
        RESULT_ATTR: result.to_dict(),
        "status": result.status,
        "metric": result.best_metric,
        "time_to_best_s": result.time_to_best_s,
        "latency_b1_ms": result.latency_ms(1),
        "latency_bB_ms": result.latency_ms(serving_batch),
        "trainable_params": result.trainable_params,
        "error": (result.error or "").splitlines()[0][:500] if result.error else None,
    }


def trial_result(trial: optuna.trial.FrozenTrial) -> RunResult | None:
    data = trial.user_attrs.get(RESULT_ATTR)
    return RunResult.from_dict(data) if isinstance(data, dict) else None
