"""CLI commands of the meta-model: ``recommend``, ``meta fit`` and ``meta evaluate``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from recommender.cli.args import (
    add_task_args,
    load_task,
    parse_duration,
    positive_float,
    positive_int,
)


def _existing_storage(storage: str | None) -> str | None:
    """An explicit --storage of a reading command must exist: a typo is an error, not 'no runs'."""
    from recommender.store import require_storage

    return None if storage is None else require_storage(storage)


def readable_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with floats to 3 significant digits, for reading (``--json`` has them exact)."""
    return {k: float(f"{v:.3g}") if isinstance(v, float) else v for k, v in params.items()}


def format_recommendation(rec: Any) -> str:
    from recommender.report import format_table

    b = rec.budgets
    rows = [{"rank": c.rank, "method": c.method, rec.metric_name: c.predicted_metric,
             "80% interval": f"[{c.metric_interval[0]:.3f}, {c.metric_interval[1]:.3f}]",
             "to converge (s)": c.predicted_time_s, f"latency b{b.latency_batch} (ms)": c.predicted_latency_ms,
             "memory (MB)": c.predicted_memory_mb, "trainable params": c.trainable_params,
             f"storage, {b.n_tasks} task{'s' if b.n_tasks != 1 else ''} (MB)": c.storage_mb,
             "meets budgets": c.budget_verdict(b.time_budget_s), "ranked by": c.ranked_by} for c in rec.candidates]
    when = (f"within a {rec.quality_at_s:.0f}s training budget" if rec.quality_at_s is not None
            else "at convergence")
    base = "" if rec.baseline_metric is None else f"; a constant predictor scores {rec.baseline_metric:.3f}"
    lines = [f"{rec.task}: predicted {rec.metric_name} {when} (learned from {rec.n_runs} past runs; times and "
             f"latencies calibrated on {rec.hardware.get('device')}, training in "
             f"{rec.hardware.get('precision', 'fp32')}{base})", ""]
    lines += [f"warning: {w}" for w in rec.warnings]
    if rec.warnings:
        lines.append("")
    if rows:
        lines.append(format_table(rows, rows[0].keys()))
    lines.append("")
    for c in rec.candidates:
        lines.append(f"  {c.rank}. {c.method}: {c.why}. Params: {readable_params(c.params)}")
    if not rec.feasible_found:
        lines.append(f"\nno candidate meets every budget: {rec.relax_advice}")
    if rec.nearest_tasks:
        near = "; ".join(f"{n['task']} (n={n['size']}): {n['summary']}" for n in rec.nearest_tasks)
        lines.append(f"\nnearest past tasks: {near}")
    if rec.top_features:
        lines.append(f"meta-features that weigh most: {', '.join(rec.top_features)}")
    return "\n".join(lines)


def cmd_recommend(args: argparse.Namespace) -> int:
    from recommender import pipeline
    from recommender.types import UserBudgets

    budgets = UserBudgets(time_budget_s=args.time_budget, latency_budget_ms=args.latency_budget_ms,
                          latency_batch=args.latency_batch, max_trainable_params=args.max_trainable_params,
                          n_tasks=args.n_tasks, storage_budget_mb=args.storage_budget_mb, hardware=args.hardware)
    _existing_storage(args.storage)
    task = load_task(args)
    rec = pipeline.recommend(task, budgets, top=args.top, storage=args.storage)
    if not args.json:
        from recommender.report import metric_line

        print(metric_line(task))
    print(json.dumps(rec.to_dict()) if args.json else format_recommendation(rec))
    return 0


def cmd_meta_fit(args: argparse.Namespace) -> int:
    from recommender.metamodel.predictor import load_predictor

    predictor = load_predictor(_existing_storage(args.storage))
    model = predictor.meta
    for note in predictor.notes:
        print(f"note: {note}")
    print(f"fitted on {model.n_runs_} runs ({len(model.methods_)} methods); targets: {', '.join(model.models_)}, "
          "quality at a budget")
    return 0


def cmd_meta_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.metamodel.evaluate import evaluate, held_out_folds
    from recommender.metamodel.recommend import knowledge_rows

    rows = knowledge_rows(_existing_storage(args.storage))
    if args.scenarios:  # the budgeted replay: what data/knowledge_base/evaluation.json holds
        from recommender.metamodel.quality import select_protocol
        from recommender.metamodel.replay_eval import evaluate_scenarios

        chosen, note = select_protocol(rows, args.min_protocol)
        result = evaluate_scenarios(chosen)
        result["protocol_note"] = note
        text = json.dumps(result, indent=1)
        if args.out:
            Path(args.out).write_text(text, encoding="utf-8")
        print(text)
        return 0
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
    add_task_args(p)
    p.add_argument("--time-budget", type=parse_duration, help="training time you can afford (30m, 600)")
    p.add_argument("--latency-budget-ms", type=positive_float)
    p.add_argument("--latency-batch", type=positive_int, default=1)
    p.add_argument("--max-trainable-params", type=positive_int)
    p.add_argument("--n-tasks", type=positive_int, default=1, help="tasks to serve (prices maintainability)")
    p.add_argument("--storage-budget-mb", type=positive_float)
    p.add_argument("--hardware", default="auto", help="auto, cpu or cuda: where times are calibrated")
    p.add_argument("--storage", help="also learn from the runs in this Optuna storage")
    p.add_argument("--top", type=positive_int, default=5)
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
    p.add_argument("--warm-start-k", type=positive_int, default=5, help="configurations the warm start enqueues")
    p.add_argument("--scenarios", action="store_true",
                   help="replay the budgeted scenarios instead (time, latency, parameter and storage budgets; "
                   "meta-model, race, best fixed rule, always full_ft, random, oracle)")
    p.add_argument("--min-protocol", type=positive_int, default=2,
                   help="learn from runs of this measurement protocol or later (falls back when there are none)")
    p.set_defaults(func=cmd_meta_evaluate)

