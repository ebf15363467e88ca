"""Tasks: bundled specs, user files, normalized splits and metrics."""

from recommender.tasks.bundled import bundled_spec, bundled_task_names
from recommender.tasks.task import Task, load_task, task_from_rows

__all__ = ["Task", "bundled_spec", "bundled_task_names", "load_task", "task_from_rows"]
