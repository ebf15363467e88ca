#!/usr/bin/env bash
# Device check for a lent GPU machine (run once via the `device` tool; writes JSON to $OUT).
# CUDA training of three methods under autocast, a 3-trial search, latency on the GPU.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
if [ ! -x .venv/bin/python ]; then
  $PY -m venv .venv && .venv/bin/pip install -q torch==2.13.0 && .venv/bin/pip install -q -e . \
    > "$OUT/install.log" 2>&1
fi
PY=.venv/bin/python
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.csv" 2>&1
$PY - "$OUT" <<'PYEOF' > "$OUT/train.log" 2>&1
import json, sys, time
from recommender.tasks import load_task
from recommender.training import LatencyConfig, train
from recommender.types import Budget
out = sys.argv[1]
task = load_task("glue_sst2").subsample(2000, 500, seed=0)
rows = []
for method in ("full_ft", "lora", "unipelt_prompt"):
    for precision in ("fp32", "auto"):
        t0 = time.time()
        r = train(task, method, budget=Budget(max_epochs=2, patience=None), device="cuda", precision=precision,
                  latency=LatencyConfig(batch_sizes=(1, 32)))
        rows.append({"method": method, "precision": r.precision, "status": r.status, "error": r.error,
                     "metric": r.best_metric, "se": r.metric_se, "baseline": r.baseline_metric,
                     "train_seconds": r.train_seconds, "wall": time.time() - t0,
                     "latency": [l.to_dict() for l in r.latency], "base_latency": [l.to_dict() for l in r.base_latency],
                     "device": r.environment.device if r.environment else None})
        print(rows[-1], flush=True)
json.dump(rows, open(f"{out}/train.json", "w"), indent=1)
PYEOF
timeout 300 .venv/bin/recommender search glue_sst2 --storage "sqlite:///$OUT/search.db" --study gpu \
  --methods lora,full_ft --n-trials 3 --trial-time-budget 60 --time-budget 240 --max-train 1000 \
  --max-dev 200 --device cuda > "$OUT/search.log" 2>&1
echo "search rc=$?" >> "$OUT/search.log"
.venv/bin/recommender kb status --storage "sqlite:///$OUT/search.db" >> "$OUT/search.log" 2>&1 || true
ls -la "$OUT"
