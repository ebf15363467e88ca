#!/usr/bin/env python
"""Move the protocol-1 rows of data/knowledge_base/runs.jsonl into runs_protocol1.jsonl, with
the constant predictor's score recomputed for each (it was not recorded then), and report how
many (task, size) sets have no run above it -- in the metric recorded then and in the task's
current official metric where the row has it.

    python scripts/split_protocol1.py            # idempotent: rows already moved stay moved
"""

from __future__ import annotations

import json
import sys

from recommender.baselines import backfill_baselines
from recommender.knowledge_base import KB_FILE, PROTOCOL1_FILE, load_knowledge_base, write_rows
from recommender.paths import knowledge_base_dir
from recommender.tasks import bundled_spec
from recommender.types import LEARNED_MARGIN


def main() -> int:
    folder = knowledge_base_dir()
    main_file, old_file = folder / KB_FILE, folder / PROTOCOL1_FILE
    rows = load_knowledge_base(main_file) if main_file.exists() else []
    old = [r for r in rows if r.protocol == 1]
    old += load_knowledge_base(old_file) if old_file.exists() else []
    old = list({r.run_id: r for r in backfill_baselines(old)}.values())
    keep = [r for r in rows if r.protocol != 1]
    write_rows(old, old_file)
    if keep:
        write_rows(keep, main_file)
    else:
        main_file.unlink(missing_ok=True)
    sets: dict[tuple[str, int], list] = {}
    for r in old:
        sets.setdefault((r.task, r.size), []).append(r.result)
    recorded = [k for k, v in sets.items() if not any(x.learned for x in v)]
    official = []
    for (task, size), results in sets.items():
        metric = bundled_spec(task)[0].metric
        # the official metric where the row recorded it, else the metric recorded then
        gains = [x.best_metrics[metric] - x.baseline_metrics[metric]
                 if metric in x.best_metrics and metric in x.baseline_metrics
                 else x.best_metric - x.baseline_metric for x in results]
        if not any(g >= LEARNED_MARGIN for g in gains):
            official.append((task, size))
    summary = {"protocol1_rows": len(old), "sets": len(sets),
               "sets_without_a_run_above_the_constant_predictor_recorded_metric": sorted(recorded),
               "sets_without_a_run_above_the_constant_predictor_official_metric": sorted(official)}
    print(json.dumps(summary, indent=1))
    (folder / "protocol1_baselines.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"moved {len(old)} protocol-1 rows to {old_file}; {len(keep)} rows stay in {main_file}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
