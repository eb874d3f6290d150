"""Classification sources: class folders (ImageFolder layout) and the embedded UCI digits."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zoo.data import (IMAGE_EXTENSIONS, DatasetInfo, Split, class_index, decode_image,
                      drop_bad_images, image_diagnosis, read_image_file)
from zoo.errors import DataError
from zoo.lazy import tf

def tfds_label_features(tfds_info):
    """(image key, label key, ClassLabel feature) of a TFDS image classification dataset."""
    import tensorflow_datasets as tfds

    features = tfds_info.features
    image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    label_key = next((k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)), None)
    if image_key is None or label_key is None:
        raise DataError(f"tfds {tfds_info.name}: no image and class-label features to classify")
    return image_key, label_key, features[label_key]


def class_folders(root: Path, split: str) -> tuple[Path, list[str], list]:
    """`root/split`, its sorted class sub-folder names and the broken links skipped beside them
    (`without_broken_links`); errors name the missing folder."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"dataset folder not found: {split_dir}")
    broken = []
    with os.scandir(split_dir) as entries:
        classes = sorted(e.name for e in without_broken_links(entries, broken) if e.is_dir())
    if not classes:
        raise DataError(f"no class folders in {split_dir}")
    return split_dir, classes, broken


def list_class_files(split_dir: Path, classes, is_item, broken=()) -> tuple[list[str], list[int]]:
    """The items of each class folder (sorted within a class) and their class positions; one
    warning line counts the broken links skipped in them and `broken` (`class_folders`' own).

    One `os.scandir` per folder: `is_item` gets its os.DirEntry objects, which know their type
    from the directory itself, so no stat per file on most filesystems (ImageNet's 1.28M files)."""
    paths, labels, broken = [], [], list(broken)
    for index, name in enumerate(classes):
        folder = os.path.join(split_dir, name)
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in without_broken_links(entries, broken) if is_item(e))
        if not names:
            raise DataError(f"empty class folder: {split_dir / name}")
        folder += os.sep
        paths += [folder + n for n in names]
        labels += [index] * len(names)
    warn_broken_links(len(broken), split_dir)
    return paths, labels


def without_broken_links(entries, broken: list) -> list:
    """The os.DirEntry or Path `entries` but symbolic links to nothing or to a loop of links, which
    hold no data: those go to `broken` (`warn_broken_links` counts them)."""
    kept = []
    for entry in entries:  # only a link costs a stat (os.path.exists): a DirEntry knows the rest
        (broken if entry.is_symlink() and not os.path.exists(entry) else kept).append(entry)
    return kept


def warn_broken_links(count: int, where):
    if count:
        print(f"warning: skipped {count} broken symbolic link(s) (dangling or in a loop) under {where}", flush=True)


def is_image_file(path) -> bool:
    """A Path or an os.DirEntry that is an image file (or a link to one), by its extension."""
    return os.path.splitext(path.name)[1].lower() in IMAGE_EXTENSIONS and path.is_file()


class TensorPaths:
    """The paths of a 1-D string tensor as str, read back on demand in chunks: a diagnosis only
    reads them after a failure, so no Python list of every path stays alive beside the records."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __len__(self) -> int:
        return int(self.tensor.shape[0])

    def __iter__(self):
        for start in range(0, len(self), 4096):
            yield from (p.decode() for p in self.tensor[start:start + 4096].numpy())


def load_folder(data, task, split: str, truth=None) -> Split:
    """ImageFolder layout: `<path>/<split>/<class_name>/<image>`, classes = sorted folders
    (mapped by name onto the training split's, `truth`, for the other splits)."""
    split_dir, classes, broken = class_folders(Path(data.path), split)
    index = class_index(classes, truth, split_dir)
    paths, labels = list_class_files(split_dir, classes, is_image_file, broken)
    if data.skip_corrupt:  # decodes every file now, so the copies below cost little beside it
        kept = set(drop_bad_images(paths, True, data.max_pixels))
        labels = [l for p, l in zip(paths, labels) if p in kept]
        paths = [p for p in paths if p in kept]
    if not paths:
        raise DataError(f"no readable images under {split_dir}")
    count = len(paths)
    labels = np.asarray(index, np.int32)[np.asarray(labels, np.int32)]
    paths = tf.constant(paths)  # the Python strings are freed on return; the records hold this
    records = tf.data.Dataset.from_tensor_slices((paths, labels))
    names = classes if truth is None else list(truth.class_names)  # the labels' classes, mapped
    info = DatasetInfo(len(names), names, count)
    return Split(records, info, image_diagnosis(TensorPaths(paths), max_pixels=data.max_pixels),
                 decode=lambda p, l: {"image": decode_image(p, data.max_pixels), "label": l},
                 read=lambda p, l: {"image": read_image_file(p, data.max_pixels), "label": l}, labels=labels)


def load_digits(data, task, split: str, truth=None) -> Split:
    """The embedded 8x8 UCI digits: a fixed seeded 80/20 split named `train` / `test`."""
    with np.load(Path(__file__).resolve().parents[2] / "assets" / "digits.npz") as f:
        images, labels = f["images"], f["labels"]
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    if split not in ("train", "test"):
        raise DataError(f"digits has splits 'train' and 'test', not {split!r}")
    index = order[:cut] if split == "train" else order[cut:]
    rgb = np.repeat((images[index].astype(np.float32) * (255 / 16)).round().astype(np.uint8)[..., None], 3, -1)
    dataset = tf.data.Dataset.from_tensor_slices({"image": rgb, "label": labels[index].astype(np.int64)})
    return Split(dataset, DatasetInfo(10, [str(d) for d in range(10)], len(index)), labels=labels[index])
