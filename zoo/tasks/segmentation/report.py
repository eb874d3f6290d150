"""The segmentation report: per-class IoU, Dice, pixel accuracy (the class's recall) and support
(labelled pixels) from the confusion matrix `evaluate` accumulates, the matrix itself (pixel
counts) and the images of lowest mean IoU, each as image | truth | prediction (`zoo.report`)."""
from __future__ import annotations

import numpy as np

from zoo.data.augment import IGNORE_INDEX
from zoo.report import save_confusion_matrix, save_gallery
from zoo.tasks.segmentation.drawing import class_colors

WORST_IMAGES = 8
# A class counts towards an image's mean IoU where truth or prediction covers this share of its
# labelled pixels: a few stray pixels of a class (IoU 0) would otherwise halve a near-perfect image.
MIN_CLASS_SHARE = 0.005
ALPHA = 0.7  # how much of a class colour covers the (grey) image in an overlay


def per_class_rows(confusion, names) -> tuple[list, list]:
    """(rows, totals): [class, IoU, Dice, pixel accuracy, support]; IoU and Dice None for a class
    neither true nor predicted, pixel accuracy None for a class with no labelled pixel. Totals:
    the mean over the classes present in truth or prediction (mIoU's classes)."""
    confusion = np.asarray(confusion, np.float64)
    tp, truth, predicted = np.diag(confusion), confusion.sum(1), confusion.sum(0)
    union = truth + predicted - tp
    rows = [[name, float(tp[i] / union[i]) if union[i] else None,
             float(2 * tp[i] / (truth[i] + predicted[i])) if union[i] else None,
             float(tp[i] / truth[i]) if truth[i] else None, int(truth[i])] for i, name in enumerate(names)]
    present = [row for row, u in zip(rows, union) if u]
    means = [float(np.mean([row[c] for row in present if row[c] is not None] or [np.nan])) for c in (1, 2, 3)]
    return rows, [["mean (classes present)", *[None if np.isnan(m) else m for m in means], int(truth.sum())]]


def per_image_iou(labels, classes, num_classes: int) -> np.ndarray:
    """Each image's mean IoU over the classes covering at least `MIN_CLASS_SHARE` of its labelled
    pixels in truth or prediction (NaN: no labelled pixel)."""
    labels = np.asarray(labels, np.int64).reshape(len(labels), -1)
    classes = np.asarray(classes, np.int64).reshape(len(classes), -1)
    valid = (labels != IGNORE_INDEX) & (labels >= 0) & (labels < num_classes)
    image = np.broadcast_to(np.arange(len(labels))[:, None], labels.shape)
    index = (image * num_classes + labels) * num_classes + classes
    confusion = np.bincount(index[valid], minlength=len(labels) * num_classes ** 2)
    confusion = confusion.reshape(len(labels), num_classes, num_classes).astype(np.float64)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    union = confusion.sum(1) + confusion.sum(2) - tp
    iou = np.divide(tp, union, out=np.full_like(tp, np.nan), where=union > 0)
    labelled = valid.sum(1, keepdims=True)
    counts = (union > 0) & (union >= MIN_CLASS_SHARE * labelled)
    with np.errstate(invalid="ignore"):
        counted = np.where(counts, iou, 0).sum(1) / counts.sum(1)
    return np.where(valid.any(1), counted, np.nan)


class WorstImages:
    """The `size` images of lowest mean IoU seen so far, fed chunk by chunk (only theirs kept)."""

    def __init__(self, num_classes: int, size: int = WORST_IMAGES):
        self.num_classes, self.size, self.seen = num_classes, size, 0
        self.kept: list[tuple] = []  # (mean IoU, image index, image, truth, prediction)

    def add(self, images, labels, classes):
        ious = per_image_iou(labels, classes, self.num_classes)
        ceiling = self.kept[-1][0] if len(self.kept) == self.size else np.inf
        candidates = np.flatnonzero(ious < ceiling)  # NaN (nothing labelled) is never a candidate
        for i in candidates[np.argsort(ious[candidates], kind="stable")][:self.size]:
            self.kept.append((float(ious[i]), self.seen + int(i), np.array(images[i]),
                              np.array(labels[i]), np.array(classes[i])))
        self.kept = sorted(self.kept, key=lambda kept: (kept[0], kept[1]))[:self.size]
        self.seen += len(labels)


def overlay(image, classes, colors) -> np.ndarray:
    """The class colours blended over `image` in grey (so its own colours cannot pass for a
    class's); background and ignore pixels stay grey."""
    grey = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat((64 + 0.5 * grey)[..., None], 3, axis=-1)
    for index, color in enumerate(colors):
        where = classes == index
        if color is not None and where.any():
            out[where] = (1 - ALPHA) * out[where] + ALPHA * np.asarray(color, np.float32)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def triptych(image, truth, prediction, colors) -> np.ndarray:
    gap = np.full((image.shape[0], max(2, image.shape[1] // 32), 3), 255, np.uint8)
    return np.concatenate([image, gap, overlay(image, truth, colors), gap, overlay(image, prediction, colors)], 1)


def report_segmentation(report, confusion, names, worst: WorstImages | None, num_images: int):
    """The table, and with a folder the confusion matrix (pixels) and the worst images."""
    rows, totals = per_class_rows(confusion, names)
    report.table(f"per class ({num_images:,} images, {int(np.sum(confusion)):,} labelled pixels)",
                 ["class", "IoU", "Dice", "pixel accuracy", "support (pixels)"], rows, totals=totals)
    if report.folder is None:
        return
    save_confusion_matrix(report, confusion, names, what="pixels")
    kept = worst.kept if worst is not None else []
    colors = class_colors(names)
    save_gallery(report, [triptych(image, truth, prediction, colors) for _, _, image, truth, prediction in kept],
                 [f"#{index}: mean IoU {iou:.3f}" for iou, index, *_ in kept],
                 title=f"the {len(kept)} images of lowest mean IoU of {num_images:,} (over the classes covering "
                       f"{MIN_CLASS_SHARE:.1%} or more of an image): image | truth | prediction; #index in "
                       f"the eval split",
                 legend={name: color for name, color in zip(names, colors) if color is not None})
