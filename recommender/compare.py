"""Train several methods with their defaults on one task: the seed papers' comparison, on the
user's own hardware and data."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recommender.methods import get_method_class, method_names
from recommender.report import quality_vs_time_figure, result_row, save_quality_vs_time_png
from recommender.types import Budget, RunResult


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


def compare_methods(task: Any, methods: Sequence[str], *, budget: Budget, model: str | None = None,
                    device: str = "auto", seed: int = 0,
                    on_result: Callable[[RunResult], None] | None = None,
                    **train_kwargs: Any) -> list[RunResult]:
    """Train each method with its defaults under the same budget; one result per method."""
    from recommender.training import train

    results = []
    for name in methods:
        result = train(task, name, budget=budget, model=model, device=device, seed=seed, **train_kwargs)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def write_comparison(results: Sequence[RunResult], out_dir: Path, title: str = "") -> dict[str, Path]:
    """Write ``results.csv``, ``results.json``, ``plot.html`` and ``plot.png`` into ``out_dir``."""
    import pandas as pd

    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [result_row(r) for r in results]
    paths = {"csv": out_dir / "results.csv", "json": out_dir / "results.json",
             "html": out_dir / "plot.html", "png": out_dir / "plot.png"}
    pd.DataFrame(rows).to_csv(paths["csv"], index=False)
    paths["json"].write_text(json.dumps([r.to_dict() for r in results], indent=1), encoding="utf-8")
    quality_vs_time_figure(rows, title).write_html(paths["html"], include_plotlyjs=True)
    save_quality_vs_time_png(rows, paths["png"], title)
    return paths
