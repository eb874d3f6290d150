"""Image classification: one label per image, softmax probabilities, top-1/top-5 accuracy."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.data import (IMAGE_EXTENSIONS, DatasetInfo, Split, class_index, decode_image,
                      drop_bad_images, image_diagnosis, to_rgb)
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
        metrics = [TopKAccuracy(1, name="accuracy")]
        if info.num_classes > 5:
            metrics.append(TopKAccuracy(5, name="top5_accuracy"))
        return metrics

    def evaluate(self, model, dataset, info):
        scores, labels = predict_dataset(model, dataset)
        return classification_metrics(scores, labels, info.num_classes)

    def predict(self, model, inputs, info, recipe, output_dir):
        for path, image in inputs:
            image = augment_image(image, recipe.data.image_size, recipe.data.augment,
                                  False, recipe.data.eval_crop)
            probs = np.asarray(model.predict_on_batch(image[None]))[0]
            yield f"{path}: " + top_k_text(probs, info.class_names)


def top_k_text(probs, class_names, k=5) -> str:
    order = np.argsort(probs)[::-1][:k]
    return ", ".join(f"{class_names[i]} {probs[i]:.3f}" for i in order)


def top_k_hits(y_true, y_pred, k=5):
    """1.0 where the label is among the k best-scored classes, else 0.0: its rank is the number
    of classes scored higher, plus those scored equal with a lower index (argmax's tie rule, so
    k=1 is top-1 accuracy); a non-finite score is never a hit. The one definition of
    `accuracy` / `top5_accuracy`, in the epoch logs and in metrics.json alike (Keras'
    SparseTopKCategoricalAccuracy counts every tie as a hit: 1.0 for a constant output)."""
    scores = ops.cast(y_pred, "float32")
    labels = ops.cast(ops.reshape(y_true, [-1, 1]), "int32")
    true = ops.take_along_axis(scores, labels, axis=-1)
    index = ops.arange(ops.shape(scores)[-1], dtype="int32")[None, :]
    ahead = ops.logical_or(scores > true, ops.logical_and(scores == true, index < labels))
    rank = ops.sum(ops.cast(ahead, "int32"), axis=-1)
    hit = ops.logical_and(rank < k, ops.all(ops.isfinite(scores), axis=-1))
    return ops.cast(hit, "float32")


@keras.saving.register_keras_serializable(package="zoo")
class TopKAccuracy(keras.metrics.MeanMetricWrapper):
    """Mean of `top_k_hits` over the examples."""

    def __init__(self, k=5, name="top5_accuracy", dtype=None):
        super().__init__(top_k_hits, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}


def classification_metrics(scores, labels, num_classes) -> dict:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    ks = {"accuracy": 1, **({"top5_accuracy": 5} if num_classes > 5 else {})}
    out = {}
    for name, k in ks.items():
        hits = [keras.ops.convert_to_numpy(top_k_hits(labels[i:i + 4096], scores[i:i + 4096], k))
                for i in range(0, len(labels), 4096)]
        out[name] = float(np.concatenate(hits).mean()) if hits else 0.0
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
