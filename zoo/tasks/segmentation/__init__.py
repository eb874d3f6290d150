"""Semantic segmentation: a class per pixel, 255 = ignore; cross-entropy (+ Dice), mIoU.

Canonical example: {"image": uint8 (H, W, 3), "mask": uint8 (H, W)}; mask pixel = class index,
IGNORE_INDEX (255) = not labelled (skipped by the loss and the metrics).

Sources (sources.py):
* `folder`: `<path>/<split>/images/<stem>.<ext>` + `<path>/<split>/masks/<stem>.png` (single
  channel: 8-bit grey "L", palette "P" read as indices, or 16-bit with values <= 255). Images
  stream from disk; only masks are read once up front, to check them and to infer
  num_classes = (largest mask value other than 255) + 1 over the split (data.num_classes
  overrides). Class names come from an optional `<path>/classes.txt` (one per line), else "0", "1"...
* `tfds`: oxford_iiit_pet (trimap 1 = pet, 2 = background, 3 = border -> 0 background, 1 pet,
  2 border; any other value -> 255) and, generically, any dataset with an image and a
  "segmentation_mask" feature whose values are class ids (then data.num_classes is required).
* `synthetic`: shapes_segmentation (background, circle, square, triangle).

Metrics (metrics.py, Task.evaluate): a confusion matrix over all evaluated pixels whose ground
truth is not 255 (accumulated over the eval split at the prepared resolution, data.image_size);
IoU_c = TP / (TP + FP + FN); mIoU = mean of IoU_c over the classes present in the ground truth or
the prediction (classes absent from both are skipped); pixel_accuracy = trace / total.
Losses: losses.py; pictures (overlay + legend, palette mask PNG): drawing.py.
"""
from __future__ import annotations

import numpy as np

from zoo.data import DatasetInfo, to_rgb
from zoo.data.augment import IGNORE_INDEX, augment_image_and_mask
from zoo.errors import RecipeError, quote
from zoo.lazy import keras, tf
from zoo.tasks.base import Source, Task, predict_chunks, register_task, with_pictures
from zoo.tasks.segmentation.sources import PETS_CLASSES, pets_trimap_to_classes, squeeze_mask, tfds_mask_feature


def class_names_for(info, num_classes) -> list[str]:
    """The info's class names for `num_classes` classes, "<index>" where it has none."""
    names = list(info.class_names or [])[:num_classes]
    return names + [str(i) for i in range(len(names), num_classes)]


@register_task
class Segmentation(Task):
    name = "segmentation"
    main_metric = "mIoU"  # best.keras, early stopping (Keras' val_mIoU during training)
    sources = {"folder": Source("zoo.tasks.segmentation.sources:load_folder", ("path",))}

    def from_tfds(self, tfds_info):
        image_key, mask_key = tfds_mask_feature(tfds_info)
        if tfds_info.name == "oxford_iiit_pet":
            def adapt(example):
                return {"image": to_rgb(example[image_key]),
                        "mask": pets_trimap_to_classes(squeeze_mask(example[mask_key]))}

            return adapt, DatasetInfo(3, list(PETS_CLASSES))

        def adapt_generic(example):
            return {"image": to_rgb(example[image_key]),
                    "mask": tf.cast(squeeze_mask(example[mask_key]), tf.uint8)}

        # Mask values are class ids as stored; the dataset does not say how many: the recipe must.
        return adapt_generic, DatasetInfo(0, [], extras={"tfds_name": tfds_info.name})

    def prepare(self, example, recipe, info, training):
        image, mask = example["image"], squeeze_mask(example["mask"])
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
        from zoo.tasks.segmentation.losses import SegmentationLoss

        if dice_weight < 0:
            raise RecipeError(f"train.loss.dice_weight: expected a non-negative number, got {quote(dice_weight)}")
        self._loss = SegmentationLoss(num_classes=info.num_classes, dice_weight=dice_weight)
        return self._loss

    def metrics(self, info):
        """mIoU, pixel accuracy and, with a Dice term, the loss's parts `crossentropy` and `dice`
        (unweighted; loss = crossentropy + dice_weight x dice) of the loss `loss` made last."""
        from zoo.tasks.loss_parts import LossPart
        from zoo.tasks.segmentation.metrics import PixelAccuracy, mean_iou

        metrics = [mean_iou(info.num_classes, name="mIoU"),
                   PixelAccuracy(info.num_classes, name="pixel_accuracy")]
        loss = getattr(self, "_loss", None)
        if loss is not None and loss.dice_weight:
            metrics += [LossPart(loss, "crossentropy", name="crossentropy"), LossPart(loss, "dice", name="dice")]
        return metrics

    def evaluate(self, model, dataset, info, report=None):
        """`segmentation_metrics` of the confusion matrix over the dataset, accumulated chunk by
        chunk of `model.predict` on the argmax model (only class ids leave the device). With a
        `zoo.report.Report`, the per-class table and, with its folder, the confusion matrix and
        the images of lowest mean IoU (their pictures made uint8 in tf.data, only theirs kept)."""
        from zoo.tasks.segmentation.metrics import class_map_model, confusion_matrix, segmentation_metrics
        from zoo.tasks.segmentation.report import WorstImages, report_segmentation

        num_classes = info.num_classes
        confusion = np.zeros((num_classes, num_classes), np.int64)
        worst = WorstImages(num_classes) if report is not None and report.folder is not None else None
        if worst is not None:
            dataset = with_pictures(dataset)
        count = 0
        for classes, targets in predict_chunks(class_map_model(model), dataset):
            start = 0
            for target in targets:
                masks = target if worst is None else target[0]
                predicted = classes[start:start + len(masks)]
                confusion += confusion_matrix(masks, predicted, num_classes)
                if worst is not None:
                    worst.add(target[1], masks, predicted)
                start += len(masks)
            count += len(classes)
        names = class_names_for(info, num_classes)
        if report is not None:
            report_segmentation(report, confusion, names, worst, count)
        return segmentation_metrics(confusion, names, count)

    # -- export ----------------------------------------------------------------
    def serving_model(self, model, recipe):
        """uint8 `images` (B, H, W, 3), any size -> `classes` (B, H, W) int32: the class map at
        the input's size, as `predict` makes it."""
        from zoo.serving import EvalView, ResizedClassMap, image_input

        images = image_input()
        probabilities = model(EvalView(recipe.data.image_size, name="eval_view")(images))
        classes = ResizedClassMap(name="class_map")(probabilities, images)
        return keras.Model(images, {"classes": classes}, name=f"{model.name}_serving")

    def serving_example(self, example, recipe):
        return example["image"], squeeze_mask(example["mask"])

    def serving_metrics(self, outputs, truths, info):
        from zoo.tasks.segmentation.metrics import confusion_matrix, segmentation_metrics

        confusion = sum(confusion_matrix(mask, out["classes"], info.num_classes)
                        for out, mask in zip(outputs, truths))
        return segmentation_metrics(confusion, class_names_for(info, info.num_classes), len(truths))

    picture_kind = "segmentation"

    def class_names(self, model, info):
        return class_names_for(info, self.model_num_classes(model))

    def result(self, source, original, outputs, predictor):
        from zoo.tasks.segmentation.results import Mask

        return Mask(source, original, predictor.names, outputs["classes"][0])

    def prediction_row(self, result, files, path):
        """Also the class map as `<stem>_mask.png` (palette PNG of class ids)."""
        row = super().prediction_row(result, files, path)
        return {**row, "mask": str(files.save(result.mask_picture(), path, "mask"))}

