"""The model catalogue: importing this package registers every family (no TensorFlow is loaded
until a model is built), then `create_model` builds one by name, "name.tag" or with weights."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from zoo.errors import ZooError
from zoo.models.features import feature_info, select_levels
from zoo.registry import get_entry, get_spec, list_models, list_pretrained

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "layers":
        importlib.import_module(f"{__name__}.{_module.name}")


def create_model(name, *, num_classes=None, input_shape=None, pretrained=False, out_indices=None, **kwargs):
    """Build a registered model. `name` may be "model.tag" (as `zoo list --pretrained` prints
    it), which is `pretrained="tag"`; `pretrained` (the recipe's `model.pretrained`) is False,
    True (the default tag), a tag, a local `.weights.h5` / `.keras` / legacy `.h5` file, an
    https:// or file:// URL (optionally `#sha256=<hex>`; downloaded once into the weights cache)
    or a WeightsSpec. A model built on a backbone (RetinaNet, backbone U-Nets, CNN+LSTM over a
    classifier) also takes its backbone's tags and files (`pretrained="imagenet"`): they load
    as its `backbone_weights` (zoo.weights.build_pretrained).

    `features_only=True` (classifiers) builds the feature extractor, output {"P<k>": stride-2**k
    map}; `out_indices` keeps some of its levels: indices into its levels list (negative from
    the end) or names ("P3"). `model.feature_info` / `zoo.models.feature_info(model)` describe
    the levels (zoo.models.features)."""
    model, dot, tag = str(name).partition(".")
    if dot:
        if pretrained not in (False, None, True, tag):
            raise ValueError(f"create_model({name!r}) names the weights {tag!r} already; "
                             f"pretrained={pretrained!r} contradicts it")
        pretrained = tag
    entry = get_entry(model)
    if kwargs.get("features_only") or out_indices is not None:
        _check_features_only(entry, kwargs.get("features_only"))
    shape = tuple(input_shape) if input_shape is not None else None
    if pretrained:  # None: the weights' own input size
        from zoo import weights

        built = weights.build_pretrained(entry, pretrained, num_classes, shape, kwargs)
    else:
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        built = entry.builder(input_shape=shape or entry.input_shape, **kwargs)
    return built if out_indices is None else select_levels(built, out_indices, entry.name)


def _check_features_only(entry, features_only):
    if "features_only" not in inspect.signature(entry.builder).parameters:
        raise ZooError(f"features_only: {entry.name} ({entry.task}) has no feature extractor; "
                       "the classifiers have one (zoo list --task classification)")
    if not features_only:
        raise ZooError("out_indices picks levels of a feature extractor: give features_only=True too")


def load_model_file(path, *, compile: bool = False):
    """Load a Keras 3 `.keras` file with the zoo's custom layers registered (zoo.weights)."""
    from zoo import weights
    from zoo.models import layers  # noqa: F401  (registers the zoo's Keras classes)

    return weights.load_model_file(path, compile=compile)


__all__ = ["create_model", "feature_info", "get_entry", "get_spec", "list_models", "list_pretrained",
           "load_model_file"]
