"""End-to-end training through zoo.train: one test per data source, each asserting learning."""
import json

import keras
import numpy as np
import pytest
from PIL import Image

import zoo
from conftest import history_rows, tiny
from zoo.errors import DataError, ZooError
from zoo.fit_callbacks import EpochSummary




def test_digits_quickstart_learns_and_writes_the_run_dir(tmp_path):
    run = zoo.train(tiny("digits_cnn", "train.epochs=4"), output_dir=tmp_path / "run")
    assert run.metrics["accuracy"] > 0.85  # chance is 0.1
    assert run.metrics["num_examples"] == 360
    for name in ("recipe.yaml", "metrics.json", "history.csv", "model.keras", "dataset.json", "curves.png"):
        assert (run.output_dir / name).is_file(), name
    assert any((run.output_dir / "checkpoints").iterdir())
    assert any((run.output_dir / "logs").rglob("*tfevents*"))
    assert json.loads((run.output_dir / "metrics.json").read_text()) == run.metrics
    rows = history_rows(run.output_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    # The saved recipe is the resolved one and reloads as-is.
    assert zoo.load_recipe(run.output_dir / "recipe.yaml").train.epochs == 4
    # Evaluation of the saved model re-measures the same accuracy.
    again = zoo.evaluate(run.output_dir / "recipe.yaml", weights=run.output_dir / "model.keras")
    assert again == {key: run.metrics[key] for key in again}  # metrics.json adds what chose and when


def test_synthetic_shapes_learns(tmp_path):
    recipe = tiny("shapes_resnet20", "train.epochs=8", "data.train_size=1000", "data.eval_size=200",
                  "data.image_size=[24, 24]")
    run = zoo.train(recipe, output_dir=tmp_path)
    # 6 classes: chance is 0.17. Runs differ (multi-threaded CPU kernels): measured 0.40-0.47
    # (5 epochs gave 0.25-0.33, too close to a threshold).
    assert run.metrics["accuracy"] > 0.3


def write_image_folder(root, n_per_class=24, size=16, seed=0):
    """Two classes a linear model can separate: bright top half vs bright bottom half."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for label, name in enumerate(["bottom", "top"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                half = slice(0, size // 2) if label else slice(size // 2, size)
                image[half] += 150
                Image.fromarray(image).save(folder / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_folder_source_learns(tmp_path):
    root = write_image_folder(tmp_path / "data")
    Image.fromarray(np.zeros((20, 12), np.uint8)).save(root / "train" / "top" / "grey.png")  # any size, grey
    recipe = tiny("digits_cnn", "data.source=folder", f"data.path={root}", "data.eval_split=val",
                  "data.image_size=[16, 16]", "train.epochs=6")
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    assert run.metrics["accuracy"] >= 0.9 and run.metrics["num_examples"] == 48
    assert json.loads((run.output_dir / "dataset.json").read_text())["class_names"] == ["bottom", "top"]


def test_folder_errors_name_the_culprit(tmp_path):
    root = write_image_folder(tmp_path / "data", n_per_class=4)
    base = ["data.source=folder", f"data.path={root}", "data.eval_split=val", "data.image_size=[16, 16]",
            "data.batch_size=4", "train.epochs=1"]
    with pytest.raises(DataError, match="dataset folder not found: .*nowhere"):
        zoo.train(tiny("digits_cnn", *base, "data.train_split=nowhere"), output_dir=tmp_path / "r0")
    (root / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="empty class folder: .*empty"):
        zoo.train(tiny("digits_cnn", *base), output_dir=tmp_path / "r1")
    (root / "train" / "empty").rmdir()
    (root / "train" / "top" / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="corrupt image file: .*broken.jpg"):
        zoo.train(tiny("digits_cnn", *base), output_dir=tmp_path / "r2")
    run = zoo.train(tiny("digits_cnn", *base, "data.skip_corrupt=true"), output_dir=tmp_path / "r3")
    assert run.metrics["num_examples"] == 8


def test_tfds_path_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=64):
        recipe = tiny("mnist_cnn", "train.epochs=1", "train.steps_per_epoch=3", "data.batch_size=16")
        run = zoo.train(recipe, output_dir=tmp_path)
    assert run.metrics["num_examples"] == 64
    assert set(run.metrics) - {"eval_split", "val_split", "best_epoch", "backend"} == {
        "accuracy", "top5_accuracy", "num_examples", "best/accuracy", "best/top5_accuracy"}


def test_resume_continues_after_an_interrupted_epoch(tmp_path, monkeypatch):
    recipe = tiny("digits_cnn", "train.epochs=3")
    original = EpochSummary.on_epoch_end

    def interrupt_after_first_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt  # as if killed after epoch 1 was checkpointed

    monkeypatch.setattr(EpochSummary, "on_epoch_end", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        zoo.train(recipe, output_dir=tmp_path)
    assert len(history_rows(tmp_path)) == 1 and not (tmp_path / "model.keras").exists()
    monkeypatch.setattr(EpochSummary, "on_epoch_end", original)

    with pytest.raises(ZooError, match="already holds a run; pass --resume"):
        zoo.train(recipe, output_dir=tmp_path)
    run = zoo.train(recipe, output_dir=tmp_path, resume=True)
    assert len(run.history["loss"]) == 2  # only the two remaining epochs ran
    assert [int(r["epoch"]) for r in history_rows(tmp_path)] == [1, 2, 3]
    assert run.metrics["accuracy"] > 0.5


def test_mixed_bfloat16_training_keeps_outputs_and_loss_float32(tmp_path):
    recipe = tiny("digits_cnn", "runtime.mixed_precision=mixed_bfloat16", "train.epochs=3")
    run = zoo.train(recipe, output_dir=tmp_path)
    model = run.model
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers)
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")
    probs = model(x)
    assert keras.backend.standardize_dtype(probs.dtype) == "float32"
    loss = model.loss(np.array([1, 2, 3, 4]), probs)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert np.isfinite(run.history["loss"]).all()
    assert run.metrics["accuracy"] > 0.6
