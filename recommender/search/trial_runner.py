"""Run one training job in a fresh process (``python -m recommender.search.trial_runner``).

Protocol (JSON lines): the parent writes the job on stdin; the child writes
``{"event": "eval", "point": ...}`` after each evaluation and waits for one line back,
``continue`` or ``prune``; it ends with ``{"event": "result", "result": ...}``. A fresh process
per trial means no memory carried across trials, and a crash or kill ends one trial, not the
search.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def run_job(job: dict[str, Any], emit: Any, ask: Any) -> Any:
    from recommender.search.config import TaskRef
    from recommender.training import LatencyConfig, train
    from recommender.types import Budget

    task = TaskRef.from_dict(job["task"]).load()

    def on_evaluate(point: Any) -> bool:
        emit({"event": "eval", "point": point.to_dict()})
        return ask() == "prune"

    settings: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in job["latency"].items()}
    latency = LatencyConfig(**settings)
    budget = Budget.from_dict(job["budget"])
    if job.get("deadline") is not None:
        budget.max_seconds = max(1.0, min(budget.max_seconds or float("inf"), job["deadline"] - time.time()))
    return train(task, job["method"], params=job["params"], budget=budget,
                 model=job.get("model"), device=job.get("device", "auto"), seed=job.get("seed", 0),
                 latency=latency, on_evaluate=on_evaluate)


def main() -> int:
    from recommender.cli import _quiet_library_warnings

    _quiet_library_warnings()
    job = json.loads(sys.stdin.readline())
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
