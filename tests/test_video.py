"""Video classification: cnn_lstm models, frame sampling, augmentation, sources, evaluation."""
import json
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.data.synthetic import generate
from zoo.errors import DataError, ZooError
from zoo.recipe import load_recipe
from zoo.tasks import get_task
from zoo.tasks.video.clips import clip_indices, read_clip, sample_clips

TINY = (3, 16, 16, 3)


def _recipe(**data):
    base = {"task": "video", "model": {"name": "cnn_lstm"},
            "data": {"source": "synthetic", "name": "moving_shapes", "image_size": [16, 16],
                     "num_frames": 4, "batch_size": 8, **data}}
    return load_recipe(base)


def _write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(image))


def _clip_folders(root, split, clips_per_class=3, frames=4, size=(24, 24), lengths=None):
    """moving_shapes clips written as PNG frames: root/split/<left|right>/clip_i/frame_j.png."""
    for label, name in enumerate(("left", "right")):
        for i in range(clips_per_class):
            n = lengths[i] if lengths else frames
            ex = generate("moving_shapes", i, 5, size, num_frames=max(n, 2), label=label)
            for t in range(n):
                _write_png(root / split / name / f"clip_{i}" / f"frame_{t:03d}.png", ex["video"][t])


# ---------------------------------------------------------------- frame sampling


def test_clip_indices_training_eval_and_multi_clip():
    for _ in range(20):
        idx = clip_indices(20, 4, 2, training=True).numpy()
        assert idx.shape == (1, 4) and np.all(np.diff(idx[0]) == 2) and 0 <= idx[0, 0] <= 13
    assert clip_indices(20, 4, 2, training=False).numpy().tolist() == [[6, 8, 10, 12]]  # middle
    multi = clip_indices(20, 4, 2, training=False, clips=3).numpy()
    assert multi.tolist() == [[0, 2, 4, 6], [6, 8, 10, 12], [13, 15, 17, 19]]


def test_clip_indices_short_videos_shrink_stride_then_loop():
    # 6 frames cannot hold 4 frames at stride 3 (span 10): the stride shrinks to 1
    assert clip_indices(6, 4, 3, training=False).numpy().tolist() == [[1, 2, 3, 4]]
    # fewer frames than asked: indices wrap around (loop padding)
    assert clip_indices(3, 5, 1, training=False).numpy().tolist() == [[0, 1, 2, 0, 1]]
    assert clip_indices(1, 3, 2, training=True).numpy().tolist() == [[0, 0, 0]]


def test_same_spatial_augmentation_on_every_frame():
    recipe = _recipe(image_size=[24, 24], augment={"flip": True, "random_resized_crop": True,
                                                   "crop_scale": [0.2, 0.6], "crop_padding": 3})
    frame = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    video = tf.constant(np.repeat(frame[None], 6, axis=0))
    task = get_task("video")
    outputs = []
    for _ in range(6):
        clip, _ = task.prepare({"video": video, "label": 0}, recipe, None, training=True)
        assert clip.shape == (4, 24, 24, 3) and clip.dtype == tf.float32
        clip = clip.numpy()
        assert all(np.array_equal(clip[0], clip[t]) for t in range(1, 4))
        outputs.append(clip[0])
    assert any(not np.allclose(outputs[0], o) for o in outputs[1:])  # and it is random per clip


def test_multi_clip_eval_dataset_and_video_accuracy():
    recipe = _recipe(eval_clips=3, batch_size=6, eval_size=5)
    task = get_task("video")
    split = zoo.data.load_split(recipe, task, "test")
    validation = task.make_dataset(split, recipe, training=False, cache=False)
    assert list(validation)[0][0].shape == (5, 4, 16, 16, 3)  # one middle clip per video
    dataset = task.make_eval_dataset(split, recipe, validation)
    batches = list(dataset)
    assert [tuple(x.shape) for x, _ in batches] == [(2, 3, 4, 16, 16, 3)] * 2 + [(1, 3, 4, 16, 16, 3)]
    labels = np.concatenate([y.numpy() for _, y in batches])

    class Oracle:  # scores class 1 for the first clip of each video, class 0 for the other two
        def predict(self, inputs, batch_size=None, verbose=0):
            n = len(inputs)
            return np.array([[0.1, 0.9] if i % 3 == 0 else [0.8, 0.2] for i in range(n)], np.float32)

    metrics = task.evaluate(Oracle(), dataset, split.info)
    assert metrics["num_examples"] == 15 and metrics["num_videos"] == 5
    clip_predictions = np.where(np.arange(15) % 3 == 0, 1, 0)
    assert metrics["accuracy"] == pytest.approx(np.mean(clip_predictions == np.repeat(labels, 3)))
    assert metrics["video_accuracy"] == pytest.approx(np.mean(labels == 0))


# ---------------------------------------------------------------- models


@pytest.mark.parametrize("kwargs", [{}, {"backbone": "simple_cnn", "rnn": "gru", "rnn_layers": 2,
                                         "bidirectional": True, "dropout": 0.1}])
def test_model_round_trips(tmp_path, kwargs):
    model = zoo.create_model("cnn_lstm", input_shape=TINY, num_classes=3, rnn_units=8,
                             frame_features=16, filters=[4, 8], **kwargs)
    x = np.random.default_rng(0).uniform(0, 255, (2, *TINY)).astype("float32")
    y = model.predict_on_batch(x)
    assert y.shape == (2, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict_on_batch(x), y)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict_on_batch(x), y, rtol=1e-5, atol=1e-6)


def test_encoder_variant_freeze_and_pretrained_file(tmp_path):
    frame = (32, 32, 3)
    classifier = zoo.create_model("mobilenet_v2", input_shape=frame, num_classes=7)
    classifier.save_weights(tmp_path / "mnv2.weights.h5")
    model = zoo.create_model("cnn_lstm_mobilenet_v2", input_shape=(2, *frame), num_classes=5,
                             backbone_weights=str(tmp_path / "mnv2.weights.h5"),
                             freeze_backbone=True, rnn_units=8)
    encoder = model.get_layer("frame_encoder").layer
    assert not encoder.trainable and all(not w.trainable for w in encoder.weights)
    weighted = [layer for layer in encoder.layers if layer.weights]
    assert len(weighted) > 50
    for layer in weighted:  # the classifier's own weights, head removed
        for mine, theirs in zip(layer.get_weights(), classifier.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    assert model.predict_on_batch(np.zeros((1, 2, *frame), np.float32)).shape == (1, 5)


def test_backbone_weights_errors_are_one_line(tmp_path, monkeypatch):
    for var in ("ZOO_HOME", "KERAS_HOME", "HOME"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # as without a network: the file is not cached
    with pytest.raises(ZooError, match="backbone_weights: .*not cached") as err:
        zoo.create_model("cnn_lstm_resnet50", input_shape=(2, 32, 32, 3), backbone_weights="imagenet")
    assert "\n" not in str(err.value)
    with pytest.raises(ZooError, match="backbone_weights: .*not found"):
        zoo.create_model("cnn_lstm", input_shape=TINY, backbone="simple_cnn",
                         backbone_weights="/nonexistent/x.weights.h5")
    with pytest.raises(ZooError, match="backbone: unknown model"):
        zoo.create_model("cnn_lstm", input_shape=TINY, backbone="no_such_model")


def test_mixed_bfloat16_recurrent_layers_in_float32():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = zoo.create_model("cnn_lstm", input_shape=TINY, num_classes=2, rnn_units=8,
                                 frame_features=8, filters=[4])
        assert model.get_layer("lstm1").compute_dtype == "float32"
        assert model.get_layer("frame_encoder").layer.get_layer("conv1").compute_dtype == "bfloat16"
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).uniform(0, 255, (8, *TINY)).astype("float32")
        history = model.fit(x, np.arange(8) % 2, epochs=2, batch_size=4, verbose=0)
        assert all(np.isfinite(history.history["loss"]))
        assert model.predict_on_batch(x).dtype == np.float32
    finally:
        keras.config.set_dtype_policy(previous)


def test_temporal_signal_lstm_beats_frame_average():
    """On order-only clips the LSTM learns; averaging frame features over time stays at chance."""
    size, frames = (24, 24), 5

    def data(seed, n):
        exs = [generate("moving_shapes", i, seed, size, num_frames=frames, noise=5.0) for i in range(n)]
        return (np.stack([e["video"] for e in exs]).astype("float32"),
                np.array([e["label"] for e in exs]))

    (x, y), (xt, yt) = data(11, 384), data(12, 200)
    scores = {}
    for temporal in ("rnn", "average"):
        keras.utils.set_random_seed(0)
        model = zoo.create_model("cnn_lstm", input_shape=(frames, *size, 3), num_classes=2,
                                 filters=[8, 16, 16], frame_features=32, rnn_units=32,
                                 temporal=temporal)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(x, y, epochs=5, batch_size=32, verbose=0)
        scores[temporal] = model.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]
    assert scores["rnn"] >= 0.85, scores
    assert scores["average"] <= 0.65, scores


# ---------------------------------------------------------------- sources and the pipeline


def test_tfds_ucf101_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    recipe = load_recipe("ucf101_cnn_lstm", [
        "model.name=cnn_lstm", "model.pretrained=null", "model.freeze_backbone=false",
        "model.dropout=0.0", "model.rnn_units=8",
        "data.image_size=[24,24]", "data.num_frames=4", "data.batch_size=2", "data.eval_clips=2",
        "train.epochs=1", "train.steps_per_epoch=2",
        "runtime.mixed_precision=float32"])
    assert recipe.data.name.startswith("ucf101")
    with tfds.testing.mock_data(num_examples=3):
        run = zoo.train(recipe, output_dir=tmp_path / "run")
    metrics = run.metrics
    assert set(metrics) >= {"accuracy", "top5_accuracy", "video_accuracy", "num_examples", "num_videos"}
    assert metrics["num_videos"] == 3 and metrics["num_examples"] == 6
    assert run.model.output_shape == (None, 101)


def test_folder_layout_train_evaluate_predict(tmp_path, capsys):
    root = tmp_path / "clips"
    _clip_folders(root, "train", clips_per_class=4, lengths=[4, 6, 3, 5])  # 3 < num_frames: loops
    _clip_folders(root, "test", clips_per_class=2)
    overrides = ["data.source=folder", f"data.path={root}", "data.val_split=null", "data.image_size=[16,16]",
                 "data.num_frames=4", "data.batch_size=4", "train.epochs=1", "train.verbose=0",
                 "model.filters=[4,8]", "model.rnn_units=8", "model.frame_features=8"]
    recipe = load_recipe("moving_shapes_cnn_lstm", overrides)
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    # the reported accuracy is the trained model's on the 4 test clips, recomputed here
    task = get_task("video")
    split = zoo.data.load_split(recipe, task, "test")
    (x, y), = list(task.make_dataset(split, recipe, training=False, cache=False))
    predicted = np.argmax(run.model.predict(x, verbose=0), axis=-1)
    assert run.metrics["num_examples"] == 4
    assert run.metrics["accuracy"] == pytest.approx(np.mean(predicted == y.numpy()))
    assert json.loads((tmp_path / "run" / "dataset.json").read_text())["class_names"] == ["left", "right"]

    metrics = zoo.evaluate(load_recipe(recipe, ["data.eval_clips=2"]),
                           weights=str(tmp_path / "run" / "model.keras"))
    assert metrics["num_videos"] == 4 and metrics["num_examples"] == 8 and "video_accuracy" in metrics

    from zoo.cli import main

    clip = root / "test" / "left" / "clip_0"
    assert main(["predict", str(tmp_path / "run"), str(clip)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"{clip}: ") and "left" in line and "right" in line


def test_bad_inputs_name_the_clip(tmp_path, capsys):
    from zoo.cli import main

    root = tmp_path / "clips"
    _clip_folders(root, "train", clips_per_class=2)
    (root / "train" / "left" / "clip_empty").mkdir()
    recipe = _recipe(source="folder", path=str(root), eval_split="train")
    task = get_task("video")
    with pytest.raises(DataError, match="empty clip folder: .*clip_empty"):
        zoo.data.load_split(recipe, task, "train")
    assert main(["train", "moving_shapes_cnn_lstm", "data.source=folder", f"data.path={root}",
                 "--output", str(tmp_path / "r")]) == 2
    assert "clip_empty" in capsys.readouterr().err

    # skip_corrupt: skipped with a count, a corrupt frame too
    (root / "train" / "right" / "clip_1" / "frame_001.png").write_bytes(b"not a png")
    split = zoo.data.load_split(load_recipe(recipe, ["data.skip_corrupt=true"]), task, "train")
    assert split.info.num_examples == 3 and "skipped 2 empty or unreadable clip(s)" in capsys.readouterr().out

    # without skip_corrupt, the corrupt frame is named when decoding fails in the pipeline
    (root / "train" / "left" / "clip_empty").rmdir()
    split = zoo.data.load_split(recipe, task, "train")
    from zoo.pipeline import data_errors

    with pytest.raises(DataError, match=r"corrupt frame file: .*clip_1.*frame_001\.png"):
        with data_errors(split):
            list(task.make_dataset(split, recipe, training=False, cache=False))

    (root / "train" / "right" / "clip_0").rename(root / "x")
    for f in (root / "train" / "right").iterdir():
        for g in f.iterdir():
            g.unlink()
        f.rmdir()
    with pytest.raises(DataError, match="empty class folder: .*right"):
        zoo.data.load_split(recipe, task, "train")
    with pytest.raises(DataError, match="not a clip folder or video file"):
        read_clip(tmp_path / "missing")


def test_video_files_need_opencv(tmp_path, monkeypatch):
    root = tmp_path / "clips"
    _clip_folders(root, "train", clips_per_class=1)
    (root / "train" / "left" / "v.mp4").write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    with pytest.raises(DataError, match=r"cannot read video file .*v\.mp4: OpenCV is not installed"):
        zoo.data.load_split(_recipe(source="folder", path=str(root)), get_task("video"), "train")


def test_video_file_clips_with_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    ex = generate("moving_shapes", 0, 3, (32, 32), num_frames=6, label=1)
    path = tmp_path / "clips" / "train" / "right" / "v.avi"
    path.parent.mkdir(parents=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 32))
    for frame in ex["video"]:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    _clip_folders(tmp_path / "clips", "train", clips_per_class=1, size=(32, 32))
    video = read_clip(path)
    assert video.shape == (6, 32, 32, 3)
    assert np.abs(video.astype(int) - ex["video"]).mean() < 12  # lossy MJPG
    recipe = _recipe(source="folder", path=str(tmp_path / "clips"))
    split = zoo.data.load_split(recipe, get_task("video"), "train")
    shapes = sorted(example["video"].shape[0] for example in split.dataset)
    assert split.info.num_examples == 3 and shapes == [4, 4, 6]
    clips = sample_clips(tf.constant(video), recipe.data, training=False)
    assert clips.shape == (1, 4, 16, 16, 3)


@pytest.mark.slow
def test_quickstart_recipe_learns(tmp_path):
    run = zoo.train(load_recipe("moving_shapes_cnn_lstm", ["data.train_size=1000", "train.epochs=3",
                                                          "train.verbose=0"]),
                    output_dir=tmp_path / "run")
    assert run.metrics["accuracy"] >= 0.9
