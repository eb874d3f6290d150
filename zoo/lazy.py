"""Modules imported on first use, so `import zoo`, `zoo --help`, `zoo list` and `zoo recipes`
never load TensorFlow. Model and task modules name `keras`, `layers`, `ops` and `tf` through
these proxies; a class that subclasses a Keras class lives in a module imported only when it is
needed (zoo/models/layers.py, a task's losses.py / metrics.py)."""
from __future__ import annotations

import importlib


class LazyModule:
    """Stands for a module and imports it at the first attribute access."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr):
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self):
        return f"<lazy module {self._name}>"


keras = LazyModule("keras")
layers = LazyModule("keras.layers")
ops = LazyModule("keras.ops")
tf = LazyModule("tensorflow")
