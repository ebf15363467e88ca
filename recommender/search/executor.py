"""Run a trial's training job in this process or in a fresh subprocess (the default).

Every trial gets a process of its own (a crash or a leak ends one trial, not the search), but
not a cold one: the next trial's process is started when a trial starts, does its heavy imports
(torch, transformers, adapters, the model's classes) while that trial trains, and then waits for
its job on stdin (:func:`trial_processes` ends it when the search does).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recommender import interrupts
from recommender.types import EvalPoint, RunResult

if TYPE_CHECKING:
    from recommender.search.job import TrialJob

PruneCheck = Callable[[EvalPoint], bool]
#: environment variable telling a trial process which pid to die with
PARENT_ENV = "RECOMMENDER_TRIAL_PARENT"


@dataclass
class Outcome:
    """What came back from one job: a result, or how the worker process died."""

    result: RunResult | None
    curve: list[EvalPoint]
    pruned: bool
    error: str | None
    wall_seconds: float


def run_in_process(job: TrialJob, should_prune: PruneCheck) -> Outcome:
    from recommender.search.trial_runner import run_job

    start = time.perf_counter()
    curve: list[EvalPoint] = []
    decision = {"prune": False}

    def emit(message: dict[str, Any]) -> None:
        point = EvalPoint.from_dict(message["point"])
        curve.append(point)
        decision["prune"] = should_prune(point)

    try:
        result = run_job(job, emit, lambda: "prune" if decision["prune"] else "continue")
    except Exception as exc:  # e.g. the task cannot be rebuilt: this trial fails, the search goes on
        message = str(exc).splitlines()[0] if str(exc) else ""
        return Outcome(None, curve, False, f"{type(exc).__name__}: {message}"[:800], time.perf_counter() - start)
    return Outcome(result, curve, result.status == "pruned", None, time.perf_counter() - start)


def run_in_subprocess(job: TrialJob, should_prune: PruneCheck) -> Outcome:
    """Run the job in a fresh interpreter; a crash or kill becomes ``Outcome.error``.

    A trial process that has not exited :attr:`~recommender.search.job.TrialJob.kill_after_s`
    after closing its output is killed.

    The trial process dies with this one (see :mod:`recommender.search.trial_runner`), and an
    exception here (Ctrl-C, SIGTERM turned into :class:`~recommender.errors.SearchInterrupted`)
    kills it before propagating.
    """
    start = time.perf_counter()
    proc = _take_trial_process()
    assert proc.stdin is not None and proc.stdout is not None
    curve: list[EvalPoint] = []
    result: RunResult | None = None
    pruned = False
    try:
        proc.stdin.write(job.to_json() + "\n")
        proc.stdin.flush()
        for line in proc.stdout:
            interrupts.check()
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            if message["event"] == "eval":
                point = EvalPoint.from_dict(message["point"])
                curve.append(point)
                pruned = should_prune(point)
                proc.stdin.write(("prune" if pruned else "continue") + "\n")
                proc.stdin.flush()
            elif message["event"] == "result":
                result = RunResult.from_dict(message["result"])
        proc.wait(timeout=job.kill_after_s)
    except (BrokenPipeError, subprocess.TimeoutExpired):
        pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    error = None
    if result is None:
        stderr = (proc.stderr.read() if proc.stderr else "")[-2000:]
        code = proc.returncode
        how = f"killed by signal {-code}" if code and code < 0 else f"exited with code {code}"
        lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
        # the last line of a traceback is the exception: the part worth quoting
        error = f"trial process {how} before reporting a result" + (f": {lines[-1][:500]}" if lines else "")
    return Outcome(result, curve, pruned, error, time.perf_counter() - start)


# --- trial processes started ahead of time ---------------------------------------------------
_spare: subprocess.Popen[str] | None = None
_spare_lock = threading.Lock()


def _start_trial_process() -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           PARENT_ENV: str(os.getpid())}
    return subprocess.Popen(
        [sys.executable, "-m", "recommender.search.trial_runner"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _take_trial_process() -> subprocess.Popen[str]:
    """The waiting spare (a fresh process if there is none or it died), and a new spare for the
    next trial."""
    global _spare
    with _spare_lock:
        proc, _spare = _spare, None
        if proc is None or proc.poll() is not None:
            _kill(proc)
            proc = _start_trial_process()
        _spare = _start_trial_process()
    return proc


@contextlib.contextmanager
def trial_processes() -> Iterator[None]:
    """The scope of a search or race: the process started ahead for a next trial ends with it."""
    try:
        yield
    finally:
        release_spare()


def release_spare() -> None:
    """End the process waiting for a next trial (at the end of a search; idempotent)."""
    global _spare
    with _spare_lock:
        proc, _spare = _spare, None
    _kill(proc)


def _kill(proc: subprocess.Popen[str] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


atexit.register(release_spare)
