"""Shared by the benchmark scripts: parameter files with small overrides, logging, and plain
tables.

A benchmark reads its parameter file, merges the file's ``quick`` block with ``--quick``,
applies its own flags, then ``--set section.key=VALUE`` overrides (last, so they always win).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks run offline, like the tests: set before a script imports Hugging Face libraries
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins; nested dicts merge, everything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_dotted(params: dict[str, Any], assignment: str, known_only: bool = False) -> None:
    """``a.b=VALUE``: VALUE parsed as JSON when it is JSON, else kept as a string. With
    ``known_only``, a key the parameters do not have is an error that lists the known ones."""
    if "=" not in assignment:
        raise SystemExit(f"--set {assignment!r}: expected section.key=value")
    key, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        if known_only and not isinstance(node.get(part), dict):
            raise SystemExit(f"--set {key}: unknown parameter; known: {', '.join(sorted(node))}")
        node = node.setdefault(part, {})
    if known_only and parts[-1] not in node:
        raise SystemExit(f"--set {key}: unknown parameter; known: {', '.join(sorted(node))}")
    node[parts[-1]] = value


def parameter_parser(doc: str, default_params: Path, default_out: Path, sections: tuple[str, ...], *,
                     quick_help: str, set_example: str) -> argparse.ArgumentParser:
    """The flags every parameter-file benchmark takes: --params, --quick, --only, --set, --out."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=default_params, help="parameter file (JSON)")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--only", help=f"comma-separated sections to run, of {','.join(sections)}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override any parameter, e.g. {set_example} (repeatable)")
    ap.add_argument("--out", type=Path, default=default_out, help="result JSON path")
    return ap


def read_params(args: argparse.Namespace) -> dict[str, Any]:
    """The parameter file, with its ``quick`` block merged under --quick and --only applied."""
    params = json.loads(args.params.read_text(encoding="utf-8"))
    quick = params.pop("quick", {})
    params.pop("_doc", None)
    if args.quick:
        params = deep_merge(params, quick)
    params["quick"] = bool(args.quick)
    if args.only:
        params["sections"] = [s.strip() for s in args.only.split(",") if s.strip()]
    return params


def apply_overrides(params: dict[str, Any], args: argparse.Namespace, sections: tuple[str, ...]) -> dict[str, Any]:
    """Apply the --set overrides (after the script's own flags) and check the sections."""
    for assignment in args.set:
        set_dotted(params, assignment)
    unknown = set(params["sections"]) - set(sections)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; expected some of {list(sections)}")
    return params


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt(value: Any, spec: str = ".1f") -> str:
    """``value`` formatted with ``spec``; "-" for None and non-finite numbers."""
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = [" | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]
    return "\n".join([line, sep, *body])
