"""The tuning-method base class and its registry: the extension seam of the package.

Adding a method means adding one module in this folder that defines a subclass decorated with
:func:`register_method`, plus its ``search_spaces/<name>.json``; nothing else changes.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from recommender.errors import NotMergeableError, UnsupportedTaskError, unknown_name
from recommender.types import TASK_TYPES

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from recommender.tasks import Task

ALL_TASK_TYPES = frozenset(TASK_TYPES)
SEQUENCE_TASK_TYPES = frozenset({"classification", "regression"})
_REGISTRY: dict[str, type[TuningMethod]] = {}


@dataclass(frozen=True)
class MethodConfig:
    """Base of a method's own hyperparameters (training ones live in ``TrainingConfig``)."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


ARTIFACT_KINDS = ("adapter", "full_model", "shared_model")
#: the method every comparison is made against, and the robust default: full fine-tuning
REFERENCE_METHOD = "full_ft"


class TuningMethod(ABC):
    """How to turn a pretrained model into the model that is trained.

    Subclasses set the class attributes and implement :meth:`apply`. The trainer calls, in order:
    :meth:`apply` (make the model trainable), :meth:`before_training` (optional extra stage such
    as task-adaptive pretraining), then after training :meth:`finalize` and, to measure merged
    latency, :meth:`merge`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    description: ClassVar[str] = ""
    task_types: ClassVar[frozenset[str]] = ALL_TASK_TYPES
    default_learning_rate: ClassVar[float] = 1e-4
    #: the ``adapters`` library is used (``adapters.init`` + ``add_adapter``)
    uses_adapters: ClassVar[bool] = True
    #: Hugging Face PEFT has an equivalent config (see ``peft_config``)
    peft_equivalent: ClassVar[bool] = False
    #: why there is no PEFT equivalent (shown in exported bundles); "" when there is one
    no_peft_reason: ClassVar[str] = ""
    #: what serving one more task costs: "adapter" (a small file beside one shared base model),
    #: "full_model" (a whole model per task) or "shared_model" (one model serves every task)
    artifact_kind: ClassVar[str] = "adapter"
    #: the method-specific ``RunResult.extra`` step count that the time limit can cut short,
    #: with the hyperparameter that asked for it (e.g. TAPT's pre-training steps)
    budgeted_stage: ClassVar[tuple[str, str] | None] = None

    @classmethod
    def default_lr(cls) -> float:
        """The learning rate used when none is given: ``search_spaces/<name>.json``
        ``"defaults"`` where it sets one (tuned by ``recommender kb defaults --apply``), else
        the class attribute ``default_learning_rate``."""
        from recommender.defaults import method_defaults

        return float(method_defaults(cls.name).get("learning_rate", cls.default_learning_rate))

    def __init__(self, config: MethodConfig | None = None) -> None:
        # typed Any: each subclass reads the fields of its own config dataclass
        self.config: Any = config if config is not None else self.config_class()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    @property
    def inserted_tokens(self) -> int:
        """Virtual tokens the method inserts after position 0 (soft prompts shift outputs)."""
        return 0

    def check_task(self, task_type: str) -> None:
        if task_type not in self.task_types:
            raise UnsupportedTaskError(
                f"method {self.name!r} does not support {task_type} tasks; it supports "
                f"{', '.join(sorted(self.task_types))}"
            )

    @abstractmethod
    def apply(self, model: PreTrainedModel) -> None:
        """Modify ``model`` in place: add the method's modules and set what is trainable."""

    def before_training(self, model: PreTrainedModel, task: Task, context: dict[str, Any]) -> dict[str, Any]:
        """Optional stage run inside the training budget; returns measurements to record."""
        return {}

    def finalize(self, model: PreTrainedModel) -> None:  # noqa: B027 - an optional hook
        """Called once after training, before parameters are counted and latency measured."""

    def merge(self, model: PreTrainedModel) -> None:
        """Fold the method's weights into the base weights, or raise :class:`NotMergeableError`."""
        raise NotMergeableError(f"{self.name}: nothing to merge")

    @property
    def merge_supported(self) -> bool:
        return type(self).merge is not TuningMethod.merge

    def save(self, model: PreTrainedModel, directory: Path) -> None:
        """Write the artifact a user needs to deploy (default: the whole model)."""
        model.save_pretrained(directory)

    def adapter_config_dict(self) -> dict[str, Any] | None:
        """The ``adapters`` library config (as a dict), or None if the method uses none."""
        return None

    def peft_config(self, model_type: str = "bert") -> dict[str, Any] | None:
        """An equivalent Hugging Face PEFT ``adapter_config.json`` dict, when one exists."""
        return None

    @classmethod
    def storage_mb(cls, model_mb: float, artifact_mb: float, n_tasks: int) -> tuple[float, str]:
        """Disk to serve ``n_tasks`` tasks, and what adding one more costs (first seed paper)."""
        if cls.artifact_kind == "full_model":
            return n_tasks * model_mb, "train and store one more full model"
        if cls.artifact_kind == "shared_model":
            return model_mb, "retrain the shared model with the new task (replaying old tasks' data)"
        return model_mb + n_tasks * artifact_mb, "train one more small adapter; the base model is shared"

    def trainable_parameters(self, model: PreTrainedModel) -> list[torch.nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    #: gradients flow back through the encoder (False: only the head trains, on frozen features)
    backpropagates_through_encoder: ClassVar[bool] = True

    def train_flops_per_token(self, non_embedding_params: int, trainable: int) -> float:
        """Approximate training FLOPs per real token (N = non-embedding parameters): forward
        2N; the backward pass computes activation gradients (2N) unless only the head trains,
        and weight gradients only for trainable weights (2 x trainable)."""
        backward = 2.0 * non_embedding_params if self.backpropagates_through_encoder else 0.0
        return 2.0 * non_embedding_params + backward + 2.0 * trainable

    # -- multi-task hooks: a method that trains several tasks at once overrides these --------
    def co_tasks(self, task: Task) -> list[Task]:
        """Tasks trained jointly with ``task`` (each gets its own head); none by default."""
        return []

    def init_heads(self, model: PreTrainedModel, task: Task) -> None:  # noqa: B027 - optional hook
        """Initialise the co-task heads (e.g. from a saved multi-task model)."""

    def extra_results(self, best_metrics: dict[str, Any], task: Task) -> dict[str, Any]:
        """Method-specific measurements added to the run's ``extra`` (e.g. retained scores)."""
        return {}


def register_method(cls: type[TuningMethod]) -> type[TuningMethod]:
    """Class decorator adding a method to the registry under ``cls.name`` (unique, lowercase)."""
    name = cls.name
    if not name or name != name.lower() or not name.replace("_", "").isalnum():
        raise ValueError(f"method name {name!r} must be lowercase letters, digits and underscores")
    if cls.artifact_kind not in ARTIFACT_KINDS:
        raise ValueError(f"method {name!r}: artifact_kind={cls.artifact_kind!r}; expected one of {ARTIFACT_KINDS}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"method {name!r} is already registered by {_REGISTRY[name].__module__}")
    _REGISTRY[name] = cls
    return cls


def _load_all() -> None:
    import importlib
    import pkgutil

    import recommender.methods as package

    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"recommender.methods.{info.name}")


def method_names() -> list[str]:
    """Every registered method name, sorted."""
    _load_all()
    return sorted(_REGISTRY)


def get_method_class(name: str) -> type[TuningMethod]:
    _load_all()
    if name not in _REGISTRY:
        raise unknown_name("method", name, list(_REGISTRY))
    return _REGISTRY[name]


def make_method(name: str, **config: Any) -> TuningMethod:
    """Instantiate a registered method with config overrides (validated by its dataclass)."""
    from recommender.config_utils import build_config

    cls = get_method_class(name)
    return cls(build_config(cls.config_class, config))


def head_module_names(model: PreTrainedModel) -> list[str]:
    """Top-level modules that are not the base encoder (the task head)."""
    prefix = model.base_model_prefix
    return [n for n, _ in model.named_children() if n != prefix and n != "heads"]


def count_parameters(model: PreTrainedModel) -> dict[str, int]:
    """Trainable parameters in the encoder (the method's own) and in the head; total and embedding."""
    prefix = model.base_model_prefix + "."
    method = head = total = embedding = trainable_embedding = 0
    for name, p in model.named_parameters():
        total += p.numel()
        if ".embeddings." in name and "prompt" not in name:
            embedding += p.numel()
            trainable_embedding += p.numel() if p.requires_grad else 0
        if p.requires_grad:
            if name.startswith(prefix):
                method += p.numel()
            else:
                head += p.numel()
    return {"trainable": method, "head": head, "total": total, "embedding": embedding,
            "trainable_embedding": trainable_embedding}
