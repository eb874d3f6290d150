"""Segmentation metrics: one confusion matrix definition for the epoch logs and metrics.json.

Pixels whose ground truth is 255 (ignore) or not a class id are skipped. IoU_c = TP / (TP + FP +
FN); mIoU = the mean of IoU_c over the classes present in the ground truth or the prediction
(a class absent from both has no IoU and is left out of the mean); pixel_accuracy = correct /
labelled pixels. The epoch logs use `keras.metrics.MeanIoU` (`mean_iou`), which computes exactly
this (tests/test_segmentation.py checks it against `segmentation_metrics`), and `PixelAccuracy`:
Keras' accuracies cannot skip ignore pixels. Imported where used: importing it loads Keras.
"""
from __future__ import annotations

import contextlib

import keras
import numpy as np
from keras import ops

from zoo.data.augment import IGNORE_INDEX


def mean_iou(num_classes: int, name: str = "mIoU"):
    """The epoch-log mIoU: Keras' MeanIoU on the argmax of the probabilities, 255 skipped. Its
    int64 confusion matrix keeps exact counts; its mean skips the classes whose union is 0."""
    return keras.metrics.MeanIoU(num_classes=int(num_classes), ignore_class=IGNORE_INDEX,
                                 sparse_y_pred=False, name=name)


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
        labels = ops.reshape(ops.cast(y_true, "int32"), [-1])
        preds = ops.reshape(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), [-1])
        valid = ops.logical_and(labels != self.ignore_index, labels < self.num_classes)
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


def class_map_model(model):
    """`model` with the argmax taken inside the graph: (B, H, W) class ids (uint8 up to 256
    classes, else int32), so `predict` moves 1 byte per pixel off the device instead of
    num_classes floats. Built in the model's distribution strategy scope, so `predict` splits
    batches across the same replicas."""
    num_classes = int(model.output_shape[-1])
    dtype = "uint8" if num_classes <= 256 else "int32"
    strategy = getattr(model, "distribute_strategy", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        classes = ops.cast(ops.argmax(model.output, axis=-1), dtype)
        return keras.Model(model.input, classes, name=f"{model.name}_classes")


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
