"""CLI commands that look before training: ``tasks``, ``describe`` and ``methods``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from recommender.cli.args import add_task_args, load_task


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
    from recommender.report import metric_line

    task = load_task(args)
    features = compute_metafeatures(task, args.model)
    out = {"task": task.spec.to_dict(), "metafeatures": features.to_dict(), "notes": task.notes}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"task {task.name}: {task.task_type}")
    print(metric_line(task))
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
        rows.append({"name": name, "tasks": ",".join(sorted(cls.task_types)), "default_lr": cls.default_lr(),
                     "settings": fields, "description": cls.description})
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        for r in rows:
            print(f"{r['name']:<16} {r['description']}")
    return 0



def register(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list the bundled tasks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("describe", help="meta-features of a task")
    add_task_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser("methods", help="list the registered tuning methods")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)
