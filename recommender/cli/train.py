"""CLI commands that train: ``train`` (one method) and ``compare`` (several, with defaults)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recommender.cli.args import (
    add_device_args,
    add_subset_args,
    add_task_args,
    finite_float,
    load_task,
    parse_duration,
    positive_float,
    positive_int,
)
from recommender.types import SERVING_BATCH


def _subsample(task: Any, args: argparse.Namespace) -> Any:
    if getattr(args, "max_train", None) or getattr(args, "max_dev", None):
        return task.subsample(args.max_train, args.max_dev, seed=args.seed)
    return task


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-budget", type=parse_duration, help="max seconds per run (90, 3m, ...)")
    p.add_argument("--max-epochs", type=positive_float, default=3.0)
    p.add_argument("--patience", type=positive_int, default=3,
                   help="evaluations without improvement before stopping")
    p.add_argument("--target", type=finite_float, help="stop once the dev metric reaches this value")
    add_subset_args(p)
    add_device_args(p)
    p.add_argument("--latency-batch", type=positive_int, default=SERVING_BATCH, help="serving batch size for latency")


def _budget(args: argparse.Namespace) -> Any:
    from recommender.types import Budget

    return Budget(max_seconds=args.time_budget, max_epochs=args.max_epochs, patience=args.patience,
                  target_score=args.target)


def _progress_bar(total: int | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr,
                disable=not sys.stderr.isatty())


def _train_one(task: Any, method: str, args: argparse.Namespace, params: dict[str, Any] | None = None) -> Any:
    from recommender.training import LatencyConfig, train

    bar = _progress_bar(None, method)

    def on_step(step: int, total: int) -> None:
        bar.total = total
        bar.update(step - bar.n)

    def on_eval(point: Any) -> None:
        bar.set_postfix(metric=f"{point.metric:.4f}")

    try:
        return train(task, method, params=params, budget=_budget(args), model=args.model, device=args.device,
                     seed=args.seed, latency=LatencyConfig(batch_sizes=(1, args.latency_batch)),
                     on_step=on_step, on_evaluate=on_eval, precision=args.precision)
    finally:
        bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from recommender.config_utils import parse_assignments
    from recommender.report import format_table, metric_line, result_row
    from recommender.training import split_params

    params = parse_assignments(args.set)
    split_params(args.method, params)  # validate before loading data
    task = _subsample(load_task(args), args)
    if not args.json:
        print(metric_line(task), file=sys.stderr)
    result = _train_one(task, args.method, args, params)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_table([result_row(result, args.latency_batch)]))
        print(f"\n{result.method}: {result.verdict()}")
        if result.error:
            print(f"\nerror: {result.error.splitlines()[0]}")
    return 0 if result.status in ("complete", "budget_exhausted", "pruned") else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.compare import resolve_methods, write_comparison
    from recommender.report import (
        RELATIVE_COLUMNS,
        format_table,
        metric_line,
        relative_to_reference,
        result_row,
    )

    task = load_task(args)
    methods = resolve_methods(args.methods, task.task_type)
    task = _subsample(task, args)
    print(metric_line(task), file=sys.stderr)
    results = []
    for i, name in enumerate(methods, start=1):
        print(f"[{i}/{len(methods)}] {name} ...", file=sys.stderr, flush=True)
        result = _train_one(task, name, args)
        results.append(result)
        print(f"      {result.status}: {result.verdict()}", file=sys.stderr, flush=True)
    paths = write_comparison(results, Path(args.out), title=f"{task.name}: quality vs time to convergence")
    print(format_table([result_row(r, args.latency_batch) for r in results]))
    relative = relative_to_reference(results, serving_batch=args.latency_batch)
    if relative:
        print("\nagainst full fine-tuning (quality in points; time to convergence and latency as ratios):")
        print(format_table(relative, RELATIVE_COLUMNS))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train one method on a task and measure it")
    add_task_args(p)
    p.add_argument("--method", required=True, help="a registered method (see `recommender methods`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    _add_train_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="train several methods with defaults; write csv/json/plot")
    add_task_args(p)
    p.add_argument("--methods", default="all", help="all, or a comma-separated list")
    p.add_argument("--out", required=True, help="output folder")
    _add_train_args(p)
    p.set_defaults(func=cmd_compare)
