"""`zoo convert`: the splits a recipe reads -> the `tfrecord` source's files (zoo/data/tfrecord.py).

Each split is opened with `zoo.data.load_split`, exactly as training opens it (the eval split's
classes mapped onto the training split's), and its canonical examples are written to
`--shards` files of consecutive examples; images a source reads from files (`Split.read`) are
stored as the files' own bytes, once they decode. A split whose source lists files (folder, coco, clip
folders) is written in a seeded random order, as training would shuffle its file list, so every
shard holds a sample of every class; TFDS, synthetic and digits examples keep their order.

One conversion at a time: a local `--output` is locked as a run directory is (zoo/run_dir.py), so
a second `zoo convert` into it is refused at once, naming the first; a remote one (gs://...) has
no lock, which a note says. Nothing looks finished before it is, and an earlier conversion stays
whole until the new one is: every split's shards and JSON (with each shard's count, size and
checksums, zoo/data/tfrecord.py) are written under `.partial` names first (a killed earlier
conversion's are removed), then the earlier JSONs are removed, the earlier shards, the new shards
renamed, and the JSONs last. A kill within those renames leaves a split without its JSON, which
is refused as unfinished.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

from zoo import run_dir
from zoo.data import Split, load_split
from zoo.data.tfrecord import (SHARD, encode_images, feature_layout, image_encodings, meta_name, serialize,
                               shard_name, shard_record, split_shards)
from zoo.errors import DataError, ZooError
from zoo.pipeline import data_errors
from zoo.recipe import Recipe, load_recipe
from zoo.tasks import get_task

EXAMPLES_PER_SHARD = 1024  # the default shard count: one shard per this many examples
PARTIAL = ".partial"


def convert(recipe, output, shards: int | None = None) -> dict[str, int]:
    """Write the recipe's training, eval and (a named data.val_split) validation splits to `output`;
    {split: examples written}."""
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    task = get_task(recipe.task)
    output = str(output).rstrip("/")
    with output_folder(output):
        if stale := remove_partials(output):
            print(f"note: removed {len(stale)} file(s) of an unfinished earlier conversion (killed?) "
                  f"from {output}", flush=True)
        data = recipe.data
        splits = {data.train_split: load_split(recipe, task, data.train_split)}
        for name in (data.eval_split, data.val_split):  # a fraction of the training split: carved when read
            if isinstance(name, str) and name not in splits:
                splits[name] = load_split(recipe, task, name, truth=splits[data.train_split].info)
        try:
            written = {name: write_split(split, name, task.name, output, shards, recipe.runtime.seed)
                       for name, split in splits.items()}
        except BaseException:
            remove_partials(output)
            raise
        swap_in(output, {name: paths for name, (_, paths) in written.items()})
    return {name: done for name, (done, _) in written.items()}


@contextlib.contextmanager
def output_folder(output: str):
    """`output` created and held while the block runs: a local folder locked against a second
    `zoo convert` (and removed again if created here and the block fails with nothing written);
    a remote one without a lock, with a note."""
    if "://" not in output:
        with run_dir.locked(Path(output), "converting into it", "output folder"):
            yield
        return
    try:
        tf.io.gfile.makedirs(output)
    except (OSError, tf.errors.OpError) as err:
        raise ZooError(f"cannot write {output}: {getattr(err, 'message', err)}") from None  # as a local one
    print(f"note: {output} is not a local folder, so nothing stops a second `zoo convert` into it "
          f"meanwhile; run one at a time", flush=True)
    yield


def remove_partials(output: str):
    """Remove the `.partial` shards and JSONs of an unfinished conversion (one running holds the
    lock); their names."""
    stale = [name for name in tf.io.gfile.listdir(output) if name.endswith(PARTIAL)
             and (SHARD.fullmatch(name[:-len(PARTIAL)]) or name.endswith(".json" + PARTIAL))]
    for name in stale:
        tf.io.gfile.remove(os.path.join(output, name))
    return stale


def swap_in(output: str, written: dict[str, list[str]]):
    """Replace the splits' earlier files by the new `.partial` ones ({split: [shards..., JSON]}): the
    earlier JSONs first (a split caught between has none, and is refused as unfinished), the JSONs last."""
    for name in written:
        if tf.io.gfile.exists(meta := os.path.join(output, meta_name(name))):
            tf.io.gfile.remove(meta)
    for name in written:
        for stale in split_shards(output, name):
            tf.io.gfile.remove(stale)
    for paths in written.values():
        for path in paths[:-1]:
            tf.io.gfile.rename(path + PARTIAL, path, overwrite=True)
    for paths in written.values():
        tf.io.gfile.rename(paths[-1] + PARTIAL, paths[-1], overwrite=True)


def count(dataset) -> int:
    size = int(dataset.cardinality())
    return size if size >= 0 else int(dataset.reduce(0, lambda n, _: n + 1))


def write_split(split: Split, name: str, task: str, output: str, shards: int | None,
                seed: int) -> tuple[int, list[str]]:
    """Write one split's examples and its JSON (zoo/data/tfrecord.py) under `.partial` names: the
    examples written and the files' final paths (the shards, then the JSON)."""
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
    start, done, shard_files = time.perf_counter(), 0, []
    with data_errors(split):
        layout = feature_layout(spec, next(encoded.take(1).as_numpy_iterator()), files)
        serialized = (serialize(example, layout) for example in encoded.as_numpy_iterator())
        for k, path in enumerate(paths):
            size, first = None if k == shards - 1 else (k + 1) * total // shards - k * total // shards, done
            with run_dir.writing(path), tf.io.TFRecordWriter(path + PARTIAL) as writer:
                for record in itertools.islice(serialized, size):
                    writer.write(record)
                    done += 1
                    bar.update(done, finalize=False)
            shard_files.append({"file": os.path.basename(path), **shard_record(path + PARTIAL, done - first)})
    meta = {"task": task, "num_classes": split.info.num_classes,
            "class_names": [str(n) for n in split.info.class_names], "extras": split.info.extras,
            "num_examples": done, "shards": shards, "features": layout, "shard_files": shard_files}
    with run_dir.writing(meta_path), tf.io.gfile.GFile(meta_path + PARTIAL, "w") as f:
        f.write(json.dumps(meta, indent=1))
    bar.update(done, finalize=True)
    seconds = time.perf_counter() - start
    megabytes = sum(f["bytes"] for f in shard_files) / 2**20
    print(f"{name}: wrote {done} examples, {megabytes:.1f} MiB, in {seconds:.1f} s "
          f"({done / seconds:.0f} examples/s)", flush=True)
    return done, paths + [meta_path]
