"""Boxes for detection: formats, anchors, IoU matching, box coding, NMS (tf ops, data side).

One internal format, named ``yxyx``: ``[ymin, xmin, ymax, xmax]`` in **pixels of the model
input** (after resize / letterbox). Conversions happen at the boundaries only:

* ``yxyx_norm``: canonical examples and TFDS, ``[ymin, xmin, ymax, xmax]`` in 0..1 of the
  image they belong to (`normalized_to_pixels` / `pixels_to_normalized`);
* ``xywh``: COCO json and COCO results, ``[x, y, width, height]`` in pixels of the original
  image (`xywh_to_yxyx` / `yxyx_to_xywh`);
* ``cycxhw``: centers and sizes, only inside the box coder.

Anchors follow RetinaNet (Lin et al. 2017, sec. 4): on level l (stride 2**l) each feature-map
cell (i, j) centered at ((i + 0.5) * 2**l, (j + 0.5) * 2**l) carries `num_scales` x
`len(aspect_ratios)` anchors of side `anchor_size * 2**l * 2**(k / num_scales)` and height /
width = aspect ratio, ordered level, row, column, aspect ratio, scale: the order in which the
model flattens its per-level head outputs (`zoo.models.layers.AnchorOutputs`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from zoo.lazy import tf

# Largest log-size change a decoded box may have (Detectron's BBOX_XFORM_CLIP = log(1000 / 16)).
MAX_LOG_SCALE = math.log(1000.0 / 16)


# ------------------------------------------------------------------------------ formats


def normalized_to_pixels(boxes, height, width):
    """yxyx_norm -> yxyx pixels of an image of size (height, width)."""
    scale = tf.cast(tf.stack([height, width, height, width]), boxes.dtype)
    return boxes * scale


def pixels_to_normalized(boxes, height, width):
    """yxyx pixels -> yxyx_norm."""
    scale = tf.cast(tf.stack([height, width, height, width]), boxes.dtype)
    return boxes / scale


def xywh_to_yxyx(boxes):
    """COCO [x, y, w, h] -> [ymin, xmin, ymax, xmax] (NumPy or tf; last axis 4)."""
    x, y, w, h = (boxes[..., i] for i in range(4))
    stack = np.stack if isinstance(boxes, np.ndarray) else tf.stack
    return stack([y, x, y + h, x + w], -1)


def yxyx_to_xywh(boxes):
    """[ymin, xmin, ymax, xmax] -> COCO [x, y, w, h] (NumPy or tf; last axis 4)."""
    y0, x0, y1, x1 = (boxes[..., i] for i in range(4))
    stack = np.stack if isinstance(boxes, np.ndarray) else tf.stack
    return stack([x0, y0, x1 - x0, y1 - y0], -1)


def area(boxes):
    return tf.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * tf.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def pairwise_iou(a, b):
    """IoU of every box in a (N, 4) with every box in b (M, 4), yxyx -> (N, M)."""
    a, b = a[:, None, :], b[None, :, :]
    top = tf.maximum(a[..., 0], b[..., 0])
    left = tf.maximum(a[..., 1], b[..., 1])
    bottom = tf.minimum(a[..., 2], b[..., 2])
    right = tf.minimum(a[..., 3], b[..., 3])
    inter = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
    union = area(a) + area(b) - inter
    return tf.math.divide_no_nan(inter, union)


# ------------------------------------------------------------------------------ anchors


@dataclass(frozen=True)
class AnchorConfig:
    """The anchor grid of a RetinaNet-style detector for one input size."""

    image_size: tuple  # (height, width) of the model input
    min_level: int = 3
    max_level: int = 7
    anchor_size: float = 4.0  # anchor side at scale 1 = anchor_size * stride
    num_scales: int = 3  # octave scales 2**(k / num_scales), k = 0..num_scales-1
    aspect_ratios: tuple = field(default=(0.5, 1.0, 2.0))  # height / width

    @classmethod
    def from_dict(cls, config: dict) -> "AnchorConfig":
        return cls(image_size=tuple(int(s) for s in config["image_size"]),
                   min_level=int(config["min_level"]), max_level=int(config["max_level"]),
                   anchor_size=float(config["anchor_size"]), num_scales=int(config["num_scales"]),
                   aspect_ratios=tuple(float(r) for r in config["aspect_ratios"]))

    @property
    def anchors_per_location(self) -> int:
        return self.num_scales * len(self.aspect_ratios)

    def level_shapes(self) -> list[tuple[int, int]]:
        """Feature-map size of each level: ceil(size / stride), as "same"-padded stride-2 convs give."""
        height, width = self.image_size
        return [(-(-height // 2 ** level), -(-width // 2 ** level))
                for level in range(self.min_level, self.max_level + 1)]

    @property
    def num_anchors(self) -> int:
        return sum(h * w for h, w in self.level_shapes()) * self.anchors_per_location

    def anchors(self) -> np.ndarray:
        """All anchors, yxyx pixels, float32 (num_anchors, 4), in the model's output order."""
        out = []
        for level, (rows, cols) in zip(range(self.min_level, self.max_level + 1), self.level_shapes()):
            stride = 2.0 ** level
            sizes = []
            for ratio in self.aspect_ratios:
                for k in range(self.num_scales):
                    side = self.anchor_size * stride * 2.0 ** (k / self.num_scales)
                    sizes.append((side * math.sqrt(ratio), side / math.sqrt(ratio)))
            sizes = np.asarray(sizes)  # (k, 2) heights, widths
            cy, cx = np.meshgrid((np.arange(rows) + 0.5) * stride, (np.arange(cols) + 0.5) * stride,
                                 indexing="ij")
            centers = np.stack([cy, cx], -1).reshape(-1, 1, 2)  # (rows * cols, 1, 2)
            half = sizes[None] / 2
            out.append(np.concatenate([centers - half, centers + half], -1).reshape(-1, 4))
        return np.concatenate(out).astype(np.float32)


# ------------------------------------------------------------------------------ coding


def encode(boxes, anchors):
    """yxyx boxes relative to yxyx anchors -> (ty, tx, th, tw) (Girshick et al., weights 1)."""
    ah, aw = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    ay, ax = anchors[..., 0] + 0.5 * ah, anchors[..., 1] + 0.5 * aw
    bh = tf.maximum(boxes[..., 2] - boxes[..., 0], 1e-6)
    bw = tf.maximum(boxes[..., 3] - boxes[..., 1], 1e-6)
    by, bx = boxes[..., 0] + 0.5 * bh, boxes[..., 1] + 0.5 * bw
    return tf.stack([(by - ay) / ah, (bx - ax) / aw, tf.math.log(bh / ah), tf.math.log(bw / aw)], -1)


def decode(deltas, anchors):
    """Inverse of `encode`: (ty, tx, th, tw) deltas + yxyx anchors -> yxyx boxes."""
    anchors = tf.cast(anchors, deltas.dtype)
    ah, aw = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    ay, ax = anchors[..., 0] + 0.5 * ah, anchors[..., 1] + 0.5 * aw
    cy = deltas[..., 0] * ah + ay
    cx = deltas[..., 1] * aw + ax
    h = tf.exp(tf.minimum(deltas[..., 2], MAX_LOG_SCALE)) * ah
    w = tf.exp(tf.minimum(deltas[..., 3], MAX_LOG_SCALE)) * aw
    return tf.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], -1)


# ------------------------------------------------------------------------------ matching

NEGATIVE = -1.0  # class target of a background anchor
IGNORE = -2.0  # class target of an anchor that takes no part in the loss


def match_anchors(anchors, boxes, labels, valid, positive_iou=0.5, negative_iou=0.4,
                  low_quality=True):
    """Assign ground truth to anchors; return the (num_anchors, 5) training target.

    anchors (A, 4), boxes (M, 4) yxyx pixels, labels (M,) int, valid (M,) bool (False for
    padding). An anchor is positive when its best IoU >= `positive_iou`, background when below
    `negative_iou`, ignored in between. With `low_quality` (as Detectron2 and torchvision do),
    each box's highest-IoU anchors are positive too, so no box goes without one.
    Target row: [ty, tx, th, tw (zeros unless positive), class (>= 0, NEGATIVE or IGNORE)].
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    iou = pairwise_iou(anchors, boxes)  # (A, M)
    iou = tf.where(valid[None, :], iou, -1.0)
    best_iou = tf.reduce_max(iou, axis=1)
    best_box = tf.argmax(iou, axis=1, output_type=tf.int32)
    positive = best_iou >= positive_iou
    if low_quality:
        per_box_best = tf.reduce_max(iou, axis=0)  # (M,)
        is_best = (iou >= per_box_best[None, :]) & valid[None, :] & (per_box_best[None, :] > 0)
        positive |= tf.reduce_any(is_best, axis=1)
    cls = tf.cast(tf.gather(labels, best_box), tf.float32)
    cls = tf.where(positive, cls, tf.where(best_iou < negative_iou, NEGATIVE, IGNORE))
    deltas = encode(tf.gather(boxes, best_box), anchors)
    deltas = tf.where(positive[:, None], deltas, 0.0)
    return tf.concat([deltas, cls[:, None]], axis=-1)


def pad_boxes(boxes, labels, max_boxes, *extra):
    """Pad (or cut) boxes (n, 4), labels (n,) and `extra` (n,) tensors to `max_boxes` rows.

    Returns (boxes, labels, valid, *extra); padded labels are -1 and padded rows invalid.
    """
    n = tf.minimum(tf.shape(labels)[0], max_boxes)
    pad = max_boxes - n
    out = [tf.pad(boxes[:n], [[0, pad], [0, 0]]),
           tf.pad(tf.cast(labels[:n], tf.int32), [[0, pad]], constant_values=-1),
           tf.range(max_boxes) < n]
    out += [tf.pad(e[:n], [[0, pad]]) for e in extra]
    for t in out:
        t.set_shape([max_boxes] + t.shape.as_list()[1:])
    return tuple(out)


# ------------------------------------------------------------------------------ post-processing


def postprocess(outputs, anchors, num_classes, image_size, score_threshold=0.05, iou_threshold=0.5,
                max_detections=100, pre_nms_top_k=1000, agnostic=False):
    """Model outputs (B, A, 4 + C) -> padded detections (NMS, fixed size).

    Keeps the `pre_nms_top_k` anchors with the highest class score, decodes them and clips them
    to the model input (`image_size` (height, width)). Per-class NMS (default): keeps the
    `pre_nms_top_k` best (anchor, class) pairs and runs one NMS over boxes shifted apart by class,
    so only boxes of one class suppress each other. `agnostic`: each anchor keeps its best class
    and one NMS runs over all boxes (one box per place, Ultralytics' `agnostic_nms`). Either way
    one `tf.image.non_max_suppression_padded`: a builtin-op loop that SavedModel, ONNX and LiteRT
    all run. Returns a dict of boxes (B, D, 4) yxyx model-input pixels, scores (B, D),
    classes (B, D) int32 and num_detections (B,) int32, D = max_detections, zero padding after
    num_detections.
    """
    outputs = tf.convert_to_tensor(outputs, tf.float32)
    deltas, logits = outputs[..., :4], outputs[..., 4:4 + num_classes]
    scores = tf.sigmoid(logits)
    k = min(int(pre_nms_top_k), int(outputs.shape[1]))
    _, top = tf.math.top_k(tf.reduce_max(scores, axis=-1), k=k)  # (B, k) anchors
    size = tf.constant([float(s) for s in image_size])
    boxes = decode(tf.gather(deltas, top, batch_dims=1), tf.gather(anchors, top))
    boxes = tf.minimum(tf.maximum(boxes, 0.0), tf.concat([size, size], 0))
    top_scores = tf.gather(scores, top, batch_dims=1)  # (B, k, C)
    if agnostic:  # already sorted by the anchors' best class score
        pair_scores = tf.reduce_max(top_scores, axis=-1)
        classes = tf.argmax(top_scores, axis=-1, output_type=tf.int32)
        shift = tf.zeros_like(boxes)
    else:
        pair_scores, pairs = tf.math.top_k(tf.reshape(top_scores, [-1, k * num_classes]),
                                           k=min(k, k * num_classes))  # (B, k') best (anchor, class)
        classes = pairs % num_classes
        boxes = tf.gather(boxes, pairs // num_classes, batch_dims=1)
        shift = tf.cast(classes, tf.float32)[..., None] * (tf.reduce_max(size) + 1.0)
    selected, found = tf.image.non_max_suppression_padded(
        boxes + shift, pair_scores, max_detections, iou_threshold=iou_threshold,
        score_threshold=score_threshold, pad_to_max_output_size=True, sorted_input=True,
        canonicalized_coordinates=True)
    valid = tf.range(max_detections)[None, :] < found[:, None]  # (B, D)
    zero = tf.zeros_like

    def keep(values):
        values = tf.gather(values, selected, batch_dims=1)
        mask = valid[..., None] if values.shape.rank == 3 else valid
        return tf.where(mask, values, zero(values))

    return {"boxes": keep(boxes), "scores": keep(pair_scores), "classes": keep(classes),
            "num_detections": tf.cast(found, tf.int32)}
