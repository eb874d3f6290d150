"""Image classification: one label per image, softmax probabilities, top-1/top-5 accuracy."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from zoo.data import (IMAGE_EXTENSIONS, DatasetInfo, Split, decode_image, drop_bad_images,
                      image_diagnosis, to_rgb)
from zoo.data.augment import augment_image
from zoo.errors import DataError
from zoo.tasks.base import Task, predict_dataset, register_task


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


def load_folder(data, task, split: str) -> Split:
    """ImageFolder layout: `<path>/<split>/<class_name>/<image>`, classes = sorted folders."""
    split_dir, classes = class_folders(Path(data.path), split)
    paths, labels = list_class_files(split_dir, classes, is_image_file)
    kept = set(drop_bad_images(paths, data.skip_corrupt))
    pairs = [(p, l) for p, l in zip(paths, labels) if p in kept]
    if not pairs:
        raise DataError(f"no readable images under {split_dir}")
    dataset = tf.data.Dataset.from_tensor_slices(([p for p, _ in pairs], [l for _, l in pairs]))
    dataset = dataset.map(lambda p, l: {"image": decode_image(p), "label": l},
                          num_parallel_calls=tf.data.AUTOTUNE)
    info = DatasetInfo(len(classes), classes, len(pairs))
    return Split(dataset, info, image_diagnosis([p for p, _ in pairs]))


def load_digits(data, task, split: str) -> Split:
    """The embedded 8x8 UCI digits: a fixed seeded 80/20 split named `train` / `test`."""
    with np.load(Path(__file__).resolve().parent.parent / "assets" / "digits.npz") as f:
        images, labels = f["images"], f["labels"]
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    if split not in ("train", "test"):
        raise DataError(f"digits has splits 'train' and 'test', not {split!r}")
    index = order[:cut] if split == "train" else order[cut:]
    rgb = np.repeat((images[index].astype(np.float32) * (255 / 16)).round().astype(np.uint8)[..., None], 3, -1)
    dataset = tf.data.Dataset.from_tensor_slices({"image": rgb, "label": labels[index].astype(np.int64)})
    return Split(dataset, DatasetInfo(10, [str(d) for d in range(10)], len(index)))


@register_task
class Classification(Task):
    name = "classification"
    sources = {"folder": load_folder, "digits": load_digits}

    def from_tfds(self, tfds_info):
        image_key, label_key, label_feature = tfds_label_features(tfds_info)

        def adapt(example):
            return {"image": to_rgb(example[image_key]), "label": example[label_key]}

        return adapt, DatasetInfo(label_feature.num_classes, list(label_feature.names))

    def prepare(self, example, recipe, info, training):
        image = augment_image(example["image"], recipe.data.image_size, recipe.data.augment,
                              training, recipe.data.eval_crop)
        return image, example["label"]

    def loss(self, info, label_smoothing: float = 0.0):
        if label_smoothing:
            return SmoothedSparseCrossentropy(label_smoothing, info.num_classes)
        return keras.losses.SparseCategoricalCrossentropy()

    def metrics(self, info):
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if info.num_classes > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5_accuracy"))
        return metrics

    def evaluate(self, model, dataset, info):
        scores, labels = predict_dataset(model, dataset)
        return classification_metrics(scores, labels, info.num_classes)

    def predict(self, model, paths, info, recipe, output_dir):
        lines = []
        for path in paths:
            image = augment_image(read_image(path), recipe.data.image_size, recipe.data.augment,
                                  False, recipe.data.eval_crop)
            probs = np.asarray(model.predict_on_batch(image[None]))[0]
            lines.append(f"{path}: " + top_k_text(probs, info.class_names))
        return lines


def read_image(path) -> tf.Tensor:
    try:
        return decode_image(str(path))
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
        raise DataError(f"cannot read image file: {path}") from None


def top_k_text(probs, class_names, k=5) -> str:
    order = np.argsort(probs)[::-1][:k]
    return ", ".join(f"{class_names[i]} {probs[i]:.3f}" for i in order)


def classification_metrics(scores, labels, num_classes) -> dict:
    labels = labels.astype(np.int64).reshape(-1)
    out = {"accuracy": float(np.mean(scores.argmax(-1) == labels))}
    if num_classes > 5:
        top5 = np.argsort(scores, axis=-1)[:, -5:]
        out["top5_accuracy"] = float(np.mean((top5 == labels[:, None]).any(-1)))
    out["num_examples"] = int(len(labels))
    return out


@keras.saving.register_keras_serializable(package="zoo")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy against one-hot labels smoothed by `label_smoothing` (Szegedy et al. 2016)."""

    def __init__(self, label_smoothing=0.1, num_classes=10, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"),
                                    self.num_classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "num_classes": self.num_classes}
