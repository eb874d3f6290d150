"""Classification model families: build, outputs, serialization, parameter counts, pyramids.

Every model is built once per module (small input, the reference class count) and reused.
"""
from __future__ import annotations

import inspect

import keras
import numpy as np
import pytest
from conftest import perturb

from zoo.models import create_model
from zoo.models.layers import CAFFE_BGR, IMAGENET_MEAN_STD, SYMMETRIC_UNIT_SCALE, Normalize
from zoo.models import get_entry, list_models
from zoo.models.applications import APPLICATIONS

# The Keras Applications wrappers (zoo/models/applications.py, 40 models: parameter counts,
# legacy weights, pyramids, round trips) are tested in tests/test_applications.py.
MODELS = [name for name in list_models(task="classification") if name not in APPLICATIONS]

CIFAR = {"resnet20", "resnet32", "resnet44", "resnet56", "resnet110"}
SIMPLE = {"simple_cnn", "digits_cnn"}  # one builder, registered configurations
SMALL = CIFAR | SIMPLE

# Trainable parameters with 1000 classes: torchvision.models.resnet18 / resnet34
# (sum(p.numel() for p in model.parameters()); PyTorch buffers such as BN running stats excluded).
TORCHVISION_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672}
# Trainable parameters with 10 classes. Paper: He et al. 2016, Table 6 ("0.27M" ... "1.7M");
# exact: the common option-A reimplementation (akamaster/pytorch_resnet_cifar10).
CIFAR_PAPER_PARAMS = {
    "resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6, "resnet110": 1.7e6,
}
CIFAR_EXACT_PARAMS = {
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018,
    "resnet110": 1_727_962,
}


# Models that share one builder code path and differ only in depth/width (representative
# first). The slow serialization round trips run on the representative only; every model still
# gets the build, output, parameter-count and pyramid tests. Unlisted models are their own family.
FAMILIES = [
    ["simple_cnn", "digits_cnn"],
    ["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"],
    ["resnet18", "resnet34"],
]
_NOT_REPRESENTATIVE = {
    name for family in FAMILIES for name in [n for n in family if n in MODELS][1:]
}
ROUND_TRIP = [name for name in MODELS if name not in _NOT_REPRESENTATIVE]


def small_shape(name):
    if name in SIMPLE:
        return get_entry(name).input_shape  # its parameter count depends on the input size
    return (32, 32, 3) if name in CIFAR else (64, 64, 3)


def reference_classes(name):
    return 10 if name in SMALL else 1000


def images(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


_CACHE = {}


def built(name):
    """(model, params, trainable params, input batch, outputs): one build per model."""
    if name not in _CACHE:
        shape = small_shape(name)
        model = create_model(name, input_shape=shape, num_classes=reference_classes(name))
        params, trainable = model.count_params(), trainable_count(model)
        if name in ROUND_TRIP:
            perturb(model)
        x = images(shape)
        _CACHE[name] = (model, params, trainable, x, np.asarray(model(x, training=False)))
    return _CACHE[name]


def test_registered_names():
    expected = {
        "simple_cnn", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18",
        "resnet34", "resnet50", "resnet101", "mobilenet_v2", "mobilenet_v3_small",
        "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
        "efficientnet_b3", "convnext_tiny",
    }
    assert expected <= set(list_models(task="classification"))


@pytest.mark.parametrize("name", MODELS)
def test_builder_contract(name):
    entry = get_entry(name)
    assert entry.citation, "first docstring line must be the citation"
    params = inspect.signature(entry.builder).parameters
    assert {"input_shape", "num_classes", "features_only"} <= set(params)
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), "no **kwargs"
    assert params["input_shape"].default == entry.input_shape
    with pytest.raises(TypeError):
        create_model(name, no_such_option=1)


@pytest.mark.parametrize("name", MODELS)
def test_outputs_are_float32_probabilities(name):
    model, _, _, x, y = built(name)
    assert isinstance(model.layers[1], Normalize), "first layer after the input is Normalize"
    assert y.shape == (2, reference_classes(name))
    assert y.dtype == np.float32
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_from_config_round_trip(name):
    model, params, _, x, y = built(name)
    clone = keras.Model.from_config(model.get_config())
    assert clone.count_params() == params
    assert [layer.name for layer in clone.layers] == [layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x, training=False)), y, rtol=1e-6, atol=1e-7)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 __array__(copy=) in keras
@pytest.mark.parametrize("name", ROUND_TRIP)
def test_keras_save_load(name, tmp_path):
    model, params, _, x, y = built(name)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == params
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count(name):
    _, params, trainable, _, _ = built(name)
    if name in TORCHVISION_PARAMS:
        assert trainable == TORCHVISION_PARAMS[name]
    elif name in CIFAR:
        assert trainable == pytest.approx(CIFAR_PAPER_PARAMS[name], rel=0.02)
        assert trainable == CIFAR_EXACT_PARAMS[name]
    elif name in SIMPLE:  # RGB, "same" convs: 3*3*3*32 + 32 + 3*3*32*64 + 64 + (h/4*w/4*64)*10 + 10
        h, w, _ = small_shape(name)
        assert trainable == 896 + 18_496 + (h // 4) * (w // 4) * 64 * 10 + 10
        if name == "simple_cnn":
            assert trainable == 50_762
    else:
        pytest.fail(f"no reference parameter count for {name}: add one to this file")


@pytest.mark.parametrize("name", MODELS)
def test_features_only_pyramid(name):
    shape = small_shape(name)
    model = create_model(name, input_shape=shape, features_only=True)
    assert isinstance(model.layers[1], Normalize)
    outputs = model(images(shape, n=1), training=False)
    assert isinstance(outputs, dict)
    levels = sorted(int(key[1:]) for key in outputs)
    assert [f"P{k}" for k in levels] == list(outputs)  # sorted by stride
    if name in SMALL:
        assert levels == [0, 1, 2]
    else:
        assert levels == [1, 2, 3, 4, 5]
    for k in levels:
        feature = outputs[f"P{k}"]
        assert tuple(feature.shape[1:3]) == (shape[0] // 2**k, shape[1] // 2**k), f"P{k}"
    if name not in SMALL:  # P5 is the feature map the classifier head pools
        classifier = built(name)[0]
        assert outputs["P5"].shape[-1] == classifier.get_layer("predictions_dense").kernel.shape[-2]


def test_simple_cnn_handles_8x8_digits():
    model = create_model("simple_cnn", input_shape=(8, 8, 3), num_classes=10)
    y = np.asarray(model(images((8, 8, 3))))
    assert y.shape == (2, 10)


def test_mixed_precision_outputs_float32():
    keras.config.set_dtype_policy("mixed_float16")  # conftest restores float32
    model = create_model("resnet20", num_classes=10)
    assert model.get_layer("stage1_block1_1_conv").compute_dtype == "float16"
    y = np.asarray(model(images((32, 32, 3))))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-3)


def test_num_classes_and_dropout_are_used():
    model = create_model("resnet20", num_classes=7, dropout=0.25)
    assert model.output.shape == (None, 7)
    assert model.get_layer("head_dropout").rate == 0.25


def test_normalize_config_round_trip_and_caffe_order():
    layer = Normalize(**CAFFE_BGR, name="n")
    clone = Normalize.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert Normalize().get_config()["reverse_channels"] is False
    x = images((4, 4, 3))
    expected = keras.applications.resnet.preprocess_input(x.copy())  # caffe mode
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=1e-6, atol=1e-4)
    expected = keras.applications.mobilenet_v2.preprocess_input(x.copy())  # tf mode
    np.testing.assert_allclose(np.asarray(Normalize(**SYMMETRIC_UNIT_SCALE)(x)), expected, atol=1e-6)
    torch_mode = keras.applications.imagenet_utils.preprocess_input(x.copy(), mode="torch")
    np.testing.assert_allclose(np.asarray(Normalize(**IMAGENET_MEAN_STD)(x)), torch_mode, atol=1e-5)
