"""Feature extractors, as timm's `features_only` (and KerasHub's `pyramid_outputs`): a classifier
built with `features_only=True` outputs a dict {"P<k>": feature map at stride 2**k}, its levels
sorted by stride; `out_indices` picks levels by index into that list (negative from the end)
or by name ("P3").

What a level is (name, channels, stride, the layer that outputs it) is read from the model's
graph, never stored beside it: `feature_info(model)` works on a model just built and on one
reloaded with `keras.saving.load_model`, and `FeatureModel.feature_info` is that function.
"""
from __future__ import annotations

import numbers
import re

from zoo.errors import ZooError, quote

_LEVEL = re.compile(r"P(\d+)")


class FeatureInfo:
    """The levels of a features_only model, shallowest first: each a dict with `name` ("P3"),
    `channels`, `reduction` (the stride, 2**k) and `module` (the layer that outputs the map).
    timm's helpers: `.channels()`, `.reduction()`, `.module_name()`, plus `.names()`; indexing
    by position or level name gives one level's dict."""

    def __init__(self, levels: list[dict]):
        self._levels = [dict(level) for level in levels]

    def _column(self, key):
        return [level[key] for level in self._levels]

    def names(self) -> list[str]:
        return self._column("name")

    def channels(self) -> list[int]:
        return self._column("channels")

    def reduction(self) -> list[int]:
        return self._column("reduction")

    def module_name(self) -> list[str]:
        return self._column("module")

    def get_dicts(self) -> list[dict]:
        return [dict(level) for level in self._levels]

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self.names():
                raise KeyError(f"{key!r}: the levels are {', '.join(self.names())}")
            key = self.names().index(key)
        return dict(self._levels[key])

    def __len__(self):
        return len(self._levels)

    def __iter__(self):
        return iter(self.get_dicts())

    def __repr__(self):
        levels = ", ".join(f"{level['name']} ({level['channels']} ch, /{level['reduction']}, "
                           f"{level['module']})" for level in self._levels)
        return f"FeatureInfo({levels})"


def level_stride(name: str) -> int:
    return 2 ** int(_LEVEL.fullmatch(name).group(1))


def _is_pyramid(output) -> bool:
    return isinstance(output, dict) and bool(output) and all(
        isinstance(key, str) and _LEVEL.fullmatch(key) for key in output)


def feature_info(model) -> FeatureInfo:
    """The levels of a features_only model (built, or reloaded from a `.keras` file), derived
    from its output dict: names from the keys, channels from the output shapes, the stride from
    the level ("P<k>": 2**k), the module from the layer that computes each map."""
    output = getattr(model, "output", None)
    if not _is_pyramid(output):
        raise ZooError(f"{getattr(model, 'name', model)!r} is not a features_only model "
                       "(its output is not a {'P<k>': feature map} dict)")
    names = sorted(output, key=level_stride)
    return FeatureInfo([{"name": name, "channels": output[name].shape[-1], "reduction": level_stride(name),
                         "module": output[name]._keras_history.operation.name} for name in names])


def resolve_levels(names: list[str], out_indices, model_name: str) -> list[str]:
    """The requested levels, in stride order, duplicates once: an entry of `out_indices` (or a
    single one) is an index into `names` (negative counts from the end) or a level name.
    Anything else is one ZooError line naming the value and the levels there are."""
    values = [out_indices] if isinstance(out_indices, (numbers.Integral, str)) else out_indices
    try:
        values = list(values)
    except TypeError:
        values = [out_indices]
    chosen = set()
    for value in values:
        if isinstance(value, str) and value in names:
            chosen.add(names.index(value))
        elif (isinstance(value, numbers.Integral) and not isinstance(value, bool)
              and -len(names) <= value < len(names)):
            chosen.add(int(value) % len(names))
        else:
            levels = ", ".join(f"{i} {name}" for i, name in enumerate(names))
            raise ZooError(f"out_indices: {quote(value)} is not a level of {model_name} (levels: {levels}; "
                           f"a negative index counts from the end)")
    if not chosen:
        raise ZooError(f"out_indices: empty; {model_name} has levels {', '.join(names)}")
    return [names[i] for i in sorted(chosen)]


def select_levels(model, out_indices, model_name: str):
    """The features_only `model` cut to the levels `out_indices` names (the layers only the
    other levels need are dropped, weights shared), of the same class (the builders' FeatureModel)."""
    chosen = resolve_levels(feature_info(model).names(), out_indices, model_name)
    return type(model)(model.input, {name: model.output[name] for name in chosen}, name=model.name)
