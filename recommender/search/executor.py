"""Run a trial's training job in this process or in a fresh subprocess (the default)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recommender.types import EvalPoint, RunResult

PruneCheck = Callable[[EvalPoint], bool]


@dataclass
class Outcome:
    """What came back from one job: a result, or how the worker process died."""

    result: RunResult | None
    curve: list[EvalPoint]
    pruned: bool
    error: str | None
    wall_seconds: float


def run_in_process(job: dict[str, Any], should_prune: PruneCheck) -> Outcome:
    from recommender.search.trial_runner import run_job

    start = time.perf_counter()
    curve: list[EvalPoint] = []
    decision = {"prune": False}

    def emit(message: dict[str, Any]) -> None:
        point = EvalPoint.from_dict(message["point"])
        curve.append(point)
        decision["prune"] = should_prune(point)

    result = run_job(job, emit, lambda: "prune" if decision["prune"] else "continue")
    return Outcome(result, curve, result.status == "pruned", None, time.perf_counter() - start)


def run_in_subprocess(job: dict[str, Any], should_prune: PruneCheck, kill_after: float | None = None) -> Outcome:
    """Run the job in a fresh interpreter; a crash or kill becomes ``Outcome.error``."""
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recommender.search.trial_runner"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    assert proc.stdin is not None and proc.stdout is not None
    curve: list[EvalPoint] = []
    result: RunResult | None = None
    pruned = False
    try:
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        for line in proc.stdout:
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
        proc.wait(timeout=kill_after)
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
        error = f"trial process {how} before reporting a result. {stderr.strip()[-800:]}"
    return Outcome(result, curve, pruned, error, time.perf_counter() - start)
