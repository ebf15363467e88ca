"""The run's clock, and the time reserve: seconds kept back from a time budget for what must
follow training (the final scoring on the whole dev set, latency measurements, saving the
artifact), so a budgeted run ends on time with a complete record."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Clock:
    """Wall-clock time since the run started, against its time budget (None: no limit)."""

    budget_seconds: float | None
    start: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def time_left(self) -> float:
        if self.budget_seconds is None:
            return math.inf
        return self.budget_seconds - self.elapsed()

    def deadline(self, share: float = 1.0) -> float | None:
        """The ``time.perf_counter()`` value when ``share`` of the budget is spent."""
        return None if self.budget_seconds is None else self.start + self.budget_seconds * share


@dataclass(frozen=True)
class TimeReserve:
    """Estimates from the run's own measurements, capped at a third of the budget so a slow
    start cannot end training early."""

    budget_seconds: float | None
    monitor_tokens: int  # dev tokens scored at each evaluation (all streams)
    final_scale: float  # the final scoring's dev tokens / the primary task's monitored ones (>= 1)
    latency_enabled: bool
    latency_batches: tuple[int, ...]
    latency_seq_len: int
    latency_max_seconds: float
    models_timed: int  # the trained model, merged, base model: how many get timed
    trainable_params: int
    base_model_load: float  # seconds to load the base model for its latency (0 when cached)

    def forward_tokens_per_second(self, state: Any) -> float | None:
        """Inference throughput: measured by the last evaluation, else estimated from training
        steps after the first (a forward pass costs about a third of a training step)."""
        if state.last_eval_duration:
            return self.monitor_tokens / state.last_eval_duration
        if state.step >= 2 and state.train_seconds > state.first_step_seconds:
            return 3 * (state.tokens - state.first_step_tokens) / (state.train_seconds - state.first_step_seconds)
        return None

    def seconds(self, state: Any) -> float:
        """Seconds to keep back now, given the run's ``state`` so far."""
        tps = self.forward_tokens_per_second(state)
        if tps is None or self.budget_seconds is None:
            return 0.0
        eval_cost = state.last_eval_duration or self.monitor_tokens / tps
        eval_cost *= self.final_scale
        return min(eval_cost + self._latency(tps) + self._finish_overhead(), self.budget_seconds / 3)

    def _finish_overhead(self) -> float:
        """Writing the artifact once (~200 MB/s) and loading the base model for its latency."""
        return self.trainable_params * 4 / 200e6 + (self.base_model_load if self.latency_enabled else 0.0)

    def _latency(self, tps: float) -> float:
        if not self.latency_enabled:
            return 0.0
        passes = 2 + 3  # warm-up + minimum repeats
        seq = self.latency_seq_len
        return sum(self.models_timed * min(passes * b * seq / tps, self.latency_max_seconds + 2 * b * seq / tps)
                   for b in self.latency_batches)
