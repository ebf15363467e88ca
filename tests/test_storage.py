"""The run store as users write it: URL forms, masked passwords, connection errors that name their
cause, read-only commands that create nothing, concurrent creation, versioned stored configs.

Runs against real SQLite files and the PostgreSQL server on 127.0.0.1:5432 (``postgres`` marker).
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

from recommender.errors import StorageError, StorageNotFoundError
from recommender.search.config import SearchConfig, TaskRef

PG_HOSTPORT = os.environ.get("RECOMMENDER_TEST_PG_HOSTPORT", "127.0.0.1:5432")
PG_DB = "test"
PASSWORD = "Pw-7f3a-never-shown"  # trust auth ignores it; it must never appear in any output
TINY = TaskRef("glue_sst2", max_train=32, max_dev=16, seed=0)
FAST = {"methods": ("head_only",), "trial_time_budget": 30.0, "max_epochs": 1.0, "isolation": "none",
        "pruner": "none"}


def pg_url(scheme: str = "postgresql", password: str | None = None, db: str = PG_DB, query: str = "") -> str:
    auth = f"postgres:{password}" if password else "postgres"
    return f"{scheme}://{auth}@{PG_HOSTPORT}/{db}{query}"


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "RECOMMENDER_STORAGE"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "recommender.cli", *args], capture_output=True, text=True,
                          env=full, timeout=timeout)


def assert_one_error_line(proc: subprocess.CompletedProcess, *words: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "Traceback" not in out, out[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def hanging_port():
    """A TCP port that accepts connections and never answers (a server that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def no_env_storage(monkeypatch):
    monkeypatch.delenv("RECOMMENDER_STORAGE", raising=False)


# --- 1. URL forms ----------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_plain_and_psycopg2_urls_create_a_study_and_run_a_worker(scheme, no_env_storage):
    import optuna

    from recommender.search.study import create_search_study

    url = pg_url(scheme)
    name = f"url-{scheme.replace('+', '-')}-{uuid.uuid4().hex[:6]}"
    create_search_study(TINY, url, name, SearchConfig(n_trials=1, **FAST))
    proc = cli("worker", "--storage", url, "--study", name, "--n-trials", "1", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    trials = optuna.load_study(study_name=name, storage=pg_url("postgresql+psycopg2")).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"]


def test_opening_a_store_uses_no_deprecated_optuna_api(tmp_path):
    """RetryFailedTrialCallback / failed_trial_callback are removed in Optuna 6."""
    from recommender.store import open_storage

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        storage = open_storage(f"sqlite:///{tmp_path / 'r.db'}", heartbeat_interval=5, grace_period=20)
    assert storage.get_heartbeat_stale_trial_callback() is not None


# --- 2. passwords ------------------------------------------------------------------------------
def test_masked_urls_hide_the_password_and_resolve_back_in_this_process():
    from recommender.store import mask_url, remember_url, storage_url

    url = pg_url(password=PASSWORD)
    assert PASSWORD not in mask_url(url) and "***" in mask_url(url)
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    assert storage_url(mask_url(url)) == pg_url()  # unknown mask: libpq's PGPASSWORD / ~/.pgpass
    remember_url(url)
    assert storage_url(mask_url(url)) == url


@pytest.mark.parametrize("command", [["worker", "--study", "s"], ["search", "glue_sst2", "--study", "s",
                                                                   "--n-trials", "1", "--create-only"]])
def test_a_failing_connection_never_prints_its_password(command):
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/test"
    proc = cli(*command, "--storage", url, timeout=120)
    line = assert_one_error_line(proc, "127.0.0.1:1", "connection refused", "'test'")
    assert PASSWORD not in proc.stdout + proc.stderr, line


@pytest.mark.postgres
def test_the_whole_url_can_come_from_the_environment_and_is_never_printed(no_env_storage):
    import optuna

    name = f"env-{uuid.uuid4().hex[:6]}"
    env = {"RECOMMENDER_STORAGE": pg_url(password=PASSWORD)}
    created = cli("search", "glue_sst2", "--study", name, "--max-train", "32", "--max-dev", "16", "--n-trials", "1",
                  "--methods", "head_only", "--max-epochs", "1", "--isolation", "none", "--create-only", env=env)
    assert created.returncode == 0, created.stderr[-2000:]
    assert "***" in created.stdout or "RECOMMENDER_STORAGE" in created.stdout
    worked = cli("worker", "--study", name, "--n-trials", "1", "--json", env=env)
    assert worked.returncode == 0, worked.stderr[-2000:]
    for proc in (created, worked):
        assert PASSWORD not in proc.stdout + proc.stderr
    study = optuna.load_study(study_name=name, storage=pg_url())
    assert PASSWORD not in repr(study.user_attrs) and study.get_trials()[0].state.name == "COMPLETE"


def test_a_background_search_keeps_the_password_off_its_command_line_and_record(tmp_path, monkeypatch):
    import json

    from recommender.search import background

    started = {}

    class FakePopen:  # record what would be started; starting a real search is tested elsewhere
        pid = 999_999

        def __init__(self, cmd, **kwargs):
            started.update(cmd=cmd, env=kwargs["env"])

        def poll(self):
            return 0

    monkeypatch.setattr(background.subprocess, "Popen", FakePopen)
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/test"
    background.start_search_process(TINY, url, "bg-secret", SearchConfig(n_trials=1, **FAST))
    assert PASSWORD not in " ".join(started["cmd"])
    assert started["env"]["RECOMMENDER_STORAGE"] == url  # the child gets it through its environment
    record = (background.searches_dir() / "bg-secret.json").read_text()
    assert PASSWORD not in record and json.loads(record)["storage"].count("***") == 1


# --- 3. connection failures ---------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
@pytest.mark.parametrize("case", ["refused", "unknown host", "authentication", "no database", "timeout"])
def test_a_connection_failure_names_its_cause_host_port_and_database_within_ten_seconds(
        scheme, case, hanging_port):
    from recommender.store import open_storage

    host, port = PG_HOSTPORT.split(":")
    url = {"refused": f"{scheme}://postgres:{PASSWORD}@127.0.0.1:1/{PG_DB}",
           "unknown host": f"{scheme}://postgres@no-such-host.invalid:5432/{PG_DB}",
           "authentication": f"{scheme}://nobody_{uuid.uuid4().hex[:6]}:{PASSWORD}@{host}:{port}/{PG_DB}",
           "no database": f"{scheme}://postgres@{host}:{port}/nodb_{uuid.uuid4().hex[:6]}",
           "timeout": f"{scheme}://postgres@127.0.0.1:{hanging_port}/{PG_DB}"}[case]
    if case in ("authentication", "no database"):
        pytest.importorskip("psycopg2")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError:
            pytest.skip("no PostgreSQL server")
    start = time.monotonic()
    with pytest.raises(StorageError) as info:
        open_storage(url)
    message = str(info.value)
    assert time.monotonic() - start < 10
    assert "\n" not in message and PASSWORD not in message and "driver" not in message
    expected_where = {"refused": "127.0.0.1:1", "unknown host": "no-such-host.invalid:5432",
                      "timeout": f"127.0.0.1:{hanging_port}"}.get(case, f"{host}:{port}")
    assert expected_where in message
    assert "database 'nodb_" in message if case == "no database" else f"database '{PG_DB}'" in message
    cause = {"refused": "connection refused", "unknown host": "unknown host",
             "authentication": "authentication failed", "no database": "database does not exist",
             "timeout": "connect timeout"}[case]
    assert cause in message, message


def test_a_sqlite_path_in_a_missing_folder_names_the_folder(tmp_path):
    proc = cli("search", "glue_sst2", "--study", "s", "--n-trials", "1", "--create-only",
               "--storage", f"sqlite:///{tmp_path / 'nope' / 'runs.db'}", timeout=120)
    assert_one_error_line(proc, f"folder {tmp_path / 'nope'} does not exist")
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("special", ["/dev/null", "fifo"])
def test_a_special_file_as_storage_is_a_clear_error(special, tmp_path):
    from recommender.store import open_existing_storage, open_storage

    path = special
    if special == "fifo":
        path = str(tmp_path / "fifo.db")
        os.mkfifo(path)
    for opener in (open_storage, open_existing_storage):
        with pytest.raises(StorageError, match="not a regular file"):
            opener(f"sqlite:///{path}")


def test_an_unknown_scheme_lists_the_supported_ones():
    from recommender.store import open_storage

    with pytest.raises(StorageError) as info:
        open_storage("ftp://example.org/runs.db")
    assert "postgresql://" in str(info.value) and "sqlite://" in str(info.value)


# --- 4. read-only commands create nothing --------------------------------------------------------
@pytest.mark.parametrize("command", [
    ["worker", "--study", "s"],
    ["export", "--study", "s", "--out", "{tmp}/bundle"],
    ["kb", "export", "--out", "{tmp}/kb.jsonl"],
    ["meta", "fit"],
    ["recommend", "glue_sst2", "--top", "1"],
])
def test_a_read_only_command_on_a_missing_store_fails_and_creates_nothing(command, tmp_path):
    missing = tmp_path / "nothere.db"
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    proc = cli(*args, "--storage", f"sqlite:///{missing}", timeout=240)
    assert_one_error_line(proc, str(missing))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_storage_exists_and_open_existing_storage_never_create(tmp_path):
    from recommender.store import open_existing_storage, open_storage, storage_exists

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    assert not storage_exists(url)
    with pytest.raises(StorageNotFoundError, match="runs.db"):
        open_existing_storage(url)
    assert not (tmp_path / "runs.db").exists()
    (tmp_path / "empty.db").touch()  # a file that is not a run store is not turned into one
    with pytest.raises(StorageNotFoundError, match="no Optuna tables"):
        open_existing_storage(f"sqlite:///{tmp_path / 'empty.db'}")
    assert (tmp_path / "empty.db").stat().st_size == 0
    open_storage(url)
    assert storage_exists(url) and open_existing_storage(url) is not None


@pytest.mark.postgres
def test_a_read_only_open_of_a_database_without_a_run_store_creates_no_tables():
    import sqlalchemy

    from recommender.store import open_existing_storage, storage_exists

    schema = f"empty_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(pg_url("postgresql+psycopg2"))
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = pg_url(query=f"?options=-csearch_path%3D{schema}")
        assert not storage_exists(url)
        with pytest.raises(StorageNotFoundError, match=f"{PG_HOSTPORT}, database '{PG_DB}'"):
            open_existing_storage(url)
        assert sqlalchemy.inspect(admin).get_table_names(schema=schema) == []
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_a_search_refused_before_its_study_exists_leaves_no_store_file(tmp_path):
    from recommender.errors import BudgetError
    from recommender.search.study import create_search_study

    path = tmp_path / "new.db"
    with pytest.raises(BudgetError):
        create_search_study(TINY, f"sqlite:///{path}", "fast", SearchConfig(n_trials=1, latency_budget_ms=0.001,
                                                                             **FAST))
    assert not path.exists() and list(tmp_path.iterdir()) == []


# --- 5. concurrent creation --------------------------------------------------------------------
def _open_after(url: str, barrier, results) -> None:
    from recommender.store import open_storage

    barrier.wait()
    try:
        open_storage(url, heartbeat=False)
        results.put("ok")
    except Exception as exc:  # report, the parent asserts
        results.put(f"{type(exc).__name__}: {exc}")


def test_commands_creating_the_same_new_sqlite_file_at_once_all_succeed(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(3):  # the race is timing-dependent: try a few times
        url = f"sqlite:///{tmp_path / f'race{attempt}.db'}"
        barrier, results = context.Barrier(6), context.Queue()
        procs = [context.Process(target=_open_after, args=(url, barrier, results)) for _ in range(6)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        assert outcomes == ["ok"] * 6, outcomes


# --- 6. versioned stored configurations --------------------------------------------------------
def _study_with_config(tmp_path: Path, edit) -> str:
    import optuna

    from recommender.search.study import create_search_study
    from recommender.store import STUDY_ATTR

    url = f"sqlite:///{tmp_path / 'v.db'}"
    study = create_search_study(TINY, url, "v", SearchConfig(n_trials=1, **FAST))
    info = study.user_attrs[STUDY_ATTR]
    edit(info)
    optuna.load_study(study_name="v", storage=url).set_user_attr(STUDY_ATTR, info)
    return url


def test_a_stored_field_unknown_to_this_version_is_one_error_naming_it_and_both_versions(tmp_path):
    def newer(info):
        info["config"].update(schema=9, future_knob=1)

    url = _study_with_config(tmp_path, newer)
    proc = cli("worker", "--storage", url, "--study", "v", "--n-trials", "1")
    assert_one_error_line(proc, "'future_knob'", "schema 9", "schema 2", "upgrade")


def test_a_missing_stored_field_is_an_error_unless_an_older_schema_lacked_it(tmp_path):
    from recommender.search.study import load_search

    def missing(info):
        del info["config"]["sampler"]

    url = _study_with_config(tmp_path, missing)
    with pytest.raises(StorageError, match=r"lacks field 'sampler' \(stored with schema 2, this version reads schema 2"):
        load_search(url, "v")

    def older(info):  # written before the heartbeat settings existed: their defaults are safe
        for key in ("schema", "heartbeat_interval", "grace_period", "max_consecutive_failures"):
            del info["config"][key]
        info["config"]["sampler"] = "random"

    (tmp_path / "old").mkdir()
    _, config = load_search(_study_with_config(tmp_path / "old", older), "v")
    assert (config.sampler, config.heartbeat_interval, config.grace_period) == ("random", 30, 90)


def test_a_stored_value_of_the_wrong_type_is_an_error_not_a_traceback():
    with pytest.raises(StorageError, match="trial_time_budget"):
        SearchConfig.from_dict({**SearchConfig(n_trials=1).to_dict(), "trial_time_budget": "soon"})
    with pytest.raises(StorageError, match="not a mapping"):
        SearchConfig.from_dict(None)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="'colour'"):
        TaskRef.from_dict({"source": "glue_sst2", "colour": "red"})
