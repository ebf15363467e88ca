"""Train several methods with their defaults on one task: the seed papers' comparison, on the
user's own hardware and data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from recommender.methods import get_method_class, method_names
from recommender.report import (
    quality_vs_time_figure,
    relative_to_reference,
    result_row,
    save_quality_vs_time_png,
)
from recommender.types import RunResult


def resolve_methods(spec: str | Sequence[str] | None, task_type: str | None = None) -> list[str]:
    """``"all"`` / None -> every registered method (supporting ``task_type``); else validated names."""
    if spec is None or spec == "all" or spec == ["all"]:
        names = method_names()
        if task_type is not None:
            names = [n for n in names if task_type in get_method_class(n).task_types]
        return names
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    for name in names:
        get_method_class(name)  # raises listing valid names
    return names


def write_comparison(results: Sequence[RunResult], out_dir: Path, title: str = "") -> dict[str, Path]:
    """Write ``results.csv``, ``results.json``, ``relative.csv`` (each method against full
    fine-tuning: quality, time to convergence, latency overhead), ``plot.html`` and ``plot.png``."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [result_row(r) for r in results]
    paths = {"csv": out_dir / "results.csv", "json": out_dir / "results.json",
             "relative": out_dir / "relative.csv", "html": out_dir / "plot.html", "png": out_dir / "plot.png"}
    pd.DataFrame(rows).to_csv(paths["csv"], index=False)
    pd.DataFrame(relative_to_reference(results)).to_csv(paths["relative"], index=False)
    paths["json"].write_text(json.dumps([r.to_dict() for r in results], indent=1), encoding="utf-8")
    quality_vs_time_figure(rows, title).write_html(paths["html"], include_plotlyjs=True)
    save_quality_vs_time_png(rows, paths["png"], title)
    return paths
