"""`zoo export`: every format and task family on the shipped weights, run by the format's own
runtime (onnxruntime, the LiteRT interpreter, tf.saved_model.load) against the Keras serving
graph: float32 within 1e-4, float16 within 1e-2, int8 keeps the shipped metric within 0.02."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli
from zoo import export as ex

SHIPPED = ["digits_cnn.digits", "unet_small.shapes", "cnn_lstm.moving_shapes", "retinanet_small.shapes"]
FORMATS = ["saved_model", "litert", "onnx"]
_EXPORTS = {}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """exported(tag, format, dtype) -> (Exported, run): each export made once per module."""
    def get(tag, format, dtype="float32"):
        key = (tag, format, dtype)
        if key not in _EXPORTS:
            found = ex.export(tag, format, dtype, tmp_path_factory.mktemp("export"))
            _EXPORTS[key] = found, ex.load_exported(found.path)
        return _EXPORTS[key]

    yield get
    _EXPORTS.clear()


def comparison_inputs(found, count=4):
    """Eval-split inputs, plus one of another size: the export takes any size."""
    inputs = ex.serving_inputs(found.recipe, found.task, found.recipe.data.eval_split, count)
    other = (*inputs[0].shape[:-3], 37, 53, 3)
    return inputs + [np.random.default_rng(1).integers(0, 256, other, dtype=np.uint8)]


def outputs_of(found, run, inputs):
    return [(canonical(found.serving.predict_on_batch(x[None])), canonical(run(x[None]))) for x in inputs]


def canonical(outputs):
    """Detections in one order: by class, then box (rounded to 0.01 px). NMS sorts by score,
    so two detections of the same score may come in either order."""
    outputs = {k: np.asarray(v) for k, v in outputs.items()}
    if "boxes" not in outputs:
        return outputs
    n = int(outputs["num_detections"][0])
    keys = np.round(outputs["boxes"][0][:n], 2)
    order = np.lexsort([*keys.T[::-1], outputs["classes"][0][:n]])  # class first, then x0, y0, x1, y1
    order = np.concatenate([order, np.arange(n, len(outputs["scores"][0]))])
    return {k: v if k == "num_detections" else v[:, order] for k, v in outputs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("format", FORMATS)
@pytest.mark.parametrize("tag", SHIPPED)
def test_float32_export_matches_the_keras_model(exported, tag, format):
    found, run = exported(tag, format)
    for expected, got in outputs_of(found, run, comparison_inputs(found)):
        assert sorted(got) == sorted(expected)
        for name, value in expected.items():
            value = np.asarray(value)
            assert got[name].shape == value.shape, name
            if value.dtype.kind == "f":  # probabilities, box pixels, scores
                np.testing.assert_allclose(got[name], value, atol=1e-4, rtol=0, err_msg=name)
            else:  # class ids, masks, detection counts
                np.testing.assert_array_equal(got[name], value, err_msg=name)
    metadata = json.loads(found.metadata.read_text())
    assert metadata["task"] == found.task.name and metadata["class_names"] == list(found.info.class_names)
    assert metadata["inputs"]["images"]["dtype"] == "uint8" and sorted(metadata["outputs"]) == sorted(expected)


@pytest.mark.slow
@pytest.mark.parametrize("tag,format", [(tag, format) for tag in SHIPPED for format in ("litert", "onnx")
                                        if (tag, format) != ("retinanet_small.shapes", "onnx")])
def test_float16_export_stays_within_1e_2(exported, tag, format):
    """Probabilities and detection scores within 1e-2, boxes within 1e-2 of the image side,
    99.5% of mask pixels the same class."""
    found, run = exported(tag, format, "float16")
    for expected, got in outputs_of(found, run, comparison_inputs(found)):
        if "probabilities" in expected:
            np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-2, rtol=0)
        if "classes" in expected and "boxes" not in expected:
            assert np.mean(got["classes"] == expected["classes"]) >= 0.995
        if "boxes" in expected:  # each drawn detection against its counterpart
            gaps = found.task.serving_differences(expected, got)
            assert gaps["unmatched"] == 0 and gaps["scores"] <= 1e-2, gaps
            assert gaps["boxes"] <= 1e-2 * max(expected["boxes"].max(), 1.0), gaps


INT8 = [(tag, format) for tag in SHIPPED for format in ("litert", "onnx")
        if (tag, format) != ("cnn_lstm.moving_shapes", "litert")]


@pytest.mark.slow
@pytest.mark.parametrize("tag,format", INT8)
def test_int8_export_keeps_the_metric_within_0_02(exported, tag, format):
    """int8 calibrated on the recipe's training images (CALIBRATION_EXAMPLES): the task's main
    metric on 200 eval images, measured here for both the int8 and the float32 export."""
    found, run = exported(tag, format, "int8")
    _, run32 = exported(tag, format)
    key = found.task.main_metric
    int8 = ex.evaluate_exported(run, found.recipe, found.task, found.info, 200)[key]
    float32 = ex.evaluate_exported(run32, found.recipe, found.task, found.info, 200)[key]
    assert abs(int8 - float32) <= 0.02, (key, int8, float32)
    assert float32 > {"accuracy": 0.9, "mIoU": 0.8, "mAP": 0.7}[key]  # the shipped quality


@pytest.mark.slow
def test_saved_models_run_without_the_zoo(exported, tmp_path):
    """tf.saved_model.load in a fresh process that never imports zoo gives the Keras serving
    graph's outputs."""
    cases = []
    for i, tag in enumerate(SHIPPED):
        found, _ = exported(tag, "saved_model")
        x = comparison_inputs(found, 1)[0][None]
        np.save(tmp_path / f"x{i}.npy", x)
        np.savez(tmp_path / f"y{i}.npz", **{k: np.asarray(v) for k, v in found.serving.predict_on_batch(x).items()})
        cases.append(str(found.path))
    script = f"""
import sys, numpy as np, tensorflow as tf
for i, path in enumerate({cases!r}):
    serve = tf.saved_model.load(path).signatures["serving_default"]
    got = serve(images=tf.constant(np.load(r"{tmp_path}/x%d.npy" % i)))
    expected = np.load(r"{tmp_path}/y%d.npz" % i)
    assert sorted(got) == sorted(expected.files), (sorted(got), expected.files)
    for k in expected.files:
        assert np.allclose(got[k].numpy(), expected[k], atol=1e-4), k
assert not any(m == "zoo" or m.startswith("zoo.") for m in sys.modules), "zoo was imported"
print("ok", len({cases!r}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok 4"


@pytest.mark.slow
def test_detection_predict_predictor_and_every_export_give_the_same_boxes(exported, tmp_path, capsys):
    """One decode + NMS graph and one NMS mode: `zoo predict --json`, `zoo.load_predictor` and
    the three export formats report the same boxes in the original image's pixels, by default
    (class-agnostic NMS) and with the per-class option (--no-agnostic-nms / agnostic_nms=False)."""
    from PIL import Image

    import zoo

    found, _ = exported("retinanet_small.shapes", "onnx")
    image = ex.serving_inputs(found.recipe, found.task, "test", 1)[0]
    image = np.asarray(Image.fromarray(image).resize((200, 150)))  # not the model's size
    Image.fromarray(image).save(tmp_path / "shapes.png")

    def drawn(boxes, scores, labels):  # the detections of score >= 0.3, by class then box
        rows = sorted((int(label), *np.round(box, 3)) for box, score, label in zip(boxes, scores, labels)
                      if score >= 0.3)
        return np.asarray(rows, np.float64).reshape(-1, 5)

    for agnostic, flag in [(True, []), (False, ["--no-agnostic-nms"])]:
        code, out, _ = run_cli(capsys, "predict", "retinanet_small.shapes", tmp_path / "shapes.png", "--json",
                               *flag, "--output", tmp_path / "predictions")
        assert code == 0
        objects = json.loads(out.splitlines()[0])["objects"]
        expected = drawn([o["box"] for o in objects], [o["score"] for o in objects], [o["class_id"] for o in objects])
        assert len(expected) > 0
        result, = zoo.load_predictor("retinanet_small.shapes", agnostic_nms=agnostic).predict(image)
        np.testing.assert_allclose(drawn(result.boxes, result.scores, result.labels), expected, atol=1e-3)
        for format in FORMATS if agnostic else ["onnx"]:
            if agnostic:
                made, run = exported("retinanet_small.shapes", format)
            else:
                made = ex.export("retinanet_small.shapes", format, output_dir=tmp_path / "per_class", agnostic_nms=False)
                run = ex.load_exported(made.path)
            assert json.loads(made.metadata.read_text())["agnostic_nms"] is agnostic
            got = {k: np.asarray(v) for k, v in run(image[None]).items()}
            n = int(got["num_detections"][0])
            np.testing.assert_allclose(drawn(got["boxes"][0][:n], got["scores"][0][:n], got["classes"][0][:n]),
                                       expected, atol=2e-3 if format == "litert" else 1e-3, err_msg=format)


def test_export_cli_writes_runs_and_benchmarks_an_onnx_file(tmp_path, capsys):
    code, out, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "onnx", "--output", tmp_path,
                             "--benchmark")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"exported digits_cnn.digits (classification, float32) to {tmp_path / 'digits_cnn.onnx'}"
    gap = float(lines[1].rsplit(" ", 1)[1])
    assert lines[1].startswith("largest |Keras - export| over 8 inputs: probabilities") and gap < 1e-4
    assert [line.split(":")[0].strip() for line in lines[3:]] == ["batch 1", "batch 4"]
    metadata = json.loads((tmp_path / "digits_cnn.onnx.json").read_text())
    assert metadata["class_names"] == [str(i) for i in range(10)]
    assert metadata["outputs"] == {"probabilities": {"dtype": "float32", "shape": [None, 10]}}
    import onnxruntime

    from zoo.model_source import load_run
    from zoo.tasks import get_task

    _, recipe, _, _ = load_run("digits_cnn.digits")
    labels = []
    images = ex.serving_inputs(recipe, get_task(recipe.task), "test", 50, labels)
    session = onnxruntime.InferenceSession(str(tmp_path / "digits_cnn.onnx"))
    probabilities = session.run(None, {"images": np.stack(images)})[0]  # a batch of 50
    assert np.mean(probabilities.argmax(-1) == labels) > 0.95


@pytest.mark.parametrize("args,message", [
    (["digits_cnn.digits", "--format", "saved_model", "--dtype", "int8"],
     "--dtype int8: a SavedModel is exported in float32; use --format litert or onnx for float16 / int8"),
    (["no_such_model.tag", "--format", "onnx"], "no_such_model.tag: no such run directory or model file"),
    (["cnn_lstm.moving_shapes", "--format", "litert", "--dtype", "int8"],
     "--format litert --dtype int8: not for video models: the LiteRT converter's int8 calibration crashes"),
])
def test_export_mistakes_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    code, out, err = run_cli(capsys, "export", *args, "--output", tmp_path)
    assert code == 2 and err.startswith(f"zoo: error: {message}") and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_missing_export_package_names_the_extra(monkeypatch, tmp_path, capsys):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    code, _, err = run_cli(capsys, "export", "digits_cnn.digits", "--format", "onnx", "--output", tmp_path)
    assert code == 2
    assert err == "zoo: error: --format onnx needs onnxruntime, not installed: pip install 'keras-zoo[export]'\n"


def test_int8_without_data_to_calibrate_on_is_one_line(tmp_path, capsys):
    """A standalone .keras file has no recipe data: int8 cannot be calibrated."""
    from zoo.models import create_model

    create_model("digits_cnn.digits").save(tmp_path / "digits.keras")
    code, _, err = run_cli(capsys, "export", tmp_path / "digits.keras", "--format", "litert", "--dtype", "int8",
                           "--output", tmp_path / "out")
    assert code == 2 and "no dataset to calibrate or evaluate on" in err and len(err.splitlines()) == 1
    assert not any((tmp_path / "out").iterdir())


def test_a_failed_export_leaves_the_previous_one_whole(monkeypatch, tmp_path, capsys):
    assert run_cli(capsys, "export", "digits_cnn.digits", "--format", "onnx", "--output", tmp_path)[0] == 0
    before = (tmp_path / "digits_cnn.onnx").read_bytes()

    def broken(serving, path, dtype, calibration):
        path.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setitem(ex.WRITERS, "onnx", broken)
    with pytest.raises(KeyboardInterrupt):
        ex.export("digits_cnn.digits", "onnx", output_dir=tmp_path)
    assert (tmp_path / "digits_cnn.onnx").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits_cnn.onnx", "digits_cnn.onnx.json"]


def test_a_run_directory_exports_into_its_own_export_folder(tmp_path, capsys):
    """The README's chain: a trained run -> `<run>/export/`, here as LiteRT (batch 1 only, so
    `--benchmark` times batch 1 alone), the metadata carrying the run's class names."""
    run = tmp_path / "run"
    assert run_cli(capsys, "train", "digits_cnn", "train.epochs=1", "train.verbose=0", "--output", run)[0] == 0
    code, out, err = run_cli(capsys, "export", run, "--format", "litert", "--benchmark")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"exported {run} (classification, float32) to {run / 'export' / 'digits_cnn.tflite'}"
    assert [line.split(":")[0].strip() for line in lines[3:]] == ["batch 1"]
    metadata = json.loads((run / "export" / "digits_cnn.tflite.json").read_text())
    assert metadata["class_names"] == json.loads((run / "dataset.json").read_text())["class_names"]
    assert metadata["inputs"]["images"]["shape"] == [1, None, None, 3]
