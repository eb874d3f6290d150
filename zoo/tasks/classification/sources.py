"""Classification sources: class folders (ImageFolder layout) and the embedded UCI digits."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.data import (IMAGE_EXTENSIONS, DatasetInfo, Split, class_index, decode_image,
                      drop_bad_images, image_diagnosis)
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


def class_folders(root: Path, split: str) -> tuple[Path, list[str]]:
    """`root/split` and its sorted class sub-folder names; errors name the missing folder."""
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"dataset folder not found: {split_dir}")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"no class folders in {split_dir}")
    return split_dir, classes


def list_class_files(split_dir: Path, classes, is_item) -> tuple[list[str], list[int]]:
    paths, labels = [], []
    for index, name in enumerate(classes):
        items = sorted(str(p) for p in (split_dir / name).iterdir() if is_item(p))
        if not items:
            raise DataError(f"empty class folder: {split_dir / name}")
        paths += items
        labels += [index] * len(items)
    return paths, labels


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def load_folder(data, task, split: str, truth=None) -> Split:
    """ImageFolder layout: `<path>/<split>/<class_name>/<image>`, classes = sorted folders
    (mapped by name onto the training split's, `truth`, for the other splits)."""
    split_dir, classes = class_folders(Path(data.path), split)
    index = class_index(classes, truth, split_dir)
    paths, labels = list_class_files(split_dir, classes, is_image_file)
    kept = set(drop_bad_images(paths, data.skip_corrupt))
    pairs = [(p, index[l]) for p, l in zip(paths, labels) if p in kept]
    if not pairs:
        raise DataError(f"no readable images under {split_dir}")
    records = tf.data.Dataset.from_tensor_slices(([p for p, _ in pairs], [l for _, l in pairs]))
    info = DatasetInfo(len(classes), classes, len(pairs))
    return Split(records, info, image_diagnosis([p for p, _ in pairs]),
                 decode=lambda p, l: {"image": decode_image(p), "label": l})


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
    return Split(dataset, DatasetInfo(10, [str(d) for d in range(10)], len(index)))
