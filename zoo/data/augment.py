"""Image augmentation and resizing inside tf.data (float32 pixels, 0..255)."""
from __future__ import annotations

import tensorflow as tf


def resize(image, size, method="bilinear"):
    return tf.image.resize(image, size, method=method)


def center_crop_resize(image, size, fraction: float):
    """Evaluation view: the central `fraction` of the shorter side, resized to `size`."""
    if fraction < 1.0:
        shape = tf.shape(image)
        side = tf.cast(tf.cast(tf.minimum(shape[0], shape[1]), tf.float32) * fraction, tf.int32)
        top, left = (shape[0] - side) // 2, (shape[1] - side) // 2
        image = image[top:top + side, left:left + side]
    return resize(image, size)


def random_resized_crop(image, size, scale):
    """Inception-style crop: random area fraction in `scale`, aspect ratio in [3/4, 4/3]."""
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=tuple(scale), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    return resize(tf.slice(image, begin, crop_size), size)


def pad_and_random_crop(image, padding: int):
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.random_crop(padded, shape)


def augment_image(image, size, augment, training: bool, eval_crop: float = 1.0):
    """Resize to `size` and apply the recipe's classification augmentations when training."""
    image = tf.cast(image, tf.float32)
    if training and augment.random_resized_crop:
        image = random_resized_crop(image, size, augment.crop_scale)
    else:
        image = center_crop_resize(image, size, 1.0 if training else eval_crop)
    if training and augment.crop_padding:
        image = pad_and_random_crop(image, augment.crop_padding)
    if training and augment.flip:
        image = tf.image.random_flip_left_right(image)
    image.set_shape([*size, image.shape[-1]])
    return image
