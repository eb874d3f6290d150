"""keras.ops twins of the serving graphs' TensorFlow ops, for the other Keras backends (JAX,
PyTorch): the eval view's crop and resize, the class map's resize, the letterbox, box decoding
and NMS, with the numbers of the TensorFlow ops up to float rounding, compiled with the model
on JAX (tests/test_backends_serving.py).

On TensorFlow the serving layers (`zoo.serving`, `zoo.tasks.detection.evaluation`) keep their
TensorFlow ops: `zoo export` traces those into SavedModel, LiteRT and ONNX for images of any
size. Elsewhere a layer sees its input's static shape (JAX traces once per input shape, PyTorch
runs eagerly), so sizes, crop windows and filter taps are NumPy constants worked out with the
TensorFlow graph's float32 arithmetic, and only the pixel and box work is keras.ops.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.data.boxes import MAX_LOG_SCALE

NMS_EPSILON = 1e-8  # added to the union, as `tf.image.non_max_suppression_padded`


# ------------------------------------------------------------------------------ images


def filter_taps(in_size: int, out_size: int, antialias: bool = True):
    """`zoo.data.resize.filter_taps` in NumPy (the same integer arithmetic): (indices, float32
    weights), both (out_size, taps). `antialias=False`: plain bilinear, the triangle at a radius
    of one input sample whatever the scale (`tf.image.resize`'s bilinear)."""
    samples = (2 * np.arange(out_size) + 1) * in_size
    radius = 2 * (max(in_size, out_size) if antialias else out_size)
    taps = 2 * ((radius + 2 * out_size - 1) // (2 * out_size)) + 1
    indices = ((samples - radius) // (2 * out_size))[:, None] + np.arange(taps)
    weights = np.maximum(radius - np.abs(samples[:, None] - (2 * indices + 1) * out_size), 0)
    weights = np.where((indices >= 0) & (indices < in_size), weights, 0)
    weights = weights.astype(np.float32) / weights.sum(axis=1, keepdims=True).astype(np.float32)
    return np.clip(indices, 0, in_size - 1), weights


def _resize_axis(x, out_size: int, antialias: bool):
    """(B, in, M) -> (B, out_size, M), as `zoo.data.resize.resize_axis`."""
    indices, weights = filter_taps(int(x.shape[1]), out_size, antialias)
    rows = ops.take(x, indices.reshape(-1), axis=1)
    rows = ops.reshape(rows, (-1, out_size, indices.shape[1], x.shape[2]))
    return ops.sum(rows * weights[None, :, :, None], axis=2)


def resize_images(images, size, antialias: bool = True):
    """A batch (B, H, W, C) -> float32 (B, *size, C): `zoo.data.resize.resize_images`'s
    triangle filter (`antialias=False`: plain bilinear, `tf.image.resize`'s default)."""
    images = ops.cast(images, "float32")
    _, height, width, channels = images.shape
    out_h, out_w = (int(s) for s in size)
    if (height, width) == (out_h, out_w):
        return images
    tall = _resize_axis(ops.reshape(images, (-1, height, width * channels)), out_h, antialias)
    wide = _resize_axis(ops.reshape(tall, (-1, width, channels)), out_w, antialias)
    return ops.reshape(wide, (-1, out_h, out_w, channels))


def center_crop_resize(images, size, fraction: float):
    """`zoo.data.augment.center_crop_resize` of a batch (B, H, W, C)."""
    if fraction < 1.0:
        height, width = images.shape[1:3]
        side = int(np.float32(min(height, width)) * np.float32(fraction))
        top, left = (height - side) // 2, (width - side) // 2
        images = images[:, top:top + side, left:left + side, :]
    return resize_images(images, size)


def letterbox_size(height: int, width: int, size) -> tuple[int, int]:
    """The size an (height, width) image scales to inside `size`, aspect kept (float32 and
    round half to even, as `zoo.tasks.detection.geometry`'s `letterbox_scale` / `scaled_size`)."""
    scale = min(np.float32(size[0]) / np.float32(height), np.float32(size[1]) / np.float32(width))
    return tuple(max(int(np.round(np.float32(n) * scale)), 1) for n in (height, width))


# ------------------------------------------------------------------------------ detections


def decode(deltas, anchors):
    """`zoo.data.boxes.decode`: (ty, tx, th, tw) deltas + yxyx anchors -> yxyx boxes."""
    ah, aw = anchors[..., 2] - anchors[..., 0], anchors[..., 3] - anchors[..., 1]
    ay, ax = anchors[..., 0] + 0.5 * ah, anchors[..., 1] + 0.5 * aw
    cy = deltas[..., 0] * ah + ay
    cx = deltas[..., 1] * aw + ax
    h = ops.exp(ops.minimum(deltas[..., 2], MAX_LOG_SCALE)) * ah
    w = ops.exp(ops.minimum(deltas[..., 3], MAX_LOG_SCALE)) * aw
    return ops.stack([cy - 0.5 * h, cx - 0.5 * w, cy + 0.5 * h, cx + 0.5 * w], -1)


def _gather_rows(values, indices):
    """values (B, N, ...) at indices (B, K) -> (B, K, ...)."""
    index = ops.reshape(indices, (*indices.shape, *[1] * (len(values.shape) - 2)))
    index = ops.broadcast_to(index, (*indices.shape, *values.shape[2:]))
    return ops.take_along_axis(values, index, axis=1)


def greedy_nms(boxes, scores, max_detections: int, iou_threshold: float, score_threshold: float):
    """Greedy NMS of boxes (B, N, 4) yxyx sorted by scores (B, N), descending, as
    `tf.image.non_max_suppression_padded(sorted_input=True, canonicalized_coordinates=True)`
    selects: scores above `score_threshold`, boxes not all zeros, a box suppressed by a kept
    better one at IoU >= `iou_threshold`. A fixed-size loop over the candidates (to the last one
    above the threshold), so it compiles. -> (selected (B, D) indices, 0 after num_detections;
    num_detections (B,) int32), D = max_detections."""
    if boxes.shape[1] < max_detections:  # zero boxes are never selected
        pad = max_detections - boxes.shape[1]
        boxes, scores = ops.pad(boxes, ((0, 0), (0, pad), (0, 0))), ops.pad(scores, ((0, 0), (0, pad)))
    count = boxes.shape[1]
    positions = ops.arange(count, dtype="int32")
    alive = (scores > score_threshold) & ops.any(boxes > 0, axis=-1)
    areas = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    last = ops.max(ops.where(alive, positions + 1, 0))

    def suppress(i, alive):
        box, box_area = ops.take(boxes, i, axis=1)[:, None, :], ops.take(areas, i, axis=1)[:, None]
        height = ops.maximum(ops.minimum(box[..., 2], boxes[..., 2]) - ops.maximum(box[..., 0], boxes[..., 0]), 0.0)
        width = ops.maximum(ops.minimum(box[..., 3], boxes[..., 3]) - ops.maximum(box[..., 1], boxes[..., 1]), 0.0)
        inter = width * height
        iou = inter / (box_area + areas - inter + NMS_EPSILON)
        kept = ops.take(alive, i, axis=1)[:, None]
        return i + 1, alive & ~(kept & (positions > i) & (iou >= iou_threshold))

    _, alive = ops.while_loop(lambda i, _: i < last, suppress, (ops.convert_to_tensor(0, "int32"), alive))
    found = ops.minimum(ops.sum(ops.cast(alive, "int32"), axis=1), max_detections)
    _, selected = ops.top_k(-ops.where(alive, positions, positions + count), max_detections)
    valid = ops.arange(max_detections, dtype="int32")[None, :] < found[:, None]
    return ops.where(valid, ops.cast(selected, "int32"), 0), ops.cast(found, "int32")


def postprocess(outputs, anchors, num_classes, image_size, score_threshold, iou_threshold,
                max_detections, pre_nms_top_k, agnostic):
    """`zoo.data.boxes.postprocess` in keras.ops: model outputs (B, A, 4 + C) -> the same
    padded detections (top-k anchors, decode, clip, per-class or agnostic `greedy_nms`)."""
    outputs = ops.cast(outputs, "float32")
    deltas, scores = outputs[..., :4], ops.sigmoid(outputs[..., 4:4 + num_classes])
    k = min(int(pre_nms_top_k), int(outputs.shape[1]))
    _, top = ops.top_k(ops.max(scores, axis=-1), k)  # (B, k) anchors
    size = np.asarray(image_size, np.float32)
    boxes = decode(_gather_rows(deltas, top), ops.take(np.asarray(anchors, np.float32), top, axis=0))
    boxes = ops.minimum(ops.maximum(boxes, 0.0), np.concatenate([size, size]))
    top_scores = _gather_rows(scores, top)  # (B, k, C)
    if agnostic:  # already sorted by the anchors' best class score
        pair_scores = ops.max(top_scores, axis=-1)
        classes = ops.cast(ops.argmax(top_scores, axis=-1), "int32")
        shifted = boxes
    else:
        pair_scores, pairs = ops.top_k(ops.reshape(top_scores, (-1, k * num_classes)), min(k, k * num_classes))
        pairs = ops.cast(pairs, "int32")
        classes = pairs % num_classes
        boxes = _gather_rows(boxes, pairs // num_classes)
        shifted = boxes + ops.cast(classes, "float32")[..., None] * (float(size.max()) + 1.0)
    selected, found = greedy_nms(shifted, pair_scores, max_detections, iou_threshold, score_threshold)
    valid = ops.arange(max_detections, dtype="int32")[None, :] < found[:, None]

    def keep(values):
        values = _gather_rows(values, selected)
        mask = valid[..., None] if len(values.shape) == 3 else valid
        return ops.where(mask, values, ops.zeros_like(values))

    return {"boxes": keep(boxes), "scores": keep(pair_scores), "classes": keep(classes), "num_detections": found}


def is_tensorflow() -> bool:
    """Whether the serving layers run their TensorFlow ops (the exported graphs)."""
    return keras.backend.backend() == "tensorflow"
