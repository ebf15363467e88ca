"""Multi-task full fine-tuning: one shared encoder, one head per task, trained jointly.

The first seed paper's maintainable alternative to adapters: one model serves several tasks.
Co-tasks are named explicitly, or ``"auto"`` picks bundled tasks of the same type and
language. Batches from all tasks are interleaved (examples-proportional mixing); the run's
metric is the primary task's, and every co-task's dev metrics are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recommender.config_utils import check_range
from recommender.methods.base import SEQUENCE_TASK_TYPES, MethodConfig, register_method
from recommender.methods.full_ft import FullFineTuning

if TYPE_CHECKING:
    from recommender.tasks import Task


@dataclass(frozen=True)
class MultiTaskConfig(MethodConfig):
    co_tasks: tuple[str, ...] = field(default=("auto",), metadata={"help": "co-trained tasks, or 'auto'"})
    n_auto: int = field(default=1, metadata={"help": "how many co-tasks 'auto' picks"})
    co_task_max_examples: int = field(default=1000, metadata={"help": "train examples kept per co-task"})
    co_task_max_dev: int = field(default=300, metadata={"help": "dev examples kept per co-task"})

    def __post_init__(self) -> None:
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
        for i, name in enumerate(n for n in names if n != task.name):
            co = load_task(name)
            if co.task_type not in SEQUENCE_TASK_TYPES:
                from recommender.errors import UnsupportedTaskError

                raise UnsupportedTaskError(f"multitask_ft co-task {name!r} is {co.task_type}; "
                                           "co-tasks must be classification or regression")
            tasks.append(co.subsample(self.config.co_task_max_examples, self.config.co_task_max_dev, seed=i))
        return tasks
