#!/usr/bin/env python
"""Benchmark the budgeted search (``recommender.search``) on bundled tasks.

Every search here runs trials on a seeded subsample of the task (``n_train`` / ``n_dev``) with
the same ``SearchConfig`` (trial budget, epochs, pruner, seed), stored in a temporary SQLite
file. A warm-up (imports, loading the tasks and the model once) runs first, so the first search
is not charged for one-time costs. One run measures::

  efficiency  (a) per task, TPE vs random sampling (``sampler="tpe"`` / ``"random"``, same seed,
              same trial count, ``isolation="none"``): the trials and the wall time (from the
              search's start, study creation included) each needed to reach within ``tolerance``
              (0.01 = 1 point) of the best metric found by either. A trial counts when it is
              COMPLETE and feasible (what ``summarize`` would report). Note: the TPE sampler of
              ``make_sampler`` starts with 5 random trials drawn from a RandomSampler with the
              same seed, so its first 5 trials are the random search's first 5 (the table says
              how many configurations coincided, and how far the metrics of identical
              configurations differed: that is run-to-run noise).
  warm_start  (d) per task, TPE warm-started with the meta-model's top-k configurations
              (``MetaModelTopK``, enqueued before the sampler takes over) vs the cold TPE run of
              (a): trials and wall time needed to reach within ``tolerance`` of the best-known
              result (the best over every search of this run on that task). Says whether the
              knowledge base already holds runs of the task (then the meta-model has seen it).
  workers     (c) ``create_search_study`` then 1 vs 2 worker processes
              (``python -m recommender.cli worker --storage ... --study ... --n-trials N``)
              completing N trials of the same study config (process isolation by default):
              wall time, trials/minute, and training examples processed per wall second. Trials
              are time-budgeted, so each takes its budget whatever the CPU share: on a machine
              with 2 cores (shared), trials/minute can scale while the real work done per
              second does not -- the examples/s column shows that.
  overhead    (b) per trial: (``datetime_complete - datetime_start`` as Optuna records it) minus
              the training run's own ``RunResult.wall_seconds`` (trial user attr ``result``), as
              a fraction of the trial time; for ``isolation="none"`` (the trials of (a) and (d))
              and ``isolation="process"`` (the 1-worker run of (c); the 2-worker run shown apart;
              a dedicated process-isolated search when (c) is not run). The overhead covers
              Optuna's sampling and storage writes, loading the task in the trial and, with
              process isolation, the new interpreter's start and imports (timed apart here).

Ratios are only meaningful within one run: the machine may be shared. Prints tables and writes
``benchmarks/results/search.json``. Parameters: ``benchmarks/params/search.json``.

    python benchmarks/search.py                       # default run (~50 min)
    python benchmarks/search.py --quick               # 1 task, 3 short trials per search (< 5 min)
    python benchmarks/search.py --tasks glue_rte --n-trials 6 --only efficiency,overhead
    python benchmarks/search.py --set search.trial_time_budget=40 --set workers.n_trials=6
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path; importing _params first sets the offline environment
from _params import apply_overrides, fmt, load_avg, log, parameter_parser, read_params, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_PARAMS = HERE / "params" / "search.json"
DEFAULT_OUT = HERE / "results" / "search.json"
SECTIONS = ("efficiency", "warm_start", "workers", "overhead")
TPE_STARTUP_TRIALS = 5  # make_sampler's TPESampler(n_startup_trials=5)


# -- parameters (flags shared through _params.parameter_parser) ------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parameter_parser(__doc__, DEFAULT_PARAMS, DEFAULT_OUT, SECTIONS,
                          quick_help="1 task, few short trials: merge the 'quick' block",
                          set_example="search.max_epochs=2")
    ap.add_argument("--tasks", help="comma-separated bundled task names (default from the parameter file)")
    ap.add_argument("--n-train", type=int, help="train examples kept (seeded subsample)")
    ap.add_argument("--n-dev", type=int, help="dev examples kept")
    ap.add_argument("--n-trials", type=int, help="trials per search in (a) and (d)")
    ap.add_argument("--trial-time-budget", type=float, help="seconds per trial")
    ap.add_argument("--keep-storage", action="store_true", help="keep the temporary SQLite file (path printed)")
    return ap.parse_args(argv)


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    params = read_params(args)
    if args.tasks:
        params["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if args.n_train is not None:
        params["n_train"] = args.n_train
    if args.n_dev is not None:
        params["n_dev"] = args.n_dev
    if args.n_trials is not None:
        params["search"]["n_trials"] = args.n_trials
    if args.trial_time_budget is not None:
        params["search"]["trial_time_budget"] = args.trial_time_budget
    if args.keep_storage:
        params["keep_storage"] = True
    params = apply_overrides(params, args, SECTIONS)
    if not params["tasks"]:
        raise SystemExit("no task to search")
    return params


# -- small helpers ---------------------------------------------------------------------------------
def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# -- runs and their trials -------------------------------------------------------------------------
@dataclass
class SearchRun:
    """One search (or one multi-worker study) of this benchmark and its finished trials."""

    label: str
    task: str
    study: str
    sampler: str
    isolation: str
    started: float  # epoch seconds: run_search called / workers launched
    wall_s: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def best(self) -> float | None:
        values = [t["metric"] for t in self.trials if t["counts"]]
        return max(values) if values else None

    def reach(self, target: float | None) -> tuple[int | None, float | None]:
        """(finished trials up to and including the first counted one at >= target, seconds from start)."""
        if target is None:
            return None, None
        ordered = sorted(self.trials, key=lambda t: t["number"])
        for k, t in enumerate(ordered, start=1):
            if t["counts"] and t["metric"] >= target - 1e-12:
                return k, t["complete"] - self.started
        return None, None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "task": self.task, "study": self.study, "sampler": self.sampler,
                "isolation": self.isolation, "started": self.started, "wall_s": self.wall_s, "best": self.best(),
                "extra": self.extra, "trials": self.trials}


def collect_trials(storage: str, study_name: str) -> list[dict[str, Any]]:
    import optuna

    from recommender.search.spaces import METHOD_PARAM
    from recommender.store import open_storage, trial_result

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage, heartbeat=False))
    out = []
    for t in study.get_trials(deepcopy=False):
        if not t.state.is_finished() or t.datetime_start is None or t.datetime_complete is None:
            continue
        result = trial_result(t)
        metric = t.user_attrs.get("metric")
        feasible = all(v <= 0 for v in t.constraints.values())
        start, complete = t.datetime_start.timestamp(), t.datetime_complete.timestamp()
        out.append({
            "number": t.number, "state": t.state.name, "method": t.params.get(METHOD_PARAM),
            "params": {k: v for k, v in t.params.items() if k != METHOD_PARAM}, "metric": metric,
            "counts": t.state.name == "COMPLETE" and feasible and metric is not None,
            "warm_start": bool(t.user_attrs.get("warm_start")), "start": start, "complete": complete,
            "budget_s": t.user_attrs.get("trial_time_budget_s"),
            "trial_s": complete - start, "run_wall_s": result.wall_seconds if result else None,
            "train_s": result.train_seconds if result else None,
            "examples_seen": result.examples_seen if result else None, "steps": result.steps if result else None,
            "status": result.status if result else t.user_attrs.get("status"),
            "error": next(iter((t.user_attrs.get("error") or "").splitlines()), "")[:200] or None,
        })
    return out


class Bench:
    def __init__(self, params: dict[str, Any]) -> None:
        self.p = params
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_search_"))
        self.storage = f"sqlite:///{self.tmp / 'search.db'}"
        self.runs: list[SearchRun] = []
        self.out: dict[str, Any] = {}
        self.tables: list[str] = []
        self.tol = float(params["tolerance"])

    def warm_up(self) -> None:
        """Pay one-time costs (imports, dataset cache, first model load) before any search is timed,
        so the first search of the run is not charged for them."""
        from recommender.models import load_model, resolve_model_path
        from recommender.training import train  # noqa: F401  (imports the training stack)

        t0 = time.perf_counter()
        task = None
        for name in self.p["tasks"]:
            task = self.task_ref(name).load()
        if task is not None:
            load_model(resolve_model_path(None), task.task_type, task.num_labels)
        self.out["warm_up_s"] = time.perf_counter() - t0
        log(f"warm-up (imports, {len(self.p['tasks'])} task(s), model load) {self.out['warm_up_s']:.1f}s")

    # -- building blocks ---------------------------------------------------------------------------
    def task_ref(self, task: str) -> Any:
        from recommender.search.config import TaskRef

        return TaskRef(task, max_train=self.p["n_train"], max_dev=self.p["n_dev"], seed=int(self.p["subsample_seed"]))

    def config(self, **over: Any) -> Any:
        from recommender.search.config import SearchConfig

        s = self.p["search"]
        values = {"methods": tuple(s["methods"]) if s.get("methods") else None,
                  "trial_time_budget": float(s["trial_time_budget"]), "n_trials": int(s["n_trials"]),
                  "max_epochs": float(s["max_epochs"]), "patience": int(s["patience"]),
                  "evals_per_epoch": float(s["evals_per_epoch"]), "pruner": s["pruner"], "device": s["device"],
                  "seed": int(self.p["seed"]), "sampler": "tpe", "isolation": "none"}
        values.update(over)
        return SearchConfig(**values)

    def search(self, task: str, label: str, config: Any, warm_start: Any = None) -> SearchRun:
        from recommender.search.study import run_search

        study = f"{task}:{label}"

        def progress(event: dict[str, Any]) -> None:
            metric = event.get("metric")
            log(f"  {study} trial {event['trial']} {event['state']} {event.get('method')} "
                f"metric {fmt(metric, '.3f')} (best {fmt(event.get('best'), '.3f')}, "
                f"{event['n_finished']} finished, {event['elapsed_s']:.0f}s, load {load_avg()})")

        log(f"search {study}: sampler {config.sampler}, isolation {config.isolation}, {config.n_trials} trials of "
            f"<= {config.trial_time_budget:.0f}s{', warm start' if config.warm_start else ''} (load {load_avg()})")
        started = time.time()
        result = run_search(self.task_ref(task), self.storage, study, config, progress=progress, warm_start=warm_start)
        wall = time.time() - started
        run = SearchRun(label, task, study, config.sampler, config.isolation, started, wall,
                        collect_trials(self.storage, study), {"counts": result.counts})
        self.runs.append(run)
        return run

    def find(self, task: str, label: str) -> SearchRun | None:
        return next((r for r in self.runs if r.task == task and r.label == label), None)

    # -- (a) ---------------------------------------------------------------------------------------
    def efficiency(self) -> None:
        rows, out = [], {}
        notes = []
        for task in self.p["tasks"]:
            tpe = self.search(task, "tpe", self.config(sampler="tpe"))
            rnd = self.search(task, "random", self.config(sampler="random"))
            bests = [b for b in (tpe.best(), rnd.best()) if b is not None]
            best = max(bests) if bests else None
            target = None if best is None else best - self.tol
            same = identical_prefix(tpe, rnd)
            out[task] = {"best_either": best, "target": target, "identical_configs": same}
            for run in (tpe, rnd):
                k, s = run.reach(target)
                out[task][run.label] = {"best": run.best(), "trials_to_target": k, "seconds_to_target": s,
                                        "trials": len(run.trials), "wall_s": run.wall_s, "counts": run.extra["counts"]}
                rows.append([task, run.label, len(run.trials), fmt(run.best(), ".3f"), fmt(target, ".3f"),
                             k if k is not None else "not reached", fmt(s, ".0f"), fmt(run.wall_s, ".0f"),
                             " ".join(f"{c.lower()} {n}" for c, n in sorted(run.extra["counts"].items()))])
            if same["compared"]:
                diffs = same["metric_abs_diffs"]
                notes.append(f"{task}: {same['identical']}/{same['compared']} of the first trials sampled the same "
                             f"configuration under both samplers"
                             + (f"; |metric difference| between identical configurations: median "
                                f"{median(diffs):.3f}, max {max(diffs):.3f} (run-to-run noise)" if diffs else ""))
        self.out["efficiency"] = out
        n = int(self.p["search"]["n_trials"])
        caveat = (f"TPE's first {TPE_STARTUP_TRIALS} trials are random draws from the same seed as the random "
                  f"sampler's, so with {n} trials per search " +
                  ("the two searches are identical by construction but for run-to-run noise"
                   if n <= TPE_STARTUP_TRIALS else f"only trials {TPE_STARTUP_TRIALS + 1}..{n} can differ"))
        self.tables.append(
            f"(a) Search efficiency, TPE vs random (same seed, {n} trials of <= {self.p['search']['trial_time_budget']}s, "
            f"isolation none, {self.p['n_train']} train / {self.p['n_dev']} dev): trials and seconds (from the "
            f"search's start) to reach within {self.tol:g} of the best either found\n"
            + table(["task", "sampler", "trials", "best", "target", "trials to target", "s to target", "search s",
                     "states"], rows)
            + "\n" + "\n".join(notes + [caveat]))

    # -- (d) ---------------------------------------------------------------------------------------
    def warm_start(self) -> None:
        from recommender.errors import DataError
        from recommender.knowledge_base import load_knowledge_base
        from recommender.metamodel.recommend import load_metamodel
        from recommender.search.warm_start import MetaModelTopK

        k = int(self.p["warm_start"]["k"])
        kb_tasks: dict[str, int] = {}
        try:
            for row in load_knowledge_base():
                kb_tasks[row.task] = kb_tasks.get(row.task, 0) + 1
        except DataError:
            pass
        rows, out = [], {}
        for task in self.p["tasks"]:
            cold = self.find(task, "tpe") or self.search(task, "tpe", self.config(sampler="tpe"))
            warm = self.search(task, "warm", self.config(sampler="tpe", warm_start=True), warm_start=MetaModelTopK(k=k))
            known = [r.best() for r in self.runs if r.task == task and r.best() is not None]
            best_known = max(known) if known else None
            target = None if best_known is None else best_known - self.tol
            enqueued = [t["method"] for t in sorted(warm.trials, key=lambda t: t["number"]) if t["warm_start"]]
            out[task] = {"best_known": best_known, "target": target, "kb_runs_of_task": kb_tasks.get(task, 0),
                         "enqueued_methods": enqueued, "k": k}
            for run in (cold, warm):
                reach, secs = run.reach(target)
                first = min((t["start"] for t in run.trials), default=None)
                setup = None if first is None else first - run.started
                out[task][run.label] = {"best": run.best(), "trials_to_target": reach, "seconds_to_target": secs,
                                        "trials": len(run.trials), "wall_s": run.wall_s, "setup_s": setup}
                rows.append([task, "cold TPE" if run is cold else f"warm TPE (top-{k})", len(run.trials),
                             fmt(run.best(), ".3f"), fmt(target, ".3f"),
                             reach if reach is not None else "not reached", fmt(secs, ".0f"), fmt(setup, ".1f"),
                             kb_tasks.get(task, 0) if run is warm else "",
                             ", ".join(enqueued) if run is warm else ""])
        try:  # fitted (and cached) by the first warm start; read after, so its cost stays in "setup s"
            n_runs, fallback = load_metamodel().n_runs_, None
        except DataError as exc:
            n_runs, fallback = 0, f"no meta-model ({exc}): MetaModelTopK fell back to method defaults"
        self.out["warm_start"] = {"meta_model_runs": n_runs, "fallback": fallback, "tasks": out}
        notes = [f"meta-model fitted on {n_runs} knowledge-base runs"
                 + (f" ({', '.join(f'{t}: {n}' for t, n in sorted(kb_tasks.items()))})" if kb_tasks else "")]
        leaked = [t for t in self.p["tasks"] if kb_tasks.get(t)]
        if leaked:
            notes.append(f"the knowledge base already holds runs of {', '.join(leaked)} (other sizes): for those "
                         "tasks the warm start is not out-of-sample")
        if fallback:
            notes.append(fallback)
        notes.append("best known = the best COMPLETE trial of any search of this run on the task; setup s = search "
                     "start to first trial start (study creation, meta-features, and for the warm start fitting the "
                     "meta-model and ranking candidates; paid once per process, then cached)")
        self.tables.append(
            f"(d) Warm-started vs cold TPE: trials and seconds to reach within {self.tol:g} of the best-known result\n"
            + table(["task", "search", "trials", "best", "target", "trials to target", "s to target", "setup s",
                     "KB runs of task", "enqueued (warm) methods"], rows)
            + "\n" + "\n".join(notes))

    # -- (c) ---------------------------------------------------------------------------------------
    def workers(self) -> None:
        from recommender.search.study import create_search_study

        cfg = self.p["workers"]
        task = cfg.get("task") or self.p["tasks"][0]
        n = int(cfg["n_trials"])
        budget = float(cfg.get("trial_time_budget") or self.p["search"]["trial_time_budget"])
        rows, out = [], {}
        base = None
        empty_note = dup_note = False
        for count in [int(c) for c in cfg["counts"]]:
            label = f"workers{count}"
            name = f"{task}:{label}"
            config = self.config(sampler="tpe", isolation=cfg["isolation"], n_trials=n, trial_time_budget=budget)
            t0 = time.perf_counter()
            create_search_study(self.task_ref(task), self.storage, name, config)
            create_s = time.perf_counter() - t0
            command = [sys.executable, "-m", "recommender.cli", "worker", "--storage", self.storage, "--study", name,
                       "--n-trials", str(n)]
            if cfg.get("heartbeat_interval"):
                command += ["--heartbeat-interval", str(int(cfg["heartbeat_interval"]))]
            if cfg.get("grace_period"):
                command += ["--grace-period", str(int(cfg["grace_period"]))]
            log(f"workers: {count} x `{' '.join(command[1:5])} ... --study {name} --n-trials {n}` (load {load_avg()})")
            logs = [open(self.tmp / f"{label}_{i}.log", "w", encoding="utf-8") for i in range(count)]  # noqa: SIM115
            started = time.time()
            procs = [subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=os.environ.copy())
                     for fh in logs]
            deadline = time.time() + n * (2 * budget + 60) + 300
            codes = []
            for proc in procs:
                try:
                    codes.append(proc.wait(timeout=max(1.0, deadline - time.time())))
                except subprocess.TimeoutExpired:
                    proc.kill()  # only the processes this benchmark started
                    codes.append(proc.wait())
            wall = time.time() - started
            for fh in logs:
                fh.close()
            tails = [(self.tmp / f"{label}_{i}.log").read_text(encoding="utf-8")[-600:] for i in range(count)]
            run = SearchRun(label, task, name, "tpe", cfg["isolation"], started, wall,
                            collect_trials(self.storage, name),
                            {"workers": count, "exit_codes": codes, "create_study_s": create_s})
            self.runs.append(run)
            done = [t for t in run.trials if t["state"] in ("COMPLETE", "PRUNED") and t["run_wall_s"] is not None]
            failed = [t for t in run.trials if t["state"] == "FAIL"]
            empty = [t for t in run.trials if t["state"] == "PRUNED" and t["run_wall_s"] is None]
            empty_note = empty_note or bool(empty)
            seen: set[str] = set()
            duplicates = 0
            for t in sorted(done, key=lambda t: t["number"]):
                key = json.dumps([t["method"], t["params"]], sort_keys=True, default=str)
                duplicates += key in seen
                seen.add(key)
            dup_note = dup_note or bool(duplicates)
            examples = sum(t["examples_seen"] or 0 for t in run.trials)
            first = min((t["start"] for t in run.trials), default=None)
            stats = {"workers": count, "trials_done": len(done), "trials_failed": len(failed),
                     "trials_pruned_before_training": len(empty), "duplicate_configs": duplicates, "wall_s": wall,
                     "trials_per_min": 60 * len(done) / wall if wall else None,
                     "examples_per_s": examples / wall if wall else None,
                     "mean_trial_s": statistics.fmean([t["trial_s"] for t in done]) if done else None,
                     "mean_examples_per_trial": examples / len(done) if done else None,
                     "start_to_first_trial_s": None if first is None else first - started,
                     "exit_codes": codes, "create_study_s": create_s, "load_end": load_avg()}
            if any(codes):
                stats["log_tails"] = tails
                log(f"workers: exit codes {codes}; log tail: {tails[0][-300:]}")
            base = base or stats
            stats["speedup_trials_per_min"] = (stats["trials_per_min"] / base["trials_per_min"]
                                               if base["trials_per_min"] else None)
            stats["speedup_examples_per_s"] = (stats["examples_per_s"] / base["examples_per_s"]
                                               if base["examples_per_s"] else None)
            out[label] = stats
            rows.append([count, len(done), duplicates, len(failed), len(empty), fmt(wall, ".0f"),
                         fmt(stats["trials_per_min"], ".2f"),
                         fmt(stats["speedup_trials_per_min"], ".2f") + "x", fmt(stats["examples_per_s"], ".1f"),
                         fmt(stats["speedup_examples_per_s"], ".2f") + "x", fmt(stats["mean_trial_s"], ".1f"),
                         fmt(stats["start_to_first_trial_s"], ".1f"), " ".join(map(str, codes))])
        self.out["workers"] = {"task": task, "n_trials": n, "isolation": cfg["isolation"], "cpus": os.cpu_count(),
                               "runs": out}
        self.tables.append(
            f"(c) Worker scaling on {task}: N={n} trials per study (<= {budget:.0f}s each, isolation "
            f"{cfg['isolation']}), `python -m recommender.cli worker` processes after create_search_study; "
            f"{os.cpu_count()} CPU cores, shared\n"
            + table(["workers", "trials trained", "duplicates", "failed", "pruned unstarted", "wall s", "trials/min", "speedup", "train examples/s",
                     "speedup", "mean trial s (trained)", "start->1st trial s", "exit codes"], rows)
            + f"\nA worker stops once the study holds N finished trials, so a second worker's trial in flight may "
              f"add one. Trials are time-budgeted: each runs for its budget whatever CPU share it gets, so on "
              f"{os.cpu_count()} cores (also used by other processes) trials/min can grow with workers while the "
              f"training work per second (examples/s) cannot grow past the cores' capacity."
            + ("\n'pruned unstarted': the objective pruned the trial before training and stopped the worker "
               "(\"no time left in the search budget\"): its start-up estimate (learned from earlier trials' "
               "process start-up) left < 10 s of the per-trial budget, although no total budget was set."
               if empty_note else "")
            + ("\n'duplicates': trials that trained a configuration (method and every hyperparameter) an earlier "
               "trial of the same study had already trained: every worker builds its sampler with the same seed, so "
               "during TPE's random start-up the workers draw the same configurations."
               if dup_note else ""))

    # -- (b) ---------------------------------------------------------------------------------------
    def overhead(self) -> None:
        target = float(self.p["overhead"]["target"])
        groups: dict[str, list[dict[str, Any]]] = {}
        for run in self.runs:
            key = f"{run.isolation}" + (f" ({run.label}: {run.extra['workers']} worker(s))" if "workers" in run.extra
                                        else " (in-process searches of (a)/(d))")
            groups.setdefault(key, []).extend(t for t in run.trials if t["run_wall_s"] is not None)
        if not any(k.startswith("none") for k in groups):
            run = self.search(self.p["tasks"][0], "overhead-none", self.config(
                isolation="none", n_trials=int(self.p["overhead"]["process_trials"])))
            groups["none (dedicated search)"] = [t for t in run.trials if t["run_wall_s"] is not None]
        if not any(k.startswith("process") for k in groups):
            run = self.search(self.p["tasks"][0], "overhead-process", self.config(
                isolation="process", n_trials=int(self.p["overhead"]["process_trials"])))
            groups["process (dedicated search)"] = [t for t in run.trials if t["run_wall_s"] is not None]
        rows, out = [], {}
        for key, trials in groups.items():
            if not trials:
                continue
            over = [t["trial_s"] - t["run_wall_s"] for t in trials]
            frac = [o / t["trial_s"] for o, t in zip(over, trials, strict=True) if t["trial_s"] > 0]
            total = sum(over) / sum(t["trial_s"] for t in trials)
            out[key] = {"trials": len(trials), "median_trial_s": median([t["trial_s"] for t in trials]),
                        "median_run_wall_s": median([t["run_wall_s"] for t in trials]),
                        "median_overhead_s": median(over), "median_fraction": median(frac), "total_fraction": total,
                        "max_fraction": max(frac) if frac else None, "meets_target": total <= target,
                        "per_trial_overhead_s": over}
            over_budget = [t for t in trials if t["budget_s"] is not None and t["trial_s"] > t["budget_s"] + 1.0]
            out[key]["trials_over_budget"] = len(over_budget)
            out[key]["max_trial_over_budget_s"] = max((t["trial_s"] - t["budget_s"] for t in over_budget), default=None)
            rows.append([key, len(trials), fmt(out[key]["median_trial_s"]), fmt(out[key]["median_run_wall_s"]),
                         fmt(median(over), ".2f"), pct(median(frac)), pct(total), pct(max(frac) if frac else None),
                         "PASS" if total <= target else "FAIL",
                         f"{len(over_budget)}" + (f" (up to +{out[key]['max_trial_over_budget_s']:.0f}s)"
                                                  if over_budget else "")])
        probe = self.probe_costs()
        self.out["overhead"] = {"target": target, "groups": out, "probe": probe}
        parts = probe.get("process_parts_s", {})
        runner = probe.get("runner_probe", {})
        probe_text = (f"where the time goes (measured apart, after the searches, load {probe.get('load')}): loading the "
                      f"task in-process (TaskRef.load, done again in every trial) {fmt(probe.get('task_load_s'), '.2f')}s"
                      + (f"; one process-isolated 2-step job: {runner['total_s']:.1f}s from Popen to exit, of which "
                         f"{runner['run_wall_s']:.1f}s on the trainer's clock, {runner['before_clock_s']:.1f}s before it "
                         f"and {runner['after_result_s']:.1f}s between the result line and the process's exit"
                         if runner else f"; runner probe failed: {probe.get('probe_error')}")
                      + f"; a fresh interpreter's imports and task load alone {fmt(probe.get('process_start_s'), '.1f')}s ("
                      + ", ".join(f"{k} {v:.1f}s" for k, v in parts.items()) + ")"
                      + "\n'trials > budget': Optuna's trial time exceeded the per-trial budget (trial_time_budget_s) "
                        "by more than 1 s")
        self.tables.append(
            f"(b) Per-trial overhead of the search machinery = Optuna's trial time (datetime_complete - "
            f"datetime_start) - RunResult.wall_seconds, as a share of the trial time (aim <= {100 * target:.0f}%)\n"
            + table(["isolation (source)", "trials", "median trial s", "median run s", "median overhead s",
                     "median share", "total share", "max share", "target", "trials > budget"], rows)
            + "\n" + probe_text)

    def probe_costs(self) -> dict[str, Any]:
        """Time, apart from any search, what a trial pays outside ``RunResult.wall_seconds``."""
        out: dict[str, Any] = {"load": load_avg()}
        ref = self.task_ref(self.p["tasks"][0])
        try:
            ref.load()
            t0 = time.perf_counter()
            ref.load()
            out["task_load_s"] = time.perf_counter() - t0
        except Exception as exc:  # a probe only: report, do not fail the benchmark
            out["task_load_error"] = str(exc)[:200]
        # one real process-isolated job (the probe method, 2 steps, no latency), timed from the parent:
        # Popen -> result line (minus the run's own wall_seconds) = before the trainer's clock;
        # result line -> process exit = after it
        from recommender.search.job import TrialJob
        from recommender.types import Budget, RunResult

        job = TrialJob(ref, self.p["search"]["probe_method"], {},
                       Budget(max_steps=2, max_epochs=1.0, patience=None, eval_every_steps=10**6),
                       device=self.p["search"]["device"], latency={"enabled": False})
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "recommender.search.trial_runner"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(job.to_json() + "\n")
            proc.stdin.flush()
            result, got = None, None
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                message = json.loads(line)
                if message["event"] == "eval":
                    proc.stdin.write("continue\n")
                    proc.stdin.flush()
                elif message["event"] == "result":
                    got = time.perf_counter()
                    result = RunResult.from_dict(message["result"])
            proc.wait(timeout=300)
            ended = time.perf_counter()
            if result is not None and got is not None:
                out["runner_probe"] = {"total_s": ended - t0, "run_wall_s": result.wall_seconds,
                                       "before_clock_s": got - t0 - result.wall_seconds, "after_result_s": ended - got,
                                       "status": result.status}
            else:
                out["probe_error"] = f"trial runner exited with {proc.returncode} and no result"
        except (subprocess.TimeoutExpired, BrokenPipeError, ValueError) as exc:
            out["probe_error"] = str(exc)[:300]
        finally:
            if proc.poll() is None:
                proc.kill()  # only the process this probe started
                proc.wait()
        # what the runner imports and loads before train() (a fresh interpreter, nothing else)
        code = ("import json, sys, time\n"
                "t0 = time.perf_counter()\n"
                "from recommender.logging_setup import quiet_library_warnings; quiet_library_warnings()\n"
                "from recommender.search.trial_runner import run_job\n"
                "from recommender.search.config import TaskRef\n"
                "from recommender.training import LatencyConfig, train\n"
                "t1 = time.perf_counter()\n"
                "task = TaskRef.from_dict(json.loads(sys.argv[1])).load()\n"
                "t2 = time.perf_counter()\n"
                "import torch, transformers\n"
                "t3 = time.perf_counter()\n"
                "print(json.dumps({'recommender imports': t1 - t0, 'task load (datasets)': t2 - t1, "
                "'torch + transformers imports': t3 - t2}))\n")
        t0 = time.perf_counter()
        try:
            proc2 = subprocess.run([sys.executable, "-c", code, json.dumps(ref.to_dict())], capture_output=True,
                                   text=True, cwd=ROOT, timeout=300)
            out["process_start_s"] = time.perf_counter() - t0
            parts = json.loads(proc2.stdout.strip().splitlines()[-1])
            parts["interpreter start + exit"] = out["process_start_s"] - sum(parts.values())
            out["process_parts_s"] = parts
        except (subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            out["probe_error"] = str(exc)[:300]
        return out

    def close(self) -> None:
        if self.p.get("keep_storage"):
            log(f"storage kept: {self.storage}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def identical_prefix(a: SearchRun, b: SearchRun) -> dict[str, Any]:
    """How many of the first trials (by number) sampled the same configuration in both runs."""
    first_a = sorted(a.trials, key=lambda t: t["number"])
    first_b = {t["number"]: t for t in b.trials}
    compared, same, diffs = 0, 0, []
    for t in first_a[:TPE_STARTUP_TRIALS]:
        other = first_b.get(t["number"])
        if other is None:
            continue
        compared += 1
        if t["method"] == other["method"] and t["params"] == other["params"]:
            same += 1
            if t["metric"] is not None and other["metric"] is not None:
                diffs.append(abs(t["metric"] - other["metric"]))
    return {"compared": compared, "identical": same, "metric_abs_diffs": diffs}


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = build_params(args)
    from recommender.logging_setup import quiet_library_warnings

    quiet_library_warnings()  # Optuna's deprecation / experimental warnings, once per sampler
    from recommender.training.environment import describe_environment

    s = params["search"]
    sections = params["sections"]
    per_task = (2 if "efficiency" in sections else 0) + (1 + ("efficiency" not in sections) if "warm_start" in sections else 0)
    slots = len(params["tasks"]) * per_task * int(s["n_trials"])
    if "workers" in sections:
        slots += sum(math.ceil(int(params["workers"]["n_trials"]) / int(c)) for c in params["workers"]["counts"])
    log(f"about {slots} trial slots of <= {s['trial_time_budget']}s: roughly "
        f"{slots * (float(s['trial_time_budget']) + 3) / 60:.0f} min at most plus set-up (load {load_avg()})")
    started = time.perf_counter()
    load_start = load_avg()
    bench = Bench(params)
    timings: dict[str, float] = {}
    try:
        bench.warm_up()
        for name in SECTIONS:  # (b) last: it reads the trials of the others
            if name in sections:
                t0 = time.perf_counter()
                getattr(bench, name)()
                timings[name] = time.perf_counter() - t0
    finally:
        bench.close()
    total = time.perf_counter() - started
    env = describe_environment(s["device"], with_calibration=False).to_dict()
    order = {"efficiency": "a", "overhead": "b", "workers": "c", "warm_start": "d"}
    bench.tables.sort(key=lambda text: text[1])  # print (a), (b), (c), (d)
    header = (f"benchmarks/search.py{' --quick' if params['quick'] else ''}: tasks {', '.join(params['tasks'])} "
              f"({params['n_train']} train / {params['n_dev']} dev), {s['n_trials']} trials per search, "
              f"<= {s['trial_time_budget']}s per trial, max {s['max_epochs']} epochs, {env['cpu']}, "
              f"{os.cpu_count()} cores, load avg {load_start} -> {load_avg()}")
    print(header)
    for text in bench.tables:
        print()
        print(text)
    print(f"\ntotal {total:.0f}s wall (" + ", ".join(f"({order[k]}) {k} {v:.0f}s" for k, v in timings.items()) + ")")
    record = {"benchmark": "search", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "params": params,
              "environment": env, "load_average": {"start": load_start, "end": load_avg()}, "seconds": total,
              "section_seconds": timings, "results": bench.out, "runs": [r.to_dict() for r in bench.runs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
