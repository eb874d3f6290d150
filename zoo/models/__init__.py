"""Model families; importing this package registers every builder."""
from __future__ import annotations

import importlib
import pkgutil

from zoo.registry import get_entry

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "layers":
        importlib.import_module(f"{__name__}.{_module.name}")


def create_model(name, *, num_classes=None, input_shape=None, pretrained=False, **kwargs):
    """Build a registered model; `pretrained` is False, True, a tag or a local weights path."""
    entry = get_entry(name)
    shape = tuple(input_shape) if input_shape is not None else None
    if pretrained:  # None: the weights' own input size
        from zoo import weights

        return weights.build_pretrained(entry, pretrained, num_classes, shape, kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return entry.builder(input_shape=shape or entry.input_shape, **kwargs)
