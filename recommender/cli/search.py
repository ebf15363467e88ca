"""CLI commands of the search: ``search`` and ``worker``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from recommender.cli.args import (
    add_device_args,
    add_subset_args,
    add_task_args,
    parse_duration,
    positive_float,
    positive_int,
)


def _print_progress(event: dict[str, Any]) -> None:
    best = "-" if event.get("best") is None else f"{event['best']:.4f}"
    metric = "-" if event.get("metric") is None else f"{event['metric']:.4f}"
    left = "" if event.get("time_left_s") is None else f", {event['time_left_s']:.0f}s left"
    error = f"  ({event['error']})" if event.get("error") else ""
    print(f"trial {event['trial']:>3} {event['state']:<8} {event.get('method') or '-':<15} metric {metric}  "
          f"| finished {event['n_finished']}, best feasible {best}{left}{error}", file=sys.stderr, flush=True)


def _interruptible(run: Callable[[], int]) -> int:
    """Run a command; Ctrl-C (exit 130) or SIGTERM (exit 143) prints one line, no traceback."""
    from recommender import interrupts
    from recommender.errors import SearchInterrupted

    try:
        with interrupts.handled():
            return run()
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, SearchInterrupted) and str(exc).startswith("terminated")
        detail = str(exc) if isinstance(exc, SearchInterrupted) else "interrupted"
        if not detail.startswith(("interrupted", "terminated")):
            detail = f"interrupted: {detail}"
        print(detail, file=sys.stderr, flush=True)
        return 143 if terminated else 130


def format_search_result(result: Any) -> str:
    from recommender.report import format_table

    rows = [{"trial": t.number, "state": t.state, "method": t.method, "metric": t.metric, "baseline": t.baseline,
             "time_to_best_s": t.time_to_best_s, "latency_ms": t.latency_ms, "trainable_params": t.trainable_params,
             "feasible": t.feasible} for t in result.trials]
    lines = [f"study {result.study_name}: {result.counts}", ""]
    if rows:
        lines.append(format_table(rows, rows[0].keys()))
    lines.append("")
    if result.best:
        label = "Pareto front (feasible)" if result.objective == "pareto" else "best feasible trial"
        lines.append(f"{label}:")
        for t in result.best:
            lines.append(f"  #{t.number} {t.method} {result.metric_name}={t.metric:.4f} "
                         f"time_to_best={t.time_to_best_s or 0:.1f}s latency={t.latency_ms or 0:.1f}ms "
                         f"params={t.trainable_params:,} {t.params}")
            if t.verdict:
                lines.append(f"     {t.verdict}")
    elif result.nearest:
        lines.append("no trial met every constraint; nearest to feasible:")
        for t in result.nearest:
            missed = ", ".join(f"{k} over by {v:,.1f}" for k, v in t.violations.items())
            lines.append(f"  #{t.number} {t.method} {result.metric_name}={t.metric:.4f}: {missed}")
    else:
        lines.append("no trial completed")
    if result.elapsed_s is not None:
        budget = f" of {result.time_budget_s:.0f}s budget" if result.time_budget_s else ""
        lines.append(f"\nelapsed {result.elapsed_s:.0f}s{budget}")
    return "\n".join(lines)


def _search_job(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The task, configuration and strategy: from ``--job`` (a background search's record) or the flags."""
    from recommender.errors import ConfigError
    from recommender.search.config import SearchConfig, TaskRef
    from recommender.search.job import SearchJob
    from recommender.types import UserBudgets

    if args.job is not None:
        if args.task is not None:
            raise ConfigError(f"give the task or --job, not both (the job names its task; got {args.task!r})")
        job = SearchJob.read(args.job)
        if args.strategy not in (None, job.strategy):
            raise ConfigError(f"the job is a {job.strategy!r} search; --strategy {args.strategy} contradicts it")
        return job.task, job.config, job.strategy
    if args.task is None:
        raise ConfigError("give the task to search (a bundled name or a file), or --job")
    overrides = {k: v for k, v in {"text_col": args.text_col, "text_pair_col": args.text_pair_col,
                                   "label_col": args.label_col, "task_type": args.task_type,
                                   "language": args.language, "metric": args.metric}.items() if v}
    task_ref = TaskRef(args.task, overrides, args.max_train, args.max_dev, args.seed)
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods and args.methods != "all" else None
    budgets = UserBudgets(time_budget_s=args.trial_time_budget, latency_budget_ms=args.latency_budget_ms,
                          latency_batch=args.latency_batch, max_trainable_params=args.max_trainable_params,
                          hardware=args.device)
    config = SearchConfig.from_budgets(
        budgets, methods=methods, time_budget=args.time_budget, n_trials=args.n_trials, objective=args.objective,
        sampler=args.sampler, pruner=args.pruner, warm_start=args.warm_start, max_epochs=args.max_epochs,
        patience=args.patience, evals_per_epoch=args.evals_per_epoch, seed=args.seed, model=args.model,
        precision=args.precision, isolation=args.isolation,
        **{k: v for k, v in {"heartbeat_interval": args.heartbeat_interval, "grace_period": args.grace_period,
                             "max_consecutive_failures": args.max_failures}.items() if v is not None})
    return task_ref, config, args.strategy or "optuna"


def cmd_search(args: argparse.Namespace) -> int:
    return _interruptible(lambda: _search(args))


def _search(args: argparse.Namespace) -> int:
    from recommender import pipeline
    from recommender.search.study import create_search_study
    from recommender.store import STORAGE_ENV, mask_url, storage_url

    task_ref, config, strategy = _search_job(args)
    if not args.json:  # on stdout: stderr is for progress and the one error line
        from recommender.report import metric_line

        print(metric_line(task_ref.load()), flush=True)
    if args.create_only:
        create_search_study(task_ref, args.storage, args.study, config)
        shown = mask_url(storage_url(args.storage))
        where = f"--storage {shown}" if args.storage else f"(storage {shown}, or set {STORAGE_ENV})"
        print(f"created study {args.study!r}; start workers with: recommender worker {where} --study {args.study}")
        return 0
    result = pipeline.search(task_ref, config, storage=args.storage, study=args.study, strategy=strategy,
                             progress=None if args.json else _print_progress)
    print(json.dumps(result.to_dict()) if args.json else format_search_result(result))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    return _interruptible(lambda: _worker(args))


def _worker(args: argparse.Namespace) -> int:
    from recommender.search.study import run_worker

    result = run_worker(args.storage, args.study, n_trials=args.n_trials, time_budget=args.time_budget,
                        progress=None if args.json else _print_progress,
                        heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period)
    print(json.dumps(result.to_dict()) if args.json else format_search_result(result))
    return 0


STORAGE_HELP = ("Optuna storage URL: sqlite:///runs.db (default, in the user folder) or "
                "postgresql://user@host:5432/db for many workers; default $RECOMMENDER_STORAGE. Keep passwords "
                "off the command line: PGPASSWORD, ~/.pgpass or $RECOMMENDER_STORAGE")


def register(sub: Any) -> None:
    from recommender.search.config import STRATEGIES

    p = sub.add_parser("search", help="budgeted Optuna search over methods and hyperparameters")
    add_task_args(p, required=False)
    p.add_argument("--job", help="run the search a JSON job file describes (task and configuration, as a "
                   "background search writes it) instead of the task and search flags")
    p.add_argument("--storage", help=STORAGE_HELP)
    p.add_argument("--study", required=True, help="study name (one study per task)")
    p.add_argument("--methods", default="all", help="all, or comma-separated method names")
    p.add_argument("--time-budget", type=parse_duration, help="total wall-clock budget (30m, 1h, 900)")
    p.add_argument("--trial-time-budget", type=parse_duration, default=180.0, help="per-trial budget (default 3m)")
    p.add_argument("--n-trials", type=positive_int, help="stop after this many complete or pruned trials")
    p.add_argument("--latency-budget-ms", type=positive_float,
                   help="max inference latency (p50) at --latency-batch")
    p.add_argument("--latency-batch", type=positive_int, default=1)
    p.add_argument("--max-trainable-params", type=positive_int)
    p.add_argument("--objective", choices=["quality", "pareto"], default="quality")
    p.add_argument("--sampler", choices=["auto", "tpe", "random", "nsga2"], default="auto",
                   help="auto (default): nsga2 for --objective pareto, else tpe")
    p.add_argument("--pruner", choices=["successive_halving", "hyperband", "none"], default="successive_halving")
    p.add_argument("--warm-start", action="store_true", help="enqueue seed configurations first")
    p.add_argument("--strategy", choices=list(STRATEGIES),
                   help="optuna: sampler + pruner (default); race: the meta-model's top pick trained "
                   "first, then the rest of its portfolio raced by successive halving in the time "
                   "the top pick left of --time-budget, the survivor trained to the end")
    p.add_argument("--max-epochs", type=positive_float, default=3.0)
    p.add_argument("--patience", type=positive_int, default=3,
                   help="dev evaluations without improvement before a trial stops early (default 3)")
    p.add_argument("--evals-per-epoch", type=positive_float, default=2.0,
                   help="dev evaluations per epoch (default 2)")
    add_subset_args(p)
    add_device_args(p)
    p.add_argument("--isolation", choices=["process", "none"], default="process",
                   help="run each trial in a fresh process (default) or in this one")
    p.add_argument("--heartbeat-interval", type=positive_int,
                   help="seconds between a worker's heartbeats, stored in a new study for every worker (default 30)")
    p.add_argument("--grace-period", type=positive_int,
                   help="seconds without a heartbeat before a trial is failed and retried (default 90)")
    p.add_argument("--max-failures", type=positive_int,
                   help="stop with an error after this many failed trials in a row (default 5)")
    p.add_argument("--create-only", action="store_true", help="create the study for workers, run nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("worker", help="join a study created by `search --create-only` and run its trials")
    p.add_argument("--storage", help=STORAGE_HELP + "; must already hold the study")
    p.add_argument("--study", required=True)
    p.add_argument("--n-trials", type=positive_int, help="stop once the study has this many complete/pruned trials")
    p.add_argument("--time-budget", type=parse_duration)
    p.add_argument("--heartbeat-interval", type=int, help=argparse.SUPPRESS)  # the study's settings rule
    p.add_argument("--grace-period", type=int, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_worker)

