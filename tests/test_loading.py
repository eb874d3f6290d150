"""`zoo.load_model(source)`: a run directory, a `.keras` file or a pretrained "MODEL[.TAG]" -> a
keras.Model with its weights, compiled where the file is; what a user names wrongly is one
ZooError line. And the hook that registers the zoo's Keras classes when Keras loads survives a
`find_spec` probe of Keras before its import (TensorFlow probes so)."""
import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from conftest import perturb, tiny
from zoo.errors import ZooError
from zoo.import_hook import around_import
from zoo.loading import FILE, PRETRAINED, RUN, resolve

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    recipe = tiny("digits_cnn", "train.epochs=1", "train.steps_per_epoch=1", "data.train_size=8",
                  "data.eval_size=4", "data.batch_size=4", "train.eval_every=1")
    return zoo.train(recipe, output_dir=tmp_path_factory.mktemp("runs") / "digits").output_dir


def _same_weights(a, b):
    assert len(a.weights) == len(b.weights)
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_run_directory_loads_its_model_keras_compiled(run_dir):
    loaded = resolve(run_dir)
    assert (loaded.kind, loaded.run_dir, loaded.path, loaded.spec) == (RUN, run_dir, run_dir / "model.keras", None)
    assert loaded.model.compiled and loaded.model.optimizer is not None  # the schedule, loss and metrics load
    _same_weights(loaded.model, keras.saving.load_model(run_dir / "model.keras"))
    assert not zoo.load_model(str(run_dir), compile=False).compiled
    best = resolve(run_dir / "best.keras")  # a .keras file inside a run is the run's
    assert (best.kind, best.run_dir, best.path) == (RUN, run_dir, run_dir / "best.keras")


def test_a_standalone_keras_file_loads_as_saved(tmp_path):
    model = zoo.create_model("retinanet_small", input_shape=(64, 64, 3), num_classes=3)
    perturb(model)
    model.save(tmp_path / "detector.keras")
    loaded = resolve(tmp_path / "detector.keras")
    assert (loaded.kind, loaded.run_dir, loaded.path) == (FILE, None, tmp_path / "detector.keras")
    assert not loaded.model.compiled  # saved uncompiled, loaded uncompiled
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded.model(images)), np.asarray(model(images)), atol=1e-5)


def test_a_pretrained_name_builds_the_model_with_its_weights():
    loaded = resolve("unet_small.shapes")
    assert (loaded.kind, loaded.run_dir, loaded.path, loaded.spec.name) == (PRETRAINED, None, None, "unet_small.shapes")
    _same_weights(loaded.model, zoo.create_model("unet_small", pretrained="shapes"))
    default = zoo.load_model("digits_cnn")  # the model's default tag
    _same_weights(default, zoo.create_model("digits_cnn", pretrained=True))


def test_what_names_no_model_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "norecipe").mkdir()
    zoo.create_model("digits_cnn").save(tmp_path / "norecipe" / "model.keras")
    (tmp_path / "notes.keras").write_text("not a zip archive")
    zoo.create_model("digits_cnn").save_weights(tmp_path / "digits.weights.h5")
    cases = {
        "digit_cnn.digits": r"^digit_cnn.digits: no such run directory or model file, nor a pretrained model; "
                            r"did you mean digits_cnn.digits",
        "digits_cnn.nope": r"^digits_cnn: no pretrained tag 'nope' \(tags: digits\)$",
        "simple_cnn": r"^simple_cnn: model simple_cnn has no pretrained weights",
        str(tmp_path / "missing.keras"): r"^no trained model at .*missing.keras \(expected a run directory",
        str(tmp_path / "runs" / "x"): r"^no trained model at .*runs/x \(expected a run directory",
        str(tmp_path / "empty"): r"^no trained model at .*empty/model.keras",
        str(tmp_path / "norecipe"): r"^.*norecipe is not a run directory: recipe.yaml is missing$",
        str(tmp_path / "notes.keras"): r"^.*notes.keras is not a valid Keras model file",
        str(tmp_path / "digits.weights.h5"): r"^.*digits.weights.h5 holds weights only, not a model: build the model "
                                             r"with zoo.create_model\(NAME, pretrained=",
    }
    for source, message in cases.items():
        with pytest.raises(ZooError, match=message) as err:
            zoo.load_model(source)
        assert "\n" not in str(err.value), source


def test_load_model_in_a_fresh_process_after_import_zoo(run_dir, tmp_path):
    """The public call in a process that ran only `import zoo`: the three kinds of source."""
    zoo.create_model("cnn_lstm", input_shape=(4, 32, 32, 3), num_classes=3).save(tmp_path / "video.keras")
    code = textwrap.dedent("""
        import sys
        import zoo
        run, file = sys.argv[1:]
        print(zoo.load_model(run).compiled, zoo.load_model(file).output_shape,
              zoo.load_model("retinanet_small.shapes").name)
    """)
    proc = subprocess.run([sys.executable, "-c", code, str(run_dir), str(tmp_path / "video.keras")], text=True,
                          capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "(None,", "3)", "retinanet_small"]


def test_around_import_waits_for_the_import_itself(tmp_path, monkeypatch):
    """A `find_spec` probe (no import) leaves the hook in place; the import then runs it once."""
    (tmp_path / "zoo_probe_target.py").write_text("VALUE = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.delitem(sys.modules, "zoo_probe_target", raising=False)
    seen = []

    def run(module, execute):
        execute()
        seen.append(module.VALUE)

    around_import("zoo_probe_target", run)
    assert importlib.util.find_spec("zoo_probe_target") is not None
    assert seen == []
    assert importlib.import_module("zoo_probe_target").VALUE == 7
    assert seen == [7]
    assert not any(getattr(f, "name", None) == "zoo_probe_target" for f in sys.meta_path)
    sys.modules.pop("zoo_probe_target")
