"""The segmentation loss: cross-entropy over labelled pixels (+ soft Dice). Imported by
`Segmentation.loss` only: it subclasses a Keras class, so importing it loads Keras."""
from __future__ import annotations

import keras
from keras import ops

from zoo.data.augment import IGNORE_INDEX


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

    def _labels(self, y_true, y_pred):
        """(one-hot labels, zeros at unlabelled pixels; the labelled-pixel mask as float32)."""
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(y_pred.shape):  # (B, H, W, 1) targets
            labels = ops.squeeze(labels, -1)
        valid = ops.logical_and(labels != self.ignore_index, labels < self.num_classes)
        valid_f = ops.cast(valid, "float32")
        one_hot = ops.one_hot(ops.where(valid, labels, 0), self.num_classes) * valid_f[..., None]
        return one_hot, valid_f

    def crossentropy(self, y_true, y_pred):
        """Per pixel, rescaled so that Keras' mean over all pixels is the labelled pixels' mean."""
        y_pred = ops.cast(y_pred, "float32")
        one_hot, valid_f = self._labels(y_true, y_pred)
        probs = ops.clip(y_pred, keras.backend.epsilon(), 1.0)
        crossentropy = -ops.sum(one_hot * ops.log(probs), axis=-1)
        pixels = ops.cast(ops.size(valid_f), "float32")
        return crossentropy * pixels / ops.maximum(ops.sum(valid_f), 1.0)

    def dice(self, y_true, y_pred):
        """The soft-Dice loss of the batch's labelled pixels (one value)."""
        y_pred = ops.cast(y_pred, "float32")
        one_hot, valid_f = self._labels(y_true, y_pred)
        masked = y_pred * valid_f[..., None]
        axes = tuple(range(len(y_pred.shape) - 1))
        inter = ops.sum(masked * one_hot, axis=axes)
        denom = ops.sum(masked, axis=axes) + ops.sum(one_hot, axis=axes)
        return 1.0 - ops.mean((2.0 * inter + 1.0) / (denom + 1.0))

    def call(self, y_true, y_pred):
        loss = self.crossentropy(y_true, y_pred)
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(y_true, y_pred)
        return loss

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "dice_weight": self.dice_weight, "ignore_index": self.ignore_index}
