"""The RetinaNet loss (Lin et al. 2017): sigmoid focal loss over the non-ignored anchors plus a
smooth-L1 or GIoU box loss over the positives, both divided by the batch's positive anchors.

Targets are the (num_anchors, 5) rows `zoo.data.boxes.match_anchors` makes in tf.data:
[ty, tx, th, tw, class] with class >= 0 positive, -1 background, -2 ignored.
"""
from __future__ import annotations

import keras
from keras import ops

from zoo.data import boxes as bx
from zoo.errors import RecipeError, quote


def _focal_terms(classes, logits, alpha, gamma):
    """Per-anchor focal loss summed over classes; classes: (B, A) >=0 / -1 / -2, logits (B, A, C)."""
    num_classes = logits.shape[-1]
    targets = ops.one_hot(ops.cast(ops.maximum(classes, 0.0), "int32"), num_classes)
    targets = targets * ops.cast(ops.expand_dims(classes >= 0, -1), logits.dtype)
    probs = ops.sigmoid(logits)
    # Stable binary cross-entropy with logits: max(x, 0) - x t + log(1 + exp(-|x|)).
    ce = ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
    p_t = probs * targets + (1 - probs) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = ops.sum(alpha_t * ops.power(1 - p_t, gamma) * ce, axis=-1)
    return loss * ops.cast(classes > -1.5, loss.dtype)  # IGNORE (-2) anchors add nothing


def _box_terms(targets, deltas, box_loss, beta):
    """Per-anchor box loss (B, A), any anchor (the caller masks positives)."""
    if box_loss == "giou":
        return 1.0 - _giou(targets, deltas)
    diff = ops.abs(targets - deltas)
    smooth = ops.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta) if beta > 0 else diff
    return ops.sum(smooth, axis=-1)


def _giou(targets, deltas):
    """Generalized IoU (Rezatofighi et al. 2019) of two boxes given as deltas to the same anchor.

    IoU and GIoU do not change under per-axis scaling and translation, so decoding both against a
    unit anchor at the origin gives the same value as decoding against the real anchor.
    """
    def corners(d):
        h, w = ops.exp(ops.minimum(d[..., 2], bx.MAX_LOG_SCALE)), ops.exp(ops.minimum(d[..., 3], bx.MAX_LOG_SCALE))
        return d[..., 0] - h / 2, d[..., 1] - w / 2, d[..., 0] + h / 2, d[..., 1] + w / 2

    (ay0, ax0, ay1, ax1), (by0, bx0, by1, bx1) = corners(targets), corners(deltas)
    inter = ops.relu(ops.minimum(ay1, by1) - ops.maximum(ay0, by0)) * ops.relu(ops.minimum(ax1, bx1) - ops.maximum(ax0, bx0))
    union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - inter
    hull = (ops.maximum(ay1, by1) - ops.minimum(ay0, by0)) * (ops.maximum(ax1, bx1) - ops.minimum(ax0, bx0))
    iou = inter / ops.maximum(union, 1e-9)
    return iou - (hull - union) / ops.maximum(hull, 1e-9)


def _per_positive(per_image, classes):
    """Per-image sums -> values whose batch mean is (sum over the batch) / (positives in it)."""
    positives = ops.sum(ops.cast(classes >= 0, per_image.dtype))
    batch = ops.cast(ops.shape(per_image)[0], per_image.dtype)
    return per_image * batch / ops.maximum(positives, 1.0)


@keras.saving.register_keras_serializable(package="zoo")
class RetinaNetLoss(keras.losses.Loss):
    """Focal loss on classes + `box_weight` x box loss on positive anchors, / positives.

    y_true (B, A, 5) rows [ty, tx, th, tw, class] (class -1 background, -2 ignored), as
    `zoo.data.boxes.match_anchors` makes them; y_pred (B, A, 4 + C) [deltas, class logits].
    box_loss: "smooth_l1" (Detectron's RetinaNet, beta 0.11) or "giou".
    """

    def __init__(self, alpha=0.25, gamma=2.0, box_loss="smooth_l1", box_weight=1.0,
                 smooth_l1_beta=0.11, name="retinanet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if box_loss not in ("smooth_l1", "giou"):
            raise RecipeError(f"train.loss.box_loss: expected smooth_l1 or giou, got {quote(box_loss)}")
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.box_loss, self.box_weight = box_loss, float(box_weight)
        self.smooth_l1_beta = float(smooth_l1_beta)

    def focal(self, y_true, y_pred):
        """The focal loss per image, already divided by the batch's positives."""
        classes = y_true[..., 4]
        focal = ops.sum(_focal_terms(classes, y_pred[..., 4:], self.alpha, self.gamma), axis=-1)
        return _per_positive(focal, classes)

    def box(self, y_true, y_pred):
        """The box loss (unweighted) per image, already divided by the batch's positives."""
        classes = y_true[..., 4]
        box = _box_terms(y_true[..., :4], y_pred[..., :4], self.box_loss, self.smooth_l1_beta)
        box = ops.sum(box * ops.cast(classes >= 0, box.dtype), axis=-1)
        return _per_positive(box, classes)

    def parts(self, y_true, y_pred):
        """(focal, box) per-image values, each already divided by the batch's positives."""
        return self.focal(y_true, y_pred), self.box(y_true, y_pred)

    def call(self, y_true, y_pred):
        focal, box = self.parts(y_true, y_pred)
        return focal + self.box_weight * box

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma,
                "box_loss": self.box_loss, "box_weight": self.box_weight,
                "smooth_l1_beta": self.smooth_l1_beta}
