"""Feature extractors like timm's: `create_model(name, features_only=True, out_indices=...)`,
levels described by `model.feature_info` / `zoo.models.feature_info(model)` (name, channels,
stride, layer), read from the model's graph so that they survive `.keras` saving."""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import perturb, save_keras_applications_h5

from zoo.errors import ZooError
from zoo.models import create_model, feature_info
from zoo.models.layers import FeatureModel

ROOT = Path(__file__).resolve().parents[1]

# One classifier of each family that builds its pyramid its own way, at a small input
# (divisible by the deepest stride; the "valid"-convolution families align to input / 2**k).
FAMILIES = {
    "digits_cnn": (8, ["P0", "P1", "P2"]), "resnet20": (32, ["P0", "P1", "P2"]),
    "resnet18": (64, ["P1", "P2", "P3", "P4", "P5"]), "vgg16": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "resnet50": (64, ["P1", "P2", "P3", "P4", "P5"]), "resnet50_v2": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "densenet121": (64, ["P1", "P2", "P3", "P4", "P5"]), "xception": (96, ["P1", "P2", "P3", "P4", "P5"]),
    "inception_v3": (96, ["P1", "P2", "P3", "P4", "P5"]),
    "inception_resnet_v2": (96, ["P1", "P2", "P3", "P4", "P5"]),
    "nasnet_mobile": (96, ["P1", "P2", "P3", "P4", "P5"]), "mobilenet": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "mobilenet_v2": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "mobilenet_v3_small": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "efficientnet_b0": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "efficientnet_v2_b0": (64, ["P1", "P2", "P3", "P4", "P5"]),
    "convnext_tiny": (64, ["P2", "P3", "P4", "P5"]),  # 4x4 stem: no stride-2 level
}


def features(name, size, **kwargs):
    return create_model(name, input_shape=(size, size, 3), features_only=True, **kwargs)


@pytest.mark.parametrize("name", FAMILIES)
def test_feature_info_matches_the_output_maps(name):
    """Names, channels, strides (input size / map size) and layers as the outputs really are.
    Built without variables."""
    size, levels = FAMILIES[name]
    keras.backend.clear_session()
    with keras.StatelessScope(initialize_variables=False):
        model = features(name, size)
    info = model.feature_info
    assert isinstance(model, FeatureModel)
    assert info.names() == list(model.output) == levels
    operations = {operation.name: operation for operation in model.operations}  # layers and ops
    for level, channels, stride, module in zip(levels, info.channels(), info.reduction(), info.module_name()):
        _, height, width, depth = model.output[level].shape
        assert (size / height, size / width, depth) == (stride, stride, channels), level
        assert operations[module].output is model.output[level], level
    assert info.get_dicts() == feature_info(model).get_dicts() == list(info)
    keras.backend.clear_session()


@pytest.mark.parametrize("out_indices, levels", [
    ((0,), ["P0"]), ((-1,), ["P2"]), (("P1",), ["P1"]), ((2, "P0"), ["P0", "P2"]),
    ((-1, "P2", 2), ["P2"]), (np.array([1, -1]), ["P1", "P2"]), (1, ["P1"])])
def test_out_indices_by_index_negative_index_and_name(out_indices, levels):
    model = features("resnet20", 16, out_indices=out_indices)
    outputs = model.predict(np.zeros((1, 16, 16, 3), "float32"), verbose=0)
    assert list(outputs) == model.feature_info.names() == levels
    assert [outputs[level].shape[1] for level in levels] == [16 // s for s in model.feature_info.reduction()]


def test_out_indices_drops_what_only_deeper_levels_need():
    full, shallow = features("resnet18", 32), features("resnet18", 32, out_indices=(0, 1))
    assert shallow.feature_info.names() == ["P1", "P2"]
    assert shallow.count_params() < full.count_params() / 10
    assert "conv5_block2_out" not in {layer.name for layer in shallow.layers}


@pytest.mark.parametrize("bad", [3, -4, "P3", "conv1", 1.0, ()])
@pytest.mark.parametrize("alone", [False, True])
def test_a_bad_out_index_is_one_line_naming_it_and_the_levels(bad, alone):
    with pytest.raises(ZooError) as err:
        features("resnet20", 16, out_indices=bad if alone or bad == () else (0, bad))
    message = str(err.value)
    assert "\n" not in message and message.startswith("out_indices: ")
    assert ("empty" if bad == () else repr(bad)) in message and "P0, " in message and "P2" in message


def test_out_indices_needs_a_feature_extractor():
    with pytest.raises(ZooError, match="give features_only=True too"):
        create_model("resnet20", input_shape=(16, 16, 3), out_indices=(0,))
    with pytest.raises(ZooError, match=r"unet_small \(segmentation\) has no feature extractor"):
        create_model("unet_small", input_shape=(32, 32, 3), features_only=True)
    with pytest.raises(ZooError, match="'resnet20' is not a features_only model"):
        feature_info(create_model("resnet20", input_shape=(16, 16, 3)))


def test_pretrained_weights_load_into_chosen_levels(tmp_path):
    """A classifier's own weights file and a shipped tag, through `pretrained=` with out_indices."""
    classifier = create_model("resnet20", input_shape=(16, 16, 3), num_classes=3)
    perturb(classifier)
    classifier.save_weights(tmp_path / "resnet20.weights.h5")
    deepest = features("resnet20", 16, out_indices=(-1,), pretrained=str(tmp_path / "resnet20.weights.h5"))
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    stage3 = keras.Model(classifier.input, classifier.get_layer("stage3_block3_out").output)
    np.testing.assert_allclose(deepest.predict(x, verbose=0)["P2"], stage3.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)

    digits = create_model("digits_cnn.digits", features_only=True, out_indices=("P1",))
    shipped = create_model("digits_cnn.digits")
    assert digits.feature_info.names() == ["P1"]
    for layer in ("conv1_relu", "conv2_relu"):
        np.testing.assert_array_equal(digits.get_layer(layer).kernel.numpy(),
                                      shipped.get_layer(layer).kernel.numpy())


def test_imagenet_notop_file_loads_into_chosen_levels(tmp_path, monkeypatch):
    """mobilenet_v2's "imagenet" row pointed at a file:// notop .h5 of Keras' own MobileNetV2."""
    import dataclasses
    import hashlib

    from zoo.models import get_entry
    from zoo.registry import WeightFile

    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(64, 64, 3))
    perturb(reference)
    path = save_keras_applications_h5(reference, tmp_path / "mobilenet_v2_notop.h5")
    spec = get_entry("mobilenet_v2").pretrained["imagenet"]
    local = WeightFile(path.name, path.as_uri(), md5=hashlib.md5(path.read_bytes()).hexdigest())
    monkeypatch.setitem(get_entry("mobilenet_v2").pretrained, "imagenet",
                        dataclasses.replace(spec, notop=local))
    model = features("mobilenet_v2", 64, pretrained="imagenet", out_indices=(-2, -1))
    assert model.feature_info.names() == ["P4", "P5"]
    for name in ("Conv1", "block_13_expand", "Conv_1_bn"):
        for got, want in zip(model.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want)


LOAD = """
import json, sys
import zoo, keras
model = keras.saving.load_model(sys.argv[1])
print(json.dumps([zoo.models.feature_info(model).get_dicts(), model.feature_info.get_dicts()]))
"""


def test_feature_info_survives_saving_and_a_fresh_process(tmp_path):
    model = features("resnet18", 32, out_indices=(1, -1))
    model.save(tmp_path / "features.keras")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LOAD, str(tmp_path / "features.keras")], env=env,
                          text=True, capture_output=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from_function, from_attribute = json.loads(proc.stdout.splitlines()[-1])
    assert from_function == from_attribute == model.feature_info.get_dicts()
    assert [level["name"] for level in from_function] == ["P2", "P5"]
    assert [level["channels"] for level in from_function] == [64, 512]
    assert [level["reduction"] for level in from_function] == [4, 32]
