"""Searches and workers under faults: trials that always fail, heartbeat settings, late tells,
resumed searches, killed or interrupted search processes and their trial processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest

from recommender.search.config import SearchConfig, TaskRef

LONG_TASK = ["glue_sst2", "--max-train", "400", "--max-dev", "32"]


def cli(*args: str, **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RECOMMENDER_STORAGE"}
    return subprocess.Popen([sys.executable, "-m", "recommender.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True, **popen)


def wait_for(condition, timeout: float, what: str, step: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def trials(url: str, name: str) -> list:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=url).get_trials()
    except KeyError:
        return []


def gone(procs: list) -> bool:
    import psutil

    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.Error:
            continue
    return True


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if not ln.startswith("trial ")]


# --- item 4: trials that always fail ------------------------------------------------------------
def test_a_search_whose_trials_always_fail_stops_with_one_error_quoting_the_trials_error(tmp_task_files, tmp_path):
    rows = [[f"{'good' if i % 2 else 'bad'} movie number {i}", i % 2] for i in range(60)]
    data = tmp_task_files.delimited("reviews.csv", ["text", "label"], rows)
    url = f"sqlite:///{tmp_path / 'f.db'}"
    created = cli("search", str(data), "--storage", url, "--study", "f", "--methods", "head_only", "--n-trials", "2",
                  "--isolation", "none", "--max-failures", "3", "--create-only")
    assert created.wait(timeout=240) == 0, created.stderr.read()
    data.unlink()  # every trial now fails when it rebuilds the task
    worker = cli("worker", "--storage", url, "--study", "f", "--n-trials", "2")
    try:
        out, err = worker.communicate(timeout=240)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert worker.returncode == 2, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "3 trials in a row failed" in errors[0] and "reviews.csv" in errors[0], err
    assert [t.state.name for t in trials(url, "f")] == ["FAIL"] * 3


# --- item 6: resuming does not replay -------------------------------------------------------------
def test_the_sampler_seed_changes_with_the_trials_already_in_the_study():
    from recommender.search.control import sampler_seed

    assert sampler_seed(7, "s", 0) == 7  # a fresh search is reproducible
    seeds = {sampler_seed(7, "s", n) for n in range(20)} | {sampler_seed(7, "s", 3, offset=1234)}
    assert len(seeds) == 21


def test_resuming_a_search_does_not_replay_its_startup_configurations(tmp_path):
    from recommender.search.study import run_search

    url = f"sqlite:///{tmp_path / 'r.db'}"
    task = TaskRef("glue_sst2", max_train=32, max_dev=16, seed=0)
    config = dict(methods=("head_only",), sampler="random", pruner="none", isolation="none", max_epochs=0.5,
                  trial_time_budget=30.0)
    run_search(task, url, "resume", SearchConfig(n_trials=2, **config))
    run_search(task, url, "resume", SearchConfig(n_trials=4, **config))  # resumes: 2 more trials
    params = [t.params for t in trials(url, "resume")]
    assert len(params) == 4
    assert params[2] not in params[:2] and params[3] not in params[:2], params


# --- item 7 and 9: killed, terminated, interrupted -------------------------------------------------
def _start_long_search(url: str, name: str, isolation: str) -> subprocess.Popen:
    # LoRA, not head_only: a frozen encoder's 20 epochs of 400 examples can end within the seconds
    # before the signal on a fast machine (seen: exit 0, the trial COMPLETE); no early stop either
    return cli("search", *LONG_TASK, "--storage", url, "--study", name, "--methods", "lora",
               "--n-trials", "1", "--trial-time-budget", "300", "--max-epochs", "20", "--pruner", "none",
               "--patience", "100", "--isolation", isolation)


def _running_trial(url: str, name: str, search: subprocess.Popen, isolation: str,
                   trial_processes: Callable[[int], list]) -> list:
    wait_for(lambda: any(t.state.name == "RUNNING" for t in trials(url, name)) or search.poll() is not None,
             240, "a running trial")
    assert search.poll() is None, search.stderr.read()[-2000:]
    if isolation == "process":
        return wait_for(lambda: trial_processes(search.pid), 60, "the trial process")
    time.sleep(3)  # let training start
    return []


def test_a_killed_search_leaves_no_trial_process_behind(tmp_path, trial_processes):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    search = _start_long_search(url, "k", "process")
    try:
        children = _running_trial(url, "k", search, "process", trial_processes)
        os.kill(search.pid, signal.SIGKILL)  # the search only, not its process group
        search.wait()
        wait_for(lambda: gone(children), 10, "the trial process to die with its parent")
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
        for child in trial_processes(search.pid):
            child.kill()


@pytest.mark.parametrize("sig,isolation,code,line", [
    (signal.SIGTERM, "process", 143, "terminated (SIGTERM): trial 0 marked FAIL"),
    (signal.SIGINT, "none", 130, "interrupted: trial 0 marked FAIL"),
])
def test_sigterm_or_ctrl_c_fails_the_running_trial_at_once_with_one_line(tmp_path, sig, isolation, code, line,
                                                                       trial_processes, ctrl_c_as_from_a_terminal):
    url = f"sqlite:///{tmp_path / 'i.db'}"
    search = _start_long_search(url, "i", isolation)
    try:
        children = _running_trial(url, "i", search, isolation, trial_processes)
        sent = time.time()
        os.kill(search.pid, sig)
        out, err = search.communicate(timeout=30)
        took = time.time() - sent
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    # a shell shows 130 for both: the search caught the Ctrl-C and printed its line, then CPython
    # ended by its own SIGINT (-2) -- seen with the signal 3-3.5 s after the trial started, as when
    # its "unhandled KeyboardInterrupt" flag was set by C code the signal interrupted (not proven)
    assert search.returncode in ((code, -signal.SIGINT) if sig == signal.SIGINT else (code,)), err[-3000:]
    assert took < 15, took
    assert error_lines(err) == [line], err[-3000:]
    assert gone(children)
    (trial,) = trials(url, "i")
    assert trial.state.name == "FAIL" and trial.user_attrs["error"].startswith(line.split(":")[0])


# --- item 5: heartbeat settings belong to the study ----------------------------------------------
def _create(url: str, name: str, *extra: str) -> None:
    created = cli("search", *LONG_TASK, "--storage", url, "--study", name, "--methods", "head_only",
                  "--n-trials", "2", "--trial-time-budget", "60", "--max-epochs", "2", "--pruner", "none",
                  "--isolation", "none", "--create-only", *extra)
    assert created.wait(timeout=240) == 0, created.stderr.read()


@pytest.mark.slow
def test_a_worker_cannot_judge_another_workers_trial_by_other_heartbeat_settings(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    _create(url, "h")  # study defaults: heartbeat every 30 s, grace 90 s
    first = cli("worker", "--storage", url, "--study", "h", "--n-trials", "2")
    second = None
    try:
        wait_for(lambda: any(t.state.name == "RUNNING" for t in trials(url, "h")), 240, "the first trial")
        time.sleep(4)
        second = cli("worker", "--storage", url, "--study", "h", "--n-trials", "2", "--heartbeat-interval", "1",
                     "--grace-period", "2")
        out2, err2 = second.communicate(timeout=400)
        out1, err1 = first.communicate(timeout=400)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert first.returncode == 0 and second.returncode == 0, (err1[-2000:], err2[-2000:])
    assert "ignoring heartbeat_interval=1, grace_period=2" in err2
    assert "FAIL" not in [t.state.name for t in trials(url, "h")]


@pytest.mark.slow
def test_a_late_tell_on_a_trial_another_worker_failed_is_logged_not_fatal(tmp_path):
    url = f"sqlite:///{tmp_path / 'late.db'}"
    _create(url, "late", "--heartbeat-interval", "1", "--grace-period", "3", "--n-trials", "1")
    first = cli("worker", "--storage", url, "--study", "late", "--n-trials", "1")
    second = None
    try:
        wait_for(lambda: any(t.state.name == "RUNNING" for t in trials(url, "late")), 240, "the first trial")
        os.killpg(first.pid, signal.SIGSTOP)  # a worker that stalls: no heartbeat
        time.sleep(5)
        second = cli("worker", "--storage", url, "--study", "late", "--n-trials", "1")
        wait_for(lambda: trials(url, "late")[0].state.name == "FAIL", 120, "the stale trial to be failed")
        os.killpg(first.pid, signal.SIGCONT)
        out1, err1 = first.communicate(timeout=400)
        out2, err2 = second.communicate(timeout=400)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGKILL)
    assert first.returncode == 0, err1[-3000:]
    assert "Traceback" not in err1 and "was failed by another worker" in err1, err1[-3000:]
    states = [t.state.name for t in trials(url, "late")]
    assert states[0] == "FAIL" and "COMPLETE" in states[1:], states


def test_search_creates_its_study_with_heartbeat_settings_every_worker_uses(tmp_path):
    from recommender.search.study import join_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    name = f"hb-{uuid.uuid4().hex[:6]}"
    _create(url, name, "--heartbeat-interval", "2", "--grace-period", "7")
    study, config, _ = join_study(url, name)
    assert (config.heartbeat_interval, config.grace_period) == (2, 7)
    storage = study._storage  # Optuna wraps the RDB storage in a cache that forwards heartbeats
    assert storage.get_heartbeat_interval() == 2 and storage._backend.grace_period == 7
