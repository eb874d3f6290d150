"""The task interface the pipeline talks to; the pipeline itself knows no task by name."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from zoo.data import DatasetInfo, Split

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
    sources: dict = {}  # task-specific data sources: name -> fn(data_config, task, split) -> Split
    input_key: str = "image"  # canonical example key that holds the model input

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
        dataset = split.dataset
        if cache:
            dataset = dataset.cache()
        if training:
            dataset = dataset.shuffle(recipe.data.shuffle_buffer, seed=recipe.runtime.seed,
                                      reshuffle_each_iteration=True)
            if recipe.train.steps_per_epoch:
                dataset = dataset.repeat()
        dataset = dataset.map(lambda ex: self.prepare(ex, recipe, split.info, training),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
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

    def loss(self, info: DatasetInfo, **kwargs):
        raise NotImplementedError

    def metrics(self, info: DatasetInfo) -> list:
        return []

    # -- evaluation ----------------------------------------------------------
    def evaluate(self, model, dataset, info: DatasetInfo) -> dict:
        """Metrics of `model` on a batched, prepared eval dataset; `num_examples` included."""
        raise NotImplementedError

    def predict(self, model, paths, info: DatasetInfo, recipe, output_dir) -> list[str]:
        """Lines to print for `zoo predict` on image/clip paths (pictures go to output_dir)."""
        raise NotImplementedError
