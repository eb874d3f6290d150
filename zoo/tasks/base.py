"""The task interface the pipeline talks to; the pipeline itself knows no task by name.

A task is one package under zoo/tasks/ that registers one `Task` subclass: its name, its data
sources, its own recipe data keys (`data_config`), and what differs in data preparation, loss,
metrics, evaluation and prediction. The recipe schema, the registry's task check, the CLI's
choices and the data loader are all derived from this table. Declaring a task imports no
TensorFlow: task modules reach TensorFlow and Keras through `zoo.lazy`, and import the modules
that subclass Keras classes (losses, metrics) where they use them.
"""
from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.config import DataConfig
from zoo.data import IMAGE_EXTENSIONS, MAX_PIXELS, DatasetInfo, Split, read_image
from zoo.errors import DataError, RecipeError, quote
from zoo.lazy import keras, tf

TASKS: dict[str, "Task"] = {}


@dataclass(frozen=True)
class Source:
    """A data source: where its loader `fn(data_config, task, split, truth) -> Split` lives
    ("module:function", imported when a split is opened) and the data keys it needs."""

    loader: str
    requires: tuple = ()

    def load(self, data, task, split, truth):
        module, function = self.loader.split(":")
        return getattr(importlib.import_module(module), function)(data, task, split, truth)


# Sources every task reads; a task's own `sources` add to them or replace them.
COMMON_SOURCES = {"tfds": Source("zoo.data:load_tfds", ("name",)),
                  "synthetic": Source("zoo.data:load_synthetic", ("name",)),
                  "tfrecord": Source("zoo.data.tfrecord:load_tfrecord", ("path",))}


def register_task(cls):
    if cls.name in TASKS:
        raise ValueError(f"task {cls.name!r} registered twice")
    TASKS[cls.name] = cls()
    return cls


_PROGRESS = {"verbose": 0}  # predict_chunks' default: set by `progress` (zoo evaluate)


@contextlib.contextmanager
def progress(verbose: int = 1):
    """Inside this block, `predict_chunks` shows a progress bar over batches when `verbose`
    (`zoo evaluate`); elsewhere (training's evaluations, tests) it is silent."""
    before = _PROGRESS["verbose"]
    _PROGRESS["verbose"] = verbose
    try:
        yield
    finally:
        _PROGRESS["verbose"] = before


def predict_chunks(model, dataset, chunk_batches: int = 32, verbose: int | None = None):
    """Yield (outputs, targets) NumPy for every `chunk_batches` batches of a batched
    (inputs, targets) dataset, each chunk through one `model.predict`: a distribution strategy
    splits its batches across replicas, and only one chunk of outputs is held at a time.
    `targets` is the list of the chunk's per-batch targets. `verbose` (default: as `progress`
    set it): a `keras.utils.Progbar` over the batches, advanced after each chunk."""
    verbose = _PROGRESS["verbose"] if verbose is None else verbose
    total = int(dataset.cardinality()) if verbose else -1
    bar = keras.utils.Progbar(total if total >= 0 else None, unit_name="batch") if verbose else None
    inputs, targets, batch_size, done = [], [], None, 0

    def run():
        outputs = model.predict(np.concatenate(inputs), batch_size=batch_size, verbose=0)
        if bar is not None:
            bar.update(done, finalize=False)
        return outputs

    for x, y in dataset.as_numpy_iterator():
        batch_size = batch_size or len(x)
        inputs.append(x)
        targets.append(y)
        done += 1
        if len(inputs) == chunk_batches:
            yield run(), targets
            inputs, targets = [], []
    if inputs:
        yield run(), targets
    if bar is not None:
        bar.update(done, finalize=True)


def with_pictures(dataset):
    """A batched (inputs, targets) dataset whose targets become (targets, the inputs as uint8
    pictures): what a report's gallery shows, made in tf.data (inputs hold 0..255 pixel values)."""
    def add(inputs, targets):
        return inputs, (targets, tf.cast(tf.clip_by_value(tf.round(inputs), 0, 255), tf.uint8))

    return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)


def predict_all(model, dataset):
    """(outputs, targets) of a whole batched dataset, concatenated (`predict_chunks`)."""
    chunks = list(predict_chunks(model, dataset))
    return (np.concatenate([outputs for outputs, _ in chunks]),
            np.concatenate([y for _, targets in chunks for y in targets]))


class Task:
    """Base class: override what the task needs; defaults fit single-label image tasks."""

    name: str = ""
    sources: dict[str, Source] = {}  # the task's own sources, besides COMMON_SOURCES
    data_config: type = DataConfig  # the recipe's `data:` section for this task
    min_classes: int = 2  # fewer classes in the training split is an error (one class: nothing to learn)
    main_metric: str = "accuracy"  # the key of `evaluate` that best.keras and early stopping watch (higher is better)
    input_kind: str = f"image files ({', '.join(IMAGE_EXTENSIONS)})"  # what `zoo predict` reads

    @property
    def all_sources(self) -> dict[str, Source]:
        return {**COMMON_SOURCES, **self.sources}

    def check_recipe(self, recipe):
        """Impossible values of the task's own recipe keys: a RecipeError naming the key."""
        for key, value in vars(recipe.data).items():
            if key not in DataConfig.__dataclass_fields__ and type(value) is int and value <= 0:
                raise RecipeError(f"data.{key}: expected a positive number, got {quote(value)}")

    # -- data --------------------------------------------------------------
    def from_tfds(self, tfds_info) -> tuple:
        """(adapter: tfds example -> canonical example, DatasetInfo) for one TFDS dataset."""
        raise NotImplementedError

    def prepare(self, example, recipe, info: DatasetInfo, training: bool):
        """Canonical example -> (inputs, targets), inside tf.data."""
        raise NotImplementedError

    def batch(self, dataset, batch_size: int, training: bool):
        return dataset.batch(batch_size, drop_remainder=training)

    def make_dataset(self, split: Split, recipe, training: bool, cache: bool):
        """Batched (inputs, targets). Training order is fresh every epoch, seeded by
        runtime.seed: a cached split and a listing of files are permuted in full
        (`Split.shuffled`), a stream goes through `data.shuffle_buffer` records. Uncached, each
        record is decoded and prepared in one map."""
        seed, buffer = recipe.runtime.seed, recipe.data.shuffle_buffer

        def prepare(example):
            return self.prepare(example, recipe, split.info, training)

        if cache:
            records, decode = split.dataset.cache(), None
            if training:  # the buffer holds references to the cached tensors, not copies
                records = records.shuffle(split.info.num_examples or buffer, seed=seed,
                                          reshuffle_each_iteration=True)
        else:
            records = split.shuffled(seed, buffer) if training else split.records
            decode = split.decode
        if training and recipe.train.steps_per_epoch:
            records = records.repeat()
        if decode is None:
            dataset = records.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            dataset = records.map(lambda *record: prepare(decode(*record)), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = self.batch(dataset, recipe.data.batch_size, training)
        return dataset.prefetch(tf.data.AUTOTUNE)

    def make_eval_dataset(self, split: Split, recipe, validation_dataset):
        """The batched dataset `evaluate` reads; default: the validation dataset itself.

        Override when evaluation needs more than the loss targets (detection: ground truth in
        original-image pixels and the image sizes, which the anchor targets no longer hold).
        """
        return validation_dataset

    def example_bytes(self, recipe) -> int:
        """Approximate memory of one decoded example, for the cache decision."""
        height, width = recipe.data.image_size
        return height * width * 3

    # -- model -------------------------------------------------------------
    def model_args(self, recipe, info: DatasetInfo) -> dict:
        return {"num_classes": info.num_classes, "input_shape": (*recipe.data.image_size, 3)}

    def attach(self, model):
        """Read what data preparation needs from the built model, before datasets are made
        (detection: its anchor grid). The pipeline calls it right after building the model."""

    def model_num_classes(self, model) -> int:
        """How many classes a built or loaded model of this task predicts."""
        return int(model.output_shape[-1])

    def loss(self, info: DatasetInfo, **kwargs):
        raise NotImplementedError

    def metrics(self, info: DatasetInfo) -> list:
        return []

    # -- evaluation ----------------------------------------------------------
    def evaluate(self, model, dataset, info: DatasetInfo, report=None) -> dict:
        """Metrics of `model` on a batched, prepared eval dataset (through `model.predict`,
        see `predict_chunks`); `num_examples` included. With a `zoo.report.Report`, also the
        task's per-class table(s) and, with its folder, its report files: the metrics are the
        same with a report or without."""
        raise NotImplementedError

    # -- prediction (`zoo predict`) -------------------------------------------
    def expand_inputs(self, paths) -> list[str]:
        """The inputs to predict: paths as given, a folder replaced by `folder_inputs`."""
        expanded = []
        for path in map(str, paths):
            entries = self.folder_inputs(Path(path)) if Path(path).is_dir() else None
            if entries == []:
                raise DataError(f"no {self.input_kind} in {path}")
            expanded += [path] if entries is None else entries
        return expanded

    def folder_inputs(self, folder: Path) -> list[str] | None:
        """The inputs a folder holds, by name (None: the folder is one input itself)."""
        return sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)

    def read_input(self, path, max_pixels: int = MAX_PIXELS):
        """One input of `expand_inputs` decoded; a DataError naming it when unreadable or of
        more than `max_pixels` pixels."""
        return read_image(path, max_pixels)

    # -- export (`zoo export`) -----------------------------------------------------
    # (format, dtype) exports that the format's own tools cannot make of this task's graph: why.
    export_limits: dict = {}

    def serving_model(self, model, recipe):
        """The graph `zoo export` writes: a Keras model from uint8 `images` of any size the task
        allows to a dict of the task's answers, preprocessing and post-processing inside."""
        raise NotImplementedError(f"task {self.name} has no serving model")

    def serving_example(self, example, recipe):
        """Canonical example -> (the serving model's input for it, unbatched uint8; its truth),
        inside tf.data: what `serving_metrics` scores."""
        raise NotImplementedError

    def serving_metrics(self, outputs: list, truths: list, info: DatasetInfo) -> dict:
        """The task's metrics of serving outputs (one batch-of-1 dict per example) against the
        truths of `serving_example`."""
        raise NotImplementedError

    def serving_differences(self, expected: dict, got: dict) -> dict:
        """{output: largest |expected - got|} of two serving outputs of the same input (the Keras
        graph's and an export's)."""
        return {name: float(np.max(np.abs(np.asarray(value, np.float64) - np.asarray(got[name], np.float64))))
                for name, value in expected.items()}

    # -- prediction (`zoo.load_predictor`, `zoo predict`) -------------------------------
    input_rank: int = 3  # dimensions of one input: an image (H, W, 3)
    serving_options: dict = {}  # `serving_model`'s options and defaults (detection: agnostic_nms)
    result_options: dict = {}  # `result`'s options and defaults (detection: min_score)
    cli_options: dict = {}  # what `zoo predict` gives `result` (detection: every box, for predictions.json)
    picture_kind: str = "picture"  # `zoo predict` saves `<stem>_<picture_kind>.png`

    def class_names(self, model, info: DatasetInfo) -> list[str]:
        """The name of each class the model predicts."""
        return list(info.class_names)

    def serving_inputs(self, original, predictor) -> np.ndarray:
        """One input as `read_input` gives it -> the rows of the serving graph's batch it
        becomes (an image: itself; video: its clips), for a `zoo.predictor.Predictor`."""
        return np.asarray(original)[None]

    def result(self, source, original, outputs: dict, predictor):
        """The `zoo.results.Result` of one input from the serving outputs of its rows (after
        `predictor`'s options that `result_options` names, as keyword arguments)."""
        raise NotImplementedError

    def prediction_row(self, result, files, path) -> dict:
        """`zoo predict`'s data of one input: {"input", **result.to_dict(), "picture": the
        picture saved where `files` (`zoo.predict.OutputFiles`) puts it}; `zoo.predict.describe`
        turns it into lines."""
        picture = files.save(result.picture(), path, self.picture_kind)
        return {"input": str(path), **result.to_dict(), "picture": str(picture)}

    def prediction_record(self, result, path, predictor):
        """What `finish_predictions` needs of one input's result, kept until the last input
        (never the image: a folder of photos would pile up); None: nothing."""
        return None

    def finish_predictions(self, records, files) -> list[dict]:
        """Rows after the last input's (e.g. a file of every input), from the inputs'
        `prediction_record`s: {"input": None, "message": text} each."""
        return []
