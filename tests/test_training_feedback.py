"""What a training run tells its user and keeps: train.freeze_epochs (head only, then every
layer, across --resume), the main metric every train.eval_every epochs (history.csv,
TensorBoard, curves), the loss's parts, best.keras and early stopping, the verbose levels,
the evaluation progress bar and the resolved settings at the top of recipe.yaml."""
import json
import signal

import keras
import numpy as np
import pytest
from conftest import history_rows, tiny
from test_faults import history_epochs, state, zoo_process

import zoo
from zoo import runtime
from zoo.cli import main
from zoo.models import get_entry
from zoo.run_dir import Checkpoint

DIGITS_STEPS = 1293 // 32  # batches per epoch of the digits training split (10% of it validates)
CONVS = ("conv1_relu", "conv2_relu")  # digits_cnn's layers outside its head (predictions_dense)




def layer_weights(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture
def snapshots(monkeypatch):
    """The weights per layer at the start of training ("start") and after each epoch (its
    number, 1-based), taken where the checkpoint is written."""
    taken = {}
    begin, end = Checkpoint.on_train_begin, Checkpoint.on_epoch_end

    def on_train_begin(self, logs=None):
        taken.setdefault("start", layer_weights(self.model))
        begin(self, logs)

    def on_epoch_end(self, epoch, logs=None):
        end(self, epoch, logs)
        taken[epoch + 1] = layer_weights(self.model)

    monkeypatch.setattr(Checkpoint, "on_train_begin", on_train_begin)
    monkeypatch.setattr(Checkpoint, "on_epoch_end", on_epoch_end)
    return taken


# ------------------------------------------------------------------------------ freeze_epochs


def test_freeze_epochs_trains_the_head_then_every_layer_on_one_schedule(tmp_path, snapshots, capsys):
    assert get_entry("digits_cnn").head == ("predictions_dense",)
    run = zoo.train(tiny("digits_cnn", "train.epochs=4", "train.freeze_epochs=2"), output_dir=tmp_path)
    out = capsys.readouterr().out
    assert "epochs 1-2: training only the head (predictions_dense: 2,570 trainable parameters)" in out
    assert "epochs 3-4: training every layer" in out
    start = snapshots["start"]
    for name in CONVS:  # frozen for two epochs, then trained
        assert same(snapshots[2][name], start[name]), name
        assert not same(snapshots[4][name], snapshots[2][name]), name
    assert not same(snapshots[1]["predictions_dense"], start["predictions_dense"])
    assert history_epochs(tmp_path) == [1, 2, 3, 4]
    # One optimizer and one schedule over the four epochs: the step count went on.
    assert int(run.model.optimizer.iterations) == 4 * DIGITS_STEPS
    assert len(run.history["loss"]) == 4
    assert run.metrics["accuracy"] > 0.8  # chance 0.1; measured 0.93
    # The saved models record every layer trainable (the freeze was for the first epochs only).
    for name in ("model.keras", "best.keras"):
        saved = zoo.models.load_model_file(tmp_path / name)
        assert all(layer.trainable for layer in saved.layers), name
    # Resumed beyond the frozen epochs: every layer trains at once.
    snapshots.clear()
    zoo.train(tiny("digits_cnn", "train.epochs=5", "train.freeze_epochs=2"), output_dir=tmp_path, resume=True)
    out = capsys.readouterr().out
    assert "only the head" not in out and "epochs 5-5: training every layer" in out
    assert all(not same(snapshots[5][name], snapshots["start"][name]) for name in CONVS)
    assert history_epochs(tmp_path) == [1, 2, 3, 4, 5]


def test_freeze_epochs_under_a_strategy_and_loss_scaling(tmp_path):
    run = zoo.train(tiny("digits_cnn", "train.epochs=2", "train.freeze_epochs=1", "runtime.distribution=mirrored",
                         "runtime.mixed_precision=mixed_float16"), output_dir=tmp_path)
    assert type(run.model.optimizer).__name__ == "LossScaleOptimizer"  # wrapped once, kept on recompiling
    assert int(keras.ops.convert_to_numpy(run.model.optimizer.iterations)) == 2 * DIGITS_STEPS
    assert history_epochs(tmp_path) == [1, 2]
    assert (tmp_path / "recipe.yaml").read_text().startswith(
        "# resolved: runtime.mixed_precision mixed_float16, runtime.distribution mirrored (")


def test_head_only_freezes_batchnorm_statistics_and_restores_each_layers_own_setting():
    from zoo.fit_callbacks import HeadOnly

    model = zoo.create_model("resnet20", input_shape=(16, 16, 3), num_classes=3)
    model.get_layer("stem_conv").trainable = False  # as a model.freeze_backbone would leave it
    flags = [(layer.name, layer.trainable) for layer in model.layers]
    trainable = {v.path for v in model.trainable_variables}
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    head_only = HeadOnly(model, get_entry("resnet20").head)
    head_only.freeze()
    model.compile(model.optimizer, "sparse_categorical_crossentropy")
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and not any(layer.trainable for layer in norms)
    assert {v.path for v in model.trainable_variables} == {v.path for v in model.get_layer("predictions_dense").weights}
    before = layer_weights(model)
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    model.fit(x, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    after = layer_weights(model)
    assert all(same(after[name], before[name]) for name in before if name != "predictions_dense")  # BN stats too
    assert not same(after["predictions_dense"], before["predictions_dense"])
    head_only.restore()
    assert [(layer.name, layer.trainable) for layer in model.layers] == flags
    assert {v.path for v in model.trainable_variables} == trainable
    model.compile(model.optimizer, "sparse_categorical_crossentropy")
    model.fit(x, np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)  # the optimizer knows every variable
    final = layer_weights(model)
    assert not same(final["stage1_block1_1_conv"], before["stage1_block1_1_conv"])
    assert same(final["stem_conv"], before["stem_conv"])  # frozen by the model itself: stays so


def test_killed_while_frozen_then_resumed_freezes_then_unfreezes(tmp_path, snapshots):
    run = tmp_path / "run"
    args = ["train", "digits_cnn", "train.verbose=0", "train.epochs=4", "train.freeze_epochs=2",
            "--output", str(run)]
    code, _, err = zoo_process(tmp_path, *args, fault="checkpoint:2")  # killed writing epoch 2's
    assert code == -signal.SIGKILL, err
    assert state(run)["epoch"] == 1
    assert main([*args, "--resume"]) == 0
    at_1 = snapshots["start"]  # the checkpoint of epoch 1 (frozen)
    for name in CONVS:
        assert same(snapshots[2][name], at_1[name]), name  # epoch 2: still frozen
        assert not same(snapshots[4][name], at_1[name]), name  # epochs 3-4: trained
    assert history_epochs(run) == [1, 2, 3, 4]
    assert state(run)["epoch"] == 4
    assert json.loads((run / "metrics.json").read_text())["accuracy"] > 0.8


# ------------------------------------------------------------------------------ best.keras, early stopping


def test_best_keras_and_early_stopping_survive_resume(tmp_path, capsys):
    # Adam at 0.003 learns for 3 epochs; then the rate jumps 300-fold and accuracy collapses.
    recipe = ["train.epochs=8", "train.schedule.name=step", "train.schedule.milestones=[3]",
              "train.schedule.decay_rate=300", "train.early_stopping={patience: 2}"]
    run = zoo.train(tiny("digits_cnn", *recipe), output_dir=tmp_path)
    out = capsys.readouterr().out
    val = [float(r["val_accuracy"]) for r in history_rows(tmp_path)]
    best = int(np.argmax(val))
    assert best == 2 and len(val) == best + 3  # two evaluations without improvement, then stop
    assert (f"stopped early after epoch {best + 3}: val_accuracy has not improved for 2 evaluation(s)"
            in out)
    assert run.metrics["accuracy"] < val[best] - 0.3  # model.keras: the last epoch, much worse
    assert json.loads((tmp_path / "metrics.json").read_text()) == run.metrics
    again = zoo.evaluate(tmp_path / "recipe.yaml", weights=tmp_path / "best.keras")
    assert run.metrics["best_epoch"] == best + 1  # best.keras: the best epoch, on the test split
    assert again["accuracy"] == pytest.approx(run.metrics["best/accuracy"], abs=1e-6)
    saved = (tmp_path / "best.keras").read_bytes()
    # Resumed as it was: it had stopped, so nothing trains again.
    zoo.train(tiny("digits_cnn", *recipe), output_dir=tmp_path, resume=True)
    assert "stopped early after epoch 5" in capsys.readouterr().out
    assert history_epochs(tmp_path) == [1, 2, 3, 4, 5]
    # More patience: one more (worse) epoch; the best so far is known, best.keras stays.
    zoo.train(tiny("digits_cnn", *recipe, "train.early_stopping.patience=3"), output_dir=tmp_path, resume=True)
    assert "stopped early after epoch 6" in capsys.readouterr().out
    assert history_epochs(tmp_path) == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "best.keras").read_bytes() == saved


# ------------------------------------------------------------------------------ eval_every, detection


def tensorboard_tags(directory):
    import tensorflow as tf

    tags = {}
    for path in directory.glob("*tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_detection_logs_map_every_n_epochs_and_its_loss_parts(tmp_path):
    recipe = tiny("shapes_retinanet", "data.image_size=[64, 64]", "data.train_size=48", "data.eval_size=16",
                  "train.epochs=2", "train.eval_every=2")
    run = zoo.train(recipe, output_dir=tmp_path)
    rows = history_rows(tmp_path)
    assert rows[0]["val_mAP"] == "" and float(rows[1]["val_mAP"]) >= 0
    assert rows[0]["val_loss"] == "" and rows[1]["val_mAP50"] != ""  # Keras' validation: same epochs
    assert not any("/" in key for key in rows[0])  # per-class AP stays in metrics.json
    for row in rows:  # the loss's parts add up to it (box_weight 1)
        assert float(row["focal_loss"]) + float(row["box_loss"]) == pytest.approx(float(row["loss"]), rel=1e-3)
    assert float(rows[1]["loss"]) < 0.9 * float(rows[0]["loss"])  # it learns
    # The best epoch (the only one validated) is the last: its test numbers are not measured again.
    assert run.metrics["best_epoch"] == 2 and run.metrics["best/mAP"] == run.metrics["mAP"]
    assert (tmp_path / "best.keras").is_file() and (tmp_path / "curves.png").is_file()
    assert set(tensorboard_tags(tmp_path / "logs" / "validation")["epoch_mAP"]) == {1}
    assert {"epoch_focal_loss", "epoch_box_loss"} <= set(tensorboard_tags(tmp_path / "logs" / "train"))


def test_eval_every_sets_when_keras_validates(tmp_path):
    zoo.train(tiny("digits_cnn", "train.epochs=3", "train.eval_every=2"), output_dir=tmp_path)
    assert [r["val_accuracy"] != "" for r in history_rows(tmp_path)] == [False, True, False]
    assert (tmp_path / "curves.png").is_file()


# ------------------------------------------------------------------------------ what is printed


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_verbose_levels_print_what_the_docs_say(tmp_path, capsys, verbose):
    zoo.train(tiny("digits_cnn", "train.epochs=2", f"train.verbose={verbose}"), output_dir=tmp_path)
    out = capsys.readouterr().out
    table = out.index("per class (")  # the per-class table before metrics: tests/test_report.py
    lines = (out[:table] + out[out.index("metrics: "):]).splitlines()
    summaries = [line for line in lines if line.startswith("epoch ")]
    assert lines[0].startswith("training digits_cnn") and lines[-1].startswith("metrics: ")
    if verbose == 0:
        assert len(lines) == 2
    else:  # one summary line per epoch; stdout is not a terminal here, so verbose 1 adds no progress bar
        assert [s.split(" - ")[0] for s in summaries] == ["epoch 1/2", "epoch 2/2"]
        assert len(lines) == 4  # the bar in a terminal: tests/test_training_output.py


def test_evaluate_shows_a_progress_bar_only_when_asked(capsys):
    recipe = tiny("digits_cnn")
    quiet = zoo.evaluate(recipe, weights="pretrained")  # stdout is not a terminal here
    assert "/12" not in capsys.readouterr().out
    loud = zoo.evaluate(recipe, weights="pretrained", verbose=1)
    assert "12/12" in capsys.readouterr().out  # 360 images in batches of 32
    assert loud == quiet


def test_recipe_yaml_records_what_ran_and_loads_back(tmp_path):
    zoo.train(tiny("digits_cnn", "train.epochs=1"), output_dir=tmp_path)
    text = (tmp_path / "recipe.yaml").read_text()
    head = text.splitlines()[:2]
    policy = runtime.resolve_policy("auto", runtime.detect_devices())  # float32, or bfloat16 on a CPU with it
    assert head[0] == f"# resolved: runtime.mixed_precision {policy}, runtime.distribution none (1 replica(s))"
    assert head[1] == (f"# versions: keras-zoo {zoo.__version__}, keras {keras.__version__}, "
                       f"tensorflow {__import__('tensorflow').__version__}, "
                       f"python {__import__('platform').python_version()}")
    assert zoo.load_recipe(tmp_path / "recipe.yaml").train.epochs == 1


@pytest.mark.parametrize("override, message", [
    ("train.eval_every=0", "train.eval_every: expected a positive number, got 0"),
    ("train.freeze_epochs=3", "train.freeze_epochs: expected a number of epochs in [0, train.epochs) = [0, 3), got 3"),
    ("train.freeze_epochs=-1", "train.freeze_epochs: expected a number of epochs in [0, train.epochs)"),
    ("train.early_stopping.patience=0", "train.early_stopping.patience: expected a positive number, got 0"),
    ("train.validate=false", "train.early_stopping: needs train.validate: true"),
])
def test_impossible_values_are_one_line_errors(tmp_path, capsys, override, message):
    code = main(["train", "digits_cnn", "train.epochs=3", "train.early_stopping={patience: 2}", override,
                 "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "run").exists()
