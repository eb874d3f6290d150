"""What a user does in a fresh Python process: `import zoo` (nothing else of the zoo), then plain
`keras.saving.load_model` on every kind of `.keras` file the zoo writes — a run's model.keras and
best.keras of each task family, compiled (schedules, losses, metrics), and a
`zoo.create_model(...).save()` — with Keras imported before or after the zoo."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from conftest import tiny

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # task family: (recipe, overrides of a one-step run)
    "classification": ("digits_cnn", []),
    "segmentation": ("shapes_unet", ["data.image_size=[32,32]"]),
    "detection": ("shapes_retinanet", ["data.image_size=[64,64]"]),
    "video": ("moving_shapes_cnn_lstm", ["data.image_size=[32,32]", "data.num_frames=4"]),
}
LOAD = """
import sys
{imports}
for path in sys.argv[1:]:
    model = keras.saving.load_model(path)
    print(path, getattr(model, "optimizer", None) is not None and getattr(model, "loss", None) is not None)
"""


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    paths = []
    for family, (recipe, overrides) in RUNS.items():
        run = zoo.train(tiny(recipe, "train.epochs=1", "train.steps_per_epoch=1", "data.train_size=8",
                             "data.eval_size=4", "data.batch_size=4", "train.eval_every=1", *overrides),
                        output_dir=root / family)
        paths += [run.output_dir / "model.keras", run.output_dir / "best.keras"]
    model = zoo.create_model("digits_cnn")
    model.save(root / "created.keras")
    return [*paths, root / "created.keras"]


@pytest.mark.parametrize("imports", ["import zoo\nimport keras", "import keras\nimport zoo"])
def test_import_zoo_is_enough_to_load_every_keras_file_it_writes(saved_models, imports):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LOAD.format(imports=imports), *map(str, saved_models)],
                          env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(saved_models)
    assert all(line.endswith("True") for line in lines[:-1]), lines  # the runs' files load compiled


def test_every_module_registering_keras_classes_is_listed():
    from zoo.keras_classes import MODULES

    package = ROOT / "zoo"
    registering = {".".join(p.relative_to(ROOT).with_suffix("").parts) for p in package.rglob("*.py")
                   if any(line.strip().startswith("@keras.saving.register_keras_serializable")
                          for line in p.read_text().splitlines())}
    assert registering == set(MODULES)
