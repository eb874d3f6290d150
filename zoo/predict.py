"""`zoo predict`: load a trained run (or model file) and let its task describe predictions."""
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
    from zoo.weights import load_model_file

    recipe = load_recipe(run_dir / "recipe.yaml")
    meta_file = run_dir / "dataset.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    model = load_model_file(model_file)
    names = meta.pop("class_names", None) or [str(i) for i in range(model.output_shape[-1])]
    return model, recipe, DatasetInfo(len(names), names, extras=meta), run_dir


def iter_predict(model_or_run, inputs, output_dir=None):
    """Yield the lines of `zoo predict` as each input is predicted (folders expand to their
    images or clips). An unreadable input gets its own line in input order and the others go on;
    at the end, a DataError counts the unreadable inputs."""
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
                pending.append(f"{path}: error: {err}")

    # The task pulls an input only after yielding the previous one's lines, so failures read
    # in between come out just before the next line.
    for line in task.predict(model, readable(), info, recipe, out):
        yield from pending
        pending.clear()
        yield line
    yield from pending
    if failed:
        raise DataError(f"{len(failed)} of {len(paths)} inputs could not be read (first: {failed[0]})")


def predict(model_or_run, inputs, output_dir=None) -> list[str]:
    """All the lines of `iter_predict` at once."""
    return list(iter_predict(model_or_run, inputs, output_dir))
