"""Meta-feature speed: compute_metafeatures on a synthetic 10,000-row task (target < 5 s).

Prints a table and writes benchmarks/results/metafeatures.json. The tokenizer is loaded once
before timing (first use pays the import and load, reported separately).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "metafeatures.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    start = time.perf_counter()
    from recommender.metafeatures import compute_metafeatures
    from recommender.tasks import load_task

    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        lines = ["text,label"] + [" ".join(words[(i + k) % len(words)] for k in range(5 + i % 30)) + f" item {i},c{i % 4}"
                                  for i in range(args.rows)]
        path.write_text("\n".join(lines), encoding="utf-8")
        task = load_task(path)
        load_s = time.perf_counter() - start
        first = time.perf_counter()
        compute_metafeatures(task)
        first_s = time.perf_counter() - first
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            compute_metafeatures(task)
            times.append(time.perf_counter() - t0)
    row = {"rows": args.rows, "load_task_s": load_s, "first_call_s": first_s,
           "median_s": statistics.median(times), "target_s": 5.0, "meets_target": statistics.median(times) < 5.0}
    print(f"{'rows':>8} {'load task (s)':>14} {'first call (s)':>15} {'median (s)':>11} {'target':>7}")
    print(f"{row['rows']:>8} {load_s:>14.2f} {first_s:>15.2f} {row['median_s']:>11.2f} {'< 5 s':>7}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(row, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
