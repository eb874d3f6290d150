"""The one image resize of the zoo: training, evaluation and the serving graphs that `zoo export`
writes all scale images with `resize_images`, so every format sees the pixels training saw.

Shrinking is antialiased: a triangle (bilinear) filter whose support widens by the scale factor,
as PIL's and `tf.image.resize(antialias=True)`; enlarging is plain bilinear (the same filter at
support 1). Pixel centres at half-integers, as `tf.image.resize`. Two implementations of that one
filter, the same numbers within 1e-4 of a 0..255 pixel (tests/test_resize.py):
* inside tf.data, `tf.image.resize(antialias=True)`: TensorFlow's ScaleAndTranslate kernel, the
  fastest (a 500x375 photo to 224x224: 0.9 ms against 1.8 ms, plain bilinear 0.3 ms);
* `portable=True`, inside the serving graphs: ScaleAndTranslate has no LiteRT builtin and tf2onnx
  does not convert it, so each axis gathers the input rows (columns) each output sample reads and
  sums them with the triangle's weights, computed in the graph from the dynamic sizes with integer
  range / abs / maximum: ops every format has, at about twice the input's size in work per axis.
"""
from __future__ import annotations

from zoo.lazy import tf

# Name scope of the resize's ops: int8 exports keep them float (`zoo.export`), as the builtin
# resize kernels compute inside; in int8, a tap's weight (1 / (2 * scale) and less) and the
# tap's share of a pixel would lose several percent, and the taps' intermediate values grow with
# the image size, which calibration cannot foresee.
RESIZE_SCOPE = "zoo_resize"


def filter_taps(in_size, out_size):
    """What each of `out_size` samples reads of `in_size`: (indices, weights), both (out_size,
    taps), the input samples (clamped into range) and their float32 weights, summing to 1 per row.

    Output sample o reads the input at (o + 0.5) * in / out, input sample j sits at j + 0.5, and
    the triangle's radius is max(in / out, 1) input samples. Measured in 1 / (2 * out) of an input
    sample all three are integers, so the weights are exact up to the final division; `taps`
    covers the triangle's width (+ 1 for where it starts), and taps out of range weigh 0."""
    in_size, out_size = tf.cast(in_size, tf.int32), tf.cast(out_size, tf.int32)
    samples = (2 * tf.range(out_size) + 1) * in_size
    radius = 2 * tf.maximum(in_size, out_size)
    taps = 2 * ((radius + 2 * out_size - 1) // (2 * out_size)) + 1
    first = (samples - radius) // (2 * out_size)  # the leftmost input sample the triangle may touch
    # (out, taps). expand_dims, not [:, None]: that slice became a flex op in a detector's LiteRT export.
    indices = tf.expand_dims(first, 1) + tf.range(taps)
    weights = tf.maximum(radius - tf.abs(tf.expand_dims(samples, 1) - (2 * indices + 1) * out_size), 0)
    weights = tf.where((indices >= 0) & (indices < in_size), weights, 0)
    totals = tf.reduce_sum(weights, axis=1, keepdims=True)  # > 0: the nearest input is within 1/2
    weights = tf.cast(weights, tf.float32) / tf.cast(totals, tf.float32)
    return tf.clip_by_value(indices, 0, in_size - 1), weights


def resize_axis(x, out_size):
    """(B, in, M) -> (B, out_size, M): each output row the weighted sum of its taps' input rows."""
    shape = tf.shape(x)
    indices, weights = filter_taps(shape[1], out_size)
    rows = tf.gather(x, tf.reshape(indices, [-1]), axis=1)  # (B, out * taps, M)
    rows = tf.reshape(rows, tf.stack([shape[0], out_size, tf.shape(indices)[1], shape[2]]))
    return tf.reduce_sum(rows * tf.expand_dims(tf.cast(weights, x.dtype), -1), axis=2)


def resize_images(images, size, portable: bool = False):
    """Images (H, W, C) or a batch (B, H, W, C), any number of channels -> float, at `size`
    (height, width: ints or an int tensor); returned as they are where already of that size.
    `portable`: built from ops every export format converts (the serving graphs; see the module
    doc), else TensorFlow's own antialiased kernel (tf.data)."""
    if not images.dtype.is_floating:
        images = tf.cast(images, tf.float32)
    if isinstance(size, (list, tuple)) and tuple(images.shape[-3:-1]) == tuple(size):
        return images
    if not portable:
        return tf.image.resize(images, size, antialias=True)
    batch = images if images.shape.rank == 4 else images[None]
    with tf.name_scope(RESIZE_SCOPE):
        shape = tf.shape(batch)
        tall = resize_axis(tf.reshape(batch, [shape[0], shape[1], -1]), size[0])  # (B, out_h, W * C)
        wide = resize_axis(tf.reshape(tall, [-1, shape[2], shape[3]]), size[1])  # (B * out_h, out_w, C)
        out = tf.reshape(wide, tf.stack([shape[0], size[0], size[1], shape[3]]))
    known = size if isinstance(size, (list, tuple)) else (None, None)
    out.set_shape([batch.shape[0], *(s if isinstance(s, int) else None for s in known), batch.shape[-1]])
    return out if images.shape.rank == 4 else out[0]
