"""The zoo's Keras classes (layers, schedules, losses, metrics, serving layers) registered with
Keras' serialization, so `keras.saving.load_model` opens every `.keras` file the zoo writes
(compiled included) in a process that ran only `import zoo`. Registration imports the modules
that define them, which needs Keras and TensorFlow: `import zoo` stays light and has it done
when Keras is first imported (or by the API's first name that loads Keras)."""
from __future__ import annotations

import importlib
import sys

from zoo.import_hook import around_import

# Every module whose classes carry keras.saving's registration decorator (a test keeps this complete).
MODULES = ("zoo.models.layers", "zoo.optim", "zoo.serving", "zoo.tasks.loss_parts",
           "zoo.tasks.classification.metrics", "zoo.tasks.detection.losses", "zoo.tasks.detection.evaluation",
           "zoo.tasks.segmentation.losses", "zoo.tasks.segmentation.metrics")


def register():
    for module in MODULES:
        importlib.import_module(module)


def _after_keras(module, execute):
    execute()
    try:
        register()
    except ImportError:  # Keras was imported by a zoo module part-way through its own import, one
        pass             # a registering module needs a name of: `zoo.__getattr__` registers later


def register_when_keras_loads():
    """At `import zoo`: register now if Keras is loaded, else once it is (`zoo.__getattr__`
    registers after a zoo module that imported Keras itself has finished)."""
    if "keras" in sys.modules:
        register()
    else:
        around_import("keras", _after_keras)
