"""CLI commands of the meta-model: ``recommend``, ``meta fit`` and ``meta evaluate``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from recommender.cli import EXTRA_COMMANDS, _add_task_args, _load_task, parse_duration


def format_recommendation(rec: Any) -> str:
    from recommender.report import format_table

    rows = [{"rank": c.rank, "method": c.method, "metric": c.predicted_metric,
             "interval": f"[{c.metric_interval[0]:.3f}, {c.metric_interval[1]:.3f}]",
             "time_s": c.predicted_time_s, "latency_ms": c.predicted_latency_ms,
             "memory_mb": c.predicted_memory_mb, "trainable": c.trainable_params, "storage_mb": c.storage_mb,
             "p_meets": " ".join(f"{k}={v:.2f}" for k, v in c.p_meets.items()) or "-",
             "feasible": c.feasible} for c in rec.candidates]
    lines = [f"{rec.task}: predicted {rec.metric_name} (learned from {rec.n_runs} past runs; times and "
             f"latencies calibrated on {rec.hardware.get('device')})", ""]
    if rows:
        lines.append(format_table(rows, rows[0].keys()))
    lines.append("")
    for c in rec.candidates:
        lines.append(f"  {c.rank}. {c.method}: {c.why}. Params: {c.params}")
    if not rec.feasible_found:
        lines.append(f"\nno candidate meets every budget: {rec.relax_advice}")
    if rec.nearest_tasks:
        near = "; ".join(f"{n['task']} (n={n['size']}): {n['best_method']} won" for n in rec.nearest_tasks)
        lines.append(f"\nnearest past tasks: {near}")
    if rec.top_features:
        lines.append(f"meta-features that weigh most: {', '.join(rec.top_features)}")
    return "\n".join(lines)


def cmd_recommend(args: argparse.Namespace) -> int:
    from recommender.metamodel.recommend import recommend
    from recommender.types import UserBudgets

    budgets = UserBudgets(time_budget_s=args.time_budget, latency_budget_ms=args.latency_budget_ms,
                          latency_batch=args.latency_batch, max_trainable_params=args.max_trainable_params,
                          n_tasks=args.n_tasks, storage_budget_mb=args.storage_budget_mb, hardware=args.hardware)
    task = _load_task(args)
    rec = recommend(task, budgets, top=args.top, storage=args.storage)
    print(json.dumps(rec.to_dict()) if args.json else format_recommendation(rec))
    return 0


def cmd_meta_fit(args: argparse.Namespace) -> int:
    from recommender.metamodel.recommend import load_metamodel

    model = load_metamodel(args.storage)
    print(f"fitted on {model.n_runs_} runs ({len(model.methods_)} methods); targets: {', '.join(model.models_)}")
    return 0


def cmd_meta_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.metamodel.evaluate import evaluate, held_out_folds
    from recommender.metamodel.recommend import knowledge_rows

    rows = knowledge_rows(args.storage)
    folds = list(held_out_folds(rows))  # fitted once, shared by the evaluation and the replay
    summary = evaluate(rows, folds=folds)
    if args.warm_start:
        from recommender.metamodel.replay import warm_start_replay

        summary["warm_start"] = warm_start_replay(rows, k=args.warm_start_k, folds=folds)
    text = json.dumps(summary, indent=1)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("recommend", help="rank fine-tuning strategies for a task under budgets")
    _add_task_args(p)
    p.add_argument("--time-budget", type=parse_duration, help="training time you can afford (30m, 600)")
    p.add_argument("--latency-budget-ms", type=float)
    p.add_argument("--latency-batch", type=int, default=1)
    p.add_argument("--max-trainable-params", type=int)
    p.add_argument("--n-tasks", type=int, default=1, help="tasks to serve (prices maintainability)")
    p.add_argument("--storage-budget-mb", type=float)
    p.add_argument("--hardware", default="auto", help="auto, cpu or cuda: where times are calibrated")
    p.add_argument("--storage", help="also learn from the runs in this Optuna storage")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recommend)

    meta = sub.add_parser("meta", help="meta-model commands")
    meta_sub = meta.add_subparsers(dest="meta_command", required=True)
    p = meta_sub.add_parser("fit", help="fit on the knowledge base plus a storage's runs")
    p.add_argument("--storage")
    p.set_defaults(func=cmd_meta_fit)
    p = meta_sub.add_parser("evaluate", help="leave-one-task-out evaluation against baselines")
    p.add_argument("--storage")
    p.add_argument("--out", help="write the JSON summary here too")
    p.add_argument("--warm-start", action="store_true",
                   help="also replay warm-started vs cold TPE searches on the measured runs")
    p.add_argument("--warm-start-k", type=int, default=5, help="configurations the warm start enqueues")
    p.set_defaults(func=cmd_meta_evaluate)


EXTRA_COMMANDS.append(register)
