"""`runtime.distribution: multi_worker` on the jax backend (docs/distributed.md).

The processes of the TF_CONFIG cluster (`zoo.cluster.cluster_worker`) join through jax.distributed
(`keras.distribution.initialize`, the chief's address the coordinator; on CPU the collectives
go through gloo) and train with `runtime.DataParallel` over the devices of every process. Every
process reads every split: of each training batch it keeps its share (`batch_share`), which
together make the recipe's global batch; every other batch (Keras' validation, the zoo's
evaluation and predictions) it feeds whole, so that each process runs the same steps and gets
the same numbers (`TrainingShares` tells the distribution which batch is which). A process that
ran one step more than another would wait for it forever.
"""
from __future__ import annotations

import jax
import keras
import numpy as np
import tensorflow as tf
from jax.experimental import multihost_utils

from zoo import cluster


def join(worker):
    """Start jax.distributed for `worker` (a `zoo.cluster.Worker`), before any jax computation, once
    every worker's port answers (`zoo.cluster.wait_for_peers`): the chief, rank 0, coordinates at its
    TF_CONFIG address; the others keep theirs listening until all joined."""
    settings = {"jax_cpu_collectives_implementation": "gloo",  # else CPU processes cannot reduce together
                "jax_enable_preemption_service": False}  # its SIGTERM handler keeps a stopped worker running
    for name, value in settings.items():
        if name in jax.config.values:  # not in every jax version
            jax.config.update(name, value)
    listening = cluster.wait_for_peers(worker, keep_listening=not worker.is_chief)
    try:
        keras.distribution.initialize(worker.addresses[0], worker.count, worker.rank)
    finally:
        if listening is not None:
            listening.close()


def batch_share(dataset):
    """This process's share of every batch of a training `dataset` (batches of one static size
    that the processes divide): the rank-th of as many equal slices as there are processes."""
    count, rank = jax.process_count(), jax.process_index()
    size = tf.nest.flatten(dataset.element_spec)[0].shape[0] // count

    def share(*element):
        element = element if len(element) > 1 else element[0]
        return tf.nest.map_structure(lambda t: t[rank * size:(rank + 1) * size], element)

    return dataset.map(share, num_parallel_calls=tf.data.AUTOTUNE)


def gather(values: list[int]) -> np.ndarray:
    """`values` of every process, one row each (a collective: every process calls it)."""
    return np.asarray(multihost_utils.process_allgather(np.asarray(values, np.int32)))


class TrainingShares(keras.callbacks.Callback):
    """Marks the batches of `fit`'s training epochs as process shares for `distribution` (a
    `runtime.DataParallel` across processes); validation and what callbacks evaluate at an
    epoch's end are whole batches. First in `fit`'s callbacks: Keras lays a dataset's batches
    out as it lays out the first one of each pass."""

    def __init__(self, distribution):
        super().__init__()
        self.distribution = distribution

    def on_epoch_begin(self, epoch, logs=None):
        self.distribution.training_shares = True

    def on_test_begin(self, logs=None):
        self.distribution.training_shares = False

    def on_epoch_end(self, epoch, logs=None):
        self.distribution.training_shares = False

    def on_train_end(self, logs=None):
        self.distribution.training_shares = False
