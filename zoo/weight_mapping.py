"""Weights matched to layers by name: Keras Applications' ImageNet `.h5` files (legacy format)
and `.keras` files copied into another model.

The zoo's wrappers keep Keras Applications' layer names, so a legacy `.h5` loads by layer name;
Keras' own by-name loading skips unmatched layers silently, so the zoo matches them itself
(`assign_by_name`) and names the first layer that does not fit. Layers Keras named itself
("conv2d_57") pair in order with the file's layers of that kind. `POST_LOAD` holds the fixes a
table entry applies after loading (`WeightsSpec.post_load`).
"""
from __future__ import annotations

import re

import numpy as np

from zoo.errors import ZooError
from zoo.lazy import keras


def read_legacy_h5(path) -> dict[str, list[np.ndarray]]:
    """{layer name: weights} of a legacy Keras `.h5` file, in the file's layer order.

    The format of Keras Applications' files (and of `model.save("x.h5")`): attribute
    "layer_names" (possibly chunked as layer_names0, layer_names1, ...), one group per layer
    with attribute "weight_names", the weights in the layer's trainable + non-trainable order.
    """
    import h5py

    def names(group, attr):
        if attr in group.attrs:
            values = list(group.attrs[attr])
        else:
            values, chunk = [], 0
            while f"{attr}{chunk}" in group.attrs:
                values += list(group.attrs[f"{attr}{chunk}"])
                chunk += 1
        return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]

    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            out = {}
            for layer_name in names(root, "layer_names"):
                group = root[layer_name]
                values = [np.asarray(group[w]) for w in names(group, "weight_names")]
                if values:
                    out[layer_name] = values
    except (OSError, KeyError) as err:
        raise ZooError(f"{path}: not a readable Keras .h5 weights file ({err})") from None
    if not out:
        raise ZooError(f"{path}: no layer weights found (expected a Keras Applications-style .h5)")
    return out


def _base_name(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _strip_ones(shape) -> tuple:
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _fit(value: np.ndarray, shape) -> np.ndarray | None:
    shape = tuple(shape)
    if value.shape == shape:
        return value
    if value.size == int(np.prod(shape)) and _strip_ones(value.shape) == _strip_ones(shape):
        return value.reshape(shape)  # e.g. a 1x1 conv kernel into a Dense kernel
    return None


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _refresh(layer):
    """Layers that cache tensors computed from their variables recompute them (Normalization)."""
    sublayers = getattr(layer, "_flatten_layers", None)
    for sub in (sublayers(include_self=True, recursive=True) if sublayers else [layer]):
        if isinstance(sub, keras.layers.Normalization):
            sub.finalize_state()


def _auto_named(layer) -> bool:
    """Keras named the layer itself ("conv2d", "conv2d_57"): its number depends on the session."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)  # Keras' snake case:
    stem = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()             # Conv2D -> conv2d
    return re.fullmatch(rf"{re.escape(stem)}(_\d+)?", layer.name) is not None


def _pair_layers(layers, stored: dict) -> dict:
    """{model layer name: the file's layer name}. A named layer pairs with the same name; the
    auto-named layers of one kind ("conv2d", "conv2d_1"...) pair in order with the file's layers
    of that kind, as Keras' own legacy loader pairs all layers: the numbers differ between
    sessions (a file written in a fresh session starts at conv2d, a model built after another
    one at conv2d_57), so the same number can even be another layer."""
    pairs, auto = {}, {}
    for layer in layers:
        if _auto_named(layer):
            auto.setdefault(_base_name(layer.name), []).append(layer.name)
        elif layer.name in stored:
            pairs[layer.name] = layer.name
    for stem, names in auto.items():
        in_file = [name for name in stored if _base_name(name) == stem and name not in pairs.values()]
        if len(in_file) == len(names):
            pairs.update(zip(names, in_file))
    return pairs


def assign_by_name(model, stored: dict, *, what: str, legacy_order: bool, skip=()) -> list[str]:
    """Set every weighted layer of `model` from `stored` ({layer name: arrays}) by name, except
    the layers named in `skip` (a head to start fresh), which are returned when the model has them.

    `legacy_order`: the arrays are in Keras' legacy h5 order (trainable, then non-trainable),
    else in `layer.weights` order. A layer missing from `stored` or of another shape is a
    ZooError naming it.
    """
    fresh = []
    layers = _weighted_layers(model)
    pairs = _pair_layers([layer for layer in layers if layer.name not in skip], stored)
    for layer in layers:
        if layer.name in skip:
            fresh.append(layer.name)
            continue
        stored_name = pairs.get(layer.name)
        if stored_name is None:
            raise ZooError(f"{what}: no weights for layer {layer.name!r}")
        variables = (layer.trainable_weights + layer.non_trainable_weights) if legacy_order else layer.weights
        values = stored[stored_name]
        if len(values) != len(variables):
            raise ZooError(f"{what}: layer {layer.name!r} has {len(variables)} weights, "
                           f"the file's {stored_name!r} has {len(values)}")
        fitted = [_fit(np.asarray(v), var.shape) for v, var in zip(values, variables)]
        if any(f is None for f in fitted):
            expected = [tuple(var.shape) for var in variables]
            got = [tuple(np.shape(v)) for v in values]
            raise ZooError(f"{what}: layer {layer.name!r} expects weights of shapes {expected}, "
                           f"the weights have {got}")
        for variable, value in zip(variables, fitted):
            variable.assign(value.astype(variable.dtype))
        _refresh(layer)
    return fresh


def square_normalization_variance(model):
    """EfficientNet: Keras stores the ImageNet std as the Normalization "variance" and, only when
    built with weights="imagenet", adds a Rescaling(1/sqrt(std)) that the zoo's backbone (built
    with weights=None) lacks; squaring the variance gives the same (x/255 - mean) / std."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.weights:
            mean, variance, *rest = layer.get_weights()
            layer.set_weights([mean, np.square(variance), *rest])
            layer.finalize_state()


POST_LOAD = {"square_normalization_variance": square_normalization_variance}


def transfer(saved_model, target_model, *, what: str, skip=()) -> list[str]:
    """Copy weights layer by layer (by name) from one model into another; see assign_by_name."""
    stored = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in _weighted_layers(saved_model)}
    return assign_by_name(target_model, stored, what=what, legacy_order=False, skip=skip)
