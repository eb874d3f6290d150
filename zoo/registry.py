"""The model registry: builders registered by decorator, listed by pattern and task."""
from __future__ import annotations

import difflib
import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import Callable

from zoo.errors import ZooError

TASKS = ("classification", "detection", "segmentation", "video")


@dataclass
class ModelEntry:
    name: str
    task: str
    builder: Callable
    input_shape: tuple  # default input shape (H, W, C) or (T, H, W, C) for video
    source: str  # one-line citation: the builder's docstring first line
    pretrained: dict = field(default_factory=dict)  # tag -> weights spec (zoo.weights)

    @property
    def default_tag(self):
        return next(iter(self.pretrained), None)


_MODELS: dict[str, ModelEntry] = {}


def register(task: str, input_shape, name: str | None = None):
    """Register a model builder `fn(num_classes, input_shape, **kwargs) -> keras.Model`."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")

    def decorate(fn):
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} registered twice")
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        _MODELS[key] = ModelEntry(key, task, fn, tuple(input_shape), doc[0] if doc else "")
        return fn

    return decorate


def _ensure_loaded():
    import zoo.models  # noqa: F401  (importing registers every builder)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows them all"
        raise ZooError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def list_models(pattern: str = "*", task: str | None = None, pretrained: bool = False) -> list[str]:
    _ensure_loaded()
    if task is not None and task not in TASKS:
        raise ZooError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return sorted(
        name
        for name, entry in _MODELS.items()
        if fnmatch.fnmatch(name, pattern)
        and (task is None or entry.task == task)
        and (not pretrained or entry.pretrained)
    )
