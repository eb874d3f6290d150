"""zoo.data.augment on constructed images whose pixel values encode their own position, so that
crops, pads, flips and resizes can be checked pixel by pixel (and image against mask)."""
import numpy as np
import pytest
import tensorflow as tf

from zoo.config import AugmentConfig
from zoo.data import augment as A

H, W = 15, 16  # mask value r * W + c stays below IGNORE_INDEX (max 239)


def coords(h=H, w=W):
    return np.meshgrid(np.arange(h), np.arange(w), indexing="ij")


def position_image(h=H, w=W):
    """float32 (h, w, 3): channel 0 = row + 1, channel 1 = col + 1 (0 only where padded), 2 = 7."""
    r, c = coords(h, w)
    return np.stack([r + 1, c + 1, np.full_like(r, 7)], -1).astype(np.float32)


def position_mask(h=H, w=W):
    r, c = coords(h, w)
    return (r * w + c).astype(np.uint8)


def check_aligned(image, mask, tol, w=W):
    """Every mask pixel names (as r * w + c) the source pixel its image pixel came from, within
    `tol` source pixels (0 without resizing; bilinear vs nearest differ by up to half a pixel);
    pixels brought in from outside are IGNORE_INDEX in the mask exactly where the image is 0."""
    image, mask = np.asarray(image), np.asarray(mask)
    ignored = mask == A.IGNORE_INDEX
    np.testing.assert_array_equal(ignored, np.all(image == 0, axis=-1))
    valid = ~ignored
    assert valid.any()
    rows, cols = mask[valid] // w, mask[valid] % w
    np.testing.assert_allclose(image[..., 0][valid] - 1, rows, atol=tol + 1e-4)
    np.testing.assert_allclose(image[..., 1][valid] - 1, cols, atol=tol + 1e-4)
    np.testing.assert_allclose(image[..., 2][valid], 7, atol=1e-4)


# Antialiased shrinking averages a border pixel with its inner neighbours: up to 0.71 source
# pixels from the nearest-neighbour mask for shrinks of up to 3x (half a pixel when enlarging).
SHRINK_TOL = 0.75


def find_window(window, padded):
    """The (dy, dx) offsets at which `window` appears in `padded`."""
    h, w = window.shape[:2]
    return [(dy, dx) for dy in range(padded.shape[0] - h + 1) for dx in range(padded.shape[1] - w + 1)
            if np.array_equal(padded[dy:dy + h, dx:dx + w], window)]


# ---------------------------------------------------------------- resize and crops (images)


def test_resize_shape_dtype_and_values():
    image = tf.constant(np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3))
    out = A.resize_images(image, (8, 6))
    assert out.shape == (8, 6, 3) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), tf.image.resize(tf.cast(image, tf.float32), (8, 6)).numpy(), atol=1e-4)
    # 2x upsampling of a 2x2 block mask with nearest neighbour repeats each pixel.
    blocks = tf.constant(np.array([[1, 2], [3, 4]], np.uint8))
    np.testing.assert_array_equal(A.resize_mask(blocks, (4, 4)).numpy(),
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])


def test_resize_to_the_same_size_is_the_identity():
    image = tf.constant(position_image())
    for size in [(H, W), [H, W]]:
        np.testing.assert_array_equal(A.resize_images(image, size).numpy(), position_image())


def test_center_crop_resize_fraction_one_is_a_plain_resize():
    image = tf.constant(position_image(8, 12))  # not square
    out = A.center_crop_resize(image, (6, 6), 1.0)
    assert out.shape == (6, 6, 3) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), tf.image.resize(image, (6, 6), antialias=True).numpy(), atol=1e-4)


def test_center_crop_resize_half_takes_the_central_square_of_the_shorter_side():
    image = position_image(8, 12)
    # side = 0.5 * 8 = 4, top = (8 - 4) // 2 = 2, left = (12 - 4) // 2 = 4; size 4x4: no resize.
    out = A.center_crop_resize(tf.constant(image), (4, 4), 0.5)
    np.testing.assert_array_equal(out.numpy(), image[2:6, 4:8])
    # Resized: the same crop, resized.
    out = A.center_crop_resize(tf.constant(image), (8, 8), 0.5)
    np.testing.assert_allclose(out.numpy(), tf.image.resize(image[2:6, 4:8], (8, 8)).numpy(), atol=1e-4)
    # Quadrant image: the central half of a square image touches all four quadrants equally.
    quad = np.zeros((8, 8, 1), np.float32)
    quad[:4, 4:], quad[4:, :4], quad[4:, 4:] = 1, 2, 3
    out = A.center_crop_resize(tf.constant(quad), (4, 4), 0.5)
    np.testing.assert_array_equal(out.numpy()[..., 0], np.kron([[0, 1], [2, 3]], np.ones((2, 2))))


def test_random_crop_window_area_and_aspect_in_range():
    image = tf.zeros([100, 100, 3])
    areas, aspects = [], []
    for _ in range(200):
        begin, size = A.random_crop_window(image, (0.25, 0.5))
        begin, size = begin.numpy(), size.numpy()
        assert begin[2] == 0 and size[2] == -1  # all channels
        assert begin[0] + size[0] <= 100 and begin[1] + size[1] <= 100
        areas.append(size[0] * size[1] / 100 ** 2)
        aspects.append(size[1] / size[0])
    areas, aspects = np.array(areas), np.array(aspects)
    assert areas.min() >= 0.25 - 0.01 and areas.max() <= 0.5 + 0.01
    assert aspects.min() >= 3 / 4 - 0.03 and aspects.max() <= 4 / 3 + 0.03
    assert areas.max() - areas.min() > 0.15  # draws spread over the range
    assert 0.3 < areas.mean() < 0.45


def test_random_resized_crop_is_a_resized_window_with_area_in_range():
    h = w = 64
    image = position_image(h, w)
    areas = []
    for _ in range(30):
        out = A.random_resized_crop(tf.constant(image), (h, w), (0.1, 0.3)).numpy()
        assert out.shape == (h, w, 3) and out.dtype == np.float32
        # Upsampling with bilinear: the corner pixels keep the window's corner positions.
        top, left = int(round(out[0, 0, 0])) - 1, int(round(out[0, 0, 1])) - 1
        bottom, right = int(round(out[-1, -1, 0])), int(round(out[-1, -1, 1]))
        window = image[top:bottom, left:right]
        np.testing.assert_allclose(out, tf.image.resize(window, (h, w)).numpy(), atol=1e-4)
        areas.append(window.shape[0] * window.shape[1] / (h * w))
    assert min(areas) >= 0.1 - 0.01 and max(areas) <= 0.3 + 0.01
    assert max(areas) - min(areas) > 0.05


def test_pad_and_random_crop_is_a_shifted_window_of_the_padded_image():
    image = position_image(8, 8)
    padded = np.pad(image, [[2, 2], [2, 2], [0, 0]])
    offsets = set()
    for _ in range(200):
        out = A.pad_and_random_crop(tf.constant(image), 2).numpy()
        assert out.shape == image.shape and out.dtype == np.float32
        found = find_window(out, padded)
        assert len(found) == 1
        offsets.add(found[0])
    # All 25 offsets in [0, 4]^2 are possible; 200 draws see both extremes on each axis.
    assert {dy for dy, _ in offsets} == set(range(5)) and {dx for _, dx in offsets} == set(range(5))


# ---------------------------------------------------------------- augment_image


def test_augment_image_eval_is_deterministic_and_a_center_crop():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8))
    augment = AugmentConfig(flip=True, crop_padding=4, random_resized_crop=True)
    first = A.augment_image(image, (10, 10), augment, training=False, eval_crop=0.5)
    second = A.augment_image(image, (10, 10), augment, training=False, eval_crop=0.5)
    assert first.shape == (10, 10, 3) and first.dtype == tf.float32
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    np.testing.assert_array_equal(first.numpy(), tf.cast(image, tf.float32)[5:15, 10:20].numpy())


def test_augment_image_without_augmentations_trains_on_the_eval_view():
    image = tf.constant(np.random.default_rng(1).integers(0, 256, (20, 30, 3)).astype(np.uint8))
    augment = AugmentConfig()  # all off
    train = A.augment_image(image, (12, 12), augment, training=True)
    evaluate = A.augment_image(image, (12, 12), augment, training=False)
    assert train.shape == (12, 12, 3) and train.dtype == tf.float32
    np.testing.assert_array_equal(train.numpy(), evaluate.numpy())
    np.testing.assert_allclose(train.numpy(), tf.image.resize(tf.cast(image, tf.float32), (12, 12), antialias=True).numpy(),
                               atol=1e-3)


def test_augment_image_flip_mirrors_sometimes():
    image = position_image(6, 6)
    seen = set()
    for _ in range(40):
        out = A.augment_image(tf.constant(image), (6, 6), AugmentConfig(flip=True), training=True).numpy()
        if np.array_equal(out, image):
            seen.add("same")
        elif np.array_equal(out, image[:, ::-1]):
            seen.add("mirrored")
        else:
            pytest.fail("neither the image nor its mirror")
    assert seen == {"same", "mirrored"}


def test_augment_image_training_augmentations_keep_shape():
    image = tf.constant(position_image(20, 24))
    augment = AugmentConfig(flip=True, crop_padding=3, random_resized_crop=True, crop_scale=[0.2, 0.6])
    @tf.function
    def fn(x):
        return A.augment_image(x, (10, 12), augment, training=True)

    outs = [fn(image).numpy() for _ in range(10)]
    for out in outs:
        assert out.shape == (10, 12, 3) and out.dtype == np.float32
    assert fn.get_concrete_function(tf.TensorSpec([None, None, 3])).structured_outputs.shape[:2] == (10, 12)
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])  # random


@pytest.mark.parametrize("segmentation", [False, True], ids=["image", "image_and_mask"])
def test_random_resized_crop_keeps_the_static_channel_count(segmentation):
    augment = AugmentConfig(random_resized_crop=True)

    @tf.function
    def fn(x):
        if segmentation:
            return A.augment_image_and_mask(x, tf.zeros(tf.shape(x)[:2], tf.uint8), (10, 12), augment, True)[0]
        return A.augment_image(x, (10, 12), augment, training=True)

    assert fn.get_concrete_function(tf.TensorSpec([20, 24, 3])).structured_outputs.shape == (10, 12, 3)


def test_augment_image_crop_padding_shifts_within_the_padding():
    image = position_image(8, 8)
    padded = np.pad(image, [[3, 3], [3, 3], [0, 0]])
    offsets = set()
    for _ in range(20):
        out = A.augment_image(tf.constant(image), (8, 8), AugmentConfig(crop_padding=3), training=True)
        found = find_window(out.numpy(), padded)
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 3  # 49 possible offsets


# ---------------------------------------------------------------- image + mask


def test_resize_mask_is_nearest_and_keeps_dtype():
    mask = np.array([[0, 3], [7, 255]], np.uint8)
    out = A.resize_mask(tf.constant(mask), (4, 4))
    assert out.dtype == tf.uint8 and out.shape == (4, 4)
    np.testing.assert_array_equal(out.numpy(), np.repeat(np.repeat(mask, 2, 0), 2, 1))
    # Down again: back to the original, never an interpolated class id.
    np.testing.assert_array_equal(A.resize_mask(out, (2, 2)).numpy(), mask)
    odd = A.resize_mask(tf.constant(mask), (5, 3)).numpy()
    assert set(np.unique(odd)) == {0, 3, 7, 255}


@pytest.mark.parametrize("size", [(7, 9), (30, 31), (40, 5)])
def test_resize_image_and_mask_stay_aligned(size):
    image, mask = A.resize_image_and_mask(tf.constant(position_image()), tf.constant(position_mask()), size)
    assert image.shape == (*size, 3) and image.dtype == tf.float32
    assert mask.shape == size and mask.dtype == tf.uint8
    check_aligned(image, mask, tol=SHRINK_TOL)


def test_pad_image_and_mask_pads_zero_and_ignore():
    image, mask = position_image(), position_mask()
    out_image, out_mask = A.pad_image_and_mask(tf.constant(image), tf.constant(mask), 1, 2, 3, 0)
    assert out_image.shape == (H + 3, W + 3, 3) and out_mask.shape == (H + 3, W + 3)
    assert out_mask.dtype == tf.uint8
    np.testing.assert_array_equal(out_image.numpy(), np.pad(image, [[1, 2], [3, 0], [0, 0]]))
    np.testing.assert_array_equal(out_mask.numpy(), np.pad(mask, [[1, 2], [3, 0]], constant_values=255))
    check_aligned(out_image, out_mask, tol=0)


def test_pad_to_size_image_and_mask_centres_and_never_shrinks():
    image, mask = position_image(5, 6), position_mask(5, 6)
    out_image, out_mask = A.pad_to_size_image_and_mask(tf.constant(image), tf.constant(mask), (8, 6))
    np.testing.assert_array_equal(out_image.numpy(), np.pad(image, [[1, 2], [0, 0], [0, 0]]))
    np.testing.assert_array_equal(out_mask.numpy(), np.pad(mask, [[1, 2], [0, 0]], constant_values=255))
    out_image, out_mask = A.pad_to_size_image_and_mask(tf.constant(image), tf.constant(mask), (3, 9))
    np.testing.assert_array_equal(out_image.numpy(), np.pad(image, [[0, 0], [1, 2], [0, 0]]))
    np.testing.assert_array_equal(out_mask.numpy(), np.pad(mask, [[0, 0], [1, 2]], constant_values=255))


def test_random_crop_image_and_mask_takes_the_same_window_of_both():
    image, mask = position_image(), position_mask()
    offsets = set()
    for _ in range(30):
        out_image, out_mask = A.random_crop_image_and_mask(tf.constant(image), tf.constant(mask), (6, 7))
        assert out_image.shape == (6, 7, 3) and out_image.dtype == tf.float32
        assert out_mask.shape == (6, 7) and out_mask.dtype == tf.uint8
        found = find_window(out_image.numpy(), image)
        assert len(found) == 1
        (dy, dx), = found
        np.testing.assert_array_equal(out_mask.numpy(), mask[dy:dy + 6, dx:dx + 7])
        offsets.add((dy, dx))
    assert len(offsets) > 5


def test_random_flip_image_and_mask_flips_both_or_neither():
    image, mask = position_image(), position_mask()
    seen = set()
    for _ in range(40):
        out_image, out_mask = A.random_flip_image_and_mask(tf.constant(image), tf.constant(mask))
        flipped = np.array_equal(out_image.numpy(), image[:, ::-1])
        assert flipped or np.array_equal(out_image.numpy(), image)
        np.testing.assert_array_equal(out_mask.numpy(), mask[:, ::-1] if flipped else mask)
        check_aligned(out_image, out_mask, tol=0)
        seen.add(flipped)
    assert seen == {True, False}


def test_random_resized_crop_image_and_mask_stay_aligned():
    image, mask = tf.constant(position_image()), tf.constant(position_mask())
    spans = set()
    for _ in range(20):
        out_image, out_mask = A.random_resized_crop_image_and_mask(image, mask, (12, 10), (0.08, 1.0))
        assert out_image.shape == (12, 10, 3) and out_mask.shape == (12, 10) and out_mask.dtype == tf.uint8
        check_aligned(out_image, out_mask, tol=0.5)
        spans.add((int(out_mask.numpy().min()), int(out_mask.numpy().max())))
    assert len(spans) > 1  # different windows


@pytest.mark.parametrize("scale_range", [(0.5, 0.8), (1.3, 1.8), (0.6, 1.6)])
def test_random_scale_image_and_mask_stay_aligned(scale_range):
    image, mask = tf.constant(position_image()), tf.constant(position_mask())
    padded = []
    for _ in range(10):
        out_image, out_mask = A.random_scale_image_and_mask(image, mask, (H, W), scale_range)
        assert out_image.shape == (H, W, 3) and out_mask.shape == (H, W) and out_mask.dtype == tf.uint8
        check_aligned(out_image, out_mask, tol=SHRINK_TOL)
        padded.append(bool((out_mask.numpy() == 255).any()))
    if scale_range[1] < 1:  # shrunk: always padded back up to `size`
        assert all(padded)
    if scale_range[0] > 1:  # grown: always a crop, never padding
        assert not any(padded)


def test_augment_image_and_mask_eval_is_a_deterministic_resize():
    image, mask = tf.constant(position_image()), tf.constant(position_mask())
    augment = AugmentConfig(flip=True, crop_padding=2, random_resized_crop=True, scale_jitter=[0.5, 2.0])
    out_image, out_mask = A.augment_image_and_mask(image, mask, (9, 11), augment, training=False)
    again_image, again_mask = A.augment_image_and_mask(image, mask, (9, 11), augment, training=False)
    plain_image, plain_mask = A.resize_image_and_mask(image, mask, (9, 11))
    assert out_image.dtype == tf.float32 and out_mask.dtype == tf.uint8
    np.testing.assert_array_equal(out_image.numpy(), again_image.numpy())
    np.testing.assert_array_equal(out_mask.numpy(), again_mask.numpy())
    np.testing.assert_array_equal(out_image.numpy(), plain_image.numpy())
    np.testing.assert_array_equal(out_mask.numpy(), plain_mask.numpy())


def test_augment_image_and_mask_without_augmentations_trains_on_the_eval_view():
    image, mask = tf.constant(position_image()), tf.constant(position_mask())
    train = A.augment_image_and_mask(image, mask, (9, 11), AugmentConfig(), training=True)
    evaluate = A.augment_image_and_mask(image, mask, (9, 11), AugmentConfig(), training=False)
    for a, b in zip(train, evaluate):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_augment_image_and_mask_padding_and_flip_are_exactly_aligned():
    """No resize (image already at `size`): padding, cropping and flipping keep every pixel exact."""
    image, mask = tf.constant(position_image()), tf.constant(position_mask())
    augment = AugmentConfig(flip=True, crop_padding=3)
    ignored = False
    for _ in range(20):
        out_image, out_mask = A.augment_image_and_mask(image, mask, (H, W), augment, training=True)
        assert out_image.shape == (H, W, 3) and out_mask.shape == (H, W)
        check_aligned(out_image, out_mask, tol=0)
        ignored |= bool((out_mask.numpy() == 255).any())
    assert ignored


def test_augment_image_and_mask_all_augmentations_stay_aligned():
    image, mask = tf.constant(position_image()), tf.constant(position_mask())
    augment = AugmentConfig(flip=True, crop_padding=2, random_resized_crop=True, crop_scale=[0.3, 1.0],
                            scale_jitter=[0.7, 1.4])
    @tf.function
    def fn(x, m):
        return A.augment_image_and_mask(x, m, (H, W), augment, training=True)

    for _ in range(20):
        out_image, out_mask = fn(image, mask)
        assert out_image.shape == (H, W, 3) and out_mask.shape == (H, W) and out_mask.dtype == tf.uint8
        # Two resizes (crop, then jitter): nearest and bilinear may each be off by half a pixel.
        check_aligned(out_image, out_mask, tol=1.0)
