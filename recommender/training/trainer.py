"""The budgeted trainer: train one (task, method, hyperparameters) and measure what it costs.

One call, :func:`train`, returns a complete :class:`~recommender.types.RunResult` whatever
happens: a crash, a NaN loss or an out-of-memory error become the run's status, and a run cut
by its time budget still reports its best evaluation, its cost and its latency.

Time to convergence is the *training* time (evaluation excluded) until the best dev score, and
until the first score within 1 % of it -- the first seed paper's measure, not time per step.

The run's parts: :mod:`~recommender.training.setup` (the model and its data streams),
:mod:`~recommender.training.loop` (the steps), :mod:`~recommender.training.curve` (evaluation,
the best checkpoint, stopping), :mod:`~recommender.training.measurements` (after training) and
:mod:`~recommender.training.result` (the record).
"""

from __future__ import annotations

import traceback
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.config_utils import build_config, field_names
from recommender.errors import ConfigError, unknown_name
from recommender.methods.base import REFERENCE_METHOD, TuningMethod, make_method
from recommender.models import resolve_model_path
from recommender.training.config import EvalConfig, TrainingConfig
from recommender.training.curve import EvalCallback, LearningCurve, RunState
from recommender.training.environment import describe_environment, resolve_device
from recommender.training.loop import NonFiniteLoss, StepCallback, TrainingLoop
from recommender.training.measurements import (
    plan_measurements,
    restore_best,
    save_and_measure,
    score_checkpoint,
    score_final,
)
from recommender.training.memory import PeakMemory
from recommender.training.precision import resolve_precision
from recommender.training.reserve import Clock
from recommender.training.result import assemble_result
from recommender.training.serving import LatencyConfig, Serving
from recommender.training.setup import RunModel, RunSettings
from recommender.training.transfer import TransferRun, TransferTarget, check_target, transfer_extra
from recommender.types import Budget, Environment, RunResult

if TYPE_CHECKING:
    from collections.abc import Sequence

    from recommender.tasks import Task

__all__ = ["LatencyConfig", "NonFiniteLoss", "split_params", "train", "train_with_transfer"]


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


def train(
    task: Task,
    method: str | TuningMethod = REFERENCE_METHOD,
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
    precision: str = "auto",
    evaluation: EvalConfig | None = None,
) -> RunResult:
    """Train ``method`` on ``task`` within ``budget`` and measure it.

    With ``save_dir``, the trained artifact is written to ``save_dir/artifact`` (the adapter and
    head, or the whole model) with the tokenizer, and -- only where merging was verified exact --
    a plain Hugging Face model with the method folded in to ``save_dir/merged``.

    ``params`` mixes training hyperparameters (:class:`TrainingConfig`) and the method's own
    (e.g. ``{"learning_rate": 1e-3, "r": 16}``). ``on_evaluate`` sees every dev evaluation and
    may return True to prune the run. Invalid settings raise before any work starts; anything
    that goes wrong during training is recorded in the result instead.

    ``precision`` is "auto" (bf16 autocast with fp32 master weights where the hardware runs bf16
    natively, else fp32), "fp32" or "bf16"; the result records the one used. ``evaluation``
    sets the dev subset the curve is monitored on and the final scoring (:class:`EvalConfig`).

    >>> from recommender.tasks import load_task                         # doctest: +SKIP
    >>> result = train(load_task("glue_rte"), "lora", budget=Budget(max_seconds=120))
    """
    clock = Clock((budget or Budget()).max_seconds)  # the budget covers the whole call, imports included
    settings = _settings(task, method, params, budget, model, device, seed, latency, save_dir, precision,
                         evaluation)
    return _Run(settings, clock, on_evaluate, on_step).execute()


def train_with_transfer(task: Task, targets: Sequence[Task], method: str | TuningMethod = REFERENCE_METHOD,
                        **kwargs: Any) -> TransferRun:
    """:func:`train` on ``task``, evaluating each transfer target beside it (tasks trained on
    the same rows but scored on another dev set: :mod:`~recommender.training.transfer`).

    Returns the run's record and one record per target, with the run's cost, parameters and
    latency and the target's own curve, best checkpoint and final score. Keyword arguments are
    :func:`train`'s.

    >>> run = train_with_transfer(sst2, [sst2_pt], "lora", budget=Budget(max_epochs=2))  # doctest: +SKIP
    >>> run.targets[0].best_metric  # accuracy on the Portuguese dev set     # doctest: +SKIP
    """
    for target in targets:
        check_target(task, target)
    clock = Clock((kwargs.get("budget") or Budget()).max_seconds)
    callbacks = {k: kwargs.pop(k, None) for k in ("on_evaluate", "on_step")}
    settings = _settings(task, method, **kwargs)
    return _Run(settings, clock, callbacks["on_evaluate"], callbacks["on_step"], list(targets)).execute_all()


def _settings(task: Task, method: str | TuningMethod = REFERENCE_METHOD, params: dict[str, Any] | None = None,
              budget: Budget | None = None, model: str | Path | None = None, device: str = "auto", seed: int = 0,
              latency: LatencyConfig | None = None, save_dir: Path | None = None, precision: str = "auto",
              evaluation: EvalConfig | None = None) -> RunSettings:
    """Validate :func:`train`'s arguments into the run's settings (raises before any work)."""
    if isinstance(method, str):
        config, method_obj = split_params(method, params)
    else:
        if params and any(k not in field_names(TrainingConfig) for k in params):
            raise ConfigError("pass method settings in the TuningMethod object, not in params")
        config, method_obj = build_config(TrainingConfig, dict(params or {})), method
    method_obj.check_task(task.task_type)
    device = resolve_device(device)
    return RunSettings(task, method_obj, config, budget or Budget(), resolve_model_path(model), device, seed,
                       latency or LatencyConfig(), precision=resolve_precision(precision, device),
                       evaluation=evaluation or EvalConfig(),
                       save_dir=Path(save_dir) if save_dir is not None else None)


class _Run:
    """One call of :func:`train`: chains setup, the loop and the measurements, and turns
    whatever goes wrong into the result's status."""

    def __init__(self, settings: RunSettings, clock: Clock, on_evaluate: EvalCallback | None,
                 on_step: StepCallback | None, target_tasks: Sequence[Task] = ()) -> None:
        self.settings, self.clock, self.on_evaluate, self.on_step = settings, clock, on_evaluate, on_step
        self.target_tasks = list(target_tasks)
        self.targets: list[TransferTarget] = []
        self.target_finals: list[dict[str, Any]] = []
        self.state = RunState()
        self.run_model = RunModel(settings)
        self.final: dict[str, Any] = {}
        self.result_extra: dict[str, Any] = {}
        self.serving: Serving | None = None
        self.phases: dict[str, float] = {}  # phase -> clock reading when it ended

    def _mark(self, phase: str) -> None:
        self.phases[phase] = self.clock.elapsed()

    def phase_seconds(self) -> dict[str, float]:
        """Seconds spent in each phase that ran, in order."""
        out, previous = {}, 0.0
        for phase, ended in self.phases.items():
            out[phase], previous = ended - previous, ended
        return out

    def execute(self) -> RunResult:
        return self.execute_all().source

    def execute_all(self) -> TransferRun:
        import torch

        status, stop_reason, error = "complete", None, None
        environment = describe_environment(self.settings.device)  # before training: the load it ran under
        measurements: dict[str, Any] = {}
        with PeakMemory(self.settings.device) as memory:
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
        source = self._result(status, stop_reason, error, memory.peak_mb, measurements, environment)
        targets = [self._target_result(source, k, measurements) for k in range(len(self.target_tasks))]
        return TransferRun(source, targets)

    def _train(self) -> str:
        s, rm = self.settings, self.run_model
        rm.build()
        self.targets = [TransferTarget.build(t, rm, s.evaluation) for t in self.target_tasks]
        self.serving, reserve = plan_measurements(s, rm, self.clock,
                                                  sum(t.stream.dev.n_tokens for t in self.targets))
        extra = s.method.before_training(rm.model, s.task, {
            "tokenizer": rm.tokenizer, "device": s.device, "config": s.config,
            "seed": s.seed, "model_path": s.model_path, "deadline": self.clock.deadline(share=0.5),
        })
        self.result_extra.update(extra)
        curve = LearningCurve(rm, self.state, s.budget, self.clock, reserve, self.on_evaluate, self.targets)
        self._mark("setup")
        reason = TrainingLoop(s, rm, self.state, curve, self.on_step).run()
        self._mark("training")
        return reason

    def _measure_after_training(self) -> dict[str, Any]:
        s, rm, st = self.settings, self.run_model, self.state
        for target in self.targets:  # each target's best checkpoint, before the method is finalised
            restore_best(rm.model, target.state.best_state)
            self.target_finals.append(score_checkpoint(rm, target.stream, target.full_dev, target.spec, s.evaluation)
                                      if target.state.best_state is not None else {})
        restore_best(rm.model, st.best_state)
        s.method.finalize(rm.model)
        rm.model.eval()
        if st.best_state is not None:
            self.final = score_final(s, rm, st.best_metrics)
        self._mark("final_scoring")
        assert self.serving is not None  # planned before training
        measured = save_and_measure(s, rm, self.serving, st.best_metrics)
        self._mark("measurements")
        return measured

    def _release(self) -> None:
        import gc

        self.run_model.release()
        self.state.best_state = None
        for target in self.targets:
            target.state.best_state = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover - best effort
            pass
        self._mark("release")

    def _method_extra(self, best_metrics: dict[str, Any], task: Task) -> dict[str, Any]:
        if not best_metrics:
            return {}
        try:
            return dict(self.settings.method.extra_results(best_metrics, task))
        except Exception as exc:  # a report must not lose the run
            return {"extra_error": f"{type(exc).__name__}: {exc}"}

    def _result(self, status: str, stop_reason: str | None, error: str | None, peak_mb: float,
                measurements: dict[str, Any], environment: Environment) -> RunResult:
        s, rm = self.settings, self.run_model
        params = {**s.method.config.to_dict(), **dict(vars(s.config)), "learning_rate": s.lr}
        extra = {k: v for k, v in {**self.result_extra, "merge_error": measurements.get("merge_error"),
                                   **self._method_extra(self.state.best_metrics, s.task)}.items()
                 if v is not None}
        return assemble_result(
            task=s.task, method=s.method.name, params=params, status=status, stop_reason=stop_reason,
            error=error, state=self.state, final=self.final, measurements=measurements, peak_mb=peak_mb,
            flops_per_token=rm.flops_per_token, steps_per_epoch=self.state.steps_per_epoch,
            wall_seconds=self.clock.elapsed(), precision=s.precision, monitor_n=rm.monitor_n, seed=s.seed,
            extra=extra, environment=environment, phase_seconds=self.phase_seconds())

    def _target_result(self, source: RunResult, k: int, measurements: dict[str, Any]) -> RunResult:
        """Target ``k``'s record: the run's status, cost and measurements, its own curve and score."""
        s, target = self.settings, self.targets[k] if k < len(self.targets) else None
        task = self.target_tasks[k]
        if target is None:  # the run failed before the targets were built
            return replace(source, task=task.name, metric_name=task.spec.metric, best_metric=None,
                           best_metrics={}, metric_se=None, baseline_metric=None, baseline_metrics={},
                           baseline="", curve=[], n_dev=task.spec.n_dev,
                           extra={**source.extra, **transfer_extra(s.task)})
        final = self.target_finals[k] if k < len(self.target_finals) else {}
        extra = {name: v for name, v in {**self.result_extra, "merge_error": source.extra.get("merge_error"),
                                         **self._method_extra(target.state.best_metrics, task),
                                         **transfer_extra(s.task)}.items() if v is not None}
        return assemble_result(
            task=task, method=source.method, params=source.params, status=source.status,
            stop_reason=source.stop_reason, error=source.error, state=target.counters_from(self.state),
            final=final, measurements=measurements, peak_mb=source.peak_memory_mb or 0.0,
            flops_per_token=self.run_model.flops_per_token, steps_per_epoch=self.state.steps_per_epoch,
            wall_seconds=source.wall_seconds, precision=source.precision, monitor_n=target.monitor_n,
            seed=source.seed, extra=extra, environment=source.environment, phase_seconds=source.phase_seconds)
