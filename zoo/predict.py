"""`zoo predict`: load a trained run (or model file), let its task predict, describe the result."""
from __future__ import annotations

import json
from pathlib import Path

from zoo.data import DatasetInfo
from zoo.errors import DataError, ZooError
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
    from zoo.models import load_model_file

    recipe = load_recipe(run_dir / "recipe.yaml")
    meta_file = run_dir / "dataset.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    model = load_model_file(model_file)
    names = meta.pop("class_names", None) or [str(i) for i in range(model.output_shape[-1])]
    return model, recipe, DatasetInfo(len(names), names, extras=meta), run_dir


def iter_predict(model_or_run, inputs, output_dir=None):
    """Yield one prediction (a dict, see `Task.predict`) per input as it is predicted (folders
    expand to their images or clips). An unreadable input gets its own {"input", "error"} in
    input order and the others go on; at the end, a DataError counts the unreadable inputs."""
    model, recipe, info, run_dir = load_run(model_or_run)
    out = Path(output_dir) if output_dir else run_dir / "predictions"
    task = get_task(recipe.task)
    paths = task.expand_inputs(inputs)
    failed, pending = [], []

    def readable():
        for path in paths:
            try:
                yield path, task.read_input(path)
            except DataError as err:
                failed.append(path)
                pending.append({"input": path, "error": str(err)})

    # The task pulls an input only after yielding the previous prediction, so failures read in
    # between come out just before the next one.
    for prediction in task.predict(model, readable(), info, recipe, out):
        yield from pending
        pending.clear()
        yield prediction
    yield from pending
    if failed:
        raise DataError(f"{len(failed)} of {len(paths)} inputs could not be read (first: {failed[0]})")


def describe(prediction: dict) -> list[str]:
    """The lines `zoo predict` prints for one prediction, by the keys it has (Task.predict)."""
    path = prediction.get("input")
    if path is None:
        return [prediction["message"]]
    lines = []
    if "error" in prediction:
        lines.append(f"{path}: error: {prediction['error']}")
    if "top_k" in prediction:
        lines.append(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in prediction["top_k"]))
    if "objects" in prediction:
        for obj in prediction["objects"]:
            x, y, w, h = obj["box"]
            lines.append(f"{path}: {obj['label']} {obj['score']:.3f} "
                         f"[x0 {x:.1f}, y0 {y:.1f}, x1 {x + w:.1f}, y1 {y + h:.1f}]")
        if not prediction["objects"]:
            lines.append(f"{path}: no detection with score >= {prediction['threshold']}")
    if "classes" in prediction:
        lines.append(f"{path}: " + ", ".join(f"{name} {100 * f:.1f}%" for name, f in prediction["classes"]))
    if "mask" in prediction:
        lines.append(f"{path}: mask saved to {prediction['mask']}")
    if "picture" in prediction:
        lines.append(f"{path}: drawn to {prediction['picture']}")
    return lines


def predict(model_or_run, inputs, output_dir=None) -> list[str]:
    """All the lines of `zoo predict` at once."""
    return [line for prediction in iter_predict(model_or_run, inputs, output_dir) for line in describe(prediction)]
