"""CLI commands of the search: ``search`` and ``worker``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recommender.cli import EXTRA_COMMANDS, TASK_HELP, parse_duration


def _print_progress(event: dict[str, Any]) -> None:
    best = "-" if event.get("best") is None else f"{event['best']:.4f}"
    metric = "-" if event.get("metric") is None else f"{event['metric']:.4f}"
    left = "" if event.get("time_left_s") is None else f", {event['time_left_s']:.0f}s left"
    print(f"trial {event['trial']:>3} {event['state']:<8} {event.get('method') or '-':<15} metric {metric}  "
          f"| finished {event['n_finished']}, best feasible {best}{left}", file=sys.stderr, flush=True)


def format_search_result(result: Any) -> str:
    from recommender.report import format_table

    rows = [{"trial": t.number, "state": t.state, "method": t.method, "metric": t.metric,
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


def cmd_search(args: argparse.Namespace) -> int:
    from recommender.search.config import SearchConfig, TaskRef
    from recommender.search.study import create_search_study, run_search

    overrides = {k: v for k, v in {"text_col": args.text_col, "text_pair_col": args.text_pair_col,
                                   "label_col": args.label_col, "task_type": args.task_type,
                                   "language": args.language}.items() if v}
    task_ref = TaskRef(args.task, overrides, args.max_train, args.max_dev, args.seed)
    methods = tuple(m.strip() for m in args.methods.split(",")) if args.methods and args.methods != "all" else None
    config = SearchConfig(
        methods=methods, time_budget=args.time_budget, trial_time_budget=args.trial_time_budget,
        n_trials=args.n_trials, latency_budget_ms=args.latency_budget_ms, latency_batch=args.latency_batch,
        max_trainable_params=args.max_trainable_params, objective=args.objective, sampler=args.sampler,
        pruner=args.pruner, warm_start=args.warm_start, max_epochs=args.max_epochs, patience=args.patience,
        evals_per_epoch=args.evals_per_epoch, seed=args.seed,
        model=args.model, device=args.device, isolation=args.isolation)
    if args.create_only:
        create_search_study(task_ref, args.storage, args.study, config)
        print(f"created study {args.study!r}; start workers with: recommender worker --storage {args.storage} "
              f"--study {args.study}")
        return 0
    result = run_search(task_ref, args.storage, args.study, config, progress=None if args.json else _print_progress)
    print(json.dumps(result.to_dict()) if args.json else format_search_result(result))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from recommender.search.study import run_worker

    result = run_worker(args.storage, args.study, n_trials=args.n_trials, time_budget=args.time_budget,
                        progress=None if args.json else _print_progress,
                        heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period)
    print(json.dumps(result.to_dict()) if args.json else format_search_result(result))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("search", help="budgeted Optuna search over methods and hyperparameters")
    p.add_argument("task", help=TASK_HELP)
    p.add_argument("--storage", help="Optuna storage URL: sqlite:///runs.db (default, in the user folder) "
                   "or postgresql://user@host:5432/db for many workers")
    p.add_argument("--study", required=True, help="study name (one study per task)")
    p.add_argument("--methods", default="all", help="all, or comma-separated method names")
    p.add_argument("--time-budget", type=parse_duration, help="total wall-clock budget (30m, 1h, 900)")
    p.add_argument("--trial-time-budget", type=parse_duration, default=180.0, help="per-trial budget (default 3m)")
    p.add_argument("--n-trials", type=int, help="stop after this many complete or pruned trials")
    p.add_argument("--latency-budget-ms", type=float, help="max inference latency (p50) at --latency-batch")
    p.add_argument("--latency-batch", type=int, default=1)
    p.add_argument("--max-trainable-params", type=int)
    p.add_argument("--objective", choices=["quality", "pareto"], default="quality")
    p.add_argument("--sampler", choices=["tpe", "random", "nsga2"], default="tpe")
    p.add_argument("--pruner", choices=["successive_halving", "hyperband", "none"], default="successive_halving")
    p.add_argument("--warm-start", action="store_true", help="enqueue seed configurations first")
    p.add_argument("--max-epochs", type=float, default=3.0)
    p.add_argument("--patience", type=int, default=3,
                   help="dev evaluations without improvement before a trial stops early (default 3)")
    p.add_argument("--evals-per-epoch", type=float, default=2.0, help="dev evaluations per epoch (default 2)")
    p.add_argument("--max-train", type=int, help="use at most this many training examples")
    p.add_argument("--max-dev", type=int, help="use at most this many dev examples")
    p.add_argument("--text-col")
    p.add_argument("--text-pair-col")
    p.add_argument("--label-col")
    p.add_argument("--task-type", choices=["classification", "regression", "extractive_qa", "token_classification"])
    p.add_argument("--language", help="ISO 639-1 code of the texts of a user file (detected when omitted)")
    p.add_argument("--model")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--isolation", choices=["process", "none"], default="process",
                   help="run each trial in a fresh process (default) or in this one")
    p.add_argument("--create-only", action="store_true", help="create the study for workers, run nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("worker", help="join a study created by `search --create-only` and run its trials")
    p.add_argument("--storage", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--n-trials", type=int, help="stop once the study has this many complete/pruned trials")
    p.add_argument("--time-budget", type=parse_duration)
    p.add_argument("--heartbeat-interval", type=int, help="seconds between heartbeats (default 30)")
    p.add_argument("--grace-period", type=int, help="seconds without heartbeat before a trial is failed (default 90)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_worker)


EXTRA_COMMANDS.append(register)
