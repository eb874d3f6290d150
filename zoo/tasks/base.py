"""The task interface the pipeline talks to; the pipeline itself knows no task by name."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo.data import IMAGE_EXTENSIONS, DatasetInfo, Split, read_image
from zoo.errors import DataError

TASKS: dict[str, "Task"] = {}


def predict_dataset(model, dataset):
    """(scores, targets) as NumPy over a batched (inputs, targets) dataset.

    `model.predict` (not a Python loop of `predict_on_batch`) so distribution strategies
    split each batch across replicas correctly.
    """
    scores = model.predict(dataset.map(lambda inputs, targets: inputs), verbose=0)
    targets = [t for t in dataset.map(lambda inputs, targets: targets).as_numpy_iterator()]
    return scores, np.concatenate(targets)


def register_task(cls):
    TASKS[cls.name] = cls()
    return cls


def get_task(name: str) -> "Task":
    import zoo.tasks  # noqa: F401  (registers every task)

    return TASKS[name]


class Task:
    """Base class: override what the task needs; defaults fit single-label image tasks."""

    name: str = ""
    sources: dict = {}  # task-specific data sources: name -> fn(data_config, task, split, truth) -> Split
    min_classes: int = 2  # fewer classes in the training split is an error (one class: nothing to learn)
    input_key: str = "image"  # canonical example key that holds the model input
    input_kind: str = f"image files ({', '.join(IMAGE_EXTENSIONS)})"  # what `zoo predict` reads

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
        """Batched (inputs, targets). Training order is a fresh permutation of the whole split
        every epoch, seeded by runtime.seed: sources list files class by class, so a buffer of
        decoded examples alone would see a few classes at a time."""
        seed, size = recipe.runtime.seed, split.info.num_examples
        if cache:
            dataset = split.dataset.cache()
            if training:  # the buffer holds references to the cached tensors, not copies
                dataset = dataset.shuffle(size or recipe.data.shuffle_buffer, seed=seed,
                                          reshuffle_each_iteration=True)
        elif training:
            records = split.records
            if split.decode is not None and size:  # file paths: cheap to shuffle in full
                records = records.shuffle(size, seed=seed, reshuffle_each_iteration=True)
            dataset = split.decoded(records).shuffle(recipe.data.shuffle_buffer, seed=seed + 1,
                                                     reshuffle_each_iteration=True)
        else:
            dataset = split.dataset
        if training and recipe.train.steps_per_epoch:
            dataset = dataset.repeat()
        dataset = dataset.map(lambda ex: self.prepare(ex, recipe, split.info, training),
                              num_parallel_calls=tf.data.AUTOTUNE)
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

    def model_num_classes(self, model) -> int:
        """How many classes a built or loaded model of this task predicts."""
        return int(model.output_shape[-1])

    def loss(self, info: DatasetInfo, **kwargs):
        raise NotImplementedError

    def metrics(self, info: DatasetInfo) -> list:
        return []

    # -- evaluation ----------------------------------------------------------
    def evaluate(self, model, dataset, info: DatasetInfo) -> dict:
        """Metrics of `model` on a batched, prepared eval dataset; `num_examples` included."""
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

    def read_input(self, path):
        """One input of `expand_inputs` decoded; a DataError naming it when unreadable."""
        return read_image(path)

    def predict(self, model, inputs, info: DatasetInfo, recipe, output_dir):
        """Yield the lines to print for (path, `read_input` result) pairs, one input's lines
        before the next input is pulled (pictures go to output_dir)."""
        raise NotImplementedError
