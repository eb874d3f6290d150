"""`zoo.load_predictor`: a trained model with its task's serving graph, in Python.

    predictor = zoo.load_predictor("retinanet_small.shapes")   # RUN dir | .keras file | MODEL.TAG
    result, = predictor.predict("street.jpg")                  # one `zoo.results.Result` per input
    result.boxes, result.scores, result.labels, result.names
    result.save("street_detections.png")

The predictor runs `Task.serving_model`: the graph `zoo predict` runs and `zoo export` writes
(uint8 images of any size in; crop, resize, decode and NMS inside), so the three give the same
answer. Inputs: a path, a folder (its images, or clips for a video model), a PIL image, a uint8
NumPy array — an image (H, W, 3) (grey (H, W) and RGBA are converted) or a batch (N, H, W, 3);
for video models a clip (T, H, W, 3) or a batch of clips — or a list of those. Consecutive
inputs of one size run through the graph as one batch.
"""
from __future__ import annotations

import inspect
import os

import numpy as np

from zoo.errors import ZooError
from zoo.tasks import get_task

BATCH_SIZE = 16  # inputs per run of the serving graph at most
# Input pixels per run at most (a bigger input runs alone): the graph's resize holds about twice
# its input in float32 per axis, so 16 phone photos of 12 MP would take ~9 GB at once.
BATCH_PIXELS = 16_000_000
IMAGE_SOURCE, ARRAY_SOURCE = "<image {}>", "<array {}>"  # inputs given as pixels, by their place


def load_predictor(source, *, batch_size: int = BATCH_SIZE, max_pixels: int | None = None, **options) -> "Predictor":
    """The `Predictor` of a run directory, a `.keras` file or a pretrained "MODEL.TAG" (what
    `zoo predict` takes). `options`: the task's (`Predictor`), e.g. detection's
    `agnostic_nms` (default True: NMS over all classes, one box per object, as `zoo predict`
    and `zoo export`; False: per class, as COCO evaluation) and `min_score` (detections kept,
    default 0.3)."""
    from zoo.model_source import load_run

    model, recipe, info, _ = load_run(source)
    return Predictor(model, recipe, info, batch_size=batch_size, max_pixels=max_pixels, **options)


class Predictor:
    """A model and its task's serving graph (see the module doc). `.model` the Keras model (run
    in float32), `.serving` the serving graph, `.names` the class names, `.task` the task."""

    def __init__(self, model, recipe, info, *, batch_size: int = BATCH_SIZE, max_pixels: int | None = None,
                 **options):
        self.task = get_task(recipe.task)
        self.recipe, self.info, self.model = recipe, info, model
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ZooError(f"batch_size: expected a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.max_pixels = max_pixels or recipe.data.max_pixels
        self.options = task_options(self.task, options, {**self.task.serving_options, **self.task.result_options})
        self.serving = self.task.serving_model(model, recipe, **self._for(self.task.serving_model))
        self._run_graph = _graph_runner(self.serving)
        self.names = self.task.class_names(model, info)

    def _for(self, method) -> dict:
        accepted = inspect.signature(method).parameters
        return {name: value for name, value in self.options.items() if name in accepted}

    def predict(self, inputs) -> list:
        """One `zoo.results.Result` per input (see the module doc), in input order."""
        return [result for _, result in self.iter_results(self.read(inputs))]

    __call__ = predict

    def read(self, inputs):
        """Yield (source, uint8 array as the task reads it) of each input (see the module doc):
        a file's path, else "<image i>" / "<array i>" by its place among the inputs; an
        unreadable or unusable input is a ZooError naming it."""
        for index, (source, original) in enumerate(self._read(inputs)):
            yield source.format(index) if source in (IMAGE_SOURCE, ARRAY_SOURCE) else source, original

    def _read(self, inputs):
        if isinstance(inputs, (str, os.PathLike)):
            for path in self.task.expand_inputs([os.fspath(inputs)]):
                yield path, np.asarray(self.task.read_input(path, self.max_pixels))
        elif _is_pil(inputs):
            if self.task.input_rank != 3:
                raise ZooError(f"a PIL image is one frame: {self.task.name} models take clips (T, H, W, 3)")
            from PIL import ImageOps

            yield IMAGE_SOURCE, np.asarray(ImageOps.exif_transpose(inputs).convert("RGB"))  # as files are read
        elif isinstance(inputs, (list, tuple)) or (not hasattr(inputs, "__array__") and hasattr(inputs, "__iter__")):
            for item in inputs:
                yield from self._read(item)
        else:
            array = _pixels(inputs, self.task.input_rank)
            for item in [array] if array.ndim == self.task.input_rank else array:
                yield ARRAY_SOURCE, item

    def iter_results(self, readable):
        """(source, array | exception) pairs -> (source, Result | that exception), in order.
        Consecutive arrays of one shape go through the serving graph together, at most
        `batch_size` inputs and `BATCH_PIXELS` input pixels at once; an exception (an input that
        could not be read) passes through in its place."""
        group, shape, inputs, pixels = [], None, 0, 0
        for source, original in readable:
            rows = None if isinstance(original, Exception) else self.task.serving_inputs(original, self)
            if rows is not None:
                size = rows.size // rows.shape[-1]
                if inputs and (rows.shape[1:] != shape or inputs == self.batch_size or pixels + size > BATCH_PIXELS):
                    yield from self._run(group)
                    group, inputs, pixels = [], 0, 0
                shape, inputs, pixels = rows.shape[1:], inputs + 1, pixels + size
            group.append((source, original, rows))
        yield from self._run(group)

    def _run(self, group):
        batches = [rows for _, _, rows in group if rows is not None]
        outputs = self._run_graph(np.concatenate(batches)) if batches else {}
        options = self._for(self.task.result)
        start = 0
        for source, original, rows in group:
            if rows is None:
                yield source, original
                continue
            mine = {name: np.asarray(value[start:start + len(rows)]) for name, value in outputs.items()}
            start += len(rows)
            yield source, self.task.result(source, original, mine, self, **options)


def _graph_runner(serving):
    """A function running the serving graph on a NumPy batch -> NumPy outputs. On TensorFlow one
    graph traced for any image size (its input signature leaves the sizes open: a folder of
    photos of many sizes is not traced once per size); elsewhere `predict_on_batch`."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return serving.predict_on_batch
    import tensorflow as tf

    graph = tf.function(lambda images: serving(images, training=False),
                        input_signature=[tf.TensorSpec(serving.input_shape, tf.uint8)])
    return lambda batch: {name: value.numpy() for name, value in graph(batch).items()}


def task_options(task, given: dict, known: dict) -> dict:
    """`known` (option: default) updated with `given`; an option `known` lacks is a ZooError."""
    for name in given:
        if name not in known:
            takes = f"they take {', '.join(sorted(known))}" if known else "they take none"
            raise ZooError(f"{name}: not an option of {task.name} models ({takes})")
    return {**known, **given}


def _is_pil(value) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(value, Image.Image)


def _pixels(value, rank: int) -> np.ndarray:
    """An array-like of pixels 0..255 (uint8, or integers in that range) -> uint8, one input
    (`rank` dims, 3 channels) or a batch of them; grey (no channel axis, or 1 channel) and RGBA
    converted to RGB; a ZooError otherwise."""
    array = np.asarray(value)
    what = "images (H, W, 3)" if rank == 3 else "clips (T, H, W, 3)"
    if np.issubdtype(array.dtype, np.integer) and array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise ZooError(f"expected pixels 0-255, got an array of {array.dtype} from {array.min()} to {array.max()}")
        array = array.astype(np.uint8)
    if array.dtype != np.uint8:
        raise ZooError(f"expected uint8 pixels (0-255), got an array of {array.dtype}: for values in "
                       "[0, 1] pass (array * 255).round().astype('uint8')")
    if array.ndim in (rank - 1, rank) and array.shape[-1] not in (1, 3, 4):
        array = array[..., None]  # grey, no channel axis
    if array.ndim not in (rank, rank + 1) or array.shape[-1] not in (1, 3, 4) or 0 in array.shape:
        raise ZooError(f"expected {what} or a batch of them, got an array of shape {array.shape}")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array[..., :3]
