"""CLI commands of the knowledge base: ``sweep`` and ``kb export|status|defaults|report``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recommender.cli.args import (
    finite_float,
    non_negative_int,
    parse_duration,
    positive_float,
    positive_int,
)


def cmd_sweep(args: argparse.Namespace) -> int:
    from recommender.compare import resolve_methods
    from recommender.sweep import SweepConfig, default_sweep_tasks, plan, run_sweep
    from recommender.tasks import bundled_spec

    tasks = tuple(default_sweep_tasks()) if args.tasks == "all" else tuple(t.strip() for t in args.tasks.split(","))
    for t in tasks:
        bundled_spec(t)
    methods = tuple(resolve_methods(args.methods)) if args.methods != "all" else None
    config = SweepConfig(tasks=tasks, sizes=tuple(args.sizes), methods=methods, n_sampled=args.n_sampled,
                         lr_multipliers=tuple(args.lr_grid), max_dev=args.max_dev,
                         monitor_size=args.monitor_size, trial_time_budget=args.trial_time_budget,
                         max_epochs=args.max_epochs, min_epochs=args.min_epochs,
                         flat_min_epochs=args.flat_min_epochs, patience=args.patience,
                         min_delta=args.min_delta, precision=args.precision, seed=args.seed,
                         model=args.model, device=args.device, transfer=not args.no_transfer)
    print(f"sweep: {len(plan(config))} planned runs ({len(tasks)} tasks, sizes {list(config.sizes)}); "
          "finished runs are skipped", file=sys.stderr, flush=True)

    def on_run(index: int, total: int, label: str, result: Any) -> None:
        print(f"[{index}/{total}] {label}: {result.status} {result.verdict()} "
              f"[{result.epochs:.1f} epochs, {result.stop_reason}, {result.precision}, "
              f"{result.wall_seconds:.0f}s]", flush=True)

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


def cmd_kb_calibrate(args: argparse.Namespace) -> int:
    from recommender.metamodel.shipped import write_shipped_predictor

    path, predictor = write_shipped_predictor()
    widths = ", ".join(f"{w:.4f}" for w in predictor.quality.widths_)
    print(f"wrote {path}: fitted on {predictor.n_runs} runs; 80 % interval conformal widths by third of "
          f"the training cost: {widths}")
    return 0


def cmd_kb_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.knowledge_base import coverage, load_knowledge_base, rows_from_storage
    from recommender.store import require_storage

    if args.storage:
        require_storage(args.storage)  # a status never creates a store
    rows = rows_from_storage(args.storage) if args.storage else load_knowledge_base(
        Path(args.file) if args.file else None)
    table = coverage(rows)
    header = f"{'task':<24} {'size':>5} {'prot':>4} {'runs':>5} {'methods':>7} {'cfg/m':>5} " \
             f"{'learned':>8} {'set':>4} precision"
    print(header)
    for c in table:
        print(f"{c.task:<24} {c.size:>5} {c.protocol:>4} {c.runs:>5} {c.methods:>7} {c.configs_per_method:>5.1f} "
              f"{c.learned_runs / c.runs:>8.0%} {'yes' if c.set_learned else 'no':>4} {c.precision}")
    sets = len(table)
    print(f"{len(rows)} runs, {sets} (task, size, protocol) sets; learned sets "
          f"(best run >= 3 points above its first evaluation): {sum(c.set_learned for c in table)}/{sets}")
    flat = [f"{c.task} n={c.size} (protocol {c.protocol})" for c in table if c.learned_runs == 0]
    print(f"sets with no run above the constant predictor: {len(flat)}/{sets}"
          + (f" ({', '.join(flat)})" if flat else ""))
    return 0


def _kb_rows(args: argparse.Namespace) -> list[Any]:
    from pathlib import Path

    from recommender.kb_analysis import gather_rows

    return gather_rows(args.storages or (), [Path(f) for f in args.file or ()])


def cmd_kb_defaults(args: argparse.Namespace) -> int:
    from recommender.kb_analysis.lr_grid import apply_defaults, lr_evidence
    from recommender.kb_analysis.render import lr_evidence_markdown

    evidence = lr_evidence(_kb_rows(args))
    if not evidence.verdicts:
        print("no protocol-2 learning-rate grid runs (config <method>#0 or <method>#lr<x>) found")
        return 0
    print(lr_evidence_markdown(evidence))
    if not args.apply:
        print("\n(dry run: --apply writes the winners into search_spaces/<method>.json \"defaults\")")
        return 0
    applied = apply_defaults(evidence)
    for a in applied:
        was = "the class default" if a.previous is None else f"{a.previous:g}"
        grown = f"; learning_rate range widened to [{a.widened[0]:g}, {a.widened[1]:g}]" if a.widened else ""
        print(f"{a.method}: default learning_rate {a.learning_rate:g} (was {was}){grown}")
    print(f"applied {len(applied)} of {len(evidence.verdicts)} methods (the others have no complete evidence)")
    return 0


def cmd_kb_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.errors import DataError
    from recommender.kb_analysis.document import check_readme, replace_block, report_markdown, save_plot

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a folder")
    readme = Path(args.readme) if args.readme else None
    if readme is not None:
        check_readme(readme)  # before any work
    text, summaries = report_markdown(_kb_rows(args), args.select, plot=out is not None or readme is not None)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(text, encoding="utf-8")
        print(f"wrote {out / 'report.md'} and {save_plot(summaries, out)}", file=sys.stderr)
    if readme is not None:
        replace_block(readme, text)
        print(f"updated the generated section of {readme} and {save_plot(summaries, readme.parent)}",
              file=sys.stderr)
    return 0


def _add_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", action="append", dest="storages", metavar="URL",
                   help="an existing sweep storage; repeat for several (e.g. one per worker)")
    p.add_argument("--file", action="append", metavar="PATH",
                   help="a knowledge base JSONL file; repeat for several (default without --storage: "
                   "the shipped runs.jsonl)")


def register(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run every method over bundled tasks into a storage (resumable)")
    p.add_argument("--tasks", default="all", help="all, or comma-separated bundled task names")
    p.add_argument("--sizes", type=positive_int, nargs="+", default=[500, 2000], help="training-set sizes")
    p.add_argument("--methods", default="all")
    p.add_argument("--n-sampled", type=non_negative_int, default=0,
                   help="sampled configurations per method, besides defaults")
    p.add_argument("--lr-grid", type=positive_float, nargs="*", default=[],
                   help="learning-rate grid: multiples of each method's default (e.g. 3 0.3 10 0.1)")
    p.add_argument("--max-dev", type=positive_int, default=1000, help="dev examples for the final scoring")
    p.add_argument("--monitor-size", type=positive_int, default=300, help="dev examples for the learning curve")
    p.add_argument("--trial-time-budget", type=parse_duration, default=1800.0,
                   help="wall-clock safety net per run (protocol 2 stops by early stopping)")
    p.add_argument("--max-epochs", type=positive_float, default=None,
                   help="epoch cap (default: 20 at 500 examples, 8 from 2,000)")
    p.add_argument("--min-epochs", type=positive_float, default=None,
                   help="no early stop before this many epochs (default: a quarter of the cap)")
    p.add_argument("--flat-min-epochs", type=positive_float, default=None,
                   help="nor before this many while the run is still at its first score (default: half the cap)")
    p.add_argument("--patience", type=positive_int, default=4, help="evaluations without improvement before stopping")
    p.add_argument("--no-transfer", action="store_true",
                   help="train cross-lingual tasks on their own instead of evaluating them in the runs of "
                        "their source task (when both are swept)")
    p.add_argument("--min-delta", type=finite_float, default=0.005,
                   help="an improvement smaller than this does not reset patience")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the user folder)")
    p.add_argument("--model")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--rerun-known", action="store_true",
                   help="also run configurations already in the shipped knowledge base")
    p.set_defaults(func=cmd_sweep)

    kb = sub.add_parser("kb", help="knowledge base commands")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True)
    p = kb_sub.add_parser("export", help="export a storage's runs to the portable JSONL knowledge base")
    p.add_argument("--storage", help="an existing Optuna storage URL (default: the user's runs.db)")
    p.add_argument("--out", help="output file (default: knowledge_base/runs.jsonl in the user folder, "
                   "$RECOMMENDER_HOME; the shipped one is only written when named here)")
    p.add_argument("--replace", action="store_true", help="do not merge with the rows already in the file")
    p.set_defaults(func=cmd_kb_export)
    p = kb_sub.add_parser("calibrate", help="fit the predictor on the shipped knowledge base and store it "
                          "beside it (after every export: a first recommendation then loads it instead "
                          "of fitting)")
    p.set_defaults(func=cmd_kb_calibrate)
    p = kb_sub.add_parser("status", help="coverage table: tasks x sizes x protocol, methods, learned share")
    p.add_argument("--storage", help="a sweep's storage (default: the knowledge base file)")
    p.add_argument("--file", help="knowledge base file (default: the shipped runs.jsonl)")
    p.set_defaults(func=cmd_kb_status)
    p = kb_sub.add_parser("defaults", help="tuned learning rates from the protocol-2 learning-rate sweep")
    _add_sources(p)
    p.add_argument("--apply", action="store_true",
                   help="write each complete winner into search_spaces/<method>.json \"defaults\"")
    p.set_defaults(func=cmd_kb_defaults)
    p = kb_sub.add_parser("report", help="markdown report: methods against full_ft, coverage, tuned defaults")
    _add_sources(p)
    p.add_argument("--out", help="folder for report.md and the plot (default: print only)")
    p.add_argument("--readme", help="replace the generated section of this README (between its "
                   "'kb report' markers) and write the plot beside it")
    p.add_argument("--select", default="best", choices=["best", "default"],
                   help="per method and task: its best configuration, or its default one")
    p.set_defaults(func=cmd_kb_report)

