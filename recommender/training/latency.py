"""Inference latency: p50/p95 over repeated forward passes, after warm-up."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from recommender.types import LatencyStats

if TYPE_CHECKING:
    import torch


def synthetic_batch(batch_size: int, seq_len: int, vocab_size: int, device: str,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Full-length, non-padded inputs: [CLS]-like id 101 first, random word ids after."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, max(1001, vocab_size - 1), (batch_size, seq_len), generator=gen)
    ids[:, 0] = 101 if vocab_size > 101 else 0
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "token_type_ids": torch.zeros_like(ids).to(device),
    }


def measure_latency(model: torch.nn.Module, *, batch_size: int, seq_len: int, vocab_size: int,
                    device: str = "cpu", max_seconds: float = 3.0, min_repeats: int = 3,
                    max_repeats: int = 30, warmup: int = 2, merged: bool = False,
                    deadline: float | None = None, precision: str = "fp32") -> LatencyStats:
    """Time ``model`` on a synthetic batch; stops at ``max_repeats`` or ``max_seconds``.

    ``deadline`` (a ``time.perf_counter()`` value) cuts warm-up and repeats short, keeping at
    least one timed pass, so a run's time budget holds even on a slow or busy machine.
    ``warmup=0`` only for a model that has just run (a larger batch after a smaller one: its
    first pass is not slower, measured on two cores).
    ``precision`` is the one the model is served in (bf16 / fp16 autocast, or fp32).
    """
    times = _timed_passes([model], batch_size=batch_size, seq_len=seq_len, vocab_size=vocab_size, device=device,
                          max_seconds=max_seconds, min_repeats=min_repeats, max_repeats=max_repeats,
                          warmup=warmup, deadline=deadline, precision=precision)[0]
    return _stats(times, batch_size, seq_len, precision, merged=merged)


def measure_latency_paired(model: torch.nn.Module, reference: torch.nn.Module, *, batch_size: int, seq_len: int,
                           vocab_size: int, device: str = "cpu", max_seconds: float = 3.0, min_repeats: int = 3,
                           max_repeats: int = 30, warmup: int = 2, deadline: float | None = None,
                           precision: str = "fp32") -> tuple[LatencyStats, LatencyStats]:
    """Time ``model`` and ``reference`` (the base model) pass for pass in turn on the same
    batch, so both meet the same machine state: their ratio is the model's overhead, not the
    load of the moment (timed minutes apart, a full model measured 0.60-1.65x its own base).
    ``max_seconds`` is per model."""
    times = _timed_passes([model, reference], batch_size=batch_size, seq_len=seq_len, vocab_size=vocab_size,
                          device=device, max_seconds=2 * max_seconds, min_repeats=min_repeats,
                          max_repeats=max_repeats, warmup=warmup, deadline=deadline, precision=precision)
    own, base = (_stats(t, batch_size, seq_len, precision, paired=True) for t in times)
    return own, base


def _timed_passes(models: list[torch.nn.Module], *, batch_size: int, seq_len: int, vocab_size: int, device: str,
                  max_seconds: float, min_repeats: int, max_repeats: int, warmup: int, deadline: float | None,
                  precision: str) -> list[list[float]]:
    """Milliseconds per forward pass of each model, the models taking turns each round."""
    import torch

    from recommender.training.precision import autocast

    batch = synthetic_batch(batch_size, seq_len, vocab_size, device)
    for model in models:
        model.eval()
    times: list[list[float]] = [[] for _ in models]

    def out_of_time() -> bool:
        return deadline is not None and time.perf_counter() > deadline

    with torch.inference_mode(), autocast(device, precision):
        for i in range(warmup):
            if i > 0 and out_of_time():
                break  # the first warm-up pass always: a cold first pass is not a latency
            for model in models:
                model(**batch)
        start = time.perf_counter()
        while not times[0] or (len(times[0]) < max_repeats and not out_of_time() and (
            len(times[0]) < min_repeats or time.perf_counter() - start < max_seconds
        )):
            for model, mine in zip(models, times, strict=True):
                t0 = time.perf_counter()
                model(**batch)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                mine.append((time.perf_counter() - t0) * 1000)
    return times


def _stats(times: list[float], batch_size: int, seq_len: int, precision: str, *, merged: bool = False,
           paired: bool = False) -> LatencyStats:
    arr = np.asarray(times)
    return LatencyStats(batch_size=batch_size, seq_len=seq_len, p50_ms=float(np.percentile(arr, 50)),
                        p95_ms=float(np.percentile(arr, 95)), merged=merged, repeats=len(times),
                        precision=precision, paired=paired)
