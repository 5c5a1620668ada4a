"""Tasks: each brings its data, its model and its metrics (the contract: rnnlab.tasks.base.Task).

Importing this package registers the bundled tasks in ``TASKS`` (name -> class)."""

from .base import TASKS, Task, get_task, register
from .names import NamesTask
from .poems import PoemsTask
from .sentiment import SentimentTask

__all__ = ["TASKS", "Task", "get_task", "register", "NamesTask", "PoemsTask", "SentimentTask"]
