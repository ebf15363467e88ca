"""The budgeted trainer: train one (task, method, hyperparameters) and measure what it costs.

One call, :func:`train`, returns a complete :class:`~recommender.types.RunResult` whatever
happens: a crash, a NaN loss or an out-of-memory error become the run's status, and a run cut
by its time budget still reports its best evaluation, its cost and its latency.

Time to convergence is the *training* time (evaluation excluded) until the best dev score, and
until the first score within 1 % of it -- the first seed paper's measure, not time per step.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.config_utils import build_config, field_names
from recommender.errors import ConfigError, NotMergeableError, unknown_name
from recommender.methods.base import TuningMethod, count_parameters, make_method
from recommender.models import init_regression_head, load_model, load_tokenizer, resolve_model_path
from recommender.training.config import TrainingConfig
from recommender.training.data import (
    Features,
    Predictions,
    align_outputs,
    batch_indices,
    collate,
    compute_loss,
    featurize,
)
from recommender.training.environment import describe_environment, resolve_device
from recommender.training.latency import measure_latency, synthetic_batch
from recommender.training.memory import PeakMemory
from recommender.types import Budget, EvalPoint, LatencyStats, RunResult

if TYPE_CHECKING:

    from recommender.tasks import Task

EvalCallback = Callable[[EvalPoint], bool | None]
StepCallback = Callable[[int, int], None]
MERGE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class LatencyConfig:
    """What inference latency to measure after training."""

    enabled: bool = True
    batch_sizes: tuple[int, ...] = (1, 32)
    seq_len: int | None = None  # None: the task's p95 token length
    max_seconds: float = 1.5  # per measurement, after warm-up
    base_model: bool = True  # also the untouched base model, for relative latency


class NonFiniteLoss(RuntimeError):
    pass


def split_params(method_name: str, params: dict[str, Any] | None) -> tuple[TrainingConfig, TuningMethod]:
    """Split flat hyperparameters into the training config and the method (both validated)."""
    from recommender.methods.base import get_method_class

    cls = get_method_class(method_name)
    train_names = field_names(TrainingConfig)
    method_names_ = field_names(cls.config_class)
    train_values, method_values = {}, {}
    for key, value in (params or {}).items():
        if key in train_names:
            train_values[key] = value
        elif key in method_names_:
            method_values[key] = value
        else:
            raise unknown_name(f"hyperparameter for {method_name}", key, train_names + method_names_)
    return build_config(TrainingConfig, train_values), make_method(method_name, **method_values)


def head_key(task_name: str) -> str:
    """A task name as a module key (ModuleDict keys cannot contain dots)."""
    return task_name.replace(".", "_")


def label_mean(task: Task) -> float:
    """Mean training label of a regression task: where its new head starts."""
    return float(np.mean(np.asarray(task.train["label"], dtype=float)))


def token_length_p95(features: Features) -> int:
    return int(np.percentile(features.lengths, 95)) if len(features) else 8


_BASE_LATENCY_CACHE: dict[tuple[str, str, int, int, int], LatencyStats] = {}


@dataclass
class _Stream:
    """One task being trained: the primary task, or a co-task in multi-task training."""

    name: str
    task_type: str
    num_labels: int
    label_names: list[str] | None
    metric: str
    train: Features
    dev: Features
    head: str | None = None  # None: the model's own head; else the key of a co-task head


@dataclass
class _State:
    step: int = 0
    examples: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    best: float | None = None
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


def train(
    task: Task,
    method: str | TuningMethod = "full_ft",
    *,
    params: dict[str, Any] | None = None,
    budget: Budget | None = None,
    model: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    latency: LatencyConfig | None = None,
    on_evaluate: EvalCallback | None = None,
    on_step: StepCallback | None = None,
    save_dir: Path | None = None,
) -> RunResult:
    """Train ``method`` on ``task`` within ``budget`` and measure it.

    With ``save_dir``, the trained artifact is written to ``save_dir/artifact`` (the adapter and
    head, or the whole model) with the tokenizer, and -- only where merging was verified exact --
    a plain Hugging Face model with the method folded in to ``save_dir/merged``.

    ``params`` mixes training hyperparameters (:class:`TrainingConfig`) and the method's own
    (e.g. ``{"learning_rate": 1e-3, "r": 16}``). ``on_evaluate`` sees every dev evaluation and
    may return True to prune the run. Invalid settings raise before any work starts; anything
    that goes wrong during training is recorded in the result instead.

    >>> from recommender.tasks import load_task                         # doctest: +SKIP
    >>> result = train(load_task("glue_rte"), "lora", budget=Budget(max_seconds=120))
    """
    if isinstance(method, str):
        config, method_obj = split_params(method, params)
    else:
        if params and any(k not in field_names(TrainingConfig) for k in params):
            raise ConfigError("pass method settings in the TuningMethod object, not in params")
        config, method_obj = build_config(TrainingConfig, dict(params or {})), method
    method_obj.check_task(task.task_type)
    model_path = resolve_model_path(model)
    budget = budget or Budget()
    latency = latency or LatencyConfig()
    device = resolve_device(device)
    run = _Run(task, method_obj, config, budget, model_path, device, seed, latency, on_evaluate, on_step)
    run.save_dir = Path(save_dir) if save_dir is not None else None
    return run.execute()


class _Run:
    def __init__(self, task: Task, method: TuningMethod, config: TrainingConfig, budget: Budget,
                 model_path: Path, device: str, seed: int, latency: LatencyConfig,
                 on_evaluate: EvalCallback | None, on_step: StepCallback | None) -> None:
        self.task, self.method, self.config, self.budget = task, method, config, budget
        self.model_path, self.device, self.seed, self.latency = model_path, device, seed, latency
        self.on_evaluate, self.on_step = on_evaluate, on_step
        self.lr = config.learning_rate or method.default_learning_rate
        self.state = _State()
        self.save_dir: Path | None = None
        self.start = 0.0
        self.result_extra: dict[str, Any] = {}

    # -- public entry ---------------------------------------------------------------------
    def execute(self) -> RunResult:
        import torch

        self.start = time.perf_counter()
        status, stop_reason, error = "complete", None, None
        measurements: dict[str, Any] = {}
        with PeakMemory(self.device) as memory:
            try:
                stop_reason = self._train()
                status = {"time_budget": "budget_exhausted", "pruned": "pruned"}.get(stop_reason, "complete")
                measurements = self._measure_after_training()
            except torch.OutOfMemoryError as exc:
                status, error = "oom", f"out of memory: {exc}".splitlines()[0]
            except NonFiniteLoss as exc:
                status, error = "failed", str(exc)
            except Exception as exc:  # failure is data: the caller gets a complete record
                if "out of memory" in str(exc).lower():
                    status, error = "oom", str(exc).splitlines()[0]
                else:
                    status = "failed"
                    error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
            finally:
                self._release()
        return self._result(status, stop_reason, error, memory.peak_mb, measurements)

    # -- setup ----------------------------------------------------------------------------
    def _setup(self) -> None:
        import torch

        random.seed(self.seed)
        np.random.seed(self.seed)
        torch.manual_seed(self.seed)
        task = self.task
        self.tokenizer = load_tokenizer(self.model_path)
        self.model = load_model(self.model_path, task.task_type, task.num_labels)
        if task.task_type == "regression":
            init_regression_head(self.model, label_mean(task))
        self.method.apply(self.model)
        self.streams = [self._stream(task, head=None)]
        co_tasks: list[Task] = getattr(self.method, "co_tasks", lambda t: [])(task)
        if co_tasks:
            # one linear head per co-task on the pooled output, saved with the model
            hidden = self.model.config.hidden_size
            self.model.co_heads = torch.nn.ModuleDict(
                {head_key(t.name): torch.nn.Linear(hidden, t.num_labels) for t in co_tasks})
            with torch.no_grad():
                for t in co_tasks:
                    if t.task_type == "regression":
                        self.model.co_heads[head_key(t.name)].bias.fill_(label_mean(t))
            getattr(self.method, "init_heads", lambda m, t: None)(self.model, task)
        for co_task in co_tasks:
            self.streams.append(self._stream(co_task, head=head_key(co_task.name)))
        self.model.to(self.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.autocast_dtype = None
        if self.device.startswith("cuda"):
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.autocast_dtype == torch.float16)

    def _stream(self, task: Task, head: Any) -> _Stream:
        return _Stream(task.name, task.task_type, task.num_labels, task.label_names, task.spec.metric,
                       featurize(task, "train", self.tokenizer, self.config),
                       featurize(task, "dev", self.tokenizer, self.config), head)

    def _optimizer(self, total_steps: int) -> tuple[Any, Any]:
        import torch
        from transformers import get_linear_schedule_with_warmup

        decay: list[Any] = []
        no_decay: list[Any] = []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
        groups = [{"params": decay, "weight_decay": self.config.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=self.lr, fused=False, foreach=True)
        warmup = int(self.config.warmup_ratio * total_steps)
        return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)

    # -- clock ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def _forward_tokens_per_second(self) -> float | None:
        """Inference throughput: measured by the last evaluation, else estimated from training
        steps after the first (a forward pass costs about a third of a training step)."""
        st = self.state
        if st.last_eval_duration:
            return sum(s.dev.n_tokens for s in self.streams) / st.last_eval_duration
        if st.step >= 2 and st.train_seconds > st.first_step_seconds:
            return 3 * (st.tokens - st.first_step_tokens) / (st.train_seconds - st.first_step_seconds)
        return None

    def _reserve(self) -> float:
        """Seconds kept back for the final evaluation and the latency measurements, capped at a
        third of the budget so a slow start cannot end training early."""
        tps = self._forward_tokens_per_second()
        if tps is None or self.budget.max_seconds is None:
            return 0.0
        eval_cost = self.state.last_eval_duration or sum(s.dev.n_tokens for s in self.streams) / tps
        return min(eval_cost + self._latency_reserve(tps) + self._finish_overhead(), self.budget.max_seconds / 3)

    def _finish_overhead(self) -> float:
        """Writing the artifact once (~200 MB/s) and loading the base model for its latency."""
        n_params = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        overhead = n_params * 4 / 200e6
        if self.latency.enabled and self.latency.base_model:
            key_known = any(k[0] == str(self.model_path) and k[1] == self.device for k in _BASE_LATENCY_CACHE)
            overhead += 0.0 if key_known else 1.5
        return overhead

    def _latency_reserve(self, tps: float) -> float:
        if not self.latency.enabled:
            return 0.0
        seq_len = self.latency.seq_len or min(self.config.max_seq_length, token_length_p95(self.streams[0].dev))
        passes = 2 + 3  # warm-up + minimum repeats
        models = 2 if self.method.merge_supported else 1
        if self.latency.base_model:
            models += 1
        return sum(models * min(passes * b * seq_len / tps, self.latency.max_seconds + 2 * b * seq_len / tps)
                   for b in self.latency.batch_sizes)

    def _time_left(self) -> float:
        if self.budget.max_seconds is None:
            return math.inf
        return self.budget.max_seconds - self.elapsed()

    # -- training ---------------------------------------------------------------------------
    def _forward(self, stream: _Stream, batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        with torch.autocast("cuda", dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            if stream.head is None:
                outputs = self.model(**inputs)
                return align_outputs(outputs, inputs["input_ids"].shape[1], self.method.inserted_tokens)
            pooled = self.model.base_model(**inputs).pooler_output
            pooled = self.model.dropout(pooled) if hasattr(self.model, "dropout") else pooled
            return {"logits": self.model.co_heads[stream.head](pooled)}

    def _epoch_batches(self, epoch: int) -> list[tuple[int, list[int]]]:
        plan = []
        for k, stream in enumerate(self.streams):
            for b in batch_indices(stream.train, self.config.batch_size, shuffle=True,
                                   group_by_length=self.config.group_by_length,
                                   seed=self.seed * 1000 + epoch * 10 + k):
                plan.append((k, b))
        if len(self.streams) > 1:
            random.Random(self.seed + epoch).shuffle(plan)
        return plan

    def _train(self) -> str:
        import torch

        self._setup()
        extra = self.method.before_training(self.model, self.task, {
            "tokenizer": self.tokenizer, "device": self.device, "config": self.config,
            "seed": self.seed, "model_path": self.model_path,
            "deadline": None if self.budget.max_seconds is None else self.start + self.budget.max_seconds / 2,
        })
        self.result_extra.update(extra)
        steps_per_epoch = len(self._epoch_batches(0))
        total_steps = max(1, math.ceil(steps_per_epoch * self.budget.max_epochs))
        if self.budget.max_steps is not None:
            total_steps = min(total_steps, self.budget.max_steps)
        self.total_steps = total_steps
        eval_every = self.budget.eval_every_steps or max(
            1, math.ceil(steps_per_epoch / self.budget.evals_per_epoch))
        self.steps_per_epoch = steps_per_epoch
        optimizer, scheduler = self._optimizer(total_steps)
        pad_id = self.tokenizer.pad_token_id or 0
        pad_to = None if self.config.dynamic_padding else self.config.max_seq_length
        st = self.state
        epoch = 0
        self.model.train()
        while True:
            for k, indices in self._epoch_batches(epoch):
                stream = self.streams[k]
                t0 = time.perf_counter()
                batch = collate(stream.train, indices, stream.task_type, pad_id, pad_to)
                batch = {n: t.to(self.device) for n, t in batch.items()}
                outputs = self._forward(stream, batch)
                loss = compute_loss(stream.task_type, outputs, batch, stream.num_labels)
                if not torch.isfinite(loss):
                    raise NonFiniteLoss(f"loss became {loss.item()} at step {st.step + 1} (learning rate "
                                        f"{self.lr:g} may be too high)")
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
                self.scaler.step(optimizer)
                self.scaler.update()
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
                if self.on_step is not None:
                    self.on_step(st.step, total_steps)
                if st.step % eval_every == 0:
                    if self._evaluate():
                        return "pruned"
                reason = self._stop_reason(total_steps)
                if reason is not None:
                    return self._finish(reason)
            epoch += 1

    def _stop_reason(self, total_steps: int) -> str | None:
        st = self.state
        elapsed = self.elapsed()
        if self.budget.max_seconds is not None:
            elapsed += self._reserve()
        return self.budget.stop_reason(elapsed=elapsed, step=st.step, total_steps=total_steps,
                                       evals_since_best=st.evals_since_best, best=st.best)

    def _finish(self, reason: str) -> str:
        st = self.state
        if st.last_eval_step != st.step:
            needed = st.last_eval_duration or 0.0
            if reason != "time_budget" or st.best is None or self._time_left() > needed:
                self._evaluate()
        return reason

    # -- evaluation ---------------------------------------------------------------------------
    def _predict(self, stream: _Stream) -> dict[str, float]:
        import torch

        predictions = Predictions(stream.task_type, stream.dev, stream.label_names)
        pad_id = self.tokenizer.pad_token_id or 0
        self.model.eval()
        with torch.inference_mode():
            for indices in batch_indices(stream.dev, self.config.eval_batch_size, shuffle=False,
                                         group_by_length=True):
                batch = collate(stream.dev, indices, stream.task_type, pad_id, with_labels=False)
                batch = {n: t.to(self.device) for n, t in batch.items()}
                predictions.add(indices, self._forward(stream, batch))
        self.model.train()
        return predictions.metrics()

    def _evaluate(self) -> bool:
        """Evaluate every stream; keep the best state; return True if the run is pruned."""
        st = self.state
        t0 = time.perf_counter()
        metrics = self._predict(self.streams[0])
        primary = self.streams[0]
        value = metrics[primary.metric]
        if not math.isfinite(value):
            value = 0.0
        all_metrics = dict(metrics)
        for stream in self.streams[1:]:
            for key, v in self._predict(stream).items():
                all_metrics[f"{stream.name}/{key}"] = v
        st.last_eval_duration = time.perf_counter() - t0
        st.eval_seconds += st.last_eval_duration
        window = st.losses[st.losses_at_last_eval:]  # losses since the previous evaluation
        st.losses_at_last_eval = len(st.losses)
        st.last_eval_step = st.step
        point = EvalPoint(step=st.step, epoch=st.step / max(1, self.steps_per_epoch),
                          train_seconds=st.train_seconds, wall_seconds=self.elapsed(),
                          examples=st.examples, tokens=st.tokens, metric=value, metrics=all_metrics,
                          train_loss=float(np.mean(window)) if window else None)
        st.curve.append(point)
        if st.best is None or value > st.best:
            st.best, st.best_metrics, st.evals_since_best = value, all_metrics, 0
            st.best_state = {n: p.detach().clone() for n, p in self.model.named_parameters()
                             if p.requires_grad}
        else:
            st.evals_since_best += 1
        return bool(self.on_evaluate(point)) if self.on_evaluate is not None else False

    # -- after training -------------------------------------------------------------------------
    def _measure_after_training(self) -> dict[str, Any]:
        import torch

        st = self.state
        if st.best_state is not None:
            with torch.no_grad():
                params = dict(self.model.named_parameters())
                for name, value in st.best_state.items():
                    params[name].copy_(value)
        self.method.finalize(self.model)
        self.model.eval()
        out: dict[str, Any] = count_parameters(self.model)
        with tempfile.TemporaryDirectory() as tmp:
            target = self.save_dir / "artifact" if self.save_dir is not None else Path(tmp)
            target.mkdir(parents=True, exist_ok=True)
            self.method.save(self.model, target)
            out["artifact_bytes"] = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            if self.save_dir is not None:
                self.tokenizer.save_pretrained(target)
                metrics = {"task": self.task.name, "method": self.method.name, "best_metrics": st.best_metrics,
                           "tasks": [{"name": s.name, "head": s.head, "label_names": s.label_names,
                                      "task_type": s.task_type} for s in self.streams]}
                (target / "run_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
        if self.save_dir is not None and not self.latency.enabled and self.method.merge_supported:
            self._merge_checked(out)
        if self.latency.enabled:  # bounded by the deadline: at least one timed pass each
            out.update(self._measure_latency())
        return out

    def _measure_latency(self) -> dict[str, Any]:

        seq_len = self.latency.seq_len or min(self.config.max_seq_length, token_length_p95(self.streams[0].dev))
        vocab = self.model.config.vocab_size
        deadline = None if self.budget.max_seconds is None else self.start + self.budget.max_seconds
        kwargs = dict(seq_len=seq_len, vocab_size=vocab, device=self.device,
                      max_seconds=self.latency.max_seconds, deadline=deadline)
        stats = [measure_latency(self.model, batch_size=b, **kwargs) for b in self.latency.batch_sizes]
        # nothing to merge for a method without adapters: None (tables print "-")
        out: dict[str, Any] = {"latency": stats, "mergeable": False if self.method.uses_adapters else None}
        if self.method.merge_supported and self._merge_checked(out):
            stats += [measure_latency(self.model, batch_size=b, merged=True, **kwargs)
                      for b in self.latency.batch_sizes]
        if self.latency.base_model:
            out["base_latency"] = [self._base_latency(b, seq_len) for b in self.latency.batch_sizes]
        return out

    def _merge_checked(self, out: dict[str, Any]) -> bool:
        """Merge, and call it merged only if outputs stay equal (max |d logit| < 1e-4)."""
        import torch

        seq_len = min(self.config.max_seq_length, token_length_p95(self.streams[0].dev))
        probe = synthetic_batch(4, seq_len, self.model.config.vocab_size, self.device, seed=1)
        with torch.inference_mode():
            before = self._logits(probe)
        try:
            self.method.merge(self.model)
        except (NotMergeableError, ValueError) as exc:
            out["merge_error"] = str(exc)
            return False
        with torch.inference_mode():
            diff = float((self._logits(probe) - before).abs().max())
        out["merge_max_abs_diff"] = diff
        out["mergeable"] = diff < MERGE_TOLERANCE
        if out["mergeable"] and self.save_dir is not None:
            self._save_plain_merged(self.save_dir / "merged", probe, before)
        return bool(out["mergeable"])

    def _save_plain_merged(self, path: Path, probe: dict[str, Any], expected: Any) -> None:
        """Copy the merged weights into a plain transformers model (no adapters code needed to
        load it) and check it still gives the same outputs before saving."""
        import torch

        plain = load_model(self.model_path, self.task.task_type, self.task.num_labels).to(self.device)
        merged_state = self.model.state_dict()
        plain_state = plain.state_dict()
        missing = [k for k in plain_state if k not in merged_state]
        if missing:
            raise RuntimeError(f"merged model lacks weights {missing[:3]}")
        plain.load_state_dict({k: merged_state[k] for k in plain_state})
        plain.eval()
        with torch.inference_mode():
            outputs = plain(**probe)
        got = outputs["logits" if "logits" in outputs else "start_logits"].float()
        diff = float((got - expected).abs().max())
        if diff >= MERGE_TOLERANCE:
            raise RuntimeError(f"plain merged model drifts by {diff:.2e}; not saved")
        plain.config.id2label = getattr(self.model.config, "id2label", plain.config.id2label)
        plain.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def _logits(self, batch: dict[str, Any]) -> Any:
        outputs = self.model(**batch)
        key = "logits" if "logits" in outputs else "start_logits"
        return outputs[key].float()

    def _base_latency(self, batch_size: int, seq_len: int) -> LatencyStats:
        import torch

        key = (str(self.model_path), self.device, batch_size, seq_len, torch.get_num_threads())
        if key in _BASE_LATENCY_CACHE:
            return _BASE_LATENCY_CACHE[key]
        deadline = None if self.budget.max_seconds is None else self.start + self.budget.max_seconds
        base = load_model(self.model_path, self.task.task_type, self.task.num_labels).to(self.device)
        stats = measure_latency(base, batch_size=batch_size, seq_len=seq_len, vocab_size=base.config.vocab_size,
                                device=self.device, max_seconds=self.latency.max_seconds, deadline=deadline)
        if stats.repeats >= 3:  # only a full measurement is worth reusing
            _BASE_LATENCY_CACHE[key] = stats
        return stats

    def _release(self) -> None:
        import gc

        for name in ("model", "streams"):
            if hasattr(self, name):
                delattr(self, name)
        self.state.best_state = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover - best effort
            pass

    def _method_extra(self) -> dict[str, Any]:
        hook = getattr(self.method, "extra_results", None)
        if hook is None or not self.state.best_metrics:
            return {}
        try:
            return dict(hook(self.state.best_metrics, self.task))
        except Exception as exc:  # a report must not lose the run
            return {"extra_error": f"{type(exc).__name__}: {exc}"}

    def _result(self, status: str, stop_reason: str | None, error: str | None, peak_mb: float,
                measurements: dict[str, Any]) -> RunResult:
        st = self.state
        task = self.task
        curve = st.curve
        best_point = max(curve, key=lambda p: p.metric) if curve else None
        within = None
        if best_point is not None:
            tolerance = 0.01 * abs(best_point.metric)
            within = next(p for p in curve if p.metric >= best_point.metric - tolerance)
        trainable = measurements.get("trainable")
        total = measurements.get("total")
        flops_per_token = None
        if total is not None:
            flops_per_token = _train_flops_per_token(
                self.method, total - measurements.get("embedding", 0),
                # embedding gradients are sparse row updates, not matrix multiplies
                (trainable or 0) + measurements.get("head", 0) - measurements.get("trainable_embedding", 0))
        params = {**self.method.config.to_dict(),
                  **{k: v for k, v in vars(self.config).items()}, "learning_rate": self.lr}
        return RunResult(
            task=task.name, method=self.method.name, params=params, status=status,
            metric_name=task.spec.metric, best_metric=st.best, best_metrics=st.best_metrics,
            curve=curve, stop_reason=stop_reason, error=error,
            time_to_best_s=best_point.train_seconds if best_point else None,
            time_to_within_1pct_s=within.train_seconds if within else None,
            steps_to_best=best_point.step if best_point else None,
            examples_to_best=best_point.examples if best_point else None,
            tokens_to_best=best_point.tokens if best_point else None,
            flops_to_best=(best_point.tokens * flops_per_token) if best_point and flops_per_token else None,
            train_seconds=st.train_seconds, eval_seconds=st.eval_seconds, wall_seconds=self.elapsed(),
            steps=st.step, epochs=st.step / max(1, getattr(self, "steps_per_epoch", 1)),
            examples_seen=st.examples, tokens_seen=st.tokens,
            samples_per_second=st.examples / st.train_seconds if st.train_seconds else None,
            train_flops=st.tokens * flops_per_token if flops_per_token else None,
            peak_memory_mb=peak_mb, trainable_params=trainable, head_params=measurements.get("head"),
            total_params=total, artifact_bytes=measurements.get("artifact_bytes"),
            mergeable=measurements.get("mergeable"), merge_max_abs_diff=measurements.get("merge_max_abs_diff"),
            latency=measurements.get("latency", []), base_latency=measurements.get("base_latency", []),
            n_train=task.spec.n_train, n_dev=task.spec.n_dev, seed=self.seed,
            extra={k: v for k, v in {**self.result_extra, "merge_error": measurements.get("merge_error"),
                                     **self._method_extra()}.items() if v is not None},
            environment=describe_environment(self.device),
        )


def _train_flops_per_token(method: TuningMethod, total_params: int, trainable: int) -> float:
    """Approximate training FLOPs per real token (N = non-embedding parameters).

    Forward 2N; the backward pass computes activation gradients (2N) unless only the head
    trains, and weight gradients only for trainable weights (2 x trainable).
    """
    if method.name == "head_only":
        return 2.0 * total_params + 2.0 * trainable
    return 4.0 * total_params + 2.0 * trainable
