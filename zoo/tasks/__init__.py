"""Task families: each sub-package registers one `Task` (see zoo/tasks/base.py). Importing this
package registers them all and loads no TensorFlow."""
from __future__ import annotations

import importlib
import pkgutil

from zoo.tasks.base import TASKS, Source, Task

for _module in pkgutil.iter_modules(__path__):
    if _module.ispkg:
        importlib.import_module(f"{__name__}.{_module.name}")


def get_task(name: str) -> Task:
    return TASKS[name]

__all__ = ["TASKS", "Source", "Task", "get_task"]
