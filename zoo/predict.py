"""`zoo predict`: load a trained run, a model file or a pretrained model, let its task predict,
describe the result as text lines (`describe`) or JSON Lines (`to_json`).

What `zoo predict MODEL` accepts (`load_run`):
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

import collections
import contextlib
import difflib
import inspect
import json
import os
import re
from pathlib import Path

from zoo.data import DatasetInfo, OversizedImage
from zoo.data.image_files import oversized_line
from zoo.errors import DataError, ZooError, cannot_write, make_folder
from zoo.recipe import load_recipe
from zoo.tasks import get_task

# Keras Applications' ImageNet evaluation: the center 87.5% (224 of 256), resized.
IMAGENET_EVAL_CROP = 0.875

# `zoo predict`'s options and their defaults, passed to a task's `predict` where it takes them
# (`iter_predict`); detection: one box per object (class-agnostic NMS) in the objects and picture.
PREDICT_OPTIONS = {"agnostic_nms": True}


def load_run(model_or_run):
    """(model, recipe, info, run_dir) from a run directory, a `.keras` file or a pretrained
    name (see the module doc). run_dir: where predictions go by default (`<run_dir>/predictions`);
    None for a pretrained name (`./predictions`)."""
    path = Path(model_or_run).expanduser()
    if not path.exists() and _looks_like_a_name(str(model_or_run)):
        return _load_pretrained(str(model_or_run))
    run_dir = path if path.is_dir() else path.parent
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        raise ZooError(f"no trained model at {model_file} (expected a run directory, a .keras file "
                       "or a pretrained name such as digits_cnn.digits)")
    if not (run_dir / "recipe.yaml").is_file():
        if path.is_dir():
            raise ZooError(f"{run_dir} is not a run directory: recipe.yaml is missing")
        return _load_model_file(model_file)
    from zoo.models import load_model_file
    from zoo.serving import float32_model

    recipe = load_recipe(run_dir / "recipe.yaml")
    meta_file = run_dir / "dataset.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    model = float32_model(load_model_file(model_file))
    names = meta.pop("class_names", None) or _indices(get_task(recipe.task).model_num_classes(model))
    return model, recipe, DatasetInfo(len(names), names, extras=meta), run_dir


def _looks_like_a_name(text: str) -> bool:
    """"model" or "model.tag": no folder, no file suffix of a model file."""
    return (re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)?", text) is not None
            and not text.endswith((".keras", ".h5")))


def _indices(num_classes: int) -> list[str]:
    return [str(i) for i in range(num_classes)]


def _task_recipe(task: str, model: str, image_size, **data):
    """A recipe for prediction only: the task's default data settings, this input size. Its
    data source is never opened."""
    return load_recipe({"name": f"predict-{model}", "task": task, "model": {"name": model},
                        "data": {"name": "-", "image_size": [int(s) for s in image_size], **data}})


def _load_pretrained(name: str):
    from zoo.models import create_model, get_entry, get_spec, list_pretrained

    try:
        entry = get_entry(name.partition(".")[0])
    except ZooError:
        close = difflib.get_close_matches(name, list_pretrained(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else " (`zoo list --pretrained` lists the names)"
        raise ZooError(f"{name}: no such run directory or model file, nor a pretrained model{hint}") from None
    if not entry.pretrained:
        raise ZooError(f"{name}: model {entry.name} has no pretrained weights; predict with a run "
                       "directory or a .keras file (`zoo list --pretrained` lists the weights)")
    spec = get_spec(name)
    if spec.recipe:
        recipe = load_recipe(spec.recipe)
    else:  # Keras Applications: ImageNet's evaluation settings at the weights' input size
        recipe = _task_recipe(entry.task, spec.model, spec.input_size[-3:-1], eval_crop=IMAGENET_EVAL_CROP)
    names = list(spec.class_names) or (_imagenet_names(spec.num_classes) if spec.application else None)
    names = names or _indices(spec.num_classes)
    model = create_model(spec.name)
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


def _load_model_file(model_file: Path):
    """A `.keras` file with no run around it: a zoo model, known by its saved name."""
    from zoo.models import get_entry, load_model_file
    from zoo.serving import float32_model

    model = float32_model(load_model_file(model_file))
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


class OutputFiles:
    """Where `zoo predict` writes each input's files, one set per input: under `folder`, in the
    input's folder relative to the deepest folder holding every input (inputs of one folder:
    straight in `folder`; `a/0.png b/0.png` -> `a/0_mask.png`, `b/0_mask.png`), named
    `<stem>_<kind>.png`. Inputs of one folder whose stems collide keep their whole file name
    (`det.png`, `det.jpg` -> `det.png_detections.png`, `det.jpg_detections.png`). A file that
    cannot be written is a one-line ZooError naming it."""

    def __init__(self, folder, inputs):
        self.folder = Path(folder)
        absolute = {path: os.path.abspath(path) for path in inputs}
        by_folder = {}
        for place in set(absolute.values()):
            by_folder.setdefault(os.path.dirname(place), []).append(place)
        top = os.path.commonpath(list(by_folder)) if by_folder else ""
        named = {}
        for parent, places in by_folder.items():
            names = {place: Path(place).stem for place in places}
            while len(set(names.values())) < len(names):  # whole names are unique in a folder
                counts = collections.Counter(names.values())
                names = {p: Path(p).name if counts[n] > 1 else n for p, n in names.items()}
            named.update({place: Path(os.path.relpath(parent, top)) / name for place, name in names.items()})
        self._names = {path: named[place] for path, place in absolute.items()}

    def path(self, input_path, kind: str) -> Path:
        """`<folder>/<input's folder>/<name>_<kind>.png`, its folder made."""
        path = self.folder / f"{self._names[str(input_path)]}_{kind}.png"
        make_folder(path.parent)
        return path

    def save(self, picture, input_path, kind: str) -> Path:
        """A PIL image saved as `path(input_path, kind)`."""
        path = self.path(input_path, kind)
        try:
            picture.save(path)
        except OSError as err:
            with contextlib.suppress(OSError):  # no half a picture (a full disk)
                path.unlink()
            raise cannot_write(path, err) from None
        return path

    def write_text(self, name: str, text: str) -> Path:
        """A file of all the inputs, straight in the folder."""
        from zoo.run_dir import write_atomic

        make_folder(self.folder)
        path = self.folder / name
        try:
            write_atomic(path, text)
        except OSError as err:
            raise cannot_write(path, err) from None
        return path


def iter_predict(model_or_run, inputs, output_dir=None, max_pixels: int | None = None, **options):
    """Yield one prediction (a dict, see `Task.predict`) per input as it is predicted (folders
    expand to their images or clips). An unreadable input gets its own {"input", "error"} in
    input order and the others go on; at the end, a DataError counts the unreadable inputs.

    `max_pixels`: the largest image read (default: the run's data.max_pixels). `options`: keyword
    arguments of the task's `predict` (detection: `agnostic_nms`), defaults `PREDICT_OPTIONS`; an
    option the task's `predict` does not take is ignored."""
    model, recipe, info, run_dir = load_run(model_or_run)
    out = Path(output_dir) if output_dir else (run_dir / "predictions" if run_dir else Path("predictions"))
    task = get_task(recipe.task)
    accepted = inspect.signature(task.predict).parameters
    options = {key: value for key, value in {**PREDICT_OPTIONS, **options}.items() if key in accepted}
    paths = task.expand_inputs(inputs)
    failed, pending = [], []

    def readable():
        for path in paths:
            try:
                yield path, task.read_input(path, max_pixels or recipe.data.max_pixels)
            except DataError as err:
                failed.append(path)
                if isinstance(err, OversizedImage):  # raised with the option, not the recipe key
                    err = oversized_line(*err.size, key="--max-pixels")
                pending.append({"input": path, "error": str(err)})

    # The task pulls an input only after yielding the previous prediction, so failures read in
    # between come out just before the next one.
    for prediction in task.predict(model, readable(), info, recipe, OutputFiles(out, paths), **options):
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
    picture = prediction.get("picture")
    if "error" in prediction:
        lines.append(f"{path}: error: {prediction['error']}")
    if "top_k" in prediction:  # one line per input, the picture (video: its frames) on it
        drawn = f"; drawn to {picture}" if picture else ""
        lines.append(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in prediction["top_k"]) + drawn)
        picture = None
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
    if picture:
        lines.append(f"{path}: drawn to {picture}")
    return lines


def _plain(value):
    """JSON for what `json` does not know: NumPy scalars and arrays, paths."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(prediction: dict) -> str:
    """One prediction as one line of JSON (`zoo predict --json`: JSON Lines)."""
    return json.dumps(prediction, default=_plain)


def predict(model_or_run, inputs, output_dir=None, **options) -> list[str]:
    """All the lines of `zoo predict` at once."""
    return [line for prediction in iter_predict(model_or_run, inputs, output_dir, **options)
            for line in describe(prediction)]
