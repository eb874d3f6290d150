"""`zoo predict`: load a trained run (or model file) and let its task describe predictions."""
from __future__ import annotations

import json
from pathlib import Path

import keras

from zoo.data import DatasetInfo
from zoo.errors import ZooError
from zoo.recipe import load_recipe
from zoo.tasks import get_task


def load_run(model_or_run):
    """(model, recipe, info, run_dir) from a run directory or the model.keras inside one."""
    path = Path(model_or_run)
    run_dir = path if path.is_dir() else path.parent
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        raise ZooError(f"no trained model at {model_file} (expected a run directory or its model.keras)")
    if not (run_dir / "recipe.yaml").is_file():
        raise ZooError(f"{run_dir} is not a run directory: recipe.yaml is missing")
    import zoo.models  # noqa: F401  (registers the zoo's custom layers for loading)

    recipe = load_recipe(run_dir / "recipe.yaml")
    meta_file = run_dir / "dataset.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    model = keras.saving.load_model(model_file, compile=False)
    names = meta.pop("class_names", None) or [str(i) for i in range(model.output_shape[-1])]
    return model, recipe, DatasetInfo(len(names), names, extras=meta), run_dir


def predict(model_or_run, inputs, output_dir=None) -> list[str]:
    model, recipe, info, run_dir = load_run(model_or_run)
    out = Path(output_dir) if output_dir else run_dir / "predictions"
    return get_task(recipe.task).predict(model, inputs, info, recipe, out)
