"""The validation split: what chooses the model (best.keras, early stopping, the main metric every
train.eval_every epochs), never the eval split that metrics.json reports.

`data.val_split` null (10%) or a fraction carves a seeded part out of the training split
(`carve`): disjoint from what trains, the two together exactly the training split. Per class
where the source lists its records' labels in memory (`Split.labels`: folders, the embedded
digits, video class folders); per record (image) for other listings (COCO, segmentation
folders); by index for a stream (tfds, tfrecord, synthetic), whose selection is drawn from the
indices alone, so both parts keep a known size without a pass over the data. A class with one
example stays in training. A string names a split loaded like any other.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from zoo.data import DatasetInfo, Split, load_split
from zoo.errors import DataError
from zoo.lazy import tf

DEFAULT_FRACTION = 0.1  # data.val_split: null


def holdout_counts(counts, fraction: float) -> np.ndarray:
    """How many examples of each class (`counts`) go to validation: `fraction` of the classes with
    two or more examples, in total round(fraction * their examples) and at least one, shared by
    largest remainder (so each class gives floor or ceil of its share) and never a class's last."""
    counts = np.asarray(counts, np.int64)
    room = np.where(counts >= 2, counts - 1, 0)
    share = fraction * np.where(room > 0, counts, 0)
    total = min(max(1, int(np.floor(share.sum() + 0.5))), int(room.sum()))
    taken = np.minimum(np.floor(share).astype(np.int64), room)
    for c in np.argsort(-(share - np.floor(share)), kind="stable"):  # largest remainder first
        if taken.sum() >= total:
            break
        taken[c] += taken[c] < room[c]
    while taken.sum() < total:  # capped classes left some over: the others take it, in order
        c = int(np.flatnonzero(taken < room)[0])
        taken[c] += 1
    return taken


def holdout_indices(labels, fraction: float, seed: int) -> np.ndarray:
    """The sorted record indices held out for validation, stratified by `labels` (one class for
    all: a per-record draw), seeded by `seed`."""
    labels = np.asarray(labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == c), k, replace=False)
              for c, k in enumerate(holdout_counts(counts, fraction)) if k]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def _part(split: Split, records, indices, labels) -> Split:
    info = split.info
    return dataclasses.replace(split, records=records, labels=labels,
                               info=DatasetInfo(info.num_classes, list(info.class_names), len(indices),
                                                dict(info.extras)))


def carve(split: Split, fraction: float, seed: int, name: str) -> tuple[Split, Split, str]:
    """(the training part, the validation part, how it was drawn) of `split` (`name`: its split)."""
    n = split.info.num_examples
    if not n:
        raise DataError(f"data.val_split: the training split {name!r} is of unknown size, so no part of it "
                        f"can be held out; name a validation split (data.val_split=SPLIT)")
    if split.labels is not None:
        how, labels = "stratified", split.labels
    else:
        how, labels = ("per image" if split.listed else "by index"), np.zeros(n, np.int64)
    held = holdout_indices(labels, fraction, seed)
    if not len(held):
        raise DataError(f"data.val_split: the training split {name!r} has no class with two examples "
                        f"to hold one out; name a validation split (data.val_split=SPLIT)")
    kept = np.setdiff1d(np.arange(n), held)
    if split.labels is not None or split.listed:  # held in memory: each part gathered once
        columns = split.records.batch(n).get_single_element()

        def records(indices):
            return tf.data.Dataset.from_tensor_slices(
                tf.nest.map_structure(lambda column: tf.gather(column, indices), columns))
    else:  # a stream: each part keeps its indices as the records go by
        options = tf.data.Options()  # every worker counts the same indices: no file-level sharding
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA

        def records(indices):
            mask = tf.constant(np.isin(np.arange(n), indices))
            picked = split.records.enumerate().filter(lambda i, record: mask[i])
            picked = picked.map(lambda i, record: record)
            return picked.apply(tf.data.experimental.assert_cardinality(len(indices))).with_options(options)

    def labels_of(indices):
        return None if split.labels is None else np.asarray(split.labels)[indices]

    return (_part(split, records(kept), kept, labels_of(kept)),
            _part(split, records(held), held, labels_of(held)), how)


def validation_split(recipe, task, train: Split, info: DatasetInfo):
    """(what trains, what validates, what validates in words, how it was drawn or None); without
    train.validate nothing is held out: (train, None, None, None)."""
    data, seed = recipe.data, recipe.runtime.seed
    if not recipe.train.validate:
        return train, None, None, None
    if isinstance(data.val_split, str):
        if data.val_split == data.eval_split:
            print(f"warning: data.val_split is data.eval_split ({data.val_split}): best.keras and early "
                  f"stopping choose on the split that metrics.json reports", flush=True)
        try:
            held = load_split(recipe, task, data.val_split, truth=info)
        except DataError as err:
            raise DataError(f"{err} (the validation split, data.val_split; null holds out 10% of "
                            f"{data.train_split} instead)") from None
        return train, held, data.val_split, None
    fraction = DEFAULT_FRACTION if data.val_split is None else data.val_split
    kept, held, how = carve(train, fraction, seed, data.train_split)
    return kept, held, f"{fraction * 100:g}% of {data.train_split}", f"{how}, seed {seed}"
