"""keras-zoo: a computer-vision model zoo on Keras 3 and TensorFlow.

The public API. Names resolve on first use, so `import zoo` loads no TensorFlow.
"""
from __future__ import annotations

import importlib

from zoo.version import __version__  # noqa: F401  (zoo.__version__)

_API = {"create_model": "zoo.models", "list_models": "zoo.models", "list_pretrained": "zoo.models",
        "load_recipe": "zoo.recipe", "train": "zoo.pipeline", "evaluate": "zoo.pipeline"}

__all__ = sorted(_API)


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__():
    return sorted([*globals(), *_API])
