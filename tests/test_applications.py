"""Keras Applications wrappers (zoo/models/applications.py): every classifier constructor of
`keras.applications` is registered; each wrapper has Keras' include_top=True parameters and
layer names / weight shapes, loads a Keras-Applications-style legacy `.h5` into the same
function as `keras_model(preprocess_input(x))`, and gives a P-level pyramid at the right
strides that a U-Net and a RetinaNet can sit on.

Time budget (2 CPU cores): building a Keras Applications model costs 0.3-13 s, mostly variable
creation and initialization, so every model is built once per check and the structural checks
build without creating variables (`keras.StatelessScope(initialize_variables=False)`: shapes,
names and parameter counts, no values). The numeric checks (real weights, a legacy file, outputs)
run on every family's smallest member (FAMILY_REPRESENTATIVES, 14 models; all 40 with
ZOO_TEST_ALL_APPLICATIONS=1: about 5 minutes, 6 GB), the structural ones on all 40 models.
`keras.backend.clear_session()` before each build resets Keras' auto-naming counters, so the
wrapper's auto-named backbone layers get exactly the names of Keras' own model.
"""
from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import perturb, save_keras_applications_h5

from zoo import weights_table
from zoo.models import create_model
from zoo.models.applications import APPLICATIONS
from zoo.models.layers import Normalize
from zoo.registry import get_entry, list_models
from zoo.weight_mapping import assign_by_name, read_legacy_h5

NAMES = list(APPLICATIONS)
ROWS = {row["model"]: row for row in weights_table.KERAS_APPLICATIONS}

# Every family's smallest member (one builder code path per family): the numeric checks.
FAMILY_REPRESENTATIVES = [
    "vgg16", "resnet50", "resnet50_v2", "densenet121", "xception", "inception_v3",
    "inception_resnet_v2", "nasnet_mobile", "mobilenet", "mobilenet_v2", "mobilenet_v3_small",
    "efficientnet_b0", "efficientnet_v2_b0", "convnext_tiny",
]
# ZOO_TEST_ALL_APPLICATIONS=1 runs the numeric checks on all 40 models (about 5 minutes, 6 GB).
NUMERIC = NAMES if os.environ.get("ZOO_TEST_ALL_APPLICATIONS") else FAMILY_REPRESENTATIVES
OTHERS = [name for name in NAMES if name not in NUMERIC]
# Big legacy files (VGG16 at 32x32: 38M parameters, InceptionResNetV2: 56M): above this many
# parameters the mapping check goes through an in-memory {layer name: weights} dict instead of
# a written .h5.
IN_MEMORY_PARAMS = 30_000_000
# Smallest input Keras accepts (include_top=True, weights=None). The top of VGG depends on the
# input size (Flatten): parameter counts are compared at 224, the numeric check runs at 32.
MIN_SIZE = {"xception": 71, "inception_v3": 75, "inception_resnet_v2": 75}
PARAMS_SIZE = {"vgg16": 224, "vgg19": 224}
NO_PUBLISHED_HASH = {"mobilenet", "mobilenet_v2"}  # Keras downloads these files unverified


def keras_application(name):
    return getattr(keras.applications, APPLICATIONS[name])


def keras_module(name):
    return inspect.getmodule(inspect.unwrap(keras_application(name)))


def images(size, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def legacy_weights(model):
    """{layer name: weight shapes} in Keras' legacy h5 order (trainable, then non-trainable)."""
    return {layer.name: [tuple(v.shape) for v in layer.trainable_weights + layer.non_trainable_weights]
            for layer in model.layers if layer.weights}




def build_pair(name, size, stateless):
    """Keras' include_top=True model (logits: classifier_activation=None; same parameters) and
    the zoo wrapper with 1000 classes, each built in a fresh Keras session."""
    def build(fn):
        keras.backend.clear_session()
        if stateless:
            with keras.StatelessScope(initialize_variables=False):
                return fn()
        return fn()

    reference = build(lambda: keras_application(name)(
        weights=None, input_shape=(size, size, 3), classifier_activation=None))
    ours = build(lambda: create_model(name, input_shape=(size, size, 3), num_classes=1000))
    return reference, ours


def check_structure(name, reference, ours):
    """Same parameter count; every weighted layer of ours is Keras' layer of the same name with
    the same weight shapes, and none of Keras' is left over; the head is what `head=` declares."""
    assert ours.count_params() == reference.count_params()
    theirs, mine = legacy_weights(reference), legacy_weights(ours)
    assert sorted(set(theirs) - set(mine)) == [], "Keras layers the wrapper lacks"
    assert sorted(set(mine) - set(theirs)) == [], "wrapper layers Keras lacks"
    assert {k: v for k, v in mine.items() if theirs[k] != v} == {}
    head = {layer for layer, shapes in mine.items() if shapes[0][-1] == 1000}
    assert head == set(get_entry(name).head)
    assert isinstance(ours.layers[1], Normalize)
    softmax = ours.layers[-1]
    assert softmax.name == "probabilities" and softmax.dtype_policy.compute_dtype == "float32"
    assert tuple(ours.output.shape) == (None, 1000)


# ------------------------------------------------------------------------- registry and table


def test_every_keras_application_is_registered():
    classifiers = {name for name, obj in vars(keras.applications).items() if name[0].isupper() and callable(obj)}
    assert len(classifiers) >= 40
    assert set(APPLICATIONS.values()) == classifiers
    assert len(set(APPLICATIONS.values())) == len(APPLICATIONS)
    registered = set(list_models(task="classification"))
    assert set(NAMES) <= registered
    for name in NAMES:
        entry = get_entry(name)
        assert entry.builder.__name__ == name
        assert entry.citation.endswith("(Keras Applications).") or "(Keras Applications, " in entry.citation
        params = inspect.signature(entry.builder).parameters
        assert list(params) == ["input_shape", "num_classes", "features_only", "dropout"]
        assert params["input_shape"].default == entry.input_shape == tuple(ROWS[name]["input_size"])
        assert params["num_classes"].default == 1000
        assert set(entry.pretrained) == {"imagenet"}


# Keras' default sizes and top dropout rates (keras/src/applications/*.py).
KERAS_DEFAULTS = {
    "xception": 299, "inception_v3": 299, "inception_resnet_v2": 299, "nasnet_large": 331,
    **{f"efficientnet_b{i}": s for i, s in enumerate((224, 240, 260, 300, 380, 456, 528, 600))},
    **{f"efficientnet_v2_{v}": s for v, s in zip(("b0", "b1", "b2", "b3", "s", "m", "l"),
                                                   (224, 240, 260, 300, 384, 480, 480))},
}
KERAS_DROPOUT = {"mobilenet": 0.001, "mobilenet_v3_small": 0.2, "mobilenet_v3_large": 0.2,
                 **{f"efficientnet_b{i}": r for i, r in enumerate((0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5))},
                 **{f"efficientnet_v2_{v}": 0.2 for v in ("b0", "b1", "b2", "b3", "s", "m", "l")}}


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_keras(name):
    params = inspect.signature(get_entry(name).builder).parameters
    assert params["input_shape"].default == (KERAS_DEFAULTS.get(name, 224),) * 2 + (3,)
    assert params["dropout"].default == KERAS_DROPOUT.get(name, 0.0)


def test_weights_rows_are_keras_applications_files():
    """URL prefix, file name and checksum of every row come from the installed Keras source."""
    assert [row["model"] for row in weights_table.KERAS_APPLICATIONS if row["model"] not in APPLICATIONS] == []
    assert set(ROWS) == set(NAMES) and len(ROWS) == len(weights_table.KERAS_APPLICATIONS)
    for name, row in ROWS.items():
        assert row["application"] == APPLICATIONS[name]
        # The family's module and the applications modules it builds on (resnet_v2 -> resnet).
        modules = [keras_module(name)]
        modules += [m for m in vars(modules[0]).values() if inspect.ismodule(m)
                    and m.__name__.startswith("keras.src.applications.") and m.__name__ != modules[0].__name__]
        source = "\n".join(Path(inspect.getsourcefile(m)).read_text() for m in modules)
        prefixes = [v for m in modules for v in vars(m).values() if isinstance(v, str) and v.startswith("https://")]
        for key in ("url", "notop_url"):
            url = row[key]
            assert any(url == p or (url.startswith(p) and "/" not in url[len(p):]) for p in prefixes), url
            stem = re.sub(r"(_weights_tf_dim_ordering_tf_kernels)?(_notop|_no_top(_v2)?)?\.h5$", "",
                          url.rsplit("/", 1)[1]).removeprefix("weights_mobilenet_v3_")
            if name == "mobilenet":  # "mobilenet_%s_%d_tf.h5" % (alpha "1_0", 224)
                assert stem == "mobilenet_1_0_224_tf" and "mobilenet_%s_%d_tf" in source
            elif name == "mobilenet_v2":  # f"..._{float(alpha)}_{rows}.h5"
                assert stem == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224"
            else:
                assert stem in source, url
        assert row["url"].endswith(".h5") and row["notop_url"] != row["url"]
        hashes = [row.get(k) for k in ("md5", "sha256", "notop_md5", "notop_sha256") if row.get(k)]
        if name in NO_PUBLISHED_HASH:
            assert hashes == [] and "file_hash" not in Path(inspect.getsourcefile(modules[0])).read_text()
        else:
            assert len(hashes) == 2 and all(h in source for h in hashes), name
        assert row["preprocessing"]
        if name.startswith("convnext"):  # no published numbers found offline (weights_table.py)
            assert row["metrics"] == {}
        else:
            assert set(row["metrics"]) <= {"accuracy", "top5_accuracy"}
            assert 0.6 < row["metrics"]["accuracy"] < row["metrics"].get("top5_accuracy", 0.999) < 1
        assert ("post_load" in row) == name.startswith("efficientnet_b")
        if "post_load" in row:
            assert row["post_load"] == "square_normalization_variance"


def test_module_imports_no_tensorflow():
    """`zoo list` must not load TensorFlow: the module imports neither keras nor tensorflow
    (it builds through zoo.lazy and imports zoo.models.layers only inside the builders)."""
    source = Path(__file__).resolve().parents[1] / "zoo" / "models" / "applications.py"
    top_level = [line for line in source.read_text().splitlines()
                 if re.match(r"\s*(import|from) (keras|tensorflow)\b", line)]
    assert top_level == []
    # The module alone (not the zoo.models package, which imports every family): what it loads
    # besides what the registry (and the task table its decorator reads) loads already.
    code = ("import importlib.util, sys\n"
            "heavy = lambda: {m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow')}\n"
            "import zoo.registry, zoo.lazy, zoo.tasks\n"
            "before = heavy()\n"
            "spec = importlib.util.spec_from_file_location('applications_probe', sys.argv[1])\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print(len(before), sorted(heavy() - before)[:5])\n")
    result = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    already, added = result.stdout.split(" ", 1)
    assert added.strip() == "[]", f"zoo.models.applications imported {added}"
    if already != "0":
        pytest.skip("zoo.registry itself loads keras/tensorflow (not this module's doing)")


# ---------------------------------------------------------------- structure: all 40 models


@pytest.mark.parametrize("name", OTHERS)
def test_structure_equals_keras_applications(name):
    """Parameter count with 1000 classes, layer names and weight shapes equal those of
    `keras.applications.X(weights=None)` (include_top=True); built without variables."""
    reference, ours = build_pair(name, PARAMS_SIZE.get(name, MIN_SIZE.get(name, 32)), stateless=True)
    check_structure(name, reference, ours)
    keras.backend.clear_session()


# ------------------------------------------------ numeric: every family's smallest member


def preprocess(name, x):
    return keras_module(name).preprocess_input(x.copy())


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", NUMERIC)
def test_keras_legacy_h5_loads_into_the_same_function(name, tmp_path):
    """Keras' own model (random weights, BatchNorm statistics moved off their initial values)
    written as a Keras Applications legacy .h5, loaded by layer name into the wrapper: every
    layer is mapped and the wrapper's logits on raw pixels equal Keras' on `preprocess_input(x)`
    (this proves the layer mapping and the preprocessing). Parameter counts at Keras' smallest
    input (VGG: also at 224 without variables)."""
    size = MIN_SIZE.get(name, 32)
    if name in PARAMS_SIZE:
        check_structure(name, *build_pair(name, PARAMS_SIZE[name], stateless=True))
    reference, ours = build_pair(name, size, stateless=False)
    check_structure(name, reference, ours)
    perturb(reference)
    if reference.count_params() > IN_MEMORY_PARAMS:
        sources = {layer.name: [np.asarray(v) for v in layer.trainable_weights + layer.non_trainable_weights]
                   for layer in reference.layers if layer.weights}
    else:
        sources = read_legacy_h5(save_keras_applications_h5(reference, tmp_path / f"{name}.h5"))
    fresh = assign_by_name(ours, sources, what=f"{name} legacy weights", legacy_order=True)
    assert fresh == []
    x = images(size)
    expected = np.asarray(reference(preprocess(name, x), training=False))
    logits = keras.Model(ours.input, ours.get_layer("probabilities").input)
    got = np.asarray(logits(x, training=False))
    scale = float(np.abs(expected).max())
    assert np.isfinite(expected).all() and scale > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)
    probabilities = np.asarray(ours(x, training=False))
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    keras.backend.clear_session()


def test_auto_named_layers_load_from_another_session(tmp_path):
    """A legacy file written in a fresh session loads into a wrapper built after other layers
    were created (Keras' auto-name counters moved on: conv2d_2 is now conv2d_5)."""
    size = MIN_SIZE["xception"]
    keras.backend.clear_session()
    reference = keras.applications.Xception(weights=None, input_shape=(size, size, 3), classifier_activation=None)
    perturb(reference)
    path = save_keras_applications_h5(reference, tmp_path / "xception.h5")
    keras.backend.clear_session()
    keras.layers.Conv2D(1, 1), keras.layers.BatchNormalization()  # another model's auto-named layers
    ours = create_model("xception", input_shape=(size, size, 3))
    assert "conv2d" not in {layer.name for layer in ours.layers}
    assign_by_name(ours, read_legacy_h5(path), what="xception legacy weights", legacy_order=True)
    x = images(size)
    expected = np.asarray(reference(preprocess("xception", x), training=False))
    got = np.asarray(keras.Model(ours.input, ours.get_layer("probabilities").input)(x, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    keras.backend.clear_session()


# --------------------------------------------------------------------------- feature pyramids


FEATURE_SIZE = 128  # divisible by 32; big enough for the "valid" padding families


@pytest.mark.parametrize("name", NAMES)
def test_features_only_pyramid(name):
    """P-levels at stride 2**k: spatial size input / 2**k (ConvNeXt's 4x4 stem has no P1).
    Built without variables."""
    keras.backend.clear_session()
    with keras.StatelessScope(initialize_variables=False):
        model = create_model(name, input_shape=(FEATURE_SIZE, FEATURE_SIZE, 3), features_only=True)
    assert isinstance(model.layers[1], Normalize)
    outputs = model.output
    assert isinstance(outputs, dict)
    levels = [int(key[1:]) for key in outputs]
    assert levels == ([2, 3, 4, 5] if name.startswith("convnext") else [1, 2, 3, 4, 5])
    for k in levels:
        assert tuple(outputs[f"P{k}"].shape[1:3]) == (FEATURE_SIZE // 2**k,) * 2, f"P{k}"
    keras.backend.clear_session()


def test_unet_and_retinanet_sit_on_new_families():
    """A U-Net over DenseNet-121 (built and run) and a RetinaNet over Inception-v3 (a "valid"
    padding family whose levels are aligned; built without variables) have their tasks' outputs."""
    keras.backend.clear_session()
    unet = create_model("unet_backbone", input_shape=(64, 64, 3), num_classes=3,
                        backbone="densenet121")
    assert tuple(unet.output.shape) == (None, 64, 64, 3)
    assert unet.get_layer("conv1_relu") is not None and unet.get_layer("pool4_conv") is not None
    masks = np.asarray(unet(images(64), training=False))
    assert masks.shape == (2, 64, 64, 3) and masks.dtype == np.float32
    np.testing.assert_allclose(masks.sum(axis=-1), 1.0, atol=1e-5)
    keras.backend.clear_session()
    with keras.StatelessScope(initialize_variables=False):
        detector = create_model("retinanet_small", input_shape=(128, 128, 3), num_classes=3,
                                backbone="inception_v3")
    assert detector.get_layer("mixed10") is not None
    assert detector.output.shape[0] is None and detector.output.shape[-1] == 4 + 3
    keras.backend.clear_session()


def test_aligned_levels_keep_the_valid_convolution_map_centred():
    """Inception-v3 at 224: P5 (5x5 -> 7x7) is Keras' include_top=False output with a zero border."""
    keras.backend.clear_session()
    features = create_model("inception_v3", input_shape=(224, 224, 3), features_only=True)
    perturb(features)
    x = images(224, n=1)
    p5 = np.asarray(features(x, training=False)["P5"])
    inner = np.asarray(keras.Model(features.input, features.get_layer("mixed10").output)(x, training=False))
    assert p5.shape == (1, 7, 7, 2048) and inner.shape == (1, 5, 5, 2048)
    np.testing.assert_array_equal(p5[:, 1:6, 1:6], inner)
    assert not p5[:, 0].any() and not p5[:, 6].any() and not p5[:, :, 0].any() and not p5[:, :, 6].any()
    keras.backend.clear_session()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # numpy 2 __array__(copy=) in keras
@pytest.mark.parametrize("name", ["mobilenet_v3_small", "convnext_tiny"])
def test_keras_save_load_round_trip(name, tmp_path):
    """Keras' own layers (hard-swish, ConvNeXt's LayerScale) and the zoo's survive `.keras`."""
    keras.backend.clear_session()
    model = create_model(name, input_shape=(32, 32, 3), num_classes=5, dropout=0.1)
    perturb(model)
    x = images(32)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == model.count_params()
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)),
                               rtol=1e-6, atol=1e-7)
    keras.backend.clear_session()


def test_fine_tuning_head_names():
    """Another class count changes exactly the declared head layers."""
    for name in ("mobilenet", "mobilenet_v3_small", "convnext_tiny", "efficientnet_b0"):
        keras.backend.clear_session()
        with keras.StatelessScope(initialize_variables=False):
            model = create_model(name, input_shape=(32, 32, 3), num_classes=7)
        for layer_name in get_entry(name).head:
            assert model.get_layer(layer_name).kernel.shape[-1] == 7
        assert tuple(model.output.shape) == (None, 7)
        layer_names = {layer.name for layer in model.layers}
        top_dropout = {"mobilenet": "dropout", "mobilenet_v3_small": "dropout", "efficientnet_b0": "top_dropout"}
        if name in top_dropout:  # Keras' name and rate for its top dropout
            assert model.get_layer(top_dropout[name]).rate == KERAS_DROPOUT[name]
        else:
            assert "head_dropout" not in layer_names
    keras.backend.clear_session()


def test_mixed_precision_outputs_float32():
    keras.backend.clear_session()  # (resets the dtype policy: set it after)
    keras.config.set_dtype_policy("mixed_float16")  # conftest restores float32
    model = create_model("mobilenet", input_shape=(32, 32, 3), num_classes=5)
    assert model.get_layer("conv_preds").compute_dtype == "float16"
    y = np.asarray(model(images(32)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, atol=1e-3)
    keras.backend.clear_session()
