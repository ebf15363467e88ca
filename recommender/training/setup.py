"""What one run works on: its settings, and the model under training with its tokenizer and
featurized data streams (the task, and any co-tasks of multi-task training)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.methods.base import TuningMethod, count_parameters
from recommender.models import init_regression_head, load_model, load_tokenizer
from recommender.training.config import EvalConfig, TrainingConfig
from recommender.training.data import (
    MODEL_INPUTS,
    Features,
    Predictions,
    align_outputs,
    batch_indices,
    collate,
    featurize,
)
from recommender.training.precision import autocast
from recommender.training.scoring import ScoringSpec
from recommender.training.serving import LatencyConfig
from recommender.types import Budget

if TYPE_CHECKING:

    from recommender.tasks import Task


def head_key(task_name: str) -> str:
    """A task name as a module key (ModuleDict keys cannot contain dots)."""
    return task_name.replace(".", "_")


def label_mean(task: Task) -> float:
    """Mean training label of a regression task: where its new head starts."""
    return float(np.mean(np.asarray(task.train["label"], dtype=float)))


def monitor_subset(task: Task, evaluation: EvalConfig) -> Task:
    """The task with its dev set cut to the seeded subset the learning curve is monitored on
    (``task`` itself when the subset would be the whole dev set)."""
    size = evaluation.monitor_size
    if size is not None and size < len(task.dev):
        return task.subsample(None, size, seed=evaluation.seed)
    return task


def token_length_p95(features: Features) -> int:
    return int(np.percentile(features.lengths, 95)) if len(features) else 8


@dataclass(frozen=True)
class RunSettings:
    """What one run was asked to do, validated by :func:`~recommender.training.train`."""

    task: Task
    method: TuningMethod
    config: TrainingConfig
    budget: Budget
    model_path: Path
    device: str
    seed: int
    latency: LatencyConfig
    precision: str = "fp32"
    evaluation: EvalConfig = EvalConfig()
    save_dir: Path | None = None
    lr: float = field(init=False)  # the peak learning rate: the configured one, else the method's

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", self.config.learning_rate or self.method.default_lr())


@dataclass
class Stream:
    """One task being trained: the primary task, or a co-task in multi-task training."""

    name: str
    task_type: str
    num_labels: int
    label_names: list[str] | None
    metric: str
    train: Features
    dev: Features
    head: str | None = None  # None: the model's own head; else the key of a co-task head


class RunModel:
    """The model under training, its tokenizer and data streams, and the passes through it.

    :meth:`build` fills the attributes in order, so a run that fails half-way still reports
    what was known (the monitored dev size, the FLOPs per token)."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.monitor_n: int | None = None  # dev examples the curve is monitored on (None: all)
        self.flops_per_token: float | None = None

    def build(self) -> None:
        """Seed, load the model, apply the method, featurize the streams, add co-task heads."""
        import torch

        s = self.settings
        random.seed(s.seed)
        np.random.seed(s.seed)
        torch.manual_seed(s.seed)
        task = s.task
        self.tokenizer = load_tokenizer(s.model_path)
        self.model = load_model(s.model_path, task.task_type, task.num_labels)
        if task.task_type == "regression":
            init_regression_head(self.model, label_mean(task))
        s.method.apply(self.model)
        monitored = monitor_subset(task, s.evaluation)
        self.streams = [self._stream(monitored, head=None)]
        self.full_dev = (self.streams[0].dev if monitored is task
                         else featurize(task, "dev", self.tokenizer, s.config))
        self.monitor_n = None if monitored is task else len(monitored.dev)
        co_tasks: list[Task] = s.method.co_tasks(task)
        if co_tasks:
            # one linear head per co-task on the pooled output, saved with the model
            hidden = self.model.config.hidden_size
            self.model.co_heads = torch.nn.ModuleDict(
                {head_key(t.name): torch.nn.Linear(hidden, t.num_labels) for t in co_tasks})
            with torch.no_grad():
                for t in co_tasks:
                    if t.task_type == "regression":
                        self.model.co_heads[head_key(t.name)].bias.fill_(label_mean(t))
            s.method.init_heads(self.model, task)
        for co_task in co_tasks:
            self.streams.append(self._stream(co_task, head=head_key(co_task.name)))
        self.model.to(s.device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.scaler = torch.amp.GradScaler("cuda", enabled=s.precision == "fp16")
        counts = count_parameters(self.model)
        self.flops_per_token = s.method.train_flops_per_token(
            counts["total"] - counts.get("embedding", 0),
            # embedding gradients are sparse row updates, not matrix multiplies
            (counts.get("trainable") or 0) + counts.get("head", 0) - counts.get("trainable_embedding", 0))

    def _stream(self, task: Task, head: str | None) -> Stream:
        config = self.settings.config
        return Stream(task.name, task.task_type, task.num_labels, task.label_names, task.spec.metric,
                      featurize(task, "train", self.tokenizer, config),
                      featurize(task, "dev", self.tokenizer, config), head)

    def release(self) -> None:
        """Drop the model and the streams (the caller collects the garbage)."""
        for name in ("model", "streams"):
            if hasattr(self, name):
                delattr(self, name)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def forward(self, stream: Stream, batch: dict[str, Any]) -> dict[str, Any]:
        """The model's outputs for ``batch``, through the head of ``stream``."""
        s = self.settings
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        with autocast(s.device, s.precision):
            if stream.head is None:
                outputs = self.model(**inputs)
                return align_outputs(outputs, inputs["input_ids"].shape[1], s.method.inserted_tokens)
            pooled = self.model.base_model(**inputs).pooler_output
            pooled = self.model.dropout(pooled) if hasattr(self.model, "dropout") else pooled
            return {"logits": self.model.co_heads[stream.head](pooled)}

    def predict(self, stream: Stream, dev: Features | None = None) -> Predictions:
        """Predictions on ``dev`` (default: the stream's monitored dev set), in eval mode."""
        import torch

        dev = stream.dev if dev is None else dev
        was_training = self.model.training
        predictions = Predictions(stream.task_type, dev, stream.label_names)
        self.model.eval()
        with torch.inference_mode():
            for indices in batch_indices(dev, self.settings.config.eval_batch_size, shuffle=False,
                                         group_by_length=True):
                batch = collate(dev, indices, stream.task_type, self.pad_id, with_labels=False)
                batch = {n: t.to(self.settings.device) for n, t in batch.items()}
                predictions.add(indices, self.forward(stream, batch))
        self.model.train(was_training)  # the final scoring must leave the model in eval mode
        return predictions

    def scoring(self, stream: Stream) -> ScoringSpec:
        """How ``stream`` is scored (the primary task knows its positive / negative classes)."""
        if stream.head is None:
            return ScoringSpec.from_task(self.settings.task)
        return ScoringSpec(stream.task_type, stream.metric, stream.num_labels, stream.label_names)
