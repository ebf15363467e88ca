"""Run one training job in a fresh process (``python -m recommender.search.trial_runner``).

The process starts before its trial (see :mod:`recommender.search.executor`): it imports what
training needs, then waits; an empty stdin (the search ended) makes it exit.

Protocol (JSON lines): the parent writes the :class:`~recommender.search.job.TrialJob` on stdin; the child writes
``{"event": "eval", "point": ...}`` after each evaluation and waits for one line back,
``continue`` or ``prune``; it ends with ``{"event": "result", "result": ...}``. A fresh process
per trial means no memory carried across trials, and a crash or kill ends one trial, not the
search.

The trial process runs in a session of its own (so it can be killed with everything it
started) and dies with its parent: a parent-death signal on Linux, and a watchdog thread on the
parent's pid everywhere (also covering a parent that died before the signal was armed).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

PARENT_ENV = "RECOMMENDER_TRIAL_PARENT"  # same as executor.PARENT_ENV (kept import-free)
WATCHDOG_S = 1.0
PR_SET_PDEATHSIG = 1


def _die() -> None:
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)  # this process and anything it started
    finally:
        os._exit(1)


def die_with_parent(parent: int) -> None:
    """Arrange for this process to end as soon as ``parent`` (pid) does."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watchdog below still covers it

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                _die()
            time.sleep(WATCHDOG_S)

    if os.getppid() != parent:  # the parent died before the signal was armed
        _die()
    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def preload() -> None:
    """Import what every trial needs, and the bundled model's classes, before the job arrives."""
    import importlib

    import adapters  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from recommender.training import trainer  # noqa: F401

    try:
        from recommender.models import bundled_model_path

        config = json.loads((bundled_model_path() / "config.json").read_text(encoding="utf-8"))
        kind = str(config.get("model_type", ""))
        if kind.isidentifier():  # our own model's config; only a module name, never code
            importlib.import_module(f"transformers.models.{kind}.modeling_{kind}")
    except Exception:  # noqa: BLE001 - only a head start: the trial imports what it needs anyway
        pass


def run_job(job: Any, emit: Any, ask: Any) -> Any:
    """Train a :class:`~recommender.search.job.TrialJob` within the budget it has left."""
    from recommender.training import LatencyConfig, train

    task = job.task.load()

    def on_evaluate(point: Any) -> bool:
        emit({"event": "eval", "point": point.to_dict()})
        return ask() == "prune"

    settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in job.latency.items()}
    return train(task, job.method, params=job.params, budget=job.budget_left(), model=job.model,
                 device=job.device, seed=job.seed, latency=LatencyConfig(**settings),
                 on_evaluate=on_evaluate, precision=job.precision)


def main() -> int:
    parent = os.environ.get(PARENT_ENV)
    if parent and parent.isdigit():
        die_with_parent(int(parent))
    from recommender.logging_setup import quiet_library_warnings
    from recommender.search.job import TrialJob

    quiet_library_warnings()
    preload()  # started ahead of its trial: the imports overlap the previous trial
    line = sys.stdin.readline()
    if not line:  # the search ended before it needed this process
        os._exit(0)
    job = TrialJob.from_json(line)
    out = sys.stdout

    def emit(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    def ask() -> str:
        return sys.stdin.readline().strip()

    # Anything a library prints goes to stderr: stdout carries the protocol only.
    sys.stdout = sys.stderr
    result = run_job(job, emit, ask)
    emit({"event": "result", "result": result.to_dict()})
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown (seconds with torch loaded): the result is out


if __name__ == "__main__":
    sys.exit(main())
