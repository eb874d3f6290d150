"""Data sources. Each yields *canonical examples* (unbatched dicts of tensors) for a task:

classification  {"image": uint8 (H, W, 3), "label": int}
segmentation    {"image": uint8 (H, W, 3), "mask": uint8 (H, W), 255 = ignore}
detection       {"image": uint8 (H, W, 3), "boxes": float32 (n, 4) normalized
                 [ymin, xmin, ymax, xmax], "labels": int32 (n,)}
video           {"video": uint8 (T, H, W, 3), "label": int}

`tfds` and `synthetic` serve every task; a task adds its own (`folder`, `coco`, `digits`)
through `Task.sources` (zoo/tasks/base.py). The task then turns canonical examples into model inputs/targets.
"""
from __future__ import annotations

import difflib
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from zoo.lazy import tf

from zoo.config import DataConfig
from zoo.data.image_files import as_shown, header, oversized_line, pixel_check
from zoo.errors import DataError, RecipeError, quote


@dataclass
class DatasetInfo:
    num_classes: int
    class_names: list[str]
    num_examples: int | None = None  # None when unknown without a full pass
    extras: dict = field(default_factory=dict)  # task-specific, e.g. category id maps


PERMUTATION_CHUNK = 1024


@dataclass
class Split:
    """One split of a source: `records` are what the source lists (file paths and labels for the
    folder sources, cheap to hold and permute in full) or streams (serialized TFRecord examples:
    `stream`), `decode` turns a record into a canonical example (None: the records are the
    examples). `read`, where a source has it, is `decode` with each image read from a file left
    as the file's bytes (`decode_image` decodes them to the same pixels): `zoo convert` stores
    those rather than re-encoding."""

    records: tf.data.Dataset
    info: DatasetInfo
    diagnose: Callable[[Exception], None] | None = None  # raises a DataError naming a bad file
    decode: Callable | None = None
    stream: bool = False
    read: Callable | None = None
    labels: np.ndarray | None = None  # each record's class, where the source lists them in memory (zoo.data.holdout)

    @property
    def dataset(self) -> tf.data.Dataset:
        """The canonical examples, in the source's order."""
        return self.decoded(self.records)

    def decoded(self, records: tf.data.Dataset) -> tf.data.Dataset:
        if self.decode is None:
            return records
        return records.map(self.decode, num_parallel_calls=tf.data.AUTOTUNE)

    def relabel(self, index: list[int]):
        """Re-index every example's class ids by `index` (`remap_labels`), as it is decoded."""
        def relabeled(fn):
            return lambda *record: remap_labels(fn(*record), index)

        if self.decode is None:
            self.records = self.records.map(relabeled(lambda example: example),
                                            num_parallel_calls=tf.data.AUTOTUNE)
        else:
            self.decode = relabeled(self.decode)
            if self.read is not None:
                self.read = relabeled(self.read)

    @property
    def listed(self) -> bool:
        """The records are a listing held in memory, decoded one by one (not a stream)."""
        return self.decode is not None and not self.stream and bool(self.info.num_examples)

    def shuffled(self, seed: int, buffer: int) -> tf.data.Dataset:
        """The records in a fresh order each iteration (epoch). A listing is permuted in full:
        sources list files class by class, so a buffer alone would see a few classes at a time.
        The permutation is of indices, so its memory is 8 bytes per record. A stream goes through
        a shuffle buffer of `buffer` records."""
        if not self.listed:
            return self.records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        size = self.info.num_examples
        columns = self.records.batch(size).get_single_element()

        def permutation(key):
            order = tf.random.experimental.stateless_shuffle(tf.range(size, dtype=tf.int64), seed=[key, seed])
            return tf.data.Dataset.from_tensor_slices(order)

        keys = tf.data.Dataset.random(seed, rerandomize_each_iteration=True).take(1)
        chunks = keys.flat_map(permutation).batch(PERMUTATION_CHUNK)  # gathered a chunk at a time
        records = chunks.map(lambda i: tf.nest.map_structure(lambda column: tf.gather(column, i), columns),
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
        # flat_map and unbatch hide the size from tf.data: an epoch is the whole listing, once.
        return records.apply(tf.data.experimental.assert_cardinality(size))


def load_split(recipe, task, split: str, truth: DatasetInfo | None = None) -> Split:
    """Open one split of the recipe's data source for `task`.

    `truth`: the training split's DatasetInfo (or a run's dataset.json), whose classes are the
    truth for every other split: this split's classes are mapped onto them by name (`class_index`:
    a class they lack is a DataError, one this split lacks a warning) and its labels re-indexed;
    the split's info is then `truth` with its own example count. A source may map while listing
    (folders, COCO): its info then names `truth`'s classes. A split without class names (mask
    values of a tfds dataset) is taken as it is. None: this split's own classes.
    """
    source = task.all_sources.get(recipe.data.source)
    if source is None:
        raise RecipeError(f"data.source: {recipe.data.source} is not available for task {task.name} "
                          f"(available: {', '.join(sorted(task.all_sources))})")
    loaded = source.load(recipe.data, task, split, truth)
    if truth is not None:
        names = [str(n) for n in loaded.info.class_names]
        if names and names != [str(n) for n in truth.class_names]:
            where = " ".join(str(part) for part in (recipe.data.source, recipe.data.path or recipe.data.name,
                                                    f"split {split!r}") if part)
            loaded.relabel(class_index(names, truth, where))
        loaded.info = DatasetInfo(truth.num_classes, list(truth.class_names), loaded.info.num_examples,
                                  dict(truth.extras))
    return loaded


def remap_labels(example: dict, index) -> dict:
    """A canonical example with its class ids replaced by `index[id]`, inside tf.data: "label"
    (classification, video), "labels" (detection) and "mask" values (segmentation; 255, ignore,
    kept)."""
    index = np.asarray(index, np.int64)
    out = dict(example)
    for key in ("label", "labels"):
        if key in out:
            out[key] = tf.cast(tf.gather(index, tf.cast(out[key], tf.int64)), out[key].dtype)
    if "mask" in out:
        table = np.arange(256, dtype=np.int64)
        table[:len(index)] = index
        table[255] = 255
        out["mask"] = tf.cast(tf.gather(table, tf.cast(out["mask"], tf.int64)), out["mask"].dtype)
    return out


def class_index(names: list[str], truth: DatasetInfo | None, where) -> list[int]:
    """Indices of a split's class `names` among the training split's classes (`truth`).

    A class the training split lacks is a DataError naming it; a training class this split lacks
    is a warning (its examples are simply absent). No truth: the split's own order.
    """
    if truth is None:
        return list(range(len(names)))
    known = [str(n) for n in truth.class_names]
    unknown = [str(n) for n in names if str(n) not in known]
    if unknown:
        raise DataError(f"{where} has class(es) the training split lacks: {preview(unknown, 20)} "
                        f"(training classes: {preview(known)})")
    absent = [n for n in known if n not in map(str, names)]
    if absent:
        print(f"warning: {where} has no examples of training class(es) {preview(absent, 20)}", flush=True)
    return [known.index(str(n)) for n in names]


def preview(names, n=6) -> str:
    """The first `n` of a list of (class) names for a one-line message, "..." for the rest."""
    names = [str(x) for x in names]
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


# ---------------------------------------------------------------- tfds


def load_tfds(data, task, split: str, truth=None) -> Split:
    """Every split of a TFDS dataset shares the builder's class list: nothing to map."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(data.name, data_dir=data.data_dir)
    except Exception as err:  # unknown name, bad version: TFDS raises several types
        raise DataError(f"data.name: tfds dataset {data.name!r}: {str(err).splitlines()[0]}") from None
    try:
        builder.download_and_prepare()
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as err:
        raise DataError(f"tfds {data.name} split {split!r}: {str(err).splitlines()[0]}") from None
    adapter, info = task.from_tfds(builder.info)
    try:
        info.num_examples = builder.info.splits[split].num_examples
    except Exception:
        info.num_examples = None
    return Split(dataset.map(adapter, num_parallel_calls=tf.data.AUTOTUNE), info)


# ---------------------------------------------------------------- synthetic


def synthetic_seed(data, split: str) -> int:
    """Each split name draws from its own seed, so the same name always gives the same data and
    two names never share it: the training split 1, the eval split 2, any other (a `val` split)
    a seed of its name's, from 3 on."""
    if split == data.train_split:
        return 1
    if split == data.eval_split:
        return 2
    return 3 + zlib.crc32(split.encode())


def load_synthetic(data, task, split: str, truth=None) -> Split:
    from zoo.data import synthetic

    gen = synthetic.GENERATORS.get(data.name)
    if gen is None:
        close = difflib.get_close_matches(data.name, list(synthetic.GENERATORS), n=2)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise RecipeError(f"data.name: unknown synthetic dataset {quote(data.name)}{hint}")
    if gen.task != task.name:
        raise RecipeError(f"data.name: synthetic {data.name} is a {gen.task} dataset, not {task.name}")
    is_train = split == data.train_split
    size = (data.train_size or 2000) if is_train else (data.eval_size or 500)
    seed = synthetic_seed(data, split)
    options = {key: getattr(data, key) for key in gen.options if hasattr(data, key)}  # e.g. num_frames
    first = synthetic.generate(data.name, 0, seed, tuple(data.image_size), **options)
    signature = {k: tf.TensorSpec((None,) * np.ndim(v) if k in gen.ragged else np.shape(v),
                                  tf.as_dtype(np.asarray(v).dtype)) for k, v in first.items()}

    def examples():
        for i in range(size):
            yield synthetic.generate(data.name, i, seed, tuple(data.image_size), **options)

    dataset = tf.data.Dataset.from_generator(examples, output_signature=signature)
    info = DatasetInfo(len(gen.class_names), list(gen.class_names), size)
    return Split(dataset.apply(tf.data.experimental.assert_cardinality(size)), info)


# ---------------------------------------------------------------- image files


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


MAX_PIXELS = DataConfig.max_pixels  # where no recipe gives data.max_pixels


class OversizedImage(DataError):
    """An image whose header gives more pixels than data.max_pixels (not decoded); `size`: the
    arguments of its line (`oversized_line`)."""

    def __init__(self, path, width, height, max_pixels: int):
        super().__init__(oversized_line(path, width, height, max_pixels))
        self.size = (path, width, height, max_pixels)


def decode_contents(contents, max_pixels: int = MAX_PIXELS, path=None):
    """An image file's bytes -> uint8 RGB (grey and RGBA included) as shown (a JPEG's EXIF
    orientation applied), refused undecoded above `max_pixels` (`pixel_check`; `path`: the file)."""
    size = header(contents)
    with tf.control_dependencies([pixel_check(size, max_pixels, path)]):
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return as_shown(image, size[2])


def read_image_file(path, max_pixels: int = MAX_PIXELS):
    """An image file's bytes, once its header passed `pixel_check`."""
    contents = tf.io.read_file(path)
    with tf.control_dependencies([pixel_check(header(contents), max_pixels, path)]):
        return tf.identity(contents)


def decode_image(path, max_pixels: int = MAX_PIXELS):
    """Read and decode any image file to uint8 RGB (grey and RGBA included), up to `max_pixels`."""
    return decode_contents(tf.io.read_file(path), max_pixels, path)


def to_rgb(image):
    """uint8 image with 1, 3 or 4 channels -> 3 channels."""
    channels = image.shape[-1]
    if channels == 1:
        return tf.image.grayscale_to_rgb(image)
    return image[..., :3] if channels == 4 else image


def read_image(path, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """An image file as uint8 RGB; a DataError naming the file when it cannot be read, an
    OversizedImage one when it has more than `max_pixels` pixels."""
    try:
        contents = tf.io.read_file(str(path))
        height, width, _ = header(contents).numpy()
        if height * width <= max_pixels:
            return decode_contents(contents, max_pixels, str(path))
    except tf.errors.OpError:  # missing, unreadable, corrupt or not an image
        raise DataError(f"cannot read image file: {path}") from None
    raise OversizedImage(path, width, height, max_pixels)


def find_bad_image(paths, max_pixels: int = MAX_PIXELS) -> str | None:
    """The first file that does not decode as an image, or None; one above `max_pixels` is no
    bad file but an OversizedImage error."""
    for path in paths:
        try:
            read_image(path, max_pixels)
        except OversizedImage:
            raise
        except DataError:
            return str(path)
    return None


def image_diagnosis(paths, what="image", max_pixels: int = MAX_PIXELS):
    """A `Split.diagnose` that names the culprit when decoding failed mid-pipeline."""

    def diagnose(error):
        bad = find_bad_image(paths, max_pixels)
        if bad is not None:
            raise DataError(f"corrupt {what} file: {bad} (set data.skip_corrupt=true to skip such files)") from None

    return diagnose


def drop_bad_images(paths, skip_corrupt: bool, max_pixels: int = MAX_PIXELS):
    """With skip_corrupt, scan and drop undecodable files up front, warning with their count."""
    if not skip_corrupt:
        return list(paths)
    good = [p for p in paths if find_bad_image([p], max_pixels) is None]
    if len(good) < len(paths):
        print(f"warning: skipped {len(paths) - len(good)} corrupt image file(s)")
    return good


# One colour per class index for pictures (boxes, masks, legends): Sasha Trubetskoy's 20 distinct colours.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
           (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
           (0, 0, 128), (128, 128, 128)]


def class_color(index: int) -> tuple:
    return PALETTE[int(index) % len(PALETTE)]
