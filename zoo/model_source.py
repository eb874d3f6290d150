"""What `zoo predict`, `zoo.load_predictor` and `zoo export` accept as a model (`load_run`):
* a run directory, or the `model.keras` inside one: the run's `recipe.yaml` gives the data
  settings (image size, eval crop, frames per clip...), its `dataset.json` the class names;
* a standalone `.keras` file (no `recipe.yaml` beside it): a zoo model, whose saved name is its
  registry name, so its task is known; the input size comes from the model, the other data
  settings are the task's defaults (no center crop, one middle clip, frame stride 1) and the
  class names are the class indices;
* a pretrained name as `zoo list --pretrained` prints it ("digits_cnn.digits", or "digits_cnn"
  for the default tag): the weights' shipped recipe gives the data settings and the weights
  table row its class names. Keras Applications' ImageNet weights have no recipe (ImageNet
  evaluation settings: a center crop of 87.5%) and no class names offline: the class indices,
  or the names of `imagenet_class_index.json` where Keras has cached it
  (`$KERAS_HOME/models/`, default `~/.keras/models/`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from zoo.data import DatasetInfo
from zoo.errors import ZooError
from zoo.recipe import load_recipe
from zoo.tasks import get_task

# Keras Applications' ImageNet evaluation: the center 87.5% (224 of 256), resized.
IMAGENET_EVAL_CROP = 0.875

def load_run(model_or_run):
    """(model, recipe, info, run_dir) from a run directory, a `.keras` file or a pretrained
    name (see the module doc; `zoo.loading.resolve` tells them apart); the model computes in
    float32 (`zoo.serving.float32_model`). run_dir: where predictions go by default
    (`<run_dir>/predictions`); beside a standalone file; None for a pretrained name."""
    from zoo.loading import PRETRAINED, RUN, resolve
    from zoo.serving import float32_model

    loaded = resolve(model_or_run, compile=False)
    model = float32_model(loaded.model)
    if loaded.kind == PRETRAINED:
        return _pretrained(model, loaded.spec)
    if loaded.kind != RUN:
        return _model_file(model, loaded.path)
    recipe = load_recipe(loaded.run_dir / "recipe.yaml")
    meta_file = loaded.run_dir / "dataset.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    names = meta.pop("class_names", None) or _indices(get_task(recipe.task).model_num_classes(model))
    return model, recipe, DatasetInfo(len(names), names, extras=meta), loaded.run_dir


def _indices(num_classes: int) -> list[str]:
    return [str(i) for i in range(num_classes)]


def _task_recipe(task: str, model: str, image_size, **data):
    """A recipe for prediction only: the task's default data settings, this input size. Its
    data source is never opened."""
    return load_recipe({"name": f"predict-{model}", "task": task, "model": {"name": model},
                        "data": {"name": "-", "image_size": [int(s) for s in image_size], **data}})


def _pretrained(model, spec):
    from zoo.models import get_entry

    entry = get_entry(spec.model)
    if spec.recipe:
        recipe = load_recipe(spec.recipe)
    else:  # Keras Applications: ImageNet's evaluation settings at the weights' input size
        recipe = _task_recipe(entry.task, spec.model, spec.input_size[-3:-1], eval_crop=IMAGENET_EVAL_CROP)
    names = list(spec.class_names) or (_imagenet_names(spec.num_classes) if spec.application else None)
    names = names or _indices(spec.num_classes)
    return model, recipe, DatasetInfo(len(names), names), None


def _imagenet_names(num_classes: int) -> list[str] | None:
    """The ImageNet class names of Keras' `imagenet_class_index.json`, where Keras has cached it
    (it downloads the file on its first `decode_predictions`); None where it has not."""
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    index = home / "models" / "imagenet_class_index.json"
    try:
        table = json.loads(index.read_text())
        names = [str(table[str(i)][1]) for i in range(num_classes)]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return names


def _model_file(model, model_file: Path):
    """A `.keras` file with no run around it: a zoo model, known by its saved name."""
    from zoo.models import get_entry

    try:
        entry = get_entry(model.name)
    except ZooError:
        raise ZooError(f"{model_file}: no recipe.yaml beside it, and its model name {model.name!r} is no "
                       "registered zoo model, so its task is unknown; predict with its run directory") from None
    task = get_task(entry.task)
    shape = model.input_shape
    size = shape[-3:-1] if isinstance(shape, tuple) and None not in shape[-3:-1] else entry.input_shape[-3:-1]
    recipe = _task_recipe(entry.task, entry.name, size)
    names = _indices(task.model_num_classes(model))
    return model, recipe, DatasetInfo(len(names), names), model_file.parent
