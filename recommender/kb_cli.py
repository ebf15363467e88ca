"""CLI commands of the knowledge base: ``sweep`` and ``kb export``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recommender.cli import EXTRA_COMMANDS, parse_duration


def cmd_sweep(args: argparse.Namespace) -> int:
    from recommender.compare import resolve_methods
    from recommender.sweep import SweepConfig, default_sweep_tasks, plan, run_sweep
    from recommender.tasks import bundled_spec

    tasks = tuple(default_sweep_tasks()) if args.tasks == "all" else tuple(t.strip() for t in args.tasks.split(","))
    for t in tasks:
        bundled_spec(t)
    methods = tuple(resolve_methods(args.methods)) if args.methods != "all" else None
    config = SweepConfig(tasks=tasks, sizes=tuple(args.sizes), methods=methods, n_sampled=args.n_sampled,
                         max_dev=args.max_dev, trial_time_budget=args.trial_time_budget,
                         max_epochs=args.max_epochs, patience=args.patience, seed=args.seed, model=args.model,
                         device=args.device)
    print(f"sweep: {len(plan(config))} planned runs ({len(tasks)} tasks, sizes {list(config.sizes)}); "
          "finished runs are skipped", file=sys.stderr, flush=True)

    def on_run(index: int, total: int, label: str, result: Any) -> None:
        metric = "-" if result.best_metric is None else f"{result.best_metric:.4f}"
        print(f"[{index}/{total}] {label}: {result.status} {result.metric_name}={metric} "
              f"({result.wall_seconds:.0f}s)", flush=True)

    from recommender.knowledge_base import default_path

    done = run_sweep(config, args.storage, on_run=on_run, skip_known_in=None if args.rerun_known else default_path())
    print(f"sweep: {done} new runs", file=sys.stderr)
    return 0


def cmd_kb_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.knowledge_base import export_knowledge_base

    path, n = export_knowledge_base(args.storage, Path(args.out) if args.out else None,
                                    merge_existing=not args.replace)
    print(f"wrote {n} runs to {path}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run every method over bundled tasks into a storage (resumable)")
    p.add_argument("--tasks", default="all", help="all, or comma-separated bundled task names")
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 2000], help="training-set sizes")
    p.add_argument("--methods", default="all")
    p.add_argument("--n-sampled", type=int, default=0, help="sampled configurations per method, besides defaults")
    p.add_argument("--max-dev", type=int, default=300)
    p.add_argument("--trial-time-budget", type=parse_duration, default=120.0)
    p.add_argument("--max-epochs", type=float, default=4.0)
    p.add_argument("--patience", type=int, default=4, help="evaluations without improvement before stopping")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the user folder)")
    p.add_argument("--model")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rerun-known", action="store_true",
                   help="also run configurations already in the shipped knowledge base")
    p.set_defaults(func=cmd_sweep)

    kb = sub.add_parser("kb", help="knowledge base commands")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    p = kb_sub.add_parser("export", help="export a storage's runs to the portable JSONL knowledge base")
    p.add_argument("--storage")
    p.add_argument("--out", help="output file (default data/knowledge_base/runs.jsonl)")
    p.add_argument("--replace", action="store_true", help="do not merge with the rows already in the file")
    p.set_defaults(func=cmd_kb_export)


EXTRA_COMMANDS.append(register)
