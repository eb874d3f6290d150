"""The `tfrecord` source: sharded TFRecord files of canonical examples, as `zoo convert` writes them.

Under `data.path` (a local folder or any filesystem TensorFlow opens, e.g. gs://), per split:

  <split>-00000-of-00004.tfrecord ...  one tf.train.Example per canonical example
  <split>.json                         the split's task, classes, extras, example and shard counts,
                                       and the layout of its features

`<split>` is the split name with every character other than a letter, digit, ".", "_" or "-"
replaced by "_" (`train[:10%]` -> `train__10__`). Each key of the canonical example is one feature
of the same name, its encoding chosen by the key's dtype and rank (docs/tfrecord.md, a table per task):

  image       uint8 (H, W, 3) image read from a file: the file's own bytes (JPEG, PNG, ...), as
              `tf.io.decode_image` decodes them, from a source that offers them (`Split.read`)
  png         uint8 (H, W, C) image or (H, W) mask: one lossless PNG
  png_frames  uint8 (T, H, W, C) video: T PNGs
  int64_list  integers and booleans, flattened (label, labels, crowd)
  float_list  floats as float32, flattened (boxes, area)

The JSON's "features" records each key's encoding, dtype and shape (null where it varies per
example; for a list feature only the first dimension may), so the examples come back with the
dtypes and shapes they were written with.
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from zoo.data import DatasetInfo, Split, preview
from zoo.errors import DataError
from zoo.lazy import tf

SHARD = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord")
META_KEYS = ("task", "num_classes", "class_names", "extras", "num_examples", "shards", "features")
CYCLE_LENGTH = 16  # shards read at once
PARSE_BATCH = 256  # serialized examples parsed together


def file_stem(split: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", split)


def shard_name(split: str, index: int, count: int) -> str:
    return f"{file_stem(split)}-{index:05d}-of-{count:05d}.tfrecord"


def meta_name(split: str) -> str:
    return f"{file_stem(split)}.json"


def split_shards(root: str, split: str) -> list[str]:
    """The shard files of `split` under `root`, of any shard count, by name."""
    return sorted(os.path.join(root, name) for name in tf.io.gfile.listdir(root)
                  if (match := SHARD.fullmatch(name)) and match["stem"] == file_stem(split))


# ---------------------------------------------------------------- layout


def image_encodings(spec: dict, files=()) -> dict:
    """{key: "image" | "png" | "png_frames"} for the image-like keys of an element_spec; `files`:
    the keys that hold their image file's bytes (encoding "image")."""
    return {key: "image" if key in files else "png_frames" if s.shape.rank == 4 else "png"
            for key, s in spec.items() if s.dtype == tf.uint8 and s.shape.rank in (2, 3, 4)}


def feature_layout(spec: dict, first: dict, files=()) -> dict:
    """{key: {"encoding", "dtype", "shape"}} of canonical examples with element_spec `spec`;
    `first` (one example as NumPy) gives the fixed inner sizes of list features (boxes: 4)."""
    images = image_encodings(spec, files)
    layout = {}
    for key, s in spec.items():
        if key in images:
            encoding, shape = images[key], s.shape.as_list()
        elif s.dtype.is_integer or s.dtype.is_bool or s.dtype.is_floating:
            encoding = "float_list" if s.dtype.is_floating else "int64_list"
            shape = list(np.shape(first[key]))
            if shape and s.shape[0] is None:
                shape[0] = None
        else:
            raise DataError(f"example key {key!r} ({s.dtype.name}, shape {s.shape}) has no TFRecord encoding")
        layout[key] = {"encoding": encoding, "dtype": s.dtype.name, "shape": shape}
    return layout


def decode_file_image(data):
    """An image file's bytes -> uint8 RGB, as the file sources decode them (zoo.data.decode_image)."""
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def encode_images(example: dict, encodings: dict) -> dict:
    """PNG-encode the image-like keys of a canonical example (inside tf.data); a file's bytes
    ("image") are kept once they decode."""
    out = dict(example)
    for key, encoding in encodings.items():
        value = example[key]
        if encoding == "image":  # decoded to check it (an Assert is kept where an unused decode is pruned)
            with tf.control_dependencies([tf.debugging.assert_non_negative(tf.size(decode_file_image(value)))]):
                out[key] = tf.identity(value)
        elif encoding == "png_frames":
            out[key] = tf.map_fn(tf.io.encode_png, value, fn_output_signature=tf.string)
        else:
            out[key] = tf.io.encode_png(value[..., None] if value.shape.rank == 2 else value)
    return out


def serialize(example: dict, layout: dict) -> bytes:
    """An example from `encode_images`, as NumPy -> a serialized tf.train.Example."""
    train = tf.train

    def feature(value, encoding):
        if encoding in ("png", "image"):
            return train.Feature(bytes_list=train.BytesList(value=[value]))
        if encoding == "png_frames":
            return train.Feature(bytes_list=train.BytesList(value=list(value)))
        if encoding == "int64_list":
            return train.Feature(int64_list=train.Int64List(value=np.ravel(value).astype(np.int64)))
        return train.Feature(float_list=train.FloatList(value=np.ravel(value).astype(np.float32)))

    features = {key: feature(example[key], f["encoding"]) for key, f in layout.items()}
    return train.Example(features=train.Features(feature=features)).SerializeToString()


def parser(layout: dict):
    """(parse, decode) for `layout`, inside tf.data: `parse` turns a batch of serialized
    tf.train.Examples into their features (images still encoded), `decode` one example's
    features into the canonical example."""
    kinds = {"png": tf.string, "image": tf.string, "png_frames": tf.string, "int64_list": tf.int64,
             "float_list": tf.float32}

    def feature(f):
        if f["encoding"] in ("png", "image"):
            return tf.io.FixedLenFeature([], tf.string)
        if f["encoding"] != "png_frames" and None not in f["shape"]:  # a list of fixed size
            return tf.io.FixedLenFeature(f["shape"], kinds[f["encoding"]])
        return tf.io.RaggedFeature(kinds[f["encoding"]])

    features = {key: feature(f) for key, f in layout.items()}

    def decode_value(value, encoding, dtype, shape):
        if encoding == "image":
            value = decode_file_image(value)
        elif encoding == "png":
            image = tf.io.decode_png(value, channels=1 if len(shape) == 2 else 0)
            value = image[..., 0] if len(shape) == 2 else image
        elif encoding == "png_frames":
            value = tf.map_fn(tf.io.decode_png, value, fn_output_signature=tf.TensorSpec([None, None, None], tf.uint8))
        else:
            value = tf.cast(tf.reshape(value, [-1 if d is None else d for d in shape]), dtype)
        value.set_shape(shape)
        return value

    def parse(serialized):
        return tf.io.parse_example(serialized, features)

    def decode(parsed):
        return {key: decode_value(parsed[key], f["encoding"], f["dtype"], f["shape"]) for key, f in layout.items()}

    return parse, decode


def parsed_records(serialized: tf.data.Dataset, parse) -> tf.data.Dataset:
    """Serialized examples -> their features, parsed a batch at a time (vectorized)."""
    return serialized.batch(PARSE_BATCH).map(parse, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


# ---------------------------------------------------------------- the source


def read_meta(root: str, split: str) -> dict:
    path = os.path.join(root, meta_name(split))
    if not tf.io.gfile.exists(path):
        written = sorted(name[:-5] for name in tf.io.gfile.listdir(root) if name.endswith(".json"))
        if split_shards(root, split):
            raise DataError(f"{path} not found: the conversion of split {split!r} did not finish; "
                            f"run `zoo convert` again")
        raise DataError(f"no TFRecord split {split!r} in {root}: expected {meta_name(split)} and "
                        f"{file_stem(split)}-00000-of-NNNNN.tfrecord ... as `zoo convert` writes "
                        f"them (splits there: {', '.join(written) or 'none'})")
    try:
        with tf.io.gfile.GFile(path) as f:
            meta = json.loads(f.read())
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    missing = [k for k in META_KEYS if k not in meta] if isinstance(meta, dict) else META_KEYS
    if missing:
        raise DataError(f"{path}: missing {', '.join(missing)} (written by `zoo convert`?)")
    return meta


def cluster_workers() -> int:
    """Workers of a multi-worker cluster (TF_CONFIG, checked as training checks it), 1 without one."""
    from zoo.runtime import cluster_worker

    return cluster_worker().count if os.environ.get("TF_CONFIG") else 1


def sharding_options(shards: int):
    """Across workers, each reads its own shards (FILE); with fewer shards than workers, each
    reads all of them and keeps every n-th example (DATA), with a note."""
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy.FILE
    workers = cluster_workers()
    if shards < workers:
        print(f"note: {shards} TFRecord shard(s) for {workers} workers: every worker reads every shard "
              f"and keeps 1/{workers} of the examples; `zoo convert --shards` a multiple of {workers} "
              f"lets each worker read only its own files", flush=True)
        policy = tf.data.experimental.AutoShardPolicy.DATA
    options.experimental_distribute.auto_shard_policy = policy
    return options


def shard_diagnosis(shards: list[str], parse, decode):
    """A `Split.diagnose` naming the shard that fails to read or parse."""

    def diagnose(error):
        for shard in shards:
            try:
                for _ in parsed_records(tf.data.TFRecordDataset(shard), parse).map(decode):
                    pass
            except tf.errors.OpError as err:  # the message without TensorFlow's op and function names
                reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", err.message.splitlines()[0])
                raise DataError(f"corrupt TFRecord file: {shard} ({reason})") from None

    return diagnose


def load_tfrecord(data, task, split: str, truth=None) -> Split:
    """`<path>/<split>-KKKKK-of-NNNNN.tfrecord` + `<path>/<split>.json` (module doc), shards
    interleaved; a multi-worker strategy gives each worker its own shards."""
    root = str(data.path).rstrip("/")
    if not tf.io.gfile.isdir(root):
        raise DataError(f"TFRecord folder not found: {root} (data.path)")
    meta = read_meta(root, split)
    where = os.path.join(root, meta_name(split))
    if meta["task"] != task.name:
        raise DataError(f"{where}: holds {meta['task']} examples, not {task.name}")
    names = [str(n) for n in meta["class_names"]]
    if truth is not None and names != [str(n) for n in truth.class_names]:
        raise DataError(f"{where}: classes {preview(names)} differ from the training split's "
                        f"({preview(truth.class_names)}); convert both splits in one `zoo convert`")
    shards = [os.path.join(root, shard_name(split, k, meta["shards"])) for k in range(meta["shards"])]
    present = set(split_shards(root, split))
    missing = [s for s in shards if s not in present]
    if missing:
        raise DataError(f"TFRecord shard not found: {missing[0]} ({len(missing)} of {len(shards)} missing; "
                        f"listed by {where})")
    parse, decode = parser(meta["features"])
    serialized = tf.data.Dataset.from_tensor_slices(shards).interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(shards), CYCLE_LENGTH),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).with_options(sharding_options(len(shards)))
    records = parsed_records(serialized, parse).apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
    info = DatasetInfo(meta["num_classes"], names, meta["num_examples"], meta["extras"])
    # Records are parsed features, images still encoded: training shuffles these, then decodes.
    return Split(records, info, shard_diagnosis(shards, parse, decode), decode=decode, stream=True)
