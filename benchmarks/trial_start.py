#!/usr/bin/env python
"""Per-trial start-up of a process-isolated search: a cold process per trial against the trial
process started ahead of time (``recommender.search.executor``), interleaved in one run.

For each trial: ``overhead`` = Optuna's trial time (datetime_complete - datetime_start) minus the
trainer's own wall time (RunResult.wall_seconds, which starts on entering ``train``), i.e. process
start, imports and the protocol; and ``to_first_eval`` = trial start -> its first dev evaluation
as the trainer recorded it. Searches alternate cold / ahead ``--pairs`` times on the same tiny
task, so both meet the same load. Prints a table and writes ``benchmarks/results/trial_start.json``
(parameters: ``benchmarks/params/trial_start.json``).

    python benchmarks/trial_start.py                 # 2 pairs of 3-trial searches (~4 min idle)
    python benchmarks/trial_start.py --pairs 3 --trials 4
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TARGET_S = 3.0  # per-trial overhead on a quiet machine (issue 16)


PARAMS = ROOT / "benchmarks" / "params" / "trial_start.json"


def one_search(mode: str, storage: str, name: str, n_trials: int, p: dict[str, Any]) -> list[dict[str, Any]]:
    import optuna

    from recommender.search import executor
    from recommender.search.config import SearchConfig, TaskRef
    from recommender.search.study import run_search
    from recommender.store import trial_result

    original = executor._take_trial_process
    if mode == "cold":  # the behaviour before: a fresh interpreter when the trial starts
        executor._take_trial_process = executor._start_trial_process  # type: ignore[assignment]
    try:
        run_search(TaskRef(p["task"], max_train=p["max_train"], max_dev=p["max_dev"], seed=0), storage, name,
                   SearchConfig(methods=(p["method"],), n_trials=n_trials, trial_time_budget=p["trial_time_budget"],
                                max_epochs=p["max_epochs"], evals_per_epoch=2.0, isolation="process", pruner="none"))
    finally:
        executor._take_trial_process = original  # type: ignore[assignment]
    out = []
    for trial in optuna.load_study(study_name=name, storage=storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)):
        run = trial_result(trial)
        if run is None or trial.datetime_start is None or trial.datetime_complete is None:
            continue
        trial_s = (trial.datetime_complete - trial.datetime_start).total_seconds()
        first = run.curve[0].wall_seconds if run.curve else None
        out.append({"mode": mode, "trial": trial.number, "trial_s": trial_s, "run_wall_s": run.wall_seconds,
                    "overhead_s": trial_s - run.wall_seconds, "first_eval_wall_s": first})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "trial_start.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    params = json.loads(PARAMS.read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'runs.db'}"
        for pair in range(args.pairs):
            for mode in ("cold", "ahead") if pair % 2 == 0 else ("ahead", "cold"):
                rows += one_search(mode, storage, f"{mode}-{pair}", args.trials, params)
    summary = {}
    for mode in ("cold", "ahead"):
        over = [r["overhead_s"] for r in rows if r["mode"] == mode]
        # the first trial of a search has no trial before it to overlap with
        later = [r["overhead_s"] for r in rows if r["mode"] == mode and r["trial"] > 0]
        summary[mode] = {"trials": len(over), "median_overhead_s": statistics.median(over) if over else None,
                         "median_overhead_after_first_s": statistics.median(later) if later else None,
                         "max_overhead_s": max(over) if over else None}
    ahead = summary["ahead"]["median_overhead_after_first_s"]
    record = {"benchmark": "trial_start", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "params": {**params, "pairs": args.pairs, "trials": args.trials, "target_s": TARGET_S},
              "load_average": {"before": load_before, "after": os.getloadavg()[0]}, "cpus": os.cpu_count(),
              "summary": summary, "meets_target": ahead is not None and ahead <= TARGET_S, "trials": rows}
    print(f"{'mode':8} {'trials':>6} {'median overhead s':>18} {'after the first':>16} {'max':>6}")
    for mode, s in summary.items():
        print(f"{mode:8} {s['trials']:>6} {s['median_overhead_s'] or 0:>18.2f} "
              f"{s['median_overhead_after_first_s'] or 0:>16.2f} {s['max_overhead_s'] or 0:>6.2f}")
    print(f"target <= {TARGET_S:.0f} s per trial after the first (process started ahead): "
          f"{'met' if record['meets_target'] else 'MISSED'}; load {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    args.out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
