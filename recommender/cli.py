"""Command line: parse, call the library, print. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from recommender.errors import RecommenderError

TASK_HELP = "a bundled task name (see `recommender tasks`) or a CSV/TSV/JSONL file or folder"


def parse_duration(text: str) -> float:
    """``90`` / ``90s`` / ``3m`` / ``1.5h`` -> seconds."""
    text = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90, 90s, 3m, 1h)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text!r}")
    return value


def _add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", help=TASK_HELP)
    p.add_argument("--text-col", help="text column of a user file")
    p.add_argument("--text-pair-col", help="second text column (sentence pairs)")
    p.add_argument("--label-col", help="label column of a user file")
    p.add_argument("--task-type", choices=["classification", "regression", "extractive_qa", "token_classification"])
    p.add_argument("--language", help="ISO 639-1 code of the texts (detected when omitted)")
    p.add_argument("--model", help="local Hugging Face model folder (default: bundled all-MiniLM-L6-v2)")


def _load_task(args: argparse.Namespace) -> Any:
    from recommender.tasks import load_task

    return load_task(args.task, text_col=args.text_col, text_pair_col=args.text_pair_col,
                     label_col=args.label_col, task_type=args.task_type, language=args.language)


def _subsample(task: Any, args: argparse.Namespace) -> Any:
    if getattr(args, "max_train", None) or getattr(args, "max_dev", None):
        return task.subsample(args.max_train, args.max_dev, seed=args.seed)
    return task


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--time-budget", type=parse_duration, help="max seconds per run (90, 3m, ...)")
    p.add_argument("--max-epochs", type=float, default=3.0)
    p.add_argument("--patience", type=int, default=3, help="evaluations without improvement before stopping")
    p.add_argument("--target", type=float, help="stop once the dev metric reaches this value")
    p.add_argument("--max-train", type=int, help="use at most this many training examples")
    p.add_argument("--max-dev", type=int, help="use at most this many dev examples")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-batch", type=int, default=32, help="serving batch size for latency")


def _budget(args: argparse.Namespace) -> Any:
    from recommender.types import Budget

    return Budget(max_seconds=args.time_budget, max_epochs=args.max_epochs, patience=args.patience,
                  target_score=args.target)


def _progress_bar(total: int | None, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr,
                disable=not sys.stderr.isatty())


# --- commands ----------------------------------------------------------------------------
def cmd_tasks(args: argparse.Namespace) -> int:
    from recommender.report import format_table
    from recommender.tasks import bundled_spec, bundled_task_names

    rows = []
    for name in bundled_task_names():
        spec, _ = bundled_spec(name)
        lang = spec.language if not spec.cross_lingual else f"{spec.language}->{spec.eval_language}"
        rows.append({"name": name, "type": spec.task_type + (" (pair)" if spec.is_pair else ""),
                     "language": lang, "domain": spec.domain, "n_train": spec.n_train, "n_dev": spec.n_dev,
                     "metric": spec.metric, "labels": len(spec.label_names) if spec.label_names else "-"})
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_table(rows, rows[0].keys()))
        print(f"\n{len(rows)} tasks in {len({r['language'] for r in rows})} language settings")
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from recommender.metafeatures import compute_metafeatures

    task = _load_task(args)
    features = compute_metafeatures(task, args.model)
    out = {"task": task.spec.to_dict(), "metafeatures": features.to_dict(), "notes": task.notes}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"task {task.name}: {task.task_type}, metric {task.spec.metric}")
    for note in task.notes:
        print(f"  note: {note}")
    width = max(len(k) for k in out["metafeatures"])
    for key, value in out["metafeatures"].items():
        print(f"  {key.ljust(width)}  {value}")
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    import dataclasses

    from recommender.methods import get_method_class, method_names

    rows = []
    for name in method_names():
        cls = get_method_class(name)
        fields = {f.name: f.default for f in dataclasses.fields(cls.config_class)}
        rows.append({"name": name, "tasks": ",".join(sorted(cls.task_types)), "default_lr": cls.default_learning_rate,
                     "settings": fields, "description": cls.description})
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        for r in rows:
            print(f"{r['name']:<16} {r['description']}")
    return 0


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
                     on_step=on_step, on_evaluate=on_eval)
    finally:
        bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    from recommender.config_utils import parse_assignments
    from recommender.report import format_table, result_row
    from recommender.training import split_params

    params = parse_assignments(args.set)
    split_params(args.method, params)  # validate before loading data
    task = _subsample(_load_task(args), args)
    result = _train_one(task, args.method, args, params)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(format_table([result_row(result, args.latency_batch)]))
        if result.error:
            print(f"\nerror: {result.error.splitlines()[0]}")
    return 0 if result.status in ("complete", "budget_exhausted", "pruned") else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from recommender.compare import resolve_methods, write_comparison
    from recommender.report import format_table, result_row

    task = _load_task(args)
    methods = resolve_methods(args.methods, task.task_type)
    task = _subsample(task, args)
    results = []
    for i, name in enumerate(methods, start=1):
        print(f"[{i}/{len(methods)}] {name} ...", file=sys.stderr, flush=True)
        result = _train_one(task, name, args)
        results.append(result)
        print(f"      {result.status}, {result.metric_name}={result.best_metric}", file=sys.stderr, flush=True)
    paths = write_comparison(results, Path(args.out), title=f"{task.name}: quality vs time to convergence")
    print(format_table([result_row(r, args.latency_batch) for r in results]))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommender",
        description="Measure, learn and recommend how to fine-tune a language model for a task.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("tasks", help="list the bundled tasks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("describe", help="meta-features of a task")
    _add_task_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("methods", help="list the registered tuning methods")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("train", help="train one method on a task and measure it")
    _add_task_args(p)
    p.add_argument("--method", required=True, help="a registered method (see `recommender methods`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="a hyperparameter (repeatable)")
    _add_train_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("compare", help="train several methods with defaults; write csv/json/plot")
    _add_task_args(p)
    p.add_argument("--methods", default="all", help="all, or a comma-separated list")
    p.add_argument("--out", required=True, help="output folder")
    _add_train_args(p)
    p.set_defaults(func=cmd_compare)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


#: other modules' commands (search, export, ...) register here to keep this file thin
EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def _quiet_library_warnings() -> None:
    import logging
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    logging.getLogger("adapters").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_library_warnings()
    _load_extra_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _load_extra_commands() -> None:
    import importlib

    for module in ("recommender.kb_cli", "recommender.search.cli", "recommender.export_cli",
                   "recommender.metamodel.cli", "recommender.app_cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


if __name__ == "__main__":
    # Run as `python -m recommender.cli`, this file is `__main__`; the command modules register
    # with `recommender.cli`, so dispatch through that module.
    from recommender.cli import main as _main

    sys.exit(_main())
