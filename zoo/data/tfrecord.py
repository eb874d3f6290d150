"""The `tfrecord` source: sharded TFRecord files of canonical examples, as `zoo convert` writes them.

Under `data.path` (a local folder or any filesystem TensorFlow opens, e.g. gs://), per split:

  <split>-00000-of-00004.tfrecord ...  one tf.train.Example per canonical example
  <split>.json                         the split's task, classes, extras, example and shard counts,
                                       the layout of its features, and each shard's example count,
                                       byte size and checksums ("shard_files")

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

Each open checks every shard against "shard_files" (`check_shards`): its byte size and the sha256
of its first 64 KiB, one stat and one small read per shard (also on gs://); the sha256 of the
whole file is recorded for copies to be checked by hand (`sha256sum`), as reading it all at every
open would cost a pass over the data. A shard holding another number of examples shows when it
is read and is named then (`shard_diagnosis`). Conversions from before "shard_files" load as
they are.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from zoo.data import MAX_PIXELS, DatasetInfo, Split, decode_contents
from zoo.errors import DataError
from zoo.lazy import tf

SHARD = re.compile(r"(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord")
META_KEYS = ("task", "num_classes", "class_names", "extras", "num_examples", "shards", "features")
CYCLE_LENGTH = 16  # shards read at once
PARSE_BATCH = 256  # serialized examples parsed together
HEAD_BYTES = 1 << 16  # a shard's first bytes, checksummed at every open
CHECK_THREADS = 16  # shards checked at once (a remote filesystem answers each stat slowly)


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


def head_sha256(path: str) -> str:
    """The sha256 of a file's first HEAD_BYTES (the whole file if smaller)."""
    with tf.io.gfile.GFile(path, "rb") as f:
        return hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()


def shard_record(path: str, examples: int) -> dict:
    """The file at `path`, a shard of `examples` examples, as `<split>.json`'s "shard_files" lists it
    (without its "file" name)."""
    whole, size = hashlib.sha256(), 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(1 << 22):
            whole.update(chunk)
            size += len(chunk)
    return {"examples": examples, "bytes": size, "sha256": whole.hexdigest(), "head_sha256": head_sha256(path)}


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


def decode_file_image(data, max_pixels: int | None = None):
    """An image file's bytes -> uint8 RGB, as the file sources decode them (zoo.data.decode_image);
    with `max_pixels`, refused undecoded above it (`Split.read` checked those `zoo convert` stores)."""
    if max_pixels is not None:
        return decode_contents(data, max_pixels)
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


def parser(layout: dict, max_pixels: int = MAX_PIXELS):
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
            value = decode_file_image(value, max_pixels)
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
    from zoo.cluster import cluster_worker

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


def mismatch(shard: str, where: str, what: str) -> DataError:
    return DataError(f"TFRecord shard {shard} does not match {where}: {what}; run `zoo convert` again")


def read_shard(shard: str, where: str, expected: int | None = None, parse=None, decode=None) -> int:
    """Read every record of `shard` (parsed and decoded, given `parse`): its example count; a
    record that fails to read or parse, or a count other than `expected`, is a DataError naming it."""
    records = tf.data.TFRecordDataset(shard)
    if parse is not None:
        records = parsed_records(records, parse).map(decode)
    try:
        count = int(records.reduce(np.int64(0), lambda n, _: n + 1))
    except tf.errors.OpError as err:  # the message without TensorFlow's op and function names
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", err.message.splitlines()[0])
        raise DataError(f"corrupt TFRecord file: {shard} ({reason})") from None
    if expected is not None and count != expected:
        raise mismatch(shard, where, f"{count} examples, {expected} recorded")
    return count


def recorded_counts(meta: dict) -> list[int | None]:
    return [f["examples"] for f in meta["shard_files"]] if "shard_files" in meta else [None] * meta["shards"]


def check_shards(shards: list[str], meta: dict, where: str):
    """Every shard against `<split>.json`'s "shard_files" (module doc): byte size, then the sha256
    of its first HEAD_BYTES, in parallel; per-shard counts that don't add up to num_examples are
    settled by counting each shard's records. A conversion without "shard_files" passes."""
    recorded = meta.get("shard_files")
    if recorded is None:
        return
    try:
        expected = [(int(f["bytes"]), str(f["head_sha256"]), int(f["examples"])) for f in recorded]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: shard_files is malformed (written by `zoo convert`?)") from None
    if len(expected) != len(shards):
        raise DataError(f"{where}: shard_files lists {len(expected)} shards, shards says {len(shards)}")

    def problem(shard: str, recorded: tuple) -> str | None:
        size, head, _ = recorded
        found = tf.io.gfile.stat(shard).length
        if found != size:
            return f"{found} bytes, {size} recorded (truncated, or a shard of another conversion)"
        if head_sha256(shard) != head:
            return (f"the sha256 of its first {min(size, HEAD_BYTES)} bytes differs from the recorded one "
                    f"(damaged, or a shard of another conversion)")
        return None

    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        found = list(pool.map(problem, shards, expected))
    for shard, what in zip(shards, found):
        if what:
            raise mismatch(shard, where, what)
    total = sum(count for _, _, count in expected)
    if total != meta["num_examples"]:  # the JSON was edited: find the count that is wrong
        for shard, (_, _, count) in zip(shards, expected):
            read_shard(shard, where, count)
        raise DataError(f"{where}: num_examples is {meta['num_examples']}, but its shards hold {total} "
                        f"examples; run `zoo convert` again")


def shard_diagnosis(shards: list[str], meta: dict, where: str, parse, decode):
    """A `Split.diagnose` naming the shard that fails to read or parse, or holds another number of
    examples than `<split>.json` records."""

    def diagnose(error):
        total = sum(read_shard(shard, where, count, parse, decode)
                    for shard, count in zip(shards, recorded_counts(meta)))
        if total != meta["num_examples"]:
            raise DataError(f"{where}: num_examples is {meta['num_examples']}, but its shards hold {total} "
                            f"examples (edited, or shards of another conversion); run `zoo convert` again")

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
    names = [str(n) for n in meta["class_names"]]  # mapped onto a run's classes by load_split
    shards = [os.path.join(root, shard_name(split, k, meta["shards"])) for k in range(meta["shards"])]
    present = set(split_shards(root, split))
    missing = [s for s in shards if s not in present]
    if missing:
        raise DataError(f"TFRecord shard not found: {missing[0]} ({len(missing)} of {len(shards)} missing; "
                        f"listed by {where})")
    check_shards(shards, meta, where)
    parse, decode = parser(meta["features"], data.max_pixels)
    serialized = tf.data.Dataset.from_tensor_slices(shards).interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(shards), CYCLE_LENGTH),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).with_options(sharding_options(len(shards)))
    records = parsed_records(serialized, parse).apply(tf.data.experimental.assert_cardinality(meta["num_examples"]))
    info = DatasetInfo(meta["num_classes"], names, meta["num_examples"], meta["extras"])
    # Records are parsed features, images still encoded: training shuffles these, then decodes.
    return Split(records, info, shard_diagnosis(shards, meta, where, parse, decode), decode=decode, stream=True)
