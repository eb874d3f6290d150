"""zoo.data.resize: the zoo's one image resize. Shrinking is antialiased like
`tf.image.resize(antialias=True)` and PIL, enlarging is plain bilinear; its portable form (the
serving graphs', so `zoo predict`'s and the exports') is built from ops every export format has
and gives the same numbers as the one tf.data runs."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import perturb, tiny
from zoo.data.resize import filter_taps, resize_images

SHRINKS = [((32, 32), (8, 8)), ((28, 28), (8, 8)), ((37, 53), (8, 11)), ((100, 75), (33, 20)),
           ((9, 40), (20, 7)), ((3, 3), (1, 1))]
ENLARGES = [((8, 8), (37, 53)), ((4, 6), (8, 6)), ((1, 1), (4, 3))]


def random_images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def checkerboard(size):
    """uint8 (size, size, 3): 1-pixel black and white squares."""
    return (np.indices((size, size)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)


@pytest.mark.parametrize("shape, size", SHRINKS)
@pytest.mark.parametrize("portable", [False, True])
def test_shrinking_matches_tf_antialiased_resize(shape, size, portable):
    images = random_images((2, *shape, 3))
    expected = tf.image.resize(images, size, antialias=True).numpy()
    np.testing.assert_allclose(resize_images(tf.constant(images), size, portable).numpy(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("shape, size", ENLARGES)
@pytest.mark.parametrize("portable", [False, True])
def test_enlarging_is_plain_bilinear(shape, size, portable):
    images = random_images((2, *shape, 3))
    expected = tf.image.resize(images, size).numpy()  # half-pixel centres, no antialiasing
    np.testing.assert_allclose(resize_images(tf.constant(images), size, portable).numpy(), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("portable", [False, True])
def test_shrinking_one_axis_and_enlarging_the_other_filters_each_axis_its_own_way(portable):
    image = random_images((12, 5, 3))
    out = resize_images(tf.constant(image), (4, 15), portable).numpy()
    rows = tf.image.resize(image, (4, 5), antialias=True)  # height shrinks: antialiased
    np.testing.assert_allclose(out, tf.image.resize(rows, (4, 15)).numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("portable", [False, True])
def test_shrinking_matches_pil_bilinear_within_one_level(portable):
    image = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    pil = np.asarray(Image.fromarray(image).resize((11, 8), Image.BILINEAR), np.float32)
    assert np.abs(resize_images(tf.constant(image), (8, 11), portable).numpy() - pil).max() <= 1.0


@pytest.mark.parametrize("portable", [False, True])
def test_a_pixel_checkerboard_shrunk_5x_comes_out_grey_where_plain_bilinear_aliases(portable):
    board = tf.constant(checkerboard(40))
    out = resize_images(board, (8, 8), portable).numpy()
    assert np.abs(out - 127.5).max() < 3  # every output pixel averages both colours
    plain = tf.image.resize(board, (8, 8)).numpy()  # samples one pixel in 5: the board again
    assert np.abs(plain - 127.5).min() == 127.5


def dense_weights(in_size, out_size):
    """filter_taps as an (out, in) matrix (a clamped tap adds its weight, 0, to an edge sample)."""
    indices, weights = (t.numpy() for t in filter_taps(in_size, out_size))
    dense = np.zeros((out_size, in_size))
    np.add.at(dense, (np.arange(out_size)[:, None].repeat(indices.shape[1], 1), indices), weights)
    return indices, dense


@pytest.mark.parametrize("in_size, out_size", [(100, 7), (28, 8), (4, 9), (9, 9)])
def test_taps_are_the_triangle_widened_by_the_scale_factor(in_size, out_size):
    indices, dense = dense_weights(in_size, out_size)
    scale = max(in_size / out_size, 1.0)  # the triangle's radius, in input samples
    assert indices.shape[1] == 2 * int(np.ceil(scale)) + 1
    distance = np.abs(np.arange(in_size)[None, :] + 0.5 - (np.arange(out_size)[:, None] + 0.5) * in_size / out_size)
    triangle = np.maximum(1 - distance / scale, 0)
    np.testing.assert_allclose(dense, triangle / triangle.sum(axis=1, keepdims=True), atol=1e-6)
    if in_size == out_size:
        np.testing.assert_array_equal(dense, np.eye(in_size))


@pytest.mark.parametrize("portable", [False, True])
def test_images_batches_uint8_channels_and_dynamic_sizes(portable):
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 7), dtype=np.uint8)  # e.g. stacked frames
    single = resize_images(tf.constant(image), (5, 6), portable)
    assert single.shape == (5, 6, 7) and single.dtype == tf.float32
    batch = resize_images(tf.constant(np.stack([image, image[::-1]])), (5, 6), portable)
    assert batch.shape == (2, 5, 6, 7)
    np.testing.assert_allclose(batch[0].numpy(), single.numpy(), atol=1e-4)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 7], tf.uint8), tf.TensorSpec([2], tf.int32)])
    def dynamic(image, size):
        return resize_images(image, size, portable)

    np.testing.assert_allclose(dynamic(image, tf.constant([5, 6])).numpy(), single.numpy(), atol=1e-4)
    assert resize_images(tf.constant(image, tf.float32), [20, 30], portable).shape == image.shape  # as it is


def test_it_converts_to_litert_builtin_ops_and_answers_the_same():
    """`tf.image.resize(antialias=True)` (ScaleAndTranslate) does not: the reason for the taps.
    To a fixed size (the eval view) and to one computed in the graph (the letterbox)."""
    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    def shrink(images):
        return (resize_images(images, (8, 8), portable=True),
                resize_images(images, tf.shape(images)[1:3] // 3, portable=True))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([shrink.get_concrete_function()], shrink)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    for shape in [(1, 40, 40, 3), (1, 23, 61, 3)]:
        images = random_images(shape)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
        interpreter.invoke()
        outputs = sorted((interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()),
                         key=lambda out: out.shape != (1, 8, 8, 3))
        for out, size in zip(outputs, [(8, 8), (shape[1] // 3, shape[2] // 3)]):
            expected = tf.image.resize(images, size, antialias=True).numpy()
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-3)


def test_the_classifier_serving_graph_shrinks_with_antialiasing():
    """A big checkerboard answers as its PIL-shrunk grey; plain bilinear would have answered as
    the board's every fifth pixel (a checkerboard again)."""
    import zoo
    from zoo.tasks import get_task

    recipe = tiny("digits_cnn")
    model = zoo.create_model("digits_cnn", num_classes=10, input_shape=(8, 8, 3))
    perturb(model)
    serving = get_task("classification").serving_model(model, recipe)
    board = checkerboard(40)
    shrunk = np.asarray(Image.fromarray(board).resize((8, 8), Image.BILINEAR))
    answer = serving.predict_on_batch(board[None])["probabilities"]
    np.testing.assert_allclose(answer, serving.predict_on_batch(shrunk[None])["probabilities"], atol=1e-3)
    aliased = serving.predict_on_batch(board[None, 2::5, 2::5])["probabilities"]
    assert np.abs(answer - aliased).max() > 1e-2
