"""Pretrained weights: a model's weights table (tag -> file), local files, head replacement."""
from __future__ import annotations

import fnmatch
from pathlib import Path

import keras

from zoo.errors import ZooError
from zoo.registry import get_entry, list_models


def list_pretrained(pattern: str = "*") -> list[str]:
    """Every pretrained weight as "<model>.<tag>", filtered by an fnmatch pattern."""
    names = [f"{m}.{tag}" for m in list_models(pretrained=True) for tag in get_entry(m).pretrained]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def build_pretrained(entry, pretrained, num_classes, input_shape, kwargs) -> keras.Model:
    """Build `entry` and load weights from a tag of its table or a local file."""
    if pretrained is True:
        if entry.default_tag is None:
            raise ZooError(f"model {entry.name} has no pretrained weights (`zoo list --pretrained`)")
        pretrained = entry.default_tag
    path = Path(str(pretrained))
    if pretrained not in entry.pretrained and not path.exists():
        tags = ", ".join(entry.pretrained) or "none"
        raise ZooError(f"{entry.name}: no pretrained tag or file {pretrained!r} (tags: {tags})")
    if pretrained in entry.pretrained:
        raise ZooError(f"{entry.name}: weights tag {pretrained!r} is not downloadable yet")
    model = entry.builder(input_shape=input_shape, **({"num_classes": num_classes} if num_classes else {}), **kwargs)
    load_weights_file(model, path)
    return model


def load_weights_file(model, path: Path):
    try:
        if path.suffix == ".keras":
            model.set_weights(keras.saving.load_model(path, compile=False).get_weights())
        else:
            model.load_weights(path)
    except (ValueError, OSError) as err:
        raise ZooError(f"weights file {path} does not fit {model.name}: {str(err).splitlines()[0]}") from None
