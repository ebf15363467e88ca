"""The bundle's ``train.py``: constant code that reads everything it uses from the bundle's
config file when it runs, so nothing from a user or a run store ever becomes code."""

from __future__ import annotations

from typing import Any

#: The generated script is this constant text: every name, path and number it uses is read from
#: the bundle's config file at run time, so nothing from a user or a run store ever becomes code.
TRAIN_SCRIPT = '''#!/usr/bin/env python
"""Retrain the configuration this bundle records, with the `recommender` package.

Exported by `recommender export`. The method, hyperparameters, budget, model, seed and task all
come from config.json (or config.yaml) next to this script, read when it runs; README.md says
what was chosen and why.

    python train.py                  # the original data, subsample, seed and budget
    python train.py --data my.csv --text-col review --label-col stars --max-train 0 --max-dev 0

It prints the dev metric and saves the weights to --out: artifact/ (the adapter and head, or the
whole model, with the tokenizer), merged/ (a plain transformers model, only where merging was
verified exact) and result.json (everything measured).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load_config() -> dict[str, Any]:
    """The bundle's record: config.json, else config.yaml."""
    path = HERE / "config.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    import yaml

    return yaml.safe_load((HERE / "config.yaml").read_text(encoding="utf-8"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Retrain the configuration recorded in this bundle's "
                                     "config.json (or config.yaml).")
    parser.add_argument("--data", help="a bundled task name or a CSV/TSV/JSONL file (default: the original "
                        "task, config task.ref.source)")
    parser.add_argument("--out", help="where to save the weights (default: retrained/ next to this script)")
    parser.add_argument("--text-col", help="text column of a user file")
    parser.add_argument("--text-pair-col", help="second text column (sentence pairs)")
    parser.add_argument("--label-col", help="label column of a user file")
    parser.add_argument("--max-train", type=int, help="training examples (0: all; default: the original "
                        "subsample)")
    parser.add_argument("--max-dev", type=int, help="dev examples (0: all; default: the original subsample)")
    parser.add_argument("--seed", type=int, help="training seed (default: the recorded one)")
    parser.add_argument("--device", help="cpu, cuda or auto (default: the recorded one)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = load_config()

    from recommender.errors import RecommenderError
    from recommender.export import retrain_kwargs
    from recommender.tasks import load_task
    from recommender.training import train

    ref = config["task"]["ref"]
    kwargs = retrain_kwargs(config)
    if args.seed is not None:
        kwargs["seed"] = args.seed
    if args.device is not None:
        kwargs["device"] = args.device
    data = ref["source"] if args.data is None else args.data
    overrides = dict(ref.get("overrides") or {}) if data == ref["source"] else {}
    overrides.update({k: v for k, v in {"text_col": args.text_col, "text_pair_col": args.text_pair_col,
                                        "label_col": args.label_col}.items() if v})
    max_train = ref.get("max_train") if args.max_train is None else args.max_train
    max_dev = ref.get("max_dev") if args.max_dev is None else args.max_dev
    out = HERE / "retrained" if args.out is None else Path(args.out)
    try:
        task = load_task(data, **overrides)
        if max_train or max_dev:
            task = task.subsample(max_train or None, max_dev or None, seed=ref.get("seed", 0))
        out.mkdir(parents=True, exist_ok=True)
        result = train(task, kwargs.pop("method"), save_dir=out, **kwargs)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    if result.best_metric is None:
        print(f"training {result.status}: {(result.error or 'no evaluation finished').splitlines()[0]}")
        return 1
    print(f"dev {result.metric_name}: {result.best_metric:.6f} ({result.status}, {result.steps} steps, "
          f"stopped by {result.stop_reason})")
    print(f"weights saved to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''


def render_train_script(spec: Any = None) -> str:
    """The bundle's ``train.py``: the same text for every bundle (``spec`` is read at run time,
    from the bundle's config file, never written into the script)."""
    return TRAIN_SCRIPT
