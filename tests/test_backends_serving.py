"""Prediction and evaluation on JAX and PyTorch agree with TensorFlow: the serving graphs'
keras.ops path (`zoo.serving_ops`: eval view, class map, letterbox, box decode, NMS compiled
with the model) against the TensorFlow ops `zoo export` writes, on the four shipped weights. One
script runs under each backend in a subprocess (all at once); the tests compare what they saved."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

OTHERS = [backend for backend in ("jax", "torch") if importlib.util.find_spec(backend)]
if not OTHERS:
    pytest.skip("neither jax nor torch is installed", allow_module_level=True)

SCRIPT = textwrap.dedent('''
    import json, sys
    import keras
    import numpy as np
    import zoo
    from zoo.data.synthetic import generate

    def images(name, count, size):
        key = "video" if name == "moving_shapes" else "image"
        return np.stack([generate(name, i, 7, size)[key] for i in range(count)])

    def digits(count, size):
        # digit-like pictures: blocky white strokes on black, upscaled to an odd size
        rng = np.random.default_rng(3)
        small = (rng.random((count, 8, 8)) < 0.3).astype(np.uint8) * 255
        rows = np.linspace(0, 7, size[0]).round().astype(int)
        cols = np.linspace(0, 7, size[1]).round().astype(int)
        return np.repeat(small[:, rows][:, :, cols][..., None], 3, -1)

    out, metrics = {}, {}
    if keras.backend.backend() == "jax":  # the keras.ops twins against the TensorFlow ops, here
        import jax, tensorflow as tf
        from zoo import serving_ops
        from zoo.data import boxes as bx
        from zoo.data.resize import resize_images
        rng = np.random.default_rng(0)
        anchors = bx.AnchorConfig((64, 96)).anchors()
        raw = np.concatenate([rng.normal(0, 0.5, (3, len(anchors), 4)),
                              rng.normal(-2, 2, (3, len(anchors), 3))], -1).astype(np.float32)
        raw[1, :5, :4], raw[1, :5, 4:] = 0.0, 5.0  # identical boxes, tied scores
        raw[2, :, 4:] = -20.0  # nothing above the score threshold
        for agnostic, top_k, iou in ((True, 1000, 0.45), (False, 1000, 0.5), (False, 40, 0.5)):
            args = (anchors, 3, (64, 96), 0.05, iou, 100, top_k, agnostic)
            ops_found = jax.jit(lambda o: serving_ops.postprocess(o, *args))(raw)
            for name, found in (("tf", bx.postprocess(raw, *args)), ("ops", ops_found)):
                for field, value in found.items():
                    out[f"nms/{agnostic},{top_k}/{field}/{name}"] = np.asarray(value)
        for shape, size in (((2, 200, 13, 3), (64, 48)), ((2, 5, 300, 3), (224, 224))):
            x = rng.integers(0, 256, shape).astype(np.float32)
            out[f"resize/{shape}/tf"] = resize_images(tf.constant(x), tf.constant(size), portable=True).numpy()
            out[f"resize/{shape}/ops"] = np.asarray(jax.jit(lambda v: serving_ops.resize_images(v, size))(x))
    classes = zoo.load_predictor("digits_cnn.digits").predict(digits(4, (13, 11)))
    out["digits/probabilities"] = np.stack([r.probabilities for r in classes])
    masks = zoo.load_predictor("unet_small.shapes").predict(images("shapes_segmentation", 3, (45, 70)))
    out["shapes_unet/masks"] = np.stack([r.mask for r in masks])
    clips = zoo.load_predictor("cnn_lstm.moving_shapes").predict(images("moving_shapes", 2, (37, 53)))
    out["moving_shapes/probabilities"] = np.stack([r.probabilities for r in clips])
    for agnostic in (True, False):
        detector = zoo.load_predictor("retinanet_small.shapes", agnostic_nms=agnostic, min_score=0.0)
        for i, found in enumerate(detector.predict(images("shapes_detection", 3, (75, 130))), 1):
            for field in ("boxes", "scores", "labels"):
                out[f"detections/agnostic={agnostic}/{i}/{field}"] = getattr(found, field)
    for recipe in ("digits_cnn", "shapes_unet", "moving_shapes_cnn_lstm", "shapes_retinanet"):
        # float32: the per-backend bfloat16 kernels of `auto` precision differ in rounding
        overrides = ["data.eval_size=32", "runtime.mixed_precision=float32"]
        metrics[recipe] = zoo.evaluate(zoo.load_recipe(recipe, overrides), weights="pretrained")
    np.savez(sys.argv[1] + ".npz", **out)
    with open(sys.argv[1] + ".json", "w") as f:
        json.dump(metrics, f)
''')


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{backend: (arrays, metrics)} of SCRIPT run under TensorFlow and each other backend installed."""
    folder = tmp_path_factory.mktemp("backends")
    (folder / "agree.py").write_text(SCRIPT)
    runs = {}
    for backend in ("tensorflow", *OTHERS):
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
        runs[backend] = subprocess.Popen([sys.executable, str(folder / "agree.py"), str(folder / backend)],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    for backend, process in runs.items():
        log = process.communicate(timeout=600)[0]
        assert process.returncode == 0, f"{backend}:\n{log[-3000:]}"
        with np.load(folder / f"{backend}.npz") as arrays:
            out[backend] = dict(arrays), json.loads((folder / f"{backend}.json").read_text())
    return out


def arrays(saved, backend, prefix):
    """(key, TensorFlow's array, `backend`'s) of the arrays whose key starts with `prefix`."""
    (tf_arrays, _), (other, _) = saved["tensorflow"], saved[backend]
    keys = sorted(k for k in tf_arrays if k.startswith(prefix))
    assert keys and keys == sorted(k for k in other if k.startswith(prefix))
    return [(key, tf_arrays[key], other[key]) for key in keys]


@pytest.mark.parametrize("family", ["digits", "moving_shapes"])
@pytest.mark.parametrize("backend", OTHERS)
def test_class_probabilities_agree(saved, backend, family):
    (_, expected, got), = arrays(saved, backend, f"{family}/")
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(-1) == expected.argmax(-1)).all()


@pytest.mark.parametrize("backend", OTHERS)
def test_segmentation_masks_equal(saved, backend):
    (_, expected, got), = arrays(saved, backend, "shapes_unet/")
    assert expected.shape == (3, 45, 70) and len(np.unique(expected)) > 1
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("agnostic", [True, False])
@pytest.mark.parametrize("backend", OTHERS)
def test_detections_agree(saved, backend, agnostic):
    """Same detections, in the same order, from the keras.ops NMS as from TensorFlow's."""
    found = arrays(saved, backend, f"detections/agnostic={agnostic}/")
    assert sum(len(expected) for key, expected, _ in found if key.endswith("scores")) > 10
    for key, expected, got in found:
        assert got.shape == expected.shape, key
        if key.endswith("labels"):
            np.testing.assert_array_equal(got, expected, err_msg=key)
        else:
            np.testing.assert_allclose(got, expected, atol=1e-3 if key.endswith("boxes") else 1e-4, err_msg=key)


@pytest.mark.parametrize("backend", OTHERS)
def test_evaluate_metrics_agree(saved, backend):
    expected, got = saved["tensorflow"][1], saved[backend][1]
    assert got.keys() == expected.keys()
    for recipe, metrics in expected.items():
        mine = got[recipe]
        assert mine["num_examples"] == metrics["num_examples"] > 0, recipe
        if recipe == "shapes_retinanet":
            assert mine["mAP"] == pytest.approx(metrics["mAP"], abs=0.005)
        else:
            name = "mIoU" if "mIoU" in metrics else "accuracy"
            assert mine[name] == metrics[name], recipe


def twins(saved, prefix):
    """(key, TensorFlow op's output, keras.ops twin's) of the JAX run's direct comparisons."""
    if "jax" not in saved:
        pytest.skip("jax is not installed")
    found = saved["jax"][0]
    keys = sorted(k[:-len("/tf")] for k in found if k.startswith(prefix) and k.endswith("/tf"))
    assert keys
    return [(key, found[key + "/tf"], found[key + "/ops"]) for key in keys]


def test_nms_twin_selects_as_tensorflow(saved):
    """`serving_ops.postprocess` (jit) against `zoo.data.boxes.postprocess` on random outputs:
    both NMS modes, fewer candidates than detections, tied scores, nothing above threshold."""
    for key, expected, got in twins(saved, "nms/"):
        if key.endswith(("classes", "num_detections")):
            np.testing.assert_array_equal(got, expected, err_msg=key)
        else:
            np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=key)
    counts = {key: list(expected) for key, expected, _ in twins(saved, "nms/") if key.endswith("num_detections")}
    assert counts["nms/True,1000/num_detections"] == counts["nms/False,1000/num_detections"] == [100, 100, 0]
    assert 0 < min(counts["nms/False,40/num_detections"][:2]) <= 40


def test_resize_twin_matches_portable_resize(saved):
    for key, expected, got in twins(saved, "resize/"):
        np.testing.assert_allclose(got, expected, atol=1e-3, err_msg=key)  # pixels 0..255
