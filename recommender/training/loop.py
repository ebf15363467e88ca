"""The training loop: AdamW with linear warm-up and decay, seeded batches (interleaved across
streams in multi-task training), gradient clipping, and an evaluation every few steps."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

from recommender import interrupts
from recommender.training.config import TrainingConfig
from recommender.training.curve import LearningCurve, RunState
from recommender.training.data import batch_indices, collate, compute_loss
from recommender.training.setup import RunModel, RunSettings

StepCallback = Callable[[int, int], None]


class NonFiniteLoss(RuntimeError):
    pass


def build_optimizer(model: Any, config: TrainingConfig, lr: float, total_steps: int) -> tuple[Any, Any]:
    """AdamW (no weight decay on biases and LayerNorm) and its linear warm-up / decay schedule."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay: list[Any] = []
    no_decay: list[Any] = []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    try:  # the fused kernel (CPU and CUDA) is the fastest AdamW; foreach where it is missing
        optimizer = torch.optim.AdamW(groups, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        optimizer = torch.optim.AdamW(groups, lr=lr, foreach=True)
    warmup = int(config.warmup_ratio * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


class TrainingLoop:
    """Steps through seeded batches until the learning curve says stop; returns the reason."""

    def __init__(self, settings: RunSettings, run_model: RunModel, state: RunState,
                 curve: LearningCurve, on_step: StepCallback | None = None) -> None:
        self.settings, self.run_model, self.state = settings, run_model, state
        self.curve, self.on_step = curve, on_step

    def epoch_batches(self, epoch: int) -> list[tuple[int, list[int]]]:
        """(stream index, example indices) of every batch of ``epoch``, in training order."""
        s = self.settings
        plan = []
        for k, stream in enumerate(self.run_model.streams):
            for b in batch_indices(stream.train, s.config.batch_size, shuffle=True,
                                   group_by_length=s.config.group_by_length,
                                   seed=s.seed * 1000 + epoch * 10 + k):
                plan.append((k, b))
        if len(self.run_model.streams) > 1:
            random.Random(s.seed + epoch).shuffle(plan)
        return plan

    def run(self) -> str:
        """Train; return the stop reason ("pruned" or the budget's)."""
        s, budget, st = self.settings, self.settings.budget, self.state
        steps_per_epoch = len(self.epoch_batches(0))
        total_steps = max(1, math.ceil(steps_per_epoch * budget.max_epochs))
        if budget.max_steps is not None:
            total_steps = min(total_steps, budget.max_steps)
        eval_every = budget.eval_every_steps or max(1, math.ceil(steps_per_epoch / budget.evals_per_epoch))
        st.steps_per_epoch = steps_per_epoch
        optimizer, scheduler = build_optimizer(self.run_model.model, s.config, s.lr, total_steps)
        epoch = 0
        self.run_model.model.train()
        while True:
            for k, indices in self.epoch_batches(epoch):
                self._step(k, indices, optimizer, scheduler)
                interrupts.check()  # a Ctrl-C the step's own code dropped
                if self.on_step is not None:
                    self.on_step(st.step, total_steps)
                if st.step % eval_every == 0:
                    if self.curve.evaluate():
                        return "pruned"
                reason = self.curve.stop_reason(total_steps)
                if reason is not None:
                    return self.curve.finish(reason)
            epoch += 1

    def _step(self, k: int, indices: list[int], optimizer: Any, scheduler: Any) -> None:
        """One optimisation step on batch ``indices`` of stream ``k``; count what it saw."""
        import torch

        s, rm, st = self.settings, self.run_model, self.state
        stream = rm.streams[k]
        pad_to = None if s.config.dynamic_padding else s.config.max_seq_length
        t0 = time.perf_counter()
        batch = collate(stream.train, indices, stream.task_type, rm.pad_id, pad_to)
        batch = {n: t.to(s.device) for n, t in batch.items()}
        outputs = rm.forward(stream, batch)
        loss = compute_loss(stream.task_type, outputs, batch, stream.num_labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"loss became {loss.item()} at step {st.step + 1} (learning rate "
                                f"{s.lr:g} may be too high)")
        rm.scaler.scale(loss).backward()
        rm.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(rm.params, s.config.max_grad_norm)
        rm.scaler.step(optimizer)
        rm.scaler.update()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        st.train_seconds += time.perf_counter() - t0
        st.step += 1
        st.examples += len(indices)
        st.tokens += sum(stream.train.lengths[i] for i in indices)
        if k == 0:  # train_loss describes the task itself, not the co-tasks
            st.losses.append(float(loss.detach()))
        if st.step == 1:
            st.first_step_seconds, st.first_step_tokens = st.train_seconds, st.tokens
