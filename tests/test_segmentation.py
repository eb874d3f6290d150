"""Segmentation: U-Net models, mask-aware augmentation, loss / mIoU, sources and the pipeline."""
import csv
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from zoo.config import AugmentConfig
from zoo.data import DatasetInfo, class_color, load_split
from zoo.data.augment import augment_image_and_mask
from zoo.errors import DataError, ZooError
from zoo.tasks import get_task
from zoo.tasks.segmentation.drawing import class_colors, mask_image, render_overlay
from zoo.tasks.segmentation.losses import SegmentationLoss
from zoo.tasks.segmentation.metrics import (PixelAccuracy, class_map_model, confusion_matrix, mean_iou,
                                            segmentation_metrics)
from zoo.tasks.segmentation.sources import pets_trimap_to_classes, read_mask

TASK = get_task("segmentation")


# ---------------------------------------------------------------- models


def test_unet_parameter_count_matches_reference():
    """milesial/Pytorch-UNet UNet(3, 2, bilinear=False) has 31,037,698 parameters: our trainable
    count; Keras' total adds BatchNorm moving mean/variance (2 x 5,888 channels)."""
    model = zoo.create_model("unet", num_classes=2, input_shape=(32, 32, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 31_037_698
    assert model.count_params() == 31_037_698 + 2 * 5_888
    small = zoo.create_model("unet_small", num_classes=4, input_shape=(32, 32, 3))
    assert sum(int(np.prod(w.shape)) for w in small.trainable_weights) == 1_942_628


@pytest.mark.parametrize("name, kwargs, shape", [
    ("unet_small", {}, (32, 32, 3)),
    ("unet", {"base_filters": 8, "depth": 3}, (24, 40, 3)),
    ("unet_resnet50", {}, (64, 64, 3)),
    ("unet_mobilenet_v2", {"freeze_backbone": True}, (64, 64, 3)),
    ("unet_efficientnet_b0", {}, (64, 64, 3)),
    ("unet_resnet18", {"decoder_filters": [32, 16]}, (64, 64, 3)),
    ("unet_backbone", {"backbone": "simple_cnn"}, (32, 32, 3)),
])
def test_save_load_round_trip(name, kwargs, shape, tmp_path):
    model = zoo.create_model(name, num_classes=3, input_shape=shape, **kwargs)
    assert model.layers[1].__class__.__name__ == "Normalize"
    images = np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype(np.float32)
    expected = np.asarray(model.predict_on_batch(images))
    assert expected.shape == (2, shape[0], shape[1], 3) and expected.dtype == np.float32
    np.testing.assert_allclose(expected.sum(-1), 1.0, atol=1e-4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded.predict_on_batch(images)), expected, atol=1e-5)
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    if kwargs.get("freeze_backbone"):
        assert len(model.trainable_weights) < len(zoo.create_model(
            name, num_classes=3, input_shape=shape).trainable_weights)


def test_float32_outputs_under_mixed_precision():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = zoo.create_model("unet_small", num_classes=3, input_shape=(32, 32, 3))
    finally:
        keras.config.set_dtype_policy(policy)
    assert model.get_layer("logits").compute_dtype == "float32"
    assert model(np.zeros((1, 32, 32, 3), np.float32)).dtype == "float32"


def test_input_size_must_fit_the_depth():
    with pytest.raises(ZooError, match="divisible by 16"):
        zoo.create_model("unet_small", input_shape=(60, 64, 3))


@pytest.fixture
def weights_cache(tmp_path, monkeypatch):
    """A private, empty weights cache (Keras' own cache isolated too), online."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)


def test_backbone_weights_imagenet_offline_is_one_clear_error(weights_cache, monkeypatch):
    import urllib.error

    from zoo import weight_files

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(weight_files.urllib.request, "urlopen", no_network)
    with pytest.raises(ZooError) as err:
        zoo.create_model("unet_resnet50", num_classes=21, input_shape=(64, 64, 3),
                         backbone_weights="imagenet")
    assert "\n" not in str(err.value) and "resnet50" in str(err.value) and "offline" in str(err.value)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(ZooError, match="ZOO_OFFLINE=1") as err:
        zoo.create_model("unet_mobilenet_v2", input_shape=(64, 64, 3), backbone_weights="imagenet")
    assert "\n" not in str(err.value)
    with pytest.raises(ZooError, match="not found"):
        zoo.create_model("unet_resnet18", input_shape=(64, 64, 3), backbone_weights="/nonexistent.weights.h5")


def test_backbone_weights_imagenet_loads_keras_applications_weights(weights_cache, tmp_path, monkeypatch):
    """efficientnet_b0's "imagenet" row pointed at a file:// notop .h5 written from a Keras
    Applications EfficientNetB0 (auto-named Normalization layer, std stored as variance)."""
    import dataclasses
    import hashlib

    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    from zoo.models import get_entry
    from zoo.registry import WeightFile

    reference = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3))
    norm = next(layer for layer in reference.layers if isinstance(layer, keras.layers.Normalization))
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    norm.set_weights([mean, std, norm.get_weights()[2]])
    path = tmp_path / "efficientnetb0_notop.h5"
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, reference)
    spec = get_entry("efficientnet_b0").pretrained["imagenet"]
    local = WeightFile(path.name, path.as_uri(), md5=hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(get_entry("efficientnet_b0").pretrained, "imagenet", dataclasses.replace(spec, notop=local))
    model = zoo.create_model("unet_efficientnet_b0", num_classes=2, input_shape=(64, 64, 3),
                             backbone_weights="imagenet")
    for name in ("stem_conv", "block3a_expand_conv", "top_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)
    ours = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    normalized = np.asarray(keras.Model(model.input, ours.output)(x))
    np.testing.assert_allclose(normalized, (x / 255.0 - mean) / std, rtol=1e-4, atol=1e-4)


def test_backbone_weights_from_a_local_classifier_file(tmp_path):
    classifier = zoo.create_model("resnet18", num_classes=7, input_shape=(64, 64, 3))
    path = tmp_path / "resnet18.weights.h5"
    classifier.save_weights(path)
    model = zoo.create_model("unet_resnet18", num_classes=2, input_shape=(64, 64, 3),
                             backbone_weights=str(path))
    for name in ("conv1_conv", "conv3_block2_2_conv", "conv5_block2_2_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), classifier.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- augmentation


def test_augmentation_keeps_image_and_mask_aligned():
    """The image is a function of the mask (class * 60); after every augmentation together the
    relation still holds (up to bilinear blending at block edges). The control, the same output
    with its mask flipped (what an independent flip would give), agrees far less."""
    yy, xx = np.mgrid[:96, :100]
    mask = ((yy // 16 + xx // 12) % 4).astype(np.uint8)  # diagonal stripes: no mirror symmetry
    mask[:6, :6] = 255
    image = np.repeat((np.where(mask == 255, 0, mask) * 60.0)[..., None], 3, -1).astype(np.uint8)
    augment = AugmentConfig(flip=True, crop_padding=4, random_resized_crop=True, crop_scale=[0.5, 1.0],
                            scale_jitter=[0.8, 1.25])
    tf.random.set_seed(1)
    aligned, control = [], []
    for _ in range(12):
        out_image, out_mask = augment_image_and_mask(tf.constant(image), tf.constant(mask), [48, 48],
                                                     augment, training=True)
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == (48, 48, 3) and out_mask.shape == (48, 48)
        assert set(np.unique(out_mask)) <= {0, 1, 2, 3, 255}  # nearest neighbour: no new ids
        classes = np.round(out_image[..., 0] / 60.0)
        labelled = out_mask != 255
        aligned.append(np.mean(classes[labelled] == out_mask[labelled]))
        flipped = out_mask[:, ::-1]
        both = labelled & (flipped != 255)
        control.append(np.mean(classes[both] == flipped[both]))
        ignored = out_mask == 255
        if ignored.any():  # padding: 0 in the image, 255 in the mask (bilinear edges aside)
            assert np.mean(out_image[ignored][:, 0] < 60) > 0.8
    # Over 300 draws: aligned 0.83-0.99 (median 0.92; small scales blend more block edges),
    # the flipped control 0.02-0.55 (median 0.24).
    assert min(aligned) > 0.75 and np.mean(aligned) > 0.88
    assert max(control) < 0.65 and np.mean(control) < 0.4
    # Evaluation: a plain resize (nearest for the mask), no randomness.
    out_image, out_mask = augment_image_and_mask(tf.constant(image), tf.constant(mask), [24, 25],
                                                 augment, training=False)
    assert out_mask.shape == (24, 25) and set(np.unique(out_mask.numpy())) <= {0, 1, 2, 3, 255}


def test_flip_only_flips_both():
    mask = np.zeros((8, 8), np.uint8)
    mask[:, :2] = 1
    image = np.repeat((mask * 200)[..., None], 3, -1)
    seen = set()
    tf.random.set_seed(3)
    for _ in range(16):
        out_image, out_mask = augment_image_and_mask(image, mask, [8, 8], AugmentConfig(flip=True), True)
        np.testing.assert_array_equal(out_image.numpy()[..., 0], out_mask.numpy() * 200.0)
        seen.add(int(out_mask.numpy()[0, 0]))
    assert seen == {0, 1}


# ---------------------------------------------------------------- loss and metrics


def _numpy_miou(labels, preds, num_classes):
    """Independent reference: per-class IoU by boolean masks, ignore = 255."""
    valid = labels != 255
    ious = []
    for c in range(num_classes):
        truth, pred = (labels == c) & valid, (preds == c) & valid
        union = np.sum(truth | pred)
        if union:
            ious.append(np.sum(truth & pred) / union)
    return float(np.mean(ious)), float(np.mean(labels[valid] == preds[valid]))


def test_miou_against_numpy():
    rng = np.random.default_rng(0)
    num_classes = 5  # class 4 never appears in truth or prediction: skipped
    labels = rng.integers(0, 4, (6, 20, 24))
    preds = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, 4, labels.shape))
    labels[rng.random(labels.shape) < 0.2] = 255
    miou, accuracy = _numpy_miou(labels, preds, num_classes)
    metrics = segmentation_metrics(confusion_matrix(labels, preds, num_classes),
                                   [f"c{i}" for i in range(num_classes)], len(labels))
    assert metrics["mIoU"] == pytest.approx(miou, abs=1e-9)
    assert metrics["pixel_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert "iou/c4" not in metrics and metrics["num_examples"] == 6
    truth, pred = (labels == 2), (preds == 2) & (labels != 255)
    assert metrics["iou/c2"] == pytest.approx(np.sum(truth & pred) / np.sum(truth | pred))
    # The epoch-log metrics (history.csv) agree, accumulated over two batches of one-hot "probabilities".
    probs = np.eye(num_classes, dtype=np.float32)[preds]
    keras_miou, keras_accuracy = mean_iou(num_classes), PixelAccuracy(num_classes)
    for part in (slice(0, 3), slice(3, 6)):
        keras_miou.update_state(labels[part], probs[part])
        keras_accuracy.update_state(labels[part], probs[part])
    assert float(keras_miou.result()) == pytest.approx(miou, abs=1e-6)
    assert float(keras_accuracy.result()) == pytest.approx(accuracy, abs=1e-6)
    restored = keras.metrics.deserialize(keras.metrics.serialize(keras_miou))
    assert isinstance(restored, keras.metrics.MeanIoU) and restored.name == "mIoU"
    assert restored.ignore_class == 255 and restored.num_classes == num_classes and not restored.sparse_y_pred


@pytest.mark.parametrize("case", ["random", "absent_class", "all_ignored", "one_class"])
def test_keras_mean_iou_equals_segmentation_metrics(case):
    """keras.metrics.MeanIoU(ignore_class=255, sparse_y_pred=False), the epoch-log mIoU, gives
    metrics.json's mIoU (the NumPy confusion matrix) to 1e-6 on softmax probabilities with ignore
    pixels, over several update_state calls; in the edge cases too: a class absent from truth and
    prediction (both leave it out of the mean), no labelled pixel (both 0), one class only (1)."""
    rng = np.random.default_rng(["random", "absent_class", "all_ignored", "one_class"].index(case))
    num_classes = 6
    labels = rng.integers(0, num_classes, (8, 17, 23))
    logits = rng.normal(size=(*labels.shape, num_classes)).astype(np.float32)
    logits += 1.5 * np.eye(num_classes, dtype=np.float32)[labels]  # better than chance
    if case == "absent_class":  # class 3: never true, never predicted
        labels[labels == 3] = 0
        logits[..., 3] = -1e4
    labels[rng.random(labels.shape) < 0.25] = 255
    if case == "all_ignored":
        labels[:] = 255
    if case == "one_class":
        labels[labels != 255] = 2
        logits[..., 2] = 1e4
    probs = np.asarray(keras.ops.softmax(logits, axis=-1))
    names = [f"c{i}" for i in range(num_classes)]
    expected = segmentation_metrics(confusion_matrix(labels, probs.argmax(-1), num_classes), names, len(labels))
    metric = mean_iou(num_classes)
    for part in np.array_split(np.arange(len(labels)), 3):
        metric.update_state(labels[part], probs[part])
    assert float(metric.result()) == pytest.approx(expected["mIoU"], abs=1e-6)
    ious = {k: v for k, v in expected.items() if k.startswith("iou/")}
    if case == "random":
        assert len(ious) == 6 and 0.2 < expected["mIoU"] < 0.8
    elif case == "absent_class":  # the mean is over the 5 present classes, not 6
        assert "iou/c3" not in ious and len(ious) == 5
        assert expected["mIoU"] == pytest.approx(sum(ious.values()) / 5)
    elif case == "all_ignored":
        assert expected["mIoU"] == 0.0 and not ious
    else:
        assert expected["mIoU"] == 1.0 and list(ious) == ["iou/c2"]


def test_evaluate_goes_through_predict_with_the_argmax_inside_the_graph():
    """evaluate: `model.predict` of a model ending in the argmax (uint8 class ids), never
    predict_on_batch; its metrics are those of the model's own argmax, an odd last batch included."""
    model = zoo.create_model("unet_small", num_classes=3, input_shape=(32, 32, 3), depth=2)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (7, 32, 32, 3)).astype(np.float32)
    masks = rng.integers(0, 3, (7, 32, 32)).astype(np.int32)
    masks[:, :4] = 255
    classes = class_map_model(model).predict(images, verbose=0)
    assert classes.shape == (7, 32, 32) and classes.dtype == np.uint8
    np.testing.assert_array_equal(classes, np.asarray(model(images)).argmax(-1))

    def forbidden(*args, **kwargs):
        raise AssertionError("evaluation must go through model.predict")

    model.predict_on_batch = forbidden
    dataset = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)
    info = DatasetInfo(3, ["background", "a", "b"])
    metrics = TASK.evaluate(model, dataset, info)
    expected = segmentation_metrics(confusion_matrix(masks, classes, 3), info.class_names, 7)
    assert metrics == pytest.approx(expected) and metrics["num_examples"] == 7
    assert len([k for k in metrics if k.startswith("iou/")]) == 3


def test_loss_skips_ignore_pixels_and_round_trips():
    rng = np.random.default_rng(1)
    probs = rng.random((2, 4, 5, 3)).astype(np.float32) + 0.1
    probs /= probs.sum(-1, keepdims=True)
    labels = rng.integers(0, 3, (2, 4, 5))
    labels[0, :2] = 255
    valid = labels != 255
    expected = -np.log(np.take_along_axis(probs, np.where(valid, labels, 0)[..., None], -1)[..., 0])[valid].mean()
    loss = SegmentationLoss(num_classes=3)
    assert float(loss(labels, probs)) == pytest.approx(expected, rel=1e-5)
    # Changing the predictions on ignored pixels changes nothing.
    other = probs.copy()
    other[0, :2] = np.array([1.0, 0.0, 0.0])
    assert float(loss(labels, other)) == pytest.approx(expected, rel=1e-5)
    with_dice = SegmentationLoss(num_classes=3, dice_weight=0.5)
    one_hot = np.eye(3)[np.where(valid, labels, 0)] * valid[..., None]
    masked = probs * valid[..., None]
    dice = 1 - np.mean((2 * (masked * one_hot).sum((0, 1, 2)) + 1)
                       / (masked.sum((0, 1, 2)) + one_hot.sum((0, 1, 2)) + 1))
    assert dice > 0.1
    assert float(with_dice(labels, probs)) == pytest.approx(expected + 0.5 * dice, rel=1e-5)
    restored = keras.losses.deserialize(keras.losses.serialize(with_dice))
    assert isinstance(restored, SegmentationLoss) and restored.dice_weight == 0.5
    assert float(restored(labels, probs)) == pytest.approx(float(with_dice(labels, probs)), rel=1e-6)


def test_model_file_compiled_with_the_removed_confusion_mean_iou_still_loads(tmp_path):
    """Run directories from before keras.metrics.MeanIoU name "zoo>ConfusionMeanIoU" in their
    compile config; the zoo loads model files with compile=False, so they still load."""
    import zipfile

    from zoo.weights import load_model_file

    model = zoo.create_model("unet_small", num_classes=3, input_shape=(32, 32, 3), depth=2)
    model.compile("adam", SegmentationLoss(3), metrics=TASK.metrics(DatasetInfo(3, list("abc"))))
    new = tmp_path / "new.keras"
    model.save(new)
    with zipfile.ZipFile(new) as archive:
        files = {item.filename: archive.read(item.filename) for item in archive.infolist()}
    config = json.loads(files["config.json"])
    assert config["compile_config"]["metrics"][0]["class_name"] == "MeanIoU"
    config["compile_config"]["metrics"][0] = {
        "module": "zoo.tasks.segmentation", "class_name": "ConfusionMeanIoU", "registered_name": "zoo>ConfusionMeanIoU",
        "config": {"name": "mIoU", "dtype": "float32", "num_classes": 3, "ignore_index": 255}}
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(old, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, json.dumps(config) if name == "config.json" else data)
    with pytest.raises(TypeError, match="ConfusionMeanIoU"):  # the control: compiling needs the class
        keras.saving.load_model(old)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(load_model_file(old)(images)), np.asarray(model(images)), atol=1e-6)


def test_pictures_use_the_zoo_palette():
    """Class i is class_color(i) in the overlay and the mask PNG; "background" stays untinted
    in the overlay and black in the mask's palette."""
    names = ["background", "road", "car"]
    assert class_colors(names) == [None, class_color(1), class_color(2)]
    image = np.full((16, 16, 3), 100, np.uint8)
    classes = np.zeros((16, 16), np.int64)
    classes[4:8, 4:8], classes[10:, 10:] = 1, 2
    picture = np.asarray(render_overlay(image, classes, names, [0.8, 0.1, 0.1]))
    scale = 16  # small images are enlarged to 256 pixels, nearest neighbour
    assert picture.shape[1] == 256 and picture.shape[0] > 256  # the legend below
    np.testing.assert_array_equal(picture[0, 0], [100, 100, 100])
    np.testing.assert_array_equal(picture[5 * scale, 5 * scale], np.round((100 + np.array(class_color(1))) / 2))
    np.testing.assert_array_equal(picture[12 * scale, 12 * scale], np.round((100 + np.array(class_color(2))) / 2))
    png = mask_image(classes, names)
    assert png.mode == "P" and png.getpalette()[:9] == [0, 0, 0, *class_color(1), *class_color(2)]
    np.testing.assert_array_equal(np.asarray(png), classes)


# ---------------------------------------------------------------- training through the pipeline


def test_train_shapes_quickstart_short(tmp_path):
    """240 steps at 32x32 (~20 s). Runs differ (multi-threaded CPU kernels): pixel accuracy
    measured 0.906-0.914 against an all-background 0.861 (3 epochs gave 0.886-0.901: too close)."""
    recipe = zoo.load_recipe("shapes_unet", overrides=[
        "data.image_size=[32,32]", "data.train_size=768", "data.eval_size=96", "data.batch_size=16",
        "model.depth=3", "train.epochs=5", "train.verbose=0", "train.optimizer.learning_rate=0.004",
        "data.val_split=test"])  # validation on the eval split: history's last row is metrics.json
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_examples"] == 96
    assert {"mIoU", "pixel_accuracy", "iou/background"} <= set(metrics)
    # All-background baseline on the same eval masks: IoU(background) = its pixel fraction and 0
    # for the three shapes (present in the truth, never predicted), so mIoU = fraction / 4.
    split = load_split(recipe, TASK, recipe.data.eval_split)
    masks = np.stack([TASK.prepare(ex, recipe, split.info, False)[1].numpy() for ex in split.dataset])
    background = float(np.mean(masks == 0))
    baseline = segmentation_metrics(confusion_matrix(masks, np.zeros_like(masks), 4), list("bcst"), 96)
    assert baseline["mIoU"] == pytest.approx(background / 4)
    assert metrics["mIoU"] > baseline["mIoU"] + 0.1, metrics
    assert metrics["pixel_accuracy"] > background + 0.03, metrics
    # The last epoch's validation metrics (Keras MeanIoU / PixelAccuracy over the same eval
    # batches, same weights: data.val_split=test) are metrics.json's: one definition for both.
    with open(tmp_path / "run" / "history.csv") as f:
        last = list(csv.DictReader(f))[-1]
    assert float(last["val_mIoU"]) == pytest.approx(metrics["mIoU"], abs=1e-5)
    assert float(last["val_pixel_accuracy"]) == pytest.approx(metrics["pixel_accuracy"], abs=1e-5)
    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras")  # compile config included
    assert isinstance(loaded.loss, SegmentationLoss)
    assert run.metrics == metrics

    # Predictions are data: classes by pixel fraction, a palette mask PNG of class ids, a picture.
    rng = np.random.default_rng(0)
    picture = tmp_path / "input.png"
    Image.fromarray(rng.integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(picture)
    info = DatasetInfo(4, ["background", "circle", "square", "triangle"])
    from zoo.predict import iter_predict

    [prediction] = iter_predict(tmp_path / "run", [str(picture)], tmp_path / "predictions")
    assert set(prediction) == {"input", "classes", "mask", "picture"}
    assert prediction["input"] == str(picture)
    fractions = [fraction for _, fraction in prediction["classes"]]
    assert fractions == sorted(fractions, reverse=True) and min(fractions) > 0
    assert sum(fractions) == pytest.approx(1.0)
    with Image.open(prediction["mask"]) as mask_png:
        assert mask_png.mode == "P" and mask_png.size == (70, 45)
        palette = mask_png.getpalette()[:12]
    classes = read_mask(prediction["mask"])  # the folder source reads it back as class ids
    for name, fraction in prediction["classes"]:
        assert np.mean(classes == info.class_names.index(name)) == pytest.approx(fraction)
    assert palette == [0, 0, 0, *class_color(1), *class_color(2), *class_color(3)]
    assert Image.open(prediction["picture"]).height > 45

    # zoo predict end to end: the same files, described.
    from zoo.predict import predict

    lines = predict(tmp_path / "run", [str(picture)], tmp_path / "predictions2")
    out = tmp_path / "predictions2" / "input_segmentation.png"
    text = "\n".join(lines)
    assert out.is_file() and str(out) in text and "background" in text
    np.testing.assert_array_equal(read_mask(tmp_path / "predictions2" / "input_mask.png"), classes)


def _fake_pets(self, *args, **kwargs):
    """Oxford-IIIT Pet-like examples: image and trimap (1..3) of the same random size."""
    def examples():
        rng = np.random.default_rng(0)
        for _ in range(5):
            height, width = rng.integers(24, 60, 2)
            yield {"image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                   "segmentation_mask": rng.integers(1, 4, (height, width, 1), dtype=np.uint8)}

    return tf.data.Dataset.from_generator(examples, output_signature={
        "image": tf.TensorSpec((None, None, 3), tf.uint8),
        "segmentation_mask": tf.TensorSpec((None, None, 1), tf.uint8)})


def test_tfds_oxford_pets_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    trimap = tf.constant([[1, 2], [3, 0]], tf.uint8)
    np.testing.assert_array_equal(pets_trimap_to_classes(trimap).numpy(), [[1, 0], [2, 255]])
    shipped = zoo.load_recipe("oxford_pets_unet")
    assert shipped.model.pretrained == "imagenet" and "backbone_weights" not in shipped.model.params
    data = shipped.to_dict()
    data["model"] = {"name": "unet_small"}  # the data path is under test here, not the encoder
    recipe = zoo.load_recipe(data, overrides=[
        "data.image_size=[32,32]", "data.batch_size=2", "train.epochs=1", "train.steps_per_epoch=2",
        "train.verbose=0"])
    with tfds.testing.mock_data(as_dataset_fn=_fake_pets):
        run = zoo.train(recipe, output_dir=tmp_path / "run")
    assert run.metrics["num_examples"] == 5
    # The random trimaps hold all three classes: each has an IoU, and mIoU is their mean.
    ious = {k: v for k, v in run.metrics.items() if k.startswith("iou/")}
    assert set(ious) == {"iou/background", "iou/pet", "iou/border"}
    assert run.metrics["mIoU"] == pytest.approx(sum(ious.values()) / 3)
    names = json.loads((tmp_path / "run" / "dataset.json").read_text())["class_names"]
    assert names == ["background", "pet", "border"]


# ---------------------------------------------------------------- folder source


def _write_pair(root, split, stem, size, rng, mask=None, ext=".png"):
    height, width = size
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    if mask is None:
        mask = np.zeros((height, width), np.uint8)
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        mask[top:top + height // 2, left:left + width // 2] = rng.integers(1, 3)
        mask[-2:] = 255  # an unlabelled strip
    image = np.where(mask[..., None] == 1, [220, 40, 40], np.where(mask[..., None] == 2, [40, 40, 220], [90, 160, 90]))
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(root / split / "images" / f"{stem}{ext}")
    Image.fromarray(mask).save(root / split / "masks" / f"{stem}.png")


def _folder_recipe(root, *overrides):
    return zoo.load_recipe({"task": "segmentation", "model": {"name": "unet_small"},
                            "data": {"source": "folder", "path": str(root), "train_split": "train",
                                     "eval_split": "val", "image_size": [32, 32], "batch_size": 4}},
                           overrides=overrides)


def test_folder_layout_with_ignore_pixels(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    sizes = [(40, 30), (50, 50), (33, 61), (64, 48)]
    for i in range(12):
        _write_pair(root, "train", f"img{i:02d}", sizes[i % 4], rng, ext=".jpg" if i % 3 == 0 else ".png")
    for i in range(4):
        _write_pair(root, "val", f"v{i}", sizes[i], rng)
    (root / "classes.txt").write_text("ground\nred\nblue\n")
    recipe = _folder_recipe(root, "train.epochs=2", "train.verbose=0")
    split = load_split(recipe, TASK, "train")
    assert split.info.num_classes == 3 and split.info.class_names == ["ground", "red", "blue"]
    assert split.info.num_examples == 12
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    assert {"mIoU", "pixel_accuracy", "num_examples"} <= set(run.metrics)
    assert run.metrics["num_examples"] == 4
    metrics = zoo.evaluate(recipe, weights=str(tmp_path / "run" / "model.keras"))
    assert metrics["mIoU"] == pytest.approx(run.metrics["mIoU"], abs=1e-6)
    # data.num_classes overrides the inferred count.
    assert load_split(_folder_recipe(root, "data.num_classes=5"), TASK, "train").info.num_classes == 5


@pytest.mark.parametrize("problem", ["size", "value", "missing"])
def test_bad_folder_data_names_the_file(tmp_path, problem):
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    for i in range(3):
        _write_pair(root, "train", f"ok{i}", (32, 32), rng)
    bad_mask = root / "train" / "masks" / "bad.png"
    if problem == "size":
        _write_pair(root, "train", "bad", (32, 32), rng)
        Image.fromarray(np.zeros((30, 32), np.uint8)).save(bad_mask)
    elif problem == "value":
        mask = np.zeros((32, 32), np.uint8)
        mask[5, 5] = 7
        _write_pair(root, "train", "bad", (32, 32), rng, mask=mask)
    else:
        _write_pair(root, "train", "bad", (32, 32), rng)
        bad_mask.unlink()
    overrides = ["data.num_classes=3"] if problem == "value" else []
    with pytest.raises(DataError) as err:
        load_split(_folder_recipe(root, *overrides), TASK, "train")
    message = str(err.value)
    assert "\n" not in message
    assert "bad.png" in message
    if problem == "missing":
        assert "missing mask" in message and str(root / "train" / "images" / "bad.png") in message


def test_bad_data_through_the_cli_exits_2(tmp_path, capsys):
    from zoo.cli import main

    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    _write_pair(root, "train", "a", (32, 32), rng)
    _write_pair(root, "train", "b", (32, 32), rng)
    (root / "train" / "masks" / "b.png").unlink()
    recipe = tmp_path / "seg.yaml"
    recipe.write_text(f"task: segmentation\nmodel: {{name: unet_small}}\n"
                      f"data: {{source: folder, path: {root}, image_size: [32, 32]}}\n")
    assert main(["train", str(recipe), "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "b.png" in err


def test_dice_loss_parts_are_logged_and_add_up_to_the_loss():
    """With a Dice term the epoch logs carry the loss's parts: loss = crossentropy + w x dice."""
    from zoo.data import DatasetInfo

    task, info = get_task("segmentation"), DatasetInfo(3, ["a", "b", "c"])
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, (2, 8, 8)).astype("int32")
    y_true[0, :2] = 255  # ignored pixels
    logits = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert [m.name for m in (task.loss(info), task.metrics(info))[1]] == ["mIoU", "pixel_accuracy"]
    loss = task.loss(info, dice_weight=0.5)
    parts = {m.name: m for m in task.metrics(info) if m.name in ("crossentropy", "dice")}
    assert set(parts) == {"crossentropy", "dice"}
    for metric in parts.values():
        metric.update_state(y_true, y_pred)
    crossentropy, dice = float(parts["crossentropy"].result()), float(parts["dice"].result())
    valid = y_true != 255
    expected = -np.log(np.take_along_axis(y_pred, np.where(valid, y_true, 0)[..., None], -1)[..., 0])[valid].mean()
    assert crossentropy == pytest.approx(expected, rel=1e-5)
    assert 0 < dice < 1
    assert float(loss(y_true, y_pred)) == pytest.approx(crossentropy + 0.5 * dice, rel=1e-5)
