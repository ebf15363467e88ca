"""The learning curve: dev evaluations during training, the best checkpoint, patience, and why
training stops (the budget's stop rules, with time kept back for what follows training)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.training.reserve import Clock, TimeReserve
from recommender.training.setup import RunModel
from recommender.types import Budget, EvalPoint

if TYPE_CHECKING:
    from recommender.training.transfer import TransferTarget

EvalCallback = Callable[[EvalPoint], bool | None]


def snapshot(model: Any) -> dict[str, Any]:
    """A copy of ``model``'s trainable weights (a best checkpoint)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@dataclass
class RunState:
    """What training has done so far: counters, clocks, the curve and the best checkpoint."""

    step: int = 0
    examples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    steps_per_epoch: int = 1
    best: float | None = None
    first: float | None = None  # the first evaluation's score (has the run risen above it?)
    patience_best: float = -math.inf  # the best score that last reset patience
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_state: dict[str, Any] | None = None
    evals_since_best: int = 0
    curve: list[EvalPoint] = field(default_factory=list)
    last_eval_step: int = -1
    last_eval_duration: float | None = None
    losses: list[float] = field(default_factory=list)
    losses_at_last_eval: int = 0
    first_step_seconds: float = 0.0
    first_step_tokens: int = 0

    @property
    def epoch(self) -> float:
        return self.step / max(1, self.steps_per_epoch)


class LearningCurve:
    """Evaluates every stream on its monitored dev set, keeps the best state, and says when
    training stops. Transfer ``targets`` (:mod:`~recommender.training.transfer`) are evaluated
    beside it and keep their own best states; they do not stop training."""

    def __init__(self, run_model: RunModel, state: RunState, budget: Budget, clock: Clock,
                 reserve: TimeReserve, on_evaluate: EvalCallback | None = None,
                 targets: Sequence[TransferTarget] = ()) -> None:
        self.run_model, self.state, self.budget = run_model, state, budget
        self.clock, self.reserve, self.on_evaluate = clock, reserve, on_evaluate
        self.targets = list(targets)

    def evaluate(self) -> bool:
        """Evaluate every stream; keep the best state; return True if the run is pruned."""
        st, rm = self.state, self.run_model
        t0 = time.perf_counter()
        primary = rm.streams[0]
        scored = rm.predict(primary).scored(rm.scoring(primary))
        value = scored.primary()
        all_metrics = scored.metrics()
        for stream in rm.streams[1:]:
            for key, v in rm.predict(stream).scored(rm.scoring(stream)).metrics().items():
                all_metrics[f"{stream.name}/{key}"] = v
        window = st.losses[st.losses_at_last_eval:]  # losses since the previous evaluation
        st.losses_at_last_eval = len(st.losses)
        st.last_eval_step = st.step
        flops_per_token = rm.flops_per_token
        point = EvalPoint(step=st.step, epoch=st.epoch,
                          train_seconds=st.train_seconds, wall_seconds=self.clock.elapsed(),
                          examples=st.examples, tokens=st.tokens, metric=value, metrics=all_metrics,
                          train_loss=float(np.mean(window)) if window else None,
                          flops=st.tokens * flops_per_token if flops_per_token else None)
        st.curve.append(point)
        for target in self.targets:
            target.evaluate(rm, point)
        st.last_eval_duration = time.perf_counter() - t0
        st.eval_seconds += st.last_eval_duration
        if st.first is None:
            st.first = value
        # patience counts evaluations that fail to beat the best seen so far by min_delta
        if st.best is None or value > st.patience_best + self.budget.min_delta:
            st.patience_best, st.evals_since_best = value, 0
        else:
            st.evals_since_best += 1
        if st.best is None or value > st.best:
            st.best, st.best_metrics = value, all_metrics
            st.best_state = snapshot(rm.model)
        return bool(self.on_evaluate(point)) if self.on_evaluate is not None else False

    def stop_reason(self, total_steps: int) -> str | None:
        """Why training stops after this step (None: it goes on). Under a time budget, the
        time reserve counts as already spent."""
        st = self.state
        elapsed = self.clock.elapsed()
        if self.budget.max_seconds is not None:
            elapsed += self.reserve.seconds(st)
        risen = st.best is not None and st.first is not None and st.best > st.first + self.budget.min_delta
        return self.budget.stop_reason(elapsed=elapsed, step=st.step, total_steps=total_steps,
                                       evals_since_best=st.evals_since_best, best=st.best,
                                       epoch=st.epoch, risen=risen)

    def finish(self, reason: str) -> str:
        """Evaluate the last steps unless they were just evaluated, or the time budget has no
        room left for one more evaluation; return ``reason``."""
        st = self.state
        if st.last_eval_step != st.step:
            needed = st.last_eval_duration or 0.0
            if reason != "time_budget" or st.best is None or self.clock.time_left() > needed:
                self.evaluate()
        return reason
