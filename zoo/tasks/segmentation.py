"""Semantic segmentation: a class per pixel, 255 = ignore; cross-entropy (+ Dice), mIoU.

Canonical example: {"image": uint8 (H, W, 3), "mask": uint8 (H, W)}; mask pixel = class index,
IGNORE_INDEX (255) = not labelled (skipped by the loss and the metrics).

Sources:
* `folder`: `<path>/<split>/images/<stem>.<ext>` + `<path>/<split>/masks/<stem>.png` (single
  channel: 8-bit grey "L", palette "P" read as indices, or 16-bit with values <= 255). Images
  stream from disk; only masks are read once up front, to check them and to infer
  num_classes = (largest mask value other than 255) + 1 over the split (data.num_classes
  overrides). Class names come from an optional `<path>/classes.txt` (one per line), else "0", "1"...
* `tfds`: oxford_iiit_pet (trimap 1 = pet, 2 = background, 3 = border -> 0 background, 1 pet,
  2 border; any other value -> 255) and, generically, any dataset with an image and a
  "segmentation_mask" feature whose values are class ids (then data.num_classes is required).
* `synthetic`: shapes_segmentation (background, circle, square, triangle).

Metrics (Task.evaluate): a confusion matrix over all evaluated pixels whose ground truth is not
255 (accumulated over the eval split at the prepared resolution, data.image_size);
IoU_c = TP / (TP + FP + FN); mIoU = mean of IoU_c over the classes present in the ground truth or
the prediction (classes absent from both are skipped); pixel_accuracy = trace / total.
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.data import IMAGE_EXTENSIONS, DatasetInfo, Split, decode_image, drop_bad_images, find_bad_image, to_rgb
from zoo.data.augment import IGNORE_INDEX, augment_image_and_mask, resize
from zoo.errors import DataError, RecipeError
from zoo.tasks.base import Task, register_task

PETS_CLASSES = ["background", "pet", "border"]
MASK_MODES = ("L", "P", "I", "I;16", "1")


# ---------------------------------------------------------------- folder source


def _read_mask(path) -> np.ndarray:
    """A mask PNG as (H, W) uint8 class ids; palette PNGs give their indices."""
    from PIL import Image

    with Image.open(path) as img:
        if img.mode not in MASK_MODES:
            raise DataError(f"mask {path} has mode {img.mode}: expected a single-channel PNG of "
                            f"class indices (8-bit grey or palette; 255 = ignore)")
        array = np.asarray(img)
    if array.dtype != np.uint8:
        if array.size and (array.max() > 255 or array.min() < 0):
            raise DataError(f"mask {path} has values outside 0..255 (max {array.max()})")
        array = array.astype(np.uint8)
    return array


def _image_size(path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:  # reads the header only
            return img.size[::-1]  # (H, W)
    except (UnidentifiedImageError, OSError):
        return None  # not decodable here; TF may still decode it (webp...) or diagnose it later


def list_pairs(split_dir: Path):
    """Sorted (image path, mask path) of a split; a missing mask names its image."""
    images_dir, masks_dir = split_dir / "images", split_dir / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"dataset folder not found: {folder} (segmentation layout: "
                            f"<path>/<split>/images/<stem>.<ext> + <path>/<split>/masks/<stem>.png)")
    images = sorted(p for p in images_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"no images in {images_dir}")
    seen = {}
    for image in images:
        if image.stem in seen:
            raise DataError(f"two images share the stem {image.stem!r}: {seen[image.stem]} and {image} "
                            f"(their mask would be the same file)")
        seen[image.stem] = image
    pairs = []
    for image in images:
        mask = masks_dir / f"{image.stem}.png"
        if not mask.is_file():
            raise DataError(f"missing mask for image {image}: expected {mask}")
        pairs.append((str(image), str(mask)))
    return pairs


def check_pair(image_path, mask_path, num_classes=None) -> int:
    """Validate one pair; return the largest class id in the mask (-1 when all ignore)."""
    mask = _read_mask(mask_path)
    size = _image_size(image_path)
    if size is not None and tuple(size) != mask.shape:
        raise DataError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image "
                        f"{image_path} is {size[1]}x{size[0]} (width x height)")
    labelled = mask[mask != IGNORE_INDEX]
    largest = int(labelled.max()) if labelled.size else -1
    if num_classes is not None and largest >= num_classes:
        raise DataError(f"mask {mask_path} has class value {largest}, but num_classes is "
                        f"{num_classes} (values must be 0..{num_classes - 1}, or 255 = ignore)")
    return largest


def _scan(pairs, num_classes=None) -> list[int]:
    """check_pair over every pair (a few threads: PNG decoding releases the GIL); the first bad
    pair in sorted order raises."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda pair: check_pair(*pair, num_classes), pairs))


def _class_names(root: Path, num_classes: int) -> list[str]:
    names_file = root / "classes.txt"
    names = []
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    return names[:num_classes] + [str(i) for i in range(len(names), num_classes)]


def _mask_loader(path):
    return _read_mask(path.decode() if isinstance(path, bytes) else str(path))


def load_folder(data, task, split: str, truth=None) -> Split:
    """`<path>/<split>/images/<stem>.<ext>` + `<path>/<split>/masks/<stem>.png` (255 = ignore);
    with `truth` (the training split's info), mask values must be below its class count."""
    root = Path(data.path)
    split_dir = root / split
    if not split_dir.is_dir():
        raise DataError(f"dataset folder not found: {split_dir}")
    pairs = list_pairs(split_dir)
    if data.skip_corrupt:
        kept = set(drop_bad_images([p for p, _ in pairs], True))
        pairs = [(p, m) for p, m in pairs if p in kept]
        if not pairs:
            raise DataError(f"no readable images under {split_dir / 'images'}")
    known = truth.num_classes if truth else data.num_classes
    largest = max(_scan(pairs, known))
    if largest < 0 and known is None:
        raise DataError(f"every mask pixel under {split_dir / 'masks'} is 255 (ignore): "
                        f"cannot infer num_classes; set data.num_classes")
    num_classes = known or largest + 1
    info = DatasetInfo(num_classes, _class_names(root, num_classes), len(pairs))

    def load(image_path, mask_path):
        mask = tf.numpy_function(_mask_loader, [mask_path], tf.uint8, stateful=False)
        mask.set_shape([None, None])
        return {"image": decode_image(image_path), "mask": mask}

    records = tf.data.Dataset.from_tensor_slices(([p for p, _ in pairs], [m for _, m in pairs]))
    split_obj = Split(records, info, decode=load)

    def diagnose(error):
        bad = find_bad_image([p for p, _ in pairs])
        if bad is not None:
            raise DataError(f"corrupt image file: {bad} (set data.skip_corrupt=true to skip such files)") from None
        _scan(pairs, split_obj.info.num_classes)  # sizes and values against the final num_classes

    split_obj.diagnose = diagnose
    return split_obj


# ---------------------------------------------------------------- loss and metrics


@keras.saving.register_keras_serializable(package="zoo")
class SegmentationLoss(keras.losses.Loss):
    """Pixel-wise cross-entropy over labelled pixels (ignore_index skipped), plus
    `dice_weight` x soft-Dice loss (Milletari et al. 2016; mean over classes of
    1 - (2 sum p*y + 1) / (sum p + sum y + 1), over the batch's labelled pixels).

    The cross-entropy is the mean over the batch's labelled pixels: each pixel's value is
    rescaled by (all pixels / labelled pixels), so Keras' mean over all pixels gives it.
    """

    def __init__(self, num_classes=2, dice_weight=0.0, ignore_index=IGNORE_INDEX,
                 name="segmentation_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.dice_weight = float(dice_weight)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):  # (B, H, W, 1) targets
            labels = ops.squeeze(labels, -1)
        valid = ops.logical_and(labels != self.ignore_index, labels < self.num_classes)
        valid_f = ops.cast(valid, "float32")
        safe = ops.where(valid, labels, 0)
        one_hot = ops.one_hot(safe, self.num_classes) * valid_f[..., None]
        probs = ops.clip(y_pred, keras.backend.epsilon(), 1.0)
        crossentropy = -ops.sum(one_hot * ops.log(probs), axis=-1)
        pixels = ops.cast(ops.size(valid_f), "float32")
        scale = pixels / ops.maximum(ops.sum(valid_f), 1.0)
        loss = crossentropy * scale
        if self.dice_weight:
            masked = y_pred * valid_f[..., None]
            axes = tuple(range(len(y_pred.shape) - 1))
            inter = ops.sum(masked * one_hot, axis=axes)
            denom = ops.sum(masked, axis=axes) + ops.sum(one_hot, axis=axes)
            dice = 1.0 - ops.mean((2.0 * inter + 1.0) / (denom + 1.0))
            loss = loss + self.dice_weight * dice
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "dice_weight": self.dice_weight, "ignore_index": self.ignore_index}


def _flat_labels(y_true, y_pred, num_classes, ignore_index):
    labels = ops.reshape(ops.cast(y_true, "int32"), [-1])
    preds = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), [-1])
    valid = ops.logical_and(labels != ignore_index, labels < num_classes)
    return labels, preds, valid


@keras.saving.register_keras_serializable(package="zoo")
class ConfusionMeanIoU(keras.metrics.Metric):
    """Mean IoU from a confusion matrix accumulated over the epoch; ignore pixels skipped, and
    classes absent from both prediction and ground truth left out of the mean."""

    def __init__(self, num_classes=2, ignore_index=IGNORE_INDEX, name="mIoU", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.confusion = self.add_variable(shape=(self.num_classes, self.num_classes),
                                           initializer="zeros", name="confusion", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, preds, valid = _flat_labels(y_true, y_pred, self.num_classes, self.ignore_index)
        index = ops.where(valid, labels * self.num_classes + preds, 0)
        counts = ops.bincount(index, weights=ops.cast(valid, "float32"),
                              minlength=self.num_classes * self.num_classes)
        counts = counts[: self.num_classes * self.num_classes]
        self.confusion.assign_add(ops.reshape(ops.cast(counts, "float32"),
                                              (self.num_classes, self.num_classes)))

    def result(self):
        tp = ops.diagonal(self.confusion)
        union = ops.sum(self.confusion, axis=0) + ops.sum(self.confusion, axis=1) - tp
        present = ops.cast(union > 0, "float32")
        iou = tp / ops.maximum(union, 1.0)
        return ops.sum(iou * present) / ops.maximum(ops.sum(present), 1.0)

    def reset_state(self):
        self.confusion.assign(ops.zeros((self.num_classes, self.num_classes), "float32"))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_index": self.ignore_index}


@keras.saving.register_keras_serializable(package="zoo")
class PixelAccuracy(keras.metrics.Metric):
    """Fraction of labelled pixels (ground truth not ignore_index) whose argmax class is right."""

    def __init__(self, num_classes=2, ignore_index=IGNORE_INDEX, name="pixel_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct", dtype="float32")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total", dtype="float32")

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels, preds, valid = _flat_labels(y_true, y_pred, self.num_classes, self.ignore_index)
        valid_f = ops.cast(valid, "float32")
        self.correct.assign_add(ops.sum(ops.cast(labels == preds, "float32") * valid_f))
        self.total.assign_add(ops.sum(valid_f))

    def result(self):
        return self.correct / ops.maximum(self.total, 1.0)

    def reset_state(self):
        self.correct.assign(0.0)
        self.total.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "ignore_index": self.ignore_index}


def confusion_matrix(labels, preds, num_classes, ignore_index=IGNORE_INDEX) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground truth, columns = prediction;
    pixels whose ground truth is ignore_index (or out of range) are skipped."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    preds = np.asarray(preds).astype(np.int64).ravel()
    valid = (labels != ignore_index) & (labels >= 0) & (labels < num_classes)
    index = labels[valid] * num_classes + preds[valid]
    return np.bincount(index, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def segmentation_metrics(confusion, class_names, num_examples) -> dict:
    """mIoU, pixel_accuracy, iou/<class> (classes present in truth or prediction), num_examples."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    total = confusion.sum()
    out = {"mIoU": float(iou[present].mean()) if present.any() else 0.0,
           "pixel_accuracy": float(tp.sum() / total) if total else 0.0}
    for index in np.flatnonzero(present):
        out[f"iou/{class_names[index]}"] = float(iou[index])
    out["num_examples"] = int(num_examples)
    return out


# ---------------------------------------------------------------- tfds


def _tfds_mask_feature(tfds_info):
    import tensorflow_datasets as tfds

    features = tfds_info.features
    image_key = "image" if "image" in features else next(
        (k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    mask_key = next((k for k in ("segmentation_mask", "mask", "label_mask") if k in features), None)
    if image_key is None or mask_key is None:
        raise DataError(f"tfds {tfds_info.name}: no image and segmentation-mask features")
    return image_key, mask_key


def pets_trimap_to_classes(trimap):
    """Oxford-IIIT Pet trimap (1 pet, 2 background, 3 border) -> 0 background, 1 pet, 2 border;
    any other value -> 255 (ignore)."""
    trimap = tf.cast(trimap, tf.int32)
    classes = tf.where(trimap == 1, 1, tf.where(trimap == 2, 0, tf.where(trimap == 3, 2, IGNORE_INDEX)))
    return tf.cast(classes, tf.uint8)


def _squeeze_mask(mask):
    if mask.shape.rank == 3:
        mask = mask[..., 0]
    return mask


# ---------------------------------------------------------------- predictions as pictures

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
            (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
            (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
            (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128)]


def class_colors(class_names) -> list:
    """An RGB color per class; a class named "background" gets None (left untinted)."""
    colors, k = [], 0
    for name in class_names:
        if str(name).lower() == "background":
            colors.append(None)
            continue
        if k < len(_PALETTE):
            colors.append(_PALETTE[k])
        else:  # golden-angle hues beyond the palette
            import colorsys

            r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.75, 0.95)
            colors.append((int(r * 255), int(g * 255), int(b * 255)))
        k += 1
    return colors


def render_overlay(image: np.ndarray, classes: np.ndarray, class_names, fractions, alpha=0.5):
    """The image with its class map blended in, and a legend (swatch, name, pixel %) below."""
    from PIL import Image, ImageDraw

    colors = class_colors(class_names)
    blended = image.astype(np.float32).copy()
    for index, color in enumerate(colors):
        if color is None:
            continue
        where = classes == index
        blended[where] = (1 - alpha) * blended[where] + alpha * np.asarray(color, np.float32)
    picture = Image.fromarray(np.clip(blended, 0, 255).round().astype(np.uint8))
    scale = max(1, int(np.ceil(256 / max(picture.size))))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    row = 16
    width = max(picture.width, 220)
    canvas = Image.new("RGB", (width, picture.height + row * len(class_names) + 8), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, name in enumerate(class_names):
        top = picture.height + 4 + row * index
        color = colors[index]
        draw.rectangle([4, top + 2, 16, top + 13], fill=color or (255, 255, 255), outline=(0, 0, 0))
        draw.text((22, top + 1), f"{name}  {100 * fractions[index]:.1f}%", fill=(0, 0, 0))
    return canvas


def _names_for(info, num_classes) -> list[str]:
    names = list(info.class_names or [])[:num_classes]
    return names + [str(i) for i in range(len(names), num_classes)]


@register_task
class Segmentation(Task):
    name = "segmentation"
    sources = {"folder": load_folder}

    def from_tfds(self, tfds_info):
        image_key, mask_key = _tfds_mask_feature(tfds_info)
        if tfds_info.name == "oxford_iiit_pet":
            def adapt(example):
                return {"image": to_rgb(example[image_key]),
                        "mask": pets_trimap_to_classes(_squeeze_mask(example[mask_key]))}

            return adapt, DatasetInfo(3, list(PETS_CLASSES))

        def adapt_generic(example):
            return {"image": to_rgb(example[image_key]),
                    "mask": tf.cast(_squeeze_mask(example[mask_key]), tf.uint8)}

        # Mask values are class ids as stored; the dataset does not say how many: the recipe must.
        return adapt_generic, DatasetInfo(0, [], extras={"tfds_name": tfds_info.name})

    def prepare(self, example, recipe, info, training):
        image, mask = example["image"], example["mask"]
        if mask.shape.rank == 3:
            mask = mask[..., 0]
        mask = tf.cast(mask, tf.uint8)
        labelled = tf.where(mask == IGNORE_INDEX, tf.zeros_like(mask), mask)
        checks = [
            tf.debugging.assert_equal(tf.shape(image)[:2], tf.shape(mask)[:2],
                                      message="segmentation mask size differs from its image"),
            tf.debugging.assert_less(tf.cast(labelled, tf.int32), max(int(info.num_classes), 1),
                                     message=f"segmentation mask value >= num_classes "
                                             f"({info.num_classes}), other than 255"),
        ]
        with tf.control_dependencies(checks):
            mask = tf.identity(mask)
        image, mask = augment_image_and_mask(image, mask, recipe.data.image_size,
                                             recipe.data.augment, training)
        return image, tf.cast(mask, tf.int32)

    def example_bytes(self, recipe) -> int:
        """Image + mask bytes. Cached examples are stored *before* resizing: the synthetic ones
        have data.image_size, others an unknown size, assumed 512x512 at least."""
        height, width = recipe.data.image_size
        if recipe.data.source != "synthetic":
            height, width = max(height, 512), max(width, 512)
        return height * width * 4

    def model_args(self, recipe, info):
        if not info.num_classes:
            raise RecipeError(f"data.num_classes: required: {recipe.data.source} dataset "
                              f"{recipe.data.name or recipe.data.path} does not say how many classes its masks have")
        return super().model_args(recipe, info)

    def loss(self, info, dice_weight: float = 0.0):
        if dice_weight < 0:
            raise RecipeError(f"train.loss.dice_weight: expected a non-negative number, got {dice_weight}")
        return SegmentationLoss(num_classes=info.num_classes, dice_weight=dice_weight)

    def metrics(self, info):
        return [ConfusionMeanIoU(info.num_classes, name="mIoU"),
                PixelAccuracy(info.num_classes, name="pixel_accuracy")]

    def evaluate(self, model, dataset, info):
        num_classes = info.num_classes
        confusion = np.zeros((num_classes, num_classes), np.int64)
        count = 0
        for images, masks in dataset:
            probs = np.asarray(model.predict_on_batch(images))
            confusion += confusion_matrix(np.asarray(masks), probs.argmax(-1), num_classes)
            count += len(probs)
        return segmentation_metrics(confusion, _names_for(info, num_classes), count)

    def predict(self, model, inputs, info, recipe, output_dir):
        from PIL import Image

        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        num_classes = int(model.output_shape[-1])
        names = _names_for(info, num_classes)
        for path, image in inputs:
            height, width = int(image.shape[0]), int(image.shape[1])
            batch = resize(tf.cast(image, tf.float32), recipe.data.image_size)
            probs = np.asarray(model.predict_on_batch(batch[None]), np.float32)[0]
            probs = tf.image.resize(probs, (height, width), method="bilinear")  # back to the input size
            classes = np.asarray(tf.argmax(probs, axis=-1), np.int64)
            fractions = np.bincount(classes.ravel(), minlength=num_classes) / classes.size
            picture = render_overlay(np.asarray(image), classes, names, fractions)
            target = output_dir / f"{Path(path).stem}_segmentation.png"
            picture.save(target)
            Image.fromarray(classes.astype(np.uint8)).save(output_dir / f"{Path(path).stem}_mask.png")
            order = np.argsort(fractions)[::-1]
            summary = ", ".join(f"{names[i]} {fractions[i]:.3f}" for i in order if fractions[i] > 0)
            yield f"{path}: {target} ({summary})"
