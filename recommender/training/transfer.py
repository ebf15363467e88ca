"""Zero-shot transfer targets: tasks that train on the run's own training data but are scored
on another dev set (the cross-lingual tasks: train on English GLUE, evaluate on the Portuguese
translation). One run evaluates them beside its own dev set instead of training again for each.

Each target keeps its own learning curve on a seeded monitor subset of its dev set and its own
best checkpoint (by its own monitored score, as a run of the target alone selects it), and is
scored at the end on its whole dev set with a bootstrap standard error, beside the constant
predictor. What stops training is the source task's curve alone: a target's row records that
(``extra["transfer"]``). A target must have the same task type, labels and training rows as
the source (:func:`check_target`), else its scores would not be that task's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from recommender.errors import ConfigError
from recommender.tasks import bundled_spec, bundled_task_names
from recommender.training.config import EvalConfig
from recommender.training.curve import RunState, snapshot
from recommender.training.data import Features, featurize
from recommender.training.scoring import ScoringSpec
from recommender.training.setup import RunModel, Stream, monitor_subset
from recommender.types import EvalPoint, RunResult

if TYPE_CHECKING:
    from recommender.tasks import Task


def check_target(source: Task, target: Task) -> None:
    """Raise :class:`ConfigError` unless ``target`` trains on exactly ``source``'s rows, with
    the same task type and labels."""
    if target.name == source.name:
        raise ConfigError(f"transfer target {target.name!r} is the task being trained")
    if (target.task_type, target.label_names) != (source.task_type, source.label_names):
        raise ConfigError(f"transfer target {target.name!r} ({target.task_type}, labels "
                          f"{target.label_names}) does not match {source.name!r} ({source.task_type}, "
                          f"labels {source.label_names})")
    if len(target.train) != len(source.train) or list(target.train) != list(source.train):
        raise ConfigError(f"transfer target {target.name!r} does not train on the rows of {source.name!r} "
                          "(subsample both with the same size and seed)")


def transfer_targets(source: str, candidates: Sequence[str] | None = None) -> list[str]:
    """The bundled tasks (among ``candidates``; default all) whose training file is
    ``source``'s own: evaluated in ``source``'s runs instead of trained again."""
    names = bundled_task_names() if candidates is None else list(candidates)
    spec, folder = bundled_spec(source)
    own = (folder / spec.train_file).resolve()
    out = []
    for name in names:
        if name == source:
            continue
        other, other_folder = bundled_spec(name)
        if (other_folder / other.train_file).resolve() == own and other.task_type == spec.task_type:
            out.append(name)
    return out


@dataclass
class TransferTarget:
    """One target during a run: its monitored and whole dev sets, its curve and best state."""

    task: Task
    stream: Stream  # monitored dev set (``stream.train`` is the source's, unused)
    full_dev: Features
    state: RunState

    @classmethod
    def build(cls, task: Task, run_model: RunModel, evaluation: EvalConfig) -> TransferTarget:
        config = run_model.settings.config
        monitored = monitor_subset(task, evaluation)
        full_dev = featurize(task, "dev", run_model.tokenizer, config)
        dev = full_dev if monitored is task else featurize(monitored, "dev", run_model.tokenizer, config)
        source = run_model.streams[0]
        stream = Stream(task.name, task.task_type, task.num_labels, task.label_names, task.spec.metric,
                        source.train, dev)
        return cls(task, stream, full_dev, RunState())

    @property
    def spec(self) -> ScoringSpec:
        return ScoringSpec.from_task(self.task)

    @property
    def monitor_n(self) -> int | None:
        return None if len(self.stream.dev) == len(self.full_dev) else len(self.stream.dev)

    def evaluate(self, run_model: RunModel, source_point: EvalPoint) -> None:
        """Score the target's monitored dev set now; keep its best state."""
        st = self.state
        scored = run_model.predict(self.stream).scored(self.spec)
        value, metrics = scored.primary(), scored.metrics()
        st.curve.append(replace(source_point, metric=value, metrics=metrics))  # same step, cost, clocks
        if st.first is None:
            st.first = value
        if st.best is None or value > st.best:
            st.best, st.best_metrics = value, metrics
            st.best_state = snapshot(run_model.model)

    def counters_from(self, source: RunState) -> RunState:
        """The target's state with the source run's counters (it trained exactly as long)."""
        for name in ("step", "examples", "tokens", "train_seconds", "eval_seconds", "steps_per_epoch"):
            setattr(self.state, name, getattr(source, name))
        return self.state


def transfer_extra(source: Task) -> dict[str, Any]:
    """What a target's row says about how it was measured: trained as ``source``'s run, which
    its curve did not stop."""
    return {"transfer": {"source": source.name, "stopped_by": source.name}}


@dataclass(frozen=True)
class TransferRun:
    """One training run's records: the task trained, and each transfer target (in order)."""

    source: RunResult
    targets: list[RunResult]
