"""The model catalogue: importing this package registers every family (no TensorFlow is loaded
until a model is built), then `create_model` builds one by name, "name.tag" or with weights."""
from __future__ import annotations

import importlib
import pkgutil

from zoo.registry import get_entry, get_spec, list_models, list_pretrained

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "layers":
        importlib.import_module(f"{__name__}.{_module.name}")


def create_model(name, *, num_classes=None, input_shape=None, pretrained=False, **kwargs):
    """Build a registered model. `name` may be "model.tag" (as `zoo list --pretrained` prints
    it), which is `pretrained="tag"`; `pretrained` (the recipe's `model.pretrained`) is False,
    True (the default tag), a tag, a local `.weights.h5` / `.keras` / legacy `.h5` file, an
    https:// or file:// URL (optionally `#sha256=<hex>`; downloaded once into the weights cache)
    or a WeightsSpec. A model built on a backbone (RetinaNet, backbone U-Nets, CNN+LSTM over a
    classifier) also takes its backbone's tags and files (`pretrained="imagenet"`): they load
    as its `backbone_weights` (zoo.weights.build_pretrained)."""
    model, dot, tag = str(name).partition(".")
    if dot:
        if pretrained not in (False, None, True, tag):
            raise ValueError(f"create_model({name!r}) names the weights {tag!r} already; "
                             f"pretrained={pretrained!r} contradicts it")
        pretrained = tag
    entry = get_entry(model)
    shape = tuple(input_shape) if input_shape is not None else None
    if pretrained:  # None: the weights' own input size
        from zoo import weights

        return weights.build_pretrained(entry, pretrained, num_classes, shape, kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return entry.builder(input_shape=shape or entry.input_shape, **kwargs)


def load_model_file(path, *, compile: bool = False):
    """Load a Keras 3 `.keras` file with the zoo's custom layers registered (zoo.weights)."""
    from zoo import weights
    from zoo.models import layers  # noqa: F401  (registers the zoo's Keras classes)

    return weights.load_model_file(path, compile=compile)


__all__ = ["create_model", "get_entry", "get_spec", "list_models", "list_pretrained", "load_model_file"]
