"""Runs that must never be lost or poisoned: kill -9 at several points, two trainers in one run
directory, a diverged loss then --resume, a changed recipe on --resume, history.csv rows."""
import csv
import json
import signal
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import zoo
from conftest import driven_zoo, tiny
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models.simple_cnn import digits_cnn
from zoo.registry import _MODELS, register

# Runs `zoo` with an optional self-inflicted SIGKILL, so a kill lands exactly inside a write:
# FAULT=checkpoint:N kills the N-th checkpoint write, FAULT=model kills the model.keras write,
# each after half of the file is on disk.
DRIVER = """
import os, signal, sys
from zoo import run_dir
fault = os.environ.get("FAULT", "")
calls = [0]
write_atomic = run_dir.write_atomic
def write_half_then_die(path, data):  # checkpoints and model.keras go to disk through write_atomic
    if str(path).endswith(".weights.h5"):
        calls[0] += 1
        dies = fault == f"checkpoint:{calls[0]}"
    else:
        dies = fault == "model" and path.name == "model.keras"
    if dies:
        path.with_name(path.name + ".tmp").write_bytes(data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    write_atomic(path, data)
run_dir.write_atomic = write_half_then_die
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def zoo_process(tmp_path, *args, fault="", wait=True, **env):
    return driven_zoo(DRIVER, tmp_path, *args, fault=fault, wait=wait, **env)


def history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert all(len(r) == len(rows[0]) for r in rows), "every row has the header's fields"
    assert rows[0][0] == "epoch" and sum(r[0] == "epoch" for r in rows) == 1
    return [int(r[0]) for r in rows[1:]]


def state(run_dir):
    return json.loads((run_dir / "checkpoints" / "state.json").read_text())


def wait_for(condition, timeout=240):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


TRAIN = ["train", "digits_cnn", "train.verbose=2"]


def test_kill_9_at_several_points_then_resume_completes(tmp_path):
    run = tmp_path / "run"
    # 1. Killed while writing the third checkpoint: the second stays the latest.
    code, _, _ = zoo_process(tmp_path, *TRAIN, "train.epochs=6", "--output", str(run), fault="checkpoint:3")
    assert code == -signal.SIGKILL
    assert state(run)["epoch"] == 2 and history_epochs(run) == [1, 2, 3]
    # 2. Resumed, then killed while writing model.keras after the last epoch.
    code, out, err = zoo_process(tmp_path, *TRAIN, "train.epochs=6", "--output", str(run), "--resume",
                                 fault="model")
    assert code == -signal.SIGKILL, err
    assert "resuming after epoch 2" in out and "taking the run directory over" in out
    assert history_epochs(run) == [1, 2, 3, 4, 5, 6] and not (run / "model.keras").exists()
    # 3. Resumed: nothing left to train; the model and metrics are written.
    code, out, err = zoo_process(tmp_path, *TRAIN, "train.epochs=6", "--output", str(run), "--resume")
    assert code == 0, err
    assert history_epochs(run) == [1, 2, 3, 4, 5, 6]
    assert json.loads((run / "metrics.json").read_text())["accuracy"] > 0.8
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-0005.weights.h5", "epoch-0006.weights.h5", "state.json"]
    # 4. A damaged latest checkpoint: the backup copy is used, and the log says so.
    latest = run / "checkpoints" / "epoch-0006.weights.h5"
    latest.write_bytes(latest.read_bytes()[:1000])
    code, out, err = zoo_process(tmp_path, *TRAIN, "train.epochs=7", "--output", str(run), "--resume")
    assert code == 0, err
    assert "resumed from the backup copy epoch-0005.weights.h5 (epoch 5)" in out
    assert history_epochs(run) == [1, 2, 3, 4, 5, 6, 7]


def test_kill_9_mid_epoch_then_resume_completes(tmp_path):
    run = tmp_path / "run"
    proc = zoo_process(tmp_path, *TRAIN, "train.epochs=40", "--output", str(run), wait=False)
    wait_for(lambda: (run / "history.csv").is_file() and len(history_epochs(run)) >= 2)
    time.sleep(0.3)
    proc.kill()
    proc.communicate()
    done = len(history_epochs(run))
    code, out, err = zoo_process(tmp_path, *TRAIN, f"train.epochs={done + 2}", "--output", str(run), "--resume")
    assert code == 0, err
    assert history_epochs(run) == list(range(1, done + 3))
    assert "resuming with a changed recipe key: train.epochs: 40 ->" in out


def test_a_second_trainer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    proc = zoo_process(tmp_path, *TRAIN, "train.epochs=300", "--output", str(run), wait=False)
    try:
        wait_for(lambda: (run / "checkpoints" / "state.json").is_file())
        saved = (run / "recipe.yaml").read_text()
        for extra in ([], ["--resume"]):
            code = main([*TRAIN, "runtime.seed=5", "--output", str(run), *extra])
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1
            assert f"process {proc.pid} on" in err and "is training in it" in err
        assert (run / "recipe.yaml").read_text() == saved
    finally:
        proc.kill()
        proc.communicate()
    code = main([*TRAIN, "train.epochs=3", "--output", str(run), "--resume"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"process {proc.pid} on" in out and "taking the run directory over" in out
    assert history_epochs(run) == [1, 2, 3]


# ------------------------------------------------------------------------------ divergence


def test_nan_keeps_the_last_finite_checkpoint_and_resume_recovers(tmp_path, capsys):
    # The learning rate jumps 1e12-fold at epoch 3: the loss diverges during that epoch.
    diverging = ["train.optimizer.name=sgd", "train.optimizer.learning_rate=0.05",
                 "train.schedule.name=step", "train.schedule.milestones=[2]",
                 "train.schedule.decay_rate=1e12", "train.epochs=4",
                 "runtime.mixed_precision=float32"]  # as measured; bfloat16 (auto on some CPUs) differs
    with pytest.raises(ZooError) as caught:
        zoo.train(tiny("digits_cnn", *diverging), output_dir=tmp_path)
    message = str(caught.value)
    assert "at epoch 3" in message and "lower train.optimizer.learning_rate" in message
    assert "keeps epoch 2, the last with finite weights" in message
    assert state(tmp_path)["epoch"] == 2 and history_epochs(tmp_path) == [1, 2]
    model = zoo.create_model("digits_cnn")
    model.load_weights(tmp_path / "checkpoints" / state(tmp_path)["weights"])
    assert all(np.isfinite(w).all() for w in model.get_weights())
    # Resumed with a sane decay: epochs 3 and 4 run from the finite weights.
    run = zoo.train(tiny("digits_cnn", *diverging, "train.schedule.decay_rate=0.1"),
                    output_dir=tmp_path, resume=True)
    assert len(run.history["loss"]) == 2 and np.isfinite(run.history["loss"]).all()
    assert history_epochs(tmp_path) == [1, 2, 3, 4]
    assert run.metrics["accuracy"] > 0.7


def nan_on_white(input_shape=(8, 8, 3), num_classes=10, dropout=0.5):
    """Test model: digits_cnn whose output is NaN for an all-white image (a numerical fault)."""
    inputs = keras.Input(input_shape)
    probs = digits_cnn(input_shape, num_classes, dropout=dropout)(inputs)
    white = keras.ops.min(inputs, axis=(1, 2, 3)) >= 255
    return keras.Model(inputs, keras.ops.where(white[:, None], float("nan"), probs))


@pytest.fixture
def nan_on_white_model():
    register(task="classification", input_shape=(8, 8, 3), name="test_nan_on_white")(nan_on_white)
    yield "test_nan_on_white"
    _MODELS.pop("test_nan_on_white")


def test_nan_with_a_fine_learning_rate_does_not_blame_it(tmp_path, nan_on_white_model):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in "ab":
            (root / split / label).mkdir(parents=True)
            for i in range(24):
                image = rng.integers(0, 50, (8, 8), np.uint8)
                image[: 4 if label == "a" else 8, 4 if label == "b" else 0:] += 150
                Image.fromarray(image).save(root / split / label / f"{i}.png")
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(root / "train" / "a" / "white.png")
    recipe = tiny("digits_cnn", f"model.name={nan_on_white_model}", "data.source=folder", f"data.path={root}",
                  "data.batch_size=4", "train.epochs=2")
    with pytest.raises(ZooError) as caught:
        zoo.train(recipe, output_dir=tmp_path / "run")
    message = str(caught.value)
    assert "the training loss became nan at epoch 1" in message
    assert "lower train.optimizer.learning_rate" not in message and "data" in message


# ------------------------------------------------------------------------------ changed recipes


def test_a_resume_that_changes_shapes_is_refused_before_writing(tmp_path, capsys):
    run = tmp_path / "run"
    assert main([*TRAIN, "train.epochs=2", "train.verbose=0", "--output", str(run)]) == 0
    saved = {name: (run / name).read_bytes() for name in ("recipe.yaml", "history.csv", "dataset.json")}
    for change, key in (("data.image_size=[16,16]", "data.image_size"), ("model.dropout=0.2", "model.dropout"),
                        ("train.optimizer.name=sgd", "train.optimizer.name")):
        code = main([*TRAIN, change, "train.epochs=3", "--output", str(run), "--resume"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and key in err and "cannot change in a resumed run" in err
        assert {name: (run / name).read_bytes() for name in saved} == saved
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(image)
    assert main(["predict", str(run), str(image)]) == 0  # the finished run still works
    capsys.readouterr()
    # Keys that may change are applied and recorded.
    assert main([*TRAIN, "train.epochs=3", "train.optimizer.learning_rate=1e-3", "--output", str(run),
                 "--resume"]) == 0
    out = capsys.readouterr().out
    assert "train.epochs: 2 -> 3" in out and "train.optimizer.learning_rate: 0.003 -> 0.001" in out
    assert zoo.load_recipe(run / "recipe.yaml").train.epochs == 3
    assert history_epochs(run) == [1, 2, 3]


# ------------------------------------------------------------------------------ history.csv


def test_history_has_one_row_per_epoch_and_one_header(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.csv").write_text("epoch,loss\n0,9.0\n1,8.0\n")  # a history without checkpoints
    zoo.train(tiny("digits_cnn", "train.epochs=2"), output_dir=run)
    assert history_epochs(run) == [1, 2]
    # Resumed without validation: the val_ columns stay, empty in the new row.
    zoo.train(tiny("digits_cnn", "train.epochs=3", "train.validate=false"), output_dir=run, resume=True)
    assert history_epochs(run) == [1, 2, 3]
    with open(run / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[1]["val_accuracy"] and rows[2]["val_accuracy"] == "" and float(rows[2]["loss"]) < 9


# ------------------------------------------------------------------------------ evaluate --output


def test_evaluate_prints_the_metrics_before_an_unwritable_output_fails(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["evaluate", "digits_cnn", "--weights", "pretrained", "--output", str(blocker / "out")])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and f"cannot write {blocker / 'out'}: Not a directory" in err
    assert json.loads(out.strip().splitlines()[-1])["accuracy"] > 0.95


def test_a_run_checkpointed_by_keras_backup_and_restore_resumes(tmp_path):
    """Runs of 0.1.0 kept keras' BackupAndRestore files: latest.weights.h5 + training_metadata.json."""
    zoo.train(tiny("digits_cnn", "train.epochs=2"), output_dir=tmp_path)
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "epoch-0002.weights.h5").rename(checkpoints / "latest.weights.h5")
    (checkpoints / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    for name in ("state.json", "epoch-0001.weights.h5"):
        (checkpoints / name).unlink()
    run = zoo.train(tiny("digits_cnn", "train.epochs=3"), output_dir=tmp_path, resume=True)
    assert len(run.history["loss"]) == 1 and history_epochs(tmp_path) == [1, 2, 3]
    assert state(tmp_path) == {"epoch": 3, "weights": "epoch-0003.weights.h5",
                               "previous": [2, "latest.weights.h5"]}  # the old file is the backup
    assert sorted(p.name for p in checkpoints.iterdir()) == [
        "epoch-0003.weights.h5", "latest.weights.h5", "state.json"]


def test_an_infinite_loss_stops_training_like_nan():
    from zoo.run_dir import DivergenceGuard

    model = zoo.create_model("digits_cnn")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    guard = DivergenceGuard()
    guard.set_model(model)
    guard.on_epoch_begin(0)
    for batch, running_mean in enumerate([0.5, 0.45, 0.4]):
        guard.on_train_batch_end(batch, {"loss": running_mean})
    assert not guard.tripped
    guard.on_train_batch_end(3, {"loss": float("inf")})
    assert guard.tripped and model.stop_training
    message = guard.message("float32", 0, Path("checkpoints"))
    assert "the training loss became inf at epoch 1, batch 4" in message
    assert "was steady until then (last 0.3" in message  # per-step losses 0.5, 0.4, 0.3
