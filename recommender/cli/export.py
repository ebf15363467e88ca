"""CLI command ``export``: write a trial's configuration as a reproducible bundle."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_export(args: argparse.Namespace) -> int:
    from recommender import pipeline

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    path = pipeline.export_trial(args.storage, args.study, args.out, trial=args.trial, fmt=args.format,
                                 with_weights=args.with_weights, merged=args.merged, force=args.force,
                                 progress=progress)
    files = sorted(str(p.relative_to(path)) for p in path.iterdir())
    print(f"wrote bundle {path}: {', '.join(files)}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a trial's configuration as a reproducible bundle",
                       description="Write config.json/yaml, peft_config.json (where PEFT has an equivalent), "
                                   "train.py and README.md for one trial of a search study; optionally retrain "
                                   "it to include the weights.")
    p.add_argument("--storage", help="Optuna storage URL of the search (default: the user's runs.db)")
    p.add_argument("--study", required=True, help="study name")
    p.add_argument("--trial", default="best", help="'best' (default) or a trial number")
    p.add_argument("--out", required=True, help="bundle folder to create")
    p.add_argument("--format", choices=["json", "yaml"], default="json", help="config file format (default json)")
    p.add_argument("--with-weights", action="store_true",
                   help="retrain with the trial's seed and budget and include the weights (weights/artifact)")
    p.add_argument("--merged", action="store_true",
                   help="also write weights/merged, a plain transformers model (LoRA and IA3 only; implies "
                        "--with-weights)")
    p.add_argument("--force", action="store_true", help="replace the output folder if it exists")
    p.set_defaults(func=cmd_export)

