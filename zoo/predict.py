"""`zoo predict`: a run, a model file or a pretrained name (`zoo.model_source.load_run`) through
its task's serving graph (`zoo.predictor.Predictor`), each input's picture saved (`OutputFiles`),
the predictions described as text lines (`describe`) or JSON Lines (`to_json`)."""
from __future__ import annotations

import collections
import json
import os
from pathlib import Path

from zoo.data import OversizedImage
from zoo.data.image_files import oversized_line
from zoo.errors import DataError, cannot_write, make_folder
from zoo.model_source import load_run
from zoo.tasks import get_task


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
        from zoo.results import save_picture

        return save_picture(picture, self.path(input_path, kind))

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
    """Yield one prediction (a dict, see `Task.prediction_row`) per input as its batch is
    predicted, by the task's serving graph (`zoo.predictor.Predictor`); folders expand to their
    images or clips. An unreadable input gets its own {"input", "error"} in input order and the
    others go on; at the end, a DataError counts the unreadable inputs.

    `max_pixels`: the largest image read (default: the run's data.max_pixels). `options`: the
    predictor's (detection: `agnostic_nms`)."""
    from zoo.predictor import Predictor

    model, recipe, info, run_dir = load_run(model_or_run)
    out = Path(output_dir) if output_dir else (run_dir / "predictions" if run_dir else Path("predictions"))
    task = get_task(recipe.task)
    predictor = Predictor(model, recipe, info, max_pixels=max_pixels, **{**task.cli_options, **options})
    paths = task.expand_inputs(inputs)
    files = OutputFiles(out, paths)

    def readable():
        for path in paths:
            try:
                yield path, task.read_input(path, predictor.max_pixels)
            except DataError as err:
                if isinstance(err, OversizedImage):  # raised with the option, not the recipe key
                    err = DataError(oversized_line(*err.size, key="--max-pixels"))
                yield path, err

    records, failed = [], []
    for path, result in predictor.iter_results(readable()):
        if isinstance(result, Exception):
            failed.append(path)
            yield {"input": path, "error": str(result)}
        else:
            record = task.prediction_record(result, path, predictor)
            if record is not None:
                records.append(record)
            yield task.prediction_row(result, files, path)
    yield from task.finish_predictions(records, files)
    if failed:
        raise DataError(f"{len(failed)} of {len(paths)} inputs could not be read (first: {failed[0]})")


def describe(prediction: dict) -> list[str]:
    """The lines `zoo predict` prints for one prediction, by the keys it has (`Task.prediction_row`)."""
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
            x0, y0, x1, y1 = obj["box"]
            lines.append(f"{path}: {obj['label']} {obj['score']:.3f} "
                         f"[x0 {x0:.1f}, y0 {y0:.1f}, x1 {x1:.1f}, y1 {y1:.1f}]")
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
