"""Tasks: each brings its data, its model and its metrics (the contract: rnnlab.tasks.base.Task).

Importing this package registers the bundled tasks in ``TASKS`` (name -> class)."""

from .base import TASKS, Task, register
from .names import NamesTask
from .poems import PoemsTask
from .sentiment import SentimentTask

__all__ = ["TASKS", "Task", "get_task", "register", "NamesTask", "PoemsTask", "SentimentTask"]


def get_task(name: str) -> type[Task]:
    """The registered task of that name (a one-line error naming the known ones otherwise)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
