"""Calibrate this machine once: matmul speed and the base model's latency, cached in the user
folder so recommendations convert the knowledge base's costs to *this* hardware in
milliseconds."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from recommender.paths import user_dir

CALIBRATION_FILE = "calibration.json"

#: bf16 over fp32 matmul speed for a bf16 run that recorded only the fp32 reading (every
#: knowledge-base row before the calibration took both, 2026-12-06): measured on a 2-core AMD
#: EPYC with avx512_bf16 of this project (one thread, 512x512: 2.2x; the knowledge-base issue: 2.1x at 1024)
BF16_MATMUL_SPEEDUP = 2.1


def peak_gflops(calibration: dict[str, Any] | None, precision: str | None) -> float | None:
    """The matmul GFLOP/s of ``calibration`` in the precision a run trained in (None: none
    recorded). A training second is worth this many GFLOP-equivalents, so a bf16 second counts
    ~2x an fp32 one where bf16 runs ~2x faster; a bf16 run that recorded only the fp32 reading
    takes it x :data:`BF16_MATMUL_SPEEDUP`."""
    calibration = calibration or {}
    fp32 = calibration.get("matmul_gflops")
    precision = precision or "fp32"
    value = calibration.get(f"matmul_gflops_{precision}") if precision != "fp32" else fp32
    if value is None and precision == "bf16" and fp32:
        value = float(fp32) * BF16_MATMUL_SPEEDUP
    try:
        value = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value > 0 else None


def seq_bucket(tokens_p95: float, max_seq_length: int = 128) -> int:
    """Sequence length used for latency: the task's p95 rounded up to 16, capped."""
    return int(min(max_seq_length, max(16, 16 * math.ceil(tokens_p95 / 16))))


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}  # a missing or damaged cache is simply measured again


def hardware_profile(device: str, seq_len: int, batch_sizes: tuple[int, ...], model: str | None = None) -> dict[str, Any]:
    """``matmul_gflops`` (fp32, and ``matmul_gflops_bf16`` where training would use bf16),
    ``precision`` (what ``--precision auto`` trains in here), ``train_gflops`` (the matmul speed
    in that precision: divides a knowledge-base cost into seconds here), ``base_latency_ms[batch]``
    and the resolved ``device`` (``"auto"`` becomes ``cpu`` or ``cuda``); measured on first use."""
    from recommender.models import model_display_name, resolve_model_path
    from recommender.training.environment import calibrate, resolve_device

    cache_file = user_dir() / CALIBRATION_FILE
    cache = _load(cache_file)
    before = json.dumps(cache, sort_keys=True)
    if device == "auto":
        # resolving "auto" imports torch (seconds): remember the answer for this GPU visibility
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "*")
        auto = cache.get("auto_device", {})
        if isinstance(auto, dict) and auto.get("visible") == visible and auto.get("device") in ("cpu", "cuda"):
            device = auto["device"]
        else:
            device = resolve_device(device)
            cache["auto_device"] = {"visible": visible, "device": device}
    else:
        device = resolve_device(device)
    path = resolve_model_path(model)
    key = f"{device}|{model_display_name(path)}|{seq_len}"
    entry = cache.get(key, {})
    if "matmul_gflops" not in entry or "precision" not in entry:
        from recommender.training.precision import resolve_precision

        entry.update(calibrate(device))
        entry["precision"] = resolve_precision("auto", device)
    latency = entry.setdefault("base_latency_ms", {})
    missing = [b for b in batch_sizes if str(b) not in latency]
    if missing:
        from recommender.models import load_model
        from recommender.training.latency import measure_latency

        base = load_model(path, "classification", 2).to(device)
        for i, b in enumerate(sorted(missing)):
            # a reference for ratios, measured once per machine and short (a batch-32 pass
            # takes 0.5-0.8 s on two cores, within 2 % of the next): one warm-up pass before
            # the smallest batch, none before the larger ones (the model is warm, and its first
            # pass at a larger batch is not slower), one timed pass each after the first
            latency[str(b)] = measure_latency(base, batch_size=b, seq_len=seq_len, vocab_size=base.config.vocab_size,
                                              device=device, max_seconds=0.5, warmup=1 if i == 0 else 0,
                                              min_repeats=3 if i == 0 else 1).p50_ms
    cache[key] = entry
    if json.dumps(cache, sort_keys=True) != before:
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        tmp.replace(cache_file)
    return {**entry, "device": device, "train_gflops": peak_gflops(entry, entry["precision"]) or entry["matmul_gflops"]}
