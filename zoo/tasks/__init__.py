"""Task families. Each module registers a `Task` that supplies what differs between tasks."""
from __future__ import annotations

import importlib
import pkgutil

from zoo.tasks.base import TASKS, Task, get_task

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["TASKS", "Task", "get_task"]
