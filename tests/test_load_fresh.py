"""What a user does in a fresh Python process: `import zoo` (nothing else of the zoo), then plain
`keras.saving.load_model` on every kind of `.keras` file the zoo writes — a run's model.keras and
best.keras of each task family, compiled (schedules, losses, metrics), and a
`zoo.create_model(...).save()` of each family — with Keras imported before or after the zoo, or
reached as `tf.keras` (TensorFlow probes for Keras before importing it). Each file gives the
outputs it gave when saved."""
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from conftest import perturb, tiny

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # task family: (recipe, overrides of a one-step run)
    "classification": ("digits_cnn", []),
    "segmentation": ("shapes_unet", ["data.image_size=[32,32]"]),
    "detection": ("shapes_retinanet", ["data.image_size=[64,64]"]),
    "video": ("moving_shapes_cnn_lstm", ["data.image_size=[32,32]", "data.num_frames=4"]),
}
CREATED = {  # file stem: create_model arguments, one model of each family and models on a backbone
    "digits_cnn": ("digits_cnn.digits", {}),
    "retinanet": ("retinanet_small", {"input_shape": (64, 64, 3), "num_classes": 3}),
    "unet": ("unet_small.shapes", {}),
    "unet_resnet18": ("unet_resnet18", {"input_shape": (32, 32, 3), "num_classes": 3}),
    "cnn_lstm": ("cnn_lstm", {"input_shape": (4, 32, 32, 3), "num_classes": 3}),
    "features": ("mobilenet_v3_small", {"input_shape": (32, 32, 3), "features_only": True}),
}
LOAD = """
import sys
import numpy as np
{imports}
for path in sys.argv[1:]:
    model = load(path)
    expected = np.load(path + ".npz")
    outputs = model(expected["input"])
    for i, output in enumerate([outputs[k] for k in sorted(outputs)] if isinstance(outputs, dict) else [outputs]):
        np.testing.assert_allclose(np.asarray(output).astype("float32"), expected[f"output_{{i}}"], rtol=1e-4,
                                   atol=1e-4, err_msg=path)
    print(path, model.compiled)
"""


def _record_outputs(model, path):
    """`path`.npz: an input of the model's shape and the model's outputs for it."""
    shape = [1 if size is None else size for size in model.input_shape]
    image = np.random.default_rng(0).uniform(0, 255, shape).astype("float32")
    outputs = model(image)
    outputs = [outputs[k] for k in sorted(outputs)] if isinstance(outputs, dict) else [outputs]
    np.savez(f"{path}.npz", input=image, **{f"output_{i}": np.asarray(o).astype("float32")  # runs: bfloat16
                                            for i, o in enumerate(outputs)})


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    paths = []
    for family, (recipe, overrides) in RUNS.items():
        run = zoo.train(tiny(recipe, "train.epochs=1", "train.steps_per_epoch=1", "data.train_size=8",
                             "data.eval_size=4", "data.batch_size=4", "train.eval_every=1", *overrides),
                        output_dir=root / family)
        paths += [run.output_dir / "model.keras", run.output_dir / "best.keras"]
    for path in paths:
        _record_outputs(keras.saving.load_model(path), path)
    created = []
    for stem, (name, kwargs) in CREATED.items():
        model = zoo.create_model(name, **kwargs)
        perturb(model)
        model.save(root / f"{stem}.keras")
        _record_outputs(model, root / f"{stem}.keras")
        created.append(root / f"{stem}.keras")
    return [*paths, *created]


@pytest.mark.parametrize("imports", ["import zoo\nimport keras\nload = keras.saving.load_model",
                                     "import keras\nimport zoo\nload = keras.saving.load_model",
                                     "import zoo\nimport tensorflow as tf\nload = tf.keras.models.load_model"])
def test_import_zoo_is_enough_to_load_every_keras_file_it_writes(saved_models, imports):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LOAD.format(imports=imports), *map(str, saved_models)],
                          env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(saved_models)
    runs = 2 * len(RUNS)
    assert all(line.endswith("True") for line in lines[:runs]), lines  # the runs' files load compiled
    assert not any(line.endswith("True") for line in lines[runs:]), lines  # create_model's: uncompiled


def test_every_module_registering_keras_classes_is_listed():
    from zoo.keras_classes import MODULES

    package = ROOT / "zoo"
    registering = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in package.rglob("*.py")
                   if any(line.strip().startswith("@keras.saving.register_keras_serializable")
                          for line in p.read_text().splitlines())}
    assert registering == set(MODULES)
