"""`zoo convert`: the splits a recipe reads -> the `tfrecord` source's files (zoo/data/tfrecord.py).

Each split is opened with `zoo.data.load_split`, exactly as training opens it (the eval split's
classes mapped onto the training split's), and its canonical examples are written to
`--shards` files of consecutive examples; images a source reads from files (`Split.read`) are
stored as the files' own bytes, once they decode. A split whose source lists files (folder, coco, clip
folders) is written in a seeded random order, as training would shuffle its file list, so every
shard holds a sample of every class; TFDS, synthetic and digits examples keep their order.

Nothing looks finished before it is: shards and the split's JSON are written under `.partial`
names, then the split's earlier files are removed, the shards renamed, and the JSON last.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time

import keras
import tensorflow as tf

from zoo.data import Split, load_split
from zoo.data.tfrecord import (encode_images, feature_layout, image_encodings, meta_name, serialize, shard_name,
                               split_shards)
from zoo.errors import DataError, ZooError
from zoo.pipeline import data_errors
from zoo.recipe import Recipe, load_recipe
from zoo.tasks import get_task

EXAMPLES_PER_SHARD = 1024  # the default shard count: one shard per this many examples
PARTIAL = ".partial"


def convert(recipe, output, shards: int | None = None) -> dict[str, int]:
    """Write the recipe's training and eval splits to `output`; {split: examples written}."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    task = get_task(recipe.task)
    output = str(output).rstrip("/")
    try:
        tf.io.gfile.makedirs(output)
    except (OSError, tf.errors.OpError) as err:
        raise ZooError(f"--output {output}: cannot create it ({getattr(err, 'message', err)})") from None
    data = recipe.data
    splits = {data.train_split: load_split(recipe, task, data.train_split)}
    if data.eval_split != data.train_split:
        splits[data.eval_split] = load_split(recipe, task, data.eval_split, truth=splits[data.train_split].info)
    return {name: write_split(split, name, task.name, output, shards, recipe.runtime.seed)
            for name, split in splits.items()}


def count(dataset) -> int:
    size = int(dataset.cardinality())
    return size if size >= 0 else int(dataset.reduce(0, lambda n, _: n + 1))


def write_split(split: Split, name: str, task: str, output: str, shards: int | None, seed: int) -> int:
    """Write one split's examples and its JSON (zoo/data/tfrecord.py); the examples written."""
    total = split.info.num_examples or count(split.records)
    if not total:
        raise DataError(f"split {name!r} has no examples to convert")
    shards = shards or math.ceil(total / EXAMPLES_PER_SHARD)
    records = split.shuffled(seed, total) if split.listed else split.records  # a listing is class by class
    spec = split.decoded(records).element_spec
    if split.read is None:
        examples, files = split.decoded(records), ()
    else:  # images kept as their files' bytes
        examples = records.map(split.read, num_parallel_calls=tf.data.AUTOTUNE)
        files = [key for key, s in examples.element_spec.items() if s.dtype == tf.string and spec[key].dtype == tf.uint8]
    encodings = image_encodings(spec, files)
    encoded = examples.map(lambda ex: encode_images(ex, encodings), num_parallel_calls=tf.data.AUTOTUNE)
    paths = [os.path.join(output, shard_name(name, k, shards)) for k in range(shards)]
    meta_path = os.path.join(output, meta_name(name))
    print(f"{name}: {total} examples -> {shards} shard(s) {paths[0]} ...", flush=True)
    bar = keras.utils.Progbar(total, unit_name="example", interval=0.05 if sys.stdout.isatty() else 30)
    start, done = time.perf_counter(), 0
    try:
        with data_errors(split):
            layout = feature_layout(spec, next(encoded.take(1).as_numpy_iterator()), files)
            serialized = (serialize(example, layout) for example in encoded.as_numpy_iterator())
            for k, path in enumerate(paths):
                size = None if k == shards - 1 else (k + 1) * total // shards - k * total // shards
                with tf.io.TFRecordWriter(path + PARTIAL) as writer:
                    for record in itertools.islice(serialized, size):
                        writer.write(record)
                        done += 1
                        bar.update(done, finalize=False)
        meta = {"task": task, "num_classes": split.info.num_classes,
                "class_names": [str(n) for n in split.info.class_names], "extras": split.info.extras,
                "num_examples": done, "shards": shards, "features": layout}
        with tf.io.gfile.GFile(meta_path + PARTIAL, "w") as f:
            f.write(json.dumps(meta, indent=1))
    except BaseException:
        for path in paths + [meta_path]:
            if tf.io.gfile.exists(path + PARTIAL):
                tf.io.gfile.remove(path + PARTIAL)
        raise
    bar.update(done, finalize=True)
    if tf.io.gfile.exists(meta_path):
        tf.io.gfile.remove(meta_path)  # first: an unfinished replacement is missing its JSON
    for stale in split_shards(output, name):
        tf.io.gfile.remove(stale)
    for path in paths + [meta_path]:
        tf.io.gfile.rename(path + PARTIAL, path, overwrite=True)
    seconds = time.perf_counter() - start
    megabytes = sum(tf.io.gfile.stat(p).length for p in paths) / 2**20
    print(f"{name}: wrote {done} examples, {megabytes:.1f} MiB, in {seconds:.1f} s "
          f"({done / seconds:.0f} examples/s)", flush=True)
    return done
