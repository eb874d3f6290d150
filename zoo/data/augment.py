"""Image augmentation and resizing inside tf.data (float32 pixels, 0..255)."""
from __future__ import annotations

from zoo.data.resize import resize_images
from zoo.lazy import tf


def center_crop_resize(image, size, fraction: float, portable: bool = False):
    """Evaluation view: the central `fraction` of the shorter side, resized to `size`
    (an image (H, W, C) or a batch (B, H, W, C); `portable`: see `resize_images`)."""
    if fraction < 1.0:
        shape = tf.shape(image)
        height, width = shape[-3], shape[-2]
        side = tf.cast(tf.cast(tf.minimum(height, width), tf.float32) * fraction, tf.int32)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[..., top:top + side, left:left + side, :]
    return resize_images(image, size, portable)


def random_crop_window(image, scale):
    """(begin, size) of an Inception-style crop: area fraction in `scale`, aspect 3/4..4/3."""
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4]), min_object_covered=0.0,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=tuple(scale), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    return begin, crop_size


def _window(image, begin, crop_size):
    """tf.slice of a crop window, keeping the static channel count (tf.slice loses it)."""
    crop = tf.slice(image, begin, crop_size)
    crop.set_shape([None, None, image.shape[-1]])
    return crop


def random_resized_crop(image, size, scale):
    """Inception-style random crop, resized to `size`."""
    begin, crop_size = random_crop_window(image, scale)
    return resize_images(_window(image, begin, crop_size), size)


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


# ---------------------------------------------------------------- image + mask (segmentation)
# The same geometric transform is applied to an image (float32, `resize_images`) and its class mask
# (uint8, nearest neighbour, so class ids are never interpolated); pixels a transform brings in
# from outside the image are 0 in the image and IGNORE_INDEX in the mask.

IGNORE_INDEX = 255


def resize_mask(mask, size):
    """(H, W) class mask -> `size`, nearest neighbour (never mixes class ids)."""
    return tf.image.resize(mask[..., None], size, method="nearest")[..., 0]


def resize_image_and_mask(image, mask, size):
    return resize_images(image, size), resize_mask(mask, size)


def _stack(image, mask):
    return tf.concat([image, tf.cast(mask[..., None], image.dtype)], axis=-1)


def _unstack(stacked, mask_dtype):
    return stacked[..., :-1], tf.cast(tf.round(stacked[..., -1]), mask_dtype)


def pad_image_and_mask(image, mask, top, bottom, left, right):
    """Pad with 0 (image) and IGNORE_INDEX (mask)."""
    paddings = [[top, bottom], [left, right]]
    image = tf.pad(image, paddings + [[0, 0]])
    mask = tf.pad(mask, paddings, constant_values=tf.cast(IGNORE_INDEX, mask.dtype))
    return image, mask


def random_crop_image_and_mask(image, mask, size):
    """One random `size` window of both (the inputs must be at least `size`)."""
    stacked = tf.image.random_crop(_stack(image, mask), [size[0], size[1], tf.shape(image)[-1] + 1])
    return _unstack(stacked, mask.dtype)


def pad_to_size_image_and_mask(image, mask, size):
    """Pad both, centred, up to at least `size` (no-op where already large enough)."""
    shape = tf.shape(image)
    extra_h = tf.maximum(size[0] - shape[0], 0)
    extra_w = tf.maximum(size[1] - shape[1], 0)
    return pad_image_and_mask(image, mask, extra_h // 2, extra_h - extra_h // 2,
                              extra_w // 2, extra_w - extra_w // 2)


def random_flip_image_and_mask(image, mask):
    flip = tf.random.uniform([]) < 0.5
    return (tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image),
            tf.cond(flip, lambda: tf.reverse(mask, [1]), lambda: mask))


def random_resized_crop_image_and_mask(image, mask, size, scale):
    """Inception-style crop (area fraction in `scale`, aspect 3/4..4/3) of both, resized to `size`."""
    begin, crop_size = random_crop_window(image, scale)
    image = _window(image, begin, crop_size)
    mask = tf.slice(mask, begin[:2], crop_size[:2])
    return resize_image_and_mask(image, mask, size)


def random_scale_image_and_mask(image, mask, size, scale_range):
    """Scale jitter: resize by a random factor in `scale_range`, then pad / random-crop to `size`."""
    factor = tf.random.uniform([], scale_range[0], scale_range[1])
    scaled = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * factor), tf.int32), 1)
    image, mask = resize_image_and_mask(image, mask, scaled)
    image, mask = pad_to_size_image_and_mask(image, mask, size)
    return random_crop_image_and_mask(image, mask, size)


def augment_image_and_mask(image, mask, size, augment, training: bool):
    """Segmentation view of (image, mask): resize to `size` (image antialiased, mask nearest) and,
    when training, the recipe's augmentations applied identically to both, in this order:
    random_resized_crop (crop_scale), scale_jitter, crop_padding, flip."""
    image = tf.cast(image, tf.float32)
    if training and augment.random_resized_crop:
        image, mask = random_resized_crop_image_and_mask(image, mask, size, augment.crop_scale)
    else:
        image, mask = resize_image_and_mask(image, mask, size)
    if training and augment.scale_jitter:
        image, mask = random_scale_image_and_mask(image, mask, size, augment.scale_jitter)
    if training and augment.crop_padding:
        p = augment.crop_padding
        image, mask = pad_image_and_mask(image, mask, p, p, p, p)
        image, mask = random_crop_image_and_mask(image, mask, size)
    if training and augment.flip:
        image, mask = random_flip_image_and_mask(image, mask)
    image.set_shape([*size, image.shape[-1]])
    mask.set_shape(list(size))
    return image, mask
