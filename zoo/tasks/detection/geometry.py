"""Detection geometry: canonical boxes cleaned up, the letterbox (+ flip and scale jitter) that
places an image and its boxes in the model input, and the way back to original-image pixels.

Boxes come in as yxyx_norm (0..1 of their image), leave `place` as yxyx pixels of the model
input, and `to_original_pixels` maps model-input pixels back onto the original image.
"""
from __future__ import annotations

import numpy as np

from zoo.data import boxes as bx
from zoo.data.resize import resize_images
from zoo.errors import DataError
from zoo.lazy import tf

MIN_VISIBLE = 0.25  # a cropped box is dropped when less than this fraction of it stays visible


def sanitize(boxes, *columns):
    """Clip yxyx_norm boxes to the image, drop empty ones (and the matching `columns` rows)."""
    boxes = tf.clip_by_value(tf.cast(boxes, tf.float32), 0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return (tf.boolean_mask(boxes, keep), *(tf.boolean_mask(c, keep) for c in columns))


def canonical_objects(example):
    """A canonical example -> (image, boxes yxyx_norm, labels, crowd, area), empty boxes
    dropped; crowd defaults to False and area to -1 (unknown) where the source has none."""
    labels = tf.cast(example["labels"], tf.int32)
    n = tf.shape(labels)[0]
    crowd = example["crowd"][:n] if "crowd" in example else tf.zeros([n], tf.bool)
    area = example["area"][:n] if "area" in example else -tf.ones([n], tf.float32)
    boxes, labels, crowd, area = sanitize(example["boxes"][:n], labels, crowd, area)
    return example["image"], boxes, labels, crowd, area


def anchor_targets(image, boxes, labels, anchors, size, max_boxes, training=False, augment=None):
    """uint8 image + yxyx_norm boxes and labels -> (float32 image letterboxed to `size`, the
    (num_anchors, 5) training target): `place` (with augmentation when training), the boxes
    still visible padded to `max_boxes`, matched to `anchors` (`zoo.data.boxes.match_anchors`)."""
    image, pixels, visible = place(image, boxes, size, training, augment)
    pixels, labels = tf.boolean_mask(pixels, visible), tf.boolean_mask(labels, visible)
    pixels, labels, valid = bx.pad_boxes(pixels, labels, max_boxes)
    return image, bx.match_anchors(anchors, pixels, labels, valid)


def letterbox_scale(height, width, size):
    """Scale that fits an (height, width) image inside `size`, aspect kept."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    return tf.minimum(size[0] / h, size[1] / w)


def scaled_size(height, width, scale):
    """(height, width) * scale, rounded, at least 1 pixel: the size `place` resizes to."""
    def side(n):
        return tf.maximum(tf.cast(tf.round(tf.cast(n, tf.float32) * scale), tf.int32), 1)

    return side(height), side(width)


def place(image, boxes, size, training: bool, augment):
    """Letterbox (+ flip and scale jitter when training): uint8 image + yxyx_norm boxes ->
    float32 (H, W, 3) image, yxyx pixel boxes in it, and a keep mask over the boxes."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    image = tf.cast(image, tf.float32)
    if training and augment.flip:
        flip = tf.random.uniform([]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        flipped = tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], -1)
        boxes = tf.where(flip, flipped, boxes)
    scale = letterbox_scale(height, width, size)
    if training and augment.scale_jitter:
        scale *= tf.random.uniform([], augment.scale_jitter[0], augment.scale_jitter[1])
    new_h, new_w = scaled_size(height, width, scale)
    image = resize_images(image, tf.stack([new_h, new_w]))
    pixels = bx.normalized_to_pixels(boxes, new_h, new_w)
    top = left = tf.constant(0)
    if training and augment.scale_jitter:  # random window where the image is larger than size
        top = tf.random.uniform([], 0, tf.maximum(new_h - size[0], 0) + 1, tf.int32)
        left = tf.random.uniform([], 0, tf.maximum(new_w - size[1], 0) + 1, tf.int32)
    image = image[top:top + size[0], left:left + size[1]]
    visible_h, visible_w = tf.shape(image)[0], tf.shape(image)[1]
    image = tf.pad(image, [[0, size[0] - visible_h], [0, size[1] - visible_w], [0, 0]])
    image.set_shape([size[0], size[1], 3])
    offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
    limit = tf.cast(tf.stack([visible_h, visible_w, visible_h, visible_w]), tf.float32)
    shifted = pixels - offset
    clipped = tf.clip_by_value(shifted, 0.0, limit)
    keep = ((bx.area(clipped) >= MIN_VISIBLE * bx.area(shifted))
            & (clipped[:, 2] - clipped[:, 0] >= 1.0) & (clipped[:, 3] - clipped[:, 1] >= 1.0))
    return image, clipped, keep


def to_original_pixels(boxes, height, width, size):
    """Model-input yxyx pixels -> original-image yxyx pixels (undo `place`'s letterbox), clipped."""
    scale = min(size[0] / height, size[1] / width)
    # `place` resized to the rounded size: undo exactly that factor on each axis.
    sy = max(round(height * scale), 1) / height
    sx = max(round(width * scale), 1) / width
    boxes = np.asarray(boxes, np.float64) / [sy, sx, sy, sx]
    return np.clip(boxes, 0, [height, width, height, width])


def model_anchor_config(model) -> bx.AnchorConfig:
    """The anchor grid a built (or loaded) detector recorded in its anchor layer (the layer
    with an `anchor_config()`: zoo.models.layers.AnchorOutputs; a task never imports models)."""
    for layer in model.layers:
        if callable(getattr(layer, "anchor_config", None)):
            config = bx.AnchorConfig.from_dict(layer.anchor_config())
            if model.output_shape[1] not in (None, config.num_anchors):
                raise DataError(f"model {model.name}: {model.output_shape[1]} outputs for "
                                f"{config.num_anchors} anchors")
            return config
    raise DataError(f"model {model.name} is not a zoo detector (no anchor layer)")
