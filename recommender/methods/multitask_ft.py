"""Multi-task full fine-tuning: one shared encoder, one head per task, trained jointly.

The first seed paper's maintainable alternative to adapters: one model serves several tasks.
Co-tasks are named explicitly, or ``"auto"`` picks bundled tasks of the same type and
language. Batches from all tasks are interleaved (examples-proportional mixing); the run's
metric is the primary task's, and every co-task's dev metrics are reported beside it.

Extending a trained multi-task model with a new task: train the new task with
``init_from=<saved artifact folder>`` and the old tasks as ``co_tasks``, with
``replay_fraction`` of their training data replayed. The encoder and the old heads start from
the saved model, and the result's ``extra["retained"]`` gives each old task's dev score before
and after, and their ratio.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_range
from recommender.methods.base import SEQUENCE_TASK_TYPES, register_method
from recommender.methods.full_ft import FullFineTuning, FullFTConfig

if TYPE_CHECKING:

    from recommender.tasks import Task


@dataclass(frozen=True)
class MultiTaskConfig(FullFTConfig):
    co_tasks: tuple[str, ...] = field(default=("auto",), metadata={"help": "co-trained tasks, or 'auto'"})
    n_auto: int = field(default=1, metadata={"help": "how many co-tasks 'auto' picks"})
    co_task_max_examples: int = field(default=1000, metadata={"help": "train examples kept per co-task"})
    co_task_max_dev: int = field(default=300, metadata={"help": "dev examples kept per co-task"})
    init_from: str | None = field(default=None, metadata={"help": "saved multi-task artifact to extend"})
    replay_fraction: float = field(default=1.0, metadata={"help": "share of co-task training data replayed"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("MultiTaskConfig", "replay_fraction", self.replay_fraction, 0.0, 1.0, low_open=True)
        check_range("MultiTaskConfig", "n_auto", self.n_auto, 0, 10)
        check_range("MultiTaskConfig", "co_task_max_examples", self.co_task_max_examples, 1, 10_000_000)
        check_range("MultiTaskConfig", "co_task_max_dev", self.co_task_max_dev, 1, 10_000_000)


def auto_co_tasks(task: Task, n: int) -> list[str]:
    """Bundled tasks of the same type and language, not built from the same source data."""
    from recommender.tasks import bundled_spec, bundled_task_names

    chosen = []
    for name in bundled_task_names():
        spec, _ = bundled_spec(name)
        if name == task.name or spec.task_type != task.task_type or spec.cross_lingual:
            continue
        if spec.language != task.spec.language or (task.spec.source and spec.source == task.spec.source):
            continue
        chosen.append(name)
    return chosen[:n]


@register_method
class MultiTaskFineTuning(FullFineTuning):
    no_peft_reason = ('multi-task full fine-tuning: the artifact is a whole transformers model, not an adapter')
    artifact_kind = "shared_model"
    name = "multitask_ft"
    config_class = MultiTaskConfig
    description = "One shared encoder fine-tuned jointly on this task and co-tasks (one head each)."
    task_types = SEQUENCE_TASK_TYPES

    def co_tasks(self, task: Task) -> list[Task]:
        from recommender.tasks import load_task

        names = list(self.config.co_tasks)
        if names == ["auto"]:
            names = auto_co_tasks(task, self.config.n_auto)
        tasks = []
        for name in (n for n in names if n != task.name):
            co = load_task(name)
            if co.task_type not in SEQUENCE_TASK_TYPES:
                from recommender.errors import UnsupportedTaskError

                raise UnsupportedTaskError(f"multitask_ft co-task {name!r} is {co.task_type}; "
                                           "co-tasks must be classification or regression")
            n_train = min(self.config.co_task_max_examples, max(1, round(self.config.replay_fraction * len(co.train))))
            # seeded by name: a task keeps the same dev subset whichever run it appears in
            tasks.append(co.subsample(n_train, self.config.co_task_max_dev, seed=zlib.crc32(name.encode())))
        return tasks

    # -- extending a saved multi-task model ---------------------------------------------------
    def _checkpoint(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from safetensors.torch import load_file

        from recommender.errors import ModelNotFoundError

        folder = Path(str(self.config.init_from))
        meta_file, weights = folder / "run_metrics.json", folder / "model.safetensors"
        if not meta_file.is_file() or not weights.is_file():
            raise ModelNotFoundError(f"init_from={folder}: not a saved multitask_ft artifact "
                                     "(expected run_metrics.json and model.safetensors)")
        return json.loads(meta_file.read_text(encoding="utf-8")), load_file(str(weights))

    def apply(self, model: Any) -> None:
        super().apply(model)
        if self.config.init_from:
            _, state = self._checkpoint()
            prefix = model.base_model_prefix + "."
            encoder = {k: v for k, v in state.items() if k.startswith(prefix)}
            model.load_state_dict(encoder, strict=False)

    def init_heads(self, model: Any, task: Task) -> None:
        """Start the old tasks' heads from the saved model (the old primary head included)."""
        if not self.config.init_from:
            return
        import torch

        meta, state = self._checkpoint()
        with torch.no_grad():
            for entry in meta["tasks"]:
                key = entry["name"].replace(".", "_")
                if key not in model.co_heads:
                    continue
                source = "classifier" if entry["head"] is None else f"co_heads.{entry['head']}"
                model.co_heads[key].weight.copy_(state[f"{source}.weight"])
                model.co_heads[key].bias.copy_(state[f"{source}.bias"])

    def extra_results(self, best_metrics: dict[str, Any], task: Task) -> dict[str, Any]:
        """Old tasks' dev scores before and after the extension (``retained`` = after / before)."""
        if not self.config.init_from:
            return {}
        from recommender.tasks import bundled_spec

        meta, _ = self._checkpoint()
        before_all = meta["best_metrics"]
        retained = {}
        for entry in meta["tasks"]:
            name = entry["name"]
            metric = bundled_spec(name)[0].metric
            before = before_all.get(metric if entry["head"] is None else f"{name}/{metric}")
            after = best_metrics.get(f"{name}/{metric}")
            if before is not None and after is not None:
                retained[name] = {"before": before, "after": after, "retained": after / before if before else None}
        return {"retained": retained}
