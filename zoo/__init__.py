"""keras-zoo: a computer-vision model zoo on Keras 3 and TensorFlow.

The public API. Names resolve on first use, so `import zoo` loads no TensorFlow; the zoo's Keras
classes are registered as soon as Keras is loaded (zoo.keras_classes), so `keras.saving.load_model`
opens the zoo's `.keras` files after a plain `import zoo`.
"""
from __future__ import annotations

import importlib
import sys

from zoo import keras_classes
from zoo.version import __version__  # noqa: F401  (zoo.__version__)

_API = {"create_model": "zoo.models", "list_models": "zoo.models", "list_pretrained": "zoo.models",
        "load_recipe": "zoo.recipe", "train": "zoo.pipeline", "evaluate": "zoo.pipeline",
        "load_model": "zoo.loading", "load_predictor": "zoo.predictor"}

__all__ = sorted(_API)

keras_classes.register_when_keras_loads()


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    if "keras" in sys.modules:  # loaded by that module: its import is over, so registering is safe
        keras_classes.register()
    return value


def __dir__():
    return sorted([*globals(), *_API])
