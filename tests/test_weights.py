"""Pretrained weights: the zoo's promise (checksums, re-measured metrics), the download cache,
offline mode, head replacement, and Keras Applications' ImageNet files loaded by layer name.

No network: downloads use file:// URLs to files made here; the Keras Applications tests serve a
Keras-Applications-style .h5 written from a keras.applications model built with weights=None.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import urllib.request
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import perturb, save_keras_applications_h5

import zoo
from zoo import weight_files, weights
from zoo.cli import main as cli_main
from zoo.errors import ZooError
from zoo.models import get_entry
from zoo.registry import WeightFile, WeightsSpec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [spec for name in zoo.list_models(pretrained=True)
           for spec in get_entry(name).pretrained.values() if spec.file.url is None]


def images(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def run(model, x):
    """Eager inference (no tf.function tracing: faster than predict for one small batch)."""
    return keras.tree.map_structure(np.asarray, model(x, training=False))


@pytest.fixture(autouse=True)
def zoo_home(tmp_path, monkeypatch):
    """A private, empty cache; Keras' own cache isolated too; online."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return tmp_path / "zoo_home"


# ------------------------------------------------------------------ the shipped weights


def test_the_table_is_attached_and_listed():
    assert "digits_cnn.digits" in zoo.list_pretrained()
    assert zoo.list_pretrained("digits*") == ["digits_cnn.digits"]
    assert {"resnet50.imagenet", "mobilenet_v3_small.imagenet"} <= set(zoo.list_pretrained())
    assert get_entry("digits_cnn").default_tag == "digits"
    assert "digits_cnn" in zoo.list_models(pretrained=True)


def test_every_package_file_has_a_table_row():
    files = {spec.file.name for spec in SHIPPED}
    on_disk = {p.name for p in weight_files.ASSETS_DIR.glob("*.weights.h5")}
    assert on_disk == files, "a file in zoo/assets/weights/ without a row, or a row without its file"


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.name)
def test_shipped_weight_checksum_and_load(spec):
    path = weight_files.ASSETS_DIR / spec.file.name
    assert weight_files.file_sha256(path) == spec.file.sha256
    assert path.stat().st_size < 25_000_000, "package weights stay small (< 25 MB; float16 if need be)"
    model = zoo.create_model(spec.model, pretrained=spec.tag)
    assert model.output_shape[-1] == spec.num_classes or get_entry(spec.model).task == "detection"
    assert spec.recipe and spec.metrics, "every shipped weight has a recipe and a measured metric"


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.name)
def test_shipped_weight_reproduces_its_published_metric(spec):
    """The zoo's promise: re-evaluating the weight with its recipe gives the table's metric."""
    default = get_entry(spec.model).default_tag == spec.tag
    measured = zoo.evaluate(spec.recipe, weights="pretrained" if default else spec.tag)
    for name, published in spec.metrics.items():
        assert measured[name] == pytest.approx(published, abs=spec.tolerance), name


def test_cli_lists_weights_with_dataset_input_and_metric(capsys):
    assert cli_main(["list", "digits*", "--pretrained"]) == 0
    out = capsys.readouterr().out
    (line,) = out.splitlines()
    assert line.startswith("digits_cnn.digits") and "8x8x3" in line and "accuracy 0.99" in line
    assert "digits" in line.split("classes", 1)[1]


def test_docs_list_every_weight():
    table = (ROOT / "docs" / "models.md").read_text()
    missing = [name for name in zoo.list_pretrained() if f"| `{name}` |" not in table]
    assert not missing, f"run `python docs/generate_models.py`: {missing}"


# ---------------------------------------------------------------------- head replacement


def test_other_num_classes_keeps_the_backbone_and_builds_a_fresh_head():
    pretrained = zoo.create_model("digits_cnn", pretrained=True)
    with pytest.warns(UserWarning, match="predictions_dense start fresh"):
        tuned = zoo.create_model("digits_cnn", pretrained=True, num_classes=3)
    for name in ("conv1_relu", "conv2_relu"):
        for a, b in zip(tuned.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert tuned.get_layer("predictions_dense").kernel.shape == (256, 3)
    features = zoo.create_model("digits_cnn", pretrained="digits", features_only=True)
    np.testing.assert_array_equal(features.get_layer("conv2_relu").get_weights()[0],
                                  pretrained.get_layer("conv2_relu").get_weights()[0])


def test_model_dot_tag_names_load_as_pretrained_tags():
    """The names `zoo list --pretrained` prints are create_model names."""
    assert "digits_cnn.digits" in zoo.list_pretrained()
    x = images((8, 8, 3))
    by_name = zoo.create_model("digits_cnn.digits")
    np.testing.assert_array_equal(by_name.predict(x, verbose=0),
                                  zoo.create_model("digits_cnn", pretrained="digits").predict(x, verbose=0))
    assert not np.allclose(by_name.predict(x, verbose=0), zoo.create_model("digits_cnn").predict(x, verbose=0))
    with pytest.raises(ZooError, match=r"no pretrained tag or file 'nope' \(tags: digits\)"):
        zoo.create_model("digits_cnn.nope")


def test_a_new_head_replaces_exactly_the_declared_head():
    """Another class count: the registry's `head` layers start fresh, every other layer loads."""
    assert get_entry("digits_cnn").head == ("predictions_dense",)
    with pytest.warns(UserWarning, match=r"layer\(s\) predictions_dense start fresh"):
        tuned = zoo.create_model("digits_cnn.digits", num_classes=3)
    pretrained = zoo.create_model("digits_cnn.digits")
    loaded = [layer.name for layer in tuned.layers if layer.weights
              and all(np.array_equal(a, b) for a, b in zip(layer.get_weights(),
                                                          pretrained.get_layer(layer.name).get_weights()))]
    weighted = [layer.name for layer in tuned.layers if layer.weights]
    assert loaded == [name for name in weighted if name != "predictions_dense"]


@pytest.mark.parametrize("name, head, kept", [("retinanet_small.shapes", "class_logits", "box_deltas"),
                                              ("unet_small.shapes", "logits", "dec0_2_conv")])
def test_detector_and_unet_heads_are_declared_and_replaced(name, head, kept):
    model, tag = name.split(".")
    assert get_entry(model).head == (head,)
    with pytest.warns(UserWarning, match=rf"layer\(s\) {head} start fresh"):
        tuned = zoo.create_model(name, num_classes=5)
    pretrained = zoo.create_model(name)
    for a, b in zip(tuned.get_layer(kept).get_weights(), pretrained.get_layer(kept).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert tuned.get_layer(head).get_weights()[0].shape[-1] != pretrained.get_layer(head).get_weights()[0].shape[-1]


def test_weights_that_do_not_fit_are_a_one_line_error():
    with pytest.raises(ZooError, match=r"input 8x8x3\) do not fit .* 16x16x3: layer 'predictions_dense'") as err:
        zoo.create_model("digits_cnn", pretrained=True, input_shape=(16, 16, 3))
    assert "\n" not in str(err.value)
    with pytest.raises(ZooError, match=r"no pretrained tag or file 'nope' \(tags: digits\)"):
        zoo.create_model("digits_cnn", pretrained="nope")
    with pytest.raises(ZooError, match="weights file not found"):
        zoo.create_model("digits_cnn", pretrained="/no/such/file.weights.h5")


def test_local_files_load_and_replace_heads(tmp_path):
    pretrained = zoo.create_model("digits_cnn", pretrained=True)
    x = images((8, 8, 3))
    pretrained.save(tmp_path / "m.keras")
    pretrained.save_weights(tmp_path / "m.weights.h5")
    for path in (tmp_path / "m.keras", tmp_path / "m.weights.h5", str(tmp_path / "m.weights.h5")):
        model = zoo.create_model("digits_cnn", pretrained=path)
        np.testing.assert_allclose(model.predict(x, verbose=0), pretrained.predict(x, verbose=0), rtol=1e-6)
    with pytest.warns(UserWarning, match="start fresh"):
        tuned = zoo.create_model("digits_cnn", pretrained=tmp_path / "m.weights.h5", num_classes=4)
    np.testing.assert_array_equal(tuned.get_layer("conv1_relu").get_weights()[0],
                                  pretrained.get_layer("conv1_relu").get_weights()[0])


# ------------------------------------------------------------------- download and cache


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """A digits_cnn weight served at a file:// URL, registered as tag "remote"; counts downloads."""
    model = zoo.create_model("digits_cnn")
    perturb(model, seed=1)
    path = tmp_path / "server" / "digits_cnn.remote.weights.h5"
    path.parent.mkdir()
    model.save_weights(path)
    spec = WeightsSpec(model="digits_cnn", tag="remote",
                       file=WeightFile(path.name, path.as_uri(), sha256=weight_files.file_sha256(path)),
                       dataset="test", input_size=(8, 8, 3), num_classes=10, preprocessing="raw pixels")
    monkeypatch.setitem(get_entry("digits_cnn").pretrained, "remote", spec)
    calls = []
    real = urllib.request.urlopen

    def counting_urlopen(url, *args, **kwargs):
        calls.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(weight_files.urllib.request, "urlopen", counting_urlopen)
    return model, spec, path, calls


def test_download_is_cached_once_and_verified(remote, zoo_home):
    model, spec, _, calls = remote
    first = zoo.create_model("digits_cnn", pretrained="remote")
    cached = zoo_home / "weights" / spec.file.name
    assert cached.is_file() and len(calls) == 1
    assert not [p for p in cached.parent.iterdir() if p.name != cached.name], "no temporary files left"
    second = zoo.create_model("digits_cnn", pretrained="remote")
    assert len(calls) == 1, "the second call uses the cache"
    for a, b, c in zip(first.get_weights(), second.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_tampered_cache_is_refused_and_removed(remote, zoo_home):
    _, spec, _, calls = remote
    zoo.create_model("digits_cnn", pretrained="remote")
    cached = zoo_home / "weights" / spec.file.name
    with open(cached, "r+b") as f:
        f.seek(-8, 2)
        f.write(b"tampered")
    with pytest.raises(ZooError, match=f"checksum mismatch: cached {cached} has sha256 [0-9a-f]+, expected") as err:
        zoo.create_model("digits_cnn", pretrained="remote")
    assert "\n" not in str(err.value)
    assert not cached.exists()
    zoo.create_model("digits_cnn", pretrained="remote")  # downloads it again
    assert len(calls) == 2 and weight_files.file_sha256(cached) == spec.file.sha256


def test_download_with_a_wrong_checksum_is_refused(remote, zoo_home, monkeypatch):
    _, spec, _, _ = remote
    bad = dataclasses.replace(spec, file=dataclasses.replace(spec.file, sha256="0" * 64))
    monkeypatch.setitem(get_entry("digits_cnn").pretrained, "remote", bad)
    with pytest.raises(ZooError, match="checksum mismatch for file://.*expected 0000.*the download was removed"):
        zoo.create_model("digits_cnn", pretrained="remote")
    assert not list((zoo_home / "weights").iterdir()), "neither the file nor a temporary file stays"


def test_offline_mode_names_the_missing_file(remote, zoo_home, monkeypatch):
    _, spec, _, calls = remote
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    expected = zoo_home / "weights" / spec.file.name
    with pytest.raises(ZooError, match=f"ZOO_OFFLINE=1 .*missing {expected} ") as err:
        zoo.create_model("digits_cnn", pretrained="remote")
    assert "\n" not in str(err.value) and not calls
    monkeypatch.delenv("ZOO_OFFLINE")
    zoo.create_model("digits_cnn", pretrained="remote")
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    zoo.create_model("digits_cnn", pretrained="remote")  # cached: fine offline
    assert len(calls) == 1


def test_unreachable_url_is_a_one_line_error(remote, monkeypatch, tmp_path):
    _, spec, _, _ = remote
    gone = dataclasses.replace(spec, file=dataclasses.replace(spec.file, url=(tmp_path / "nowhere.h5").as_uri()))
    monkeypatch.setitem(get_entry("digits_cnn").pretrained, "remote", gone)
    with pytest.raises(ZooError, match="cannot download file://.*nowhere.h5") as err:
        zoo.create_model("digits_cnn", pretrained="remote")
    assert "\n" not in str(err.value)


# ------------------------------------------------ files without a published checksum (MobileNetV2)


@pytest.fixture
def unpublished(remote, tmp_path, monkeypatch):
    """The remote weight without a published checksum; Keras' caches ($KERAS_HOME, ~, a stand-in
    for the world-writable /tmp/.keras) all under tmp_path. Yields (file, served path, Keras cache
    dirs, download calls)."""
    model, spec, served, calls = remote
    spec = dataclasses.replace(spec, file=dataclasses.replace(spec.file, sha256=None))
    monkeypatch.setitem(get_entry("digits_cnn").pretrained, "remote", spec)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    keras_dirs = [tmp_path / "keras_home" / "models", tmp_path / "home" / ".keras" / "models",
                  tmp_path / "tmp" / ".keras" / "models"]
    monkeypatch.setattr(weight_files, "_keras_cache_dirs", lambda: keras_dirs, raising=False)
    monkeypatch.setattr(weight_files, "_UNVERIFIED_WARNED", set())
    return spec.file, served, keras_dirs, calls


def record_of(path):
    return path.with_name(path.name + ".sha256")


def test_unpublished_checksum_skips_keras_caches_and_records_the_download(remote, unpublished, zoo_home):
    weight_file, served, keras_dirs, calls = unpublished
    for keras_dir in keras_dirs:  # planted by someone else
        keras_dir.mkdir(parents=True)
        (keras_dir / weight_file.name).write_bytes(b"planted")
    with pytest.warns(UserWarning, match="publishes no checksum.*recorded then and verified on every later use"):
        model = zoo.create_model("digits_cnn", pretrained="remote")
    for a, b in zip(model.get_weights(), remote[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    cached = zoo_home / "weights" / weight_file.name
    assert len(calls) == 1 and cached.read_bytes() == served.read_bytes()
    assert record_of(cached).read_text().split() == [weight_files.file_sha256(served), weight_file.name]
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name, record_of(cached).name]
    assert weight_files.fetch(weight_file) == cached and len(calls) == 1, "later uses: the verified cache"


def test_unpublished_checksum_tampered_cache_is_refused_and_removed(unpublished, zoo_home):
    weight_file, served, _, calls = unpublished
    cached = weight_files.fetch(weight_file)
    digest = weight_files.file_sha256(served)
    with open(cached, "r+b") as f:
        f.seek(-8, 2)
        f.write(b"tampered")
    with pytest.raises(ZooError, match=f"checksum mismatch: cached {cached} has sha256 [0-9a-f]+, "
                                       f"expected {digest} \\(recorded in {cached.name}.sha256\\); removed") as err:
        weight_files.fetch(weight_file)
    assert "\n" not in str(err.value)
    assert not cached.exists() and not record_of(cached).exists()
    assert weight_files.fetch(weight_file) == cached and len(calls) == 2  # downloads it again
    assert weight_files.file_sha256(cached) == digest


def test_unpublished_checksum_offline(unpublished, zoo_home, monkeypatch):
    weight_file, served, keras_dirs, calls = unpublished
    keras_dirs[-1].mkdir(parents=True)
    (keras_dirs[-1] / weight_file.name).write_bytes(served.read_bytes())  # even a genuine copy: unused
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    cached = zoo_home / "weights" / weight_file.name
    with pytest.raises(ZooError, match=f"ZOO_OFFLINE=1 .*missing {cached} ") as err:
        weight_files.fetch(weight_file)
    assert "\n" not in str(err.value) and not calls
    monkeypatch.delenv("ZOO_OFFLINE")
    weight_files.fetch(weight_file)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert weight_files.fetch(weight_file) == cached  # recorded and verified, offline
    cached.write_bytes(b"changed")
    with pytest.raises(ZooError, match="checksum mismatch"):
        weight_files.fetch(weight_file)
    with pytest.raises(ZooError, match=f"ZOO_OFFLINE=1 .*missing {cached} "):
        weight_files.fetch(weight_file)
    assert len(calls) == 1


def test_unpublished_checksum_file_put_by_hand_is_trusted_on_first_use(unpublished, zoo_home, monkeypatch):
    weight_file, served, _, calls = unpublished
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # an offline machine prepared by copying the file
    cached = zoo_home / "weights" / weight_file.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(served.read_bytes())
    with pytest.warns(UserWarning, match=f"{cached}: no published checksum and no record .* used unverified"):
        assert weight_files.fetch(weight_file) == cached
    assert record_of(cached).read_text().split()[0] == weight_files.file_sha256(served) and not calls
    cached.write_bytes(b"changed")
    with pytest.raises(ZooError, match="checksum mismatch"):
        weight_files.fetch(weight_file)
    assert not cached.exists() and not record_of(cached).exists()


# ------------------------------------------------- Keras Applications ImageNet files, by name




def serve(monkeypatch, model_name, full=None, notop=None, tmp_path=None):
    """Point `model_name`'s "imagenet" row at file:// copies (md5-checked, as Keras publishes)."""
    spec = get_entry(model_name).pretrained["imagenet"]

    def as_file(path):
        return WeightFile(path.name, path.as_uri(), md5=hashlib.md5(path.read_bytes()).hexdigest())

    spec = dataclasses.replace(spec, file=as_file(full) if full else spec.file,
                               notop=as_file(notop) if notop else spec.notop)
    monkeypatch.setitem(get_entry(model_name).pretrained, "imagenet", spec)
    return spec


def test_imagenet_weights_load_by_name_into_mobilenet_v3_small(tmp_path, monkeypatch):
    shape = (64, 64, 3)
    reference = keras.applications.MobileNetV3Small(input_shape=shape, weights=None)
    perturb(reference)
    reference_notop = keras.applications.MobileNetV3Small(input_shape=shape, weights=None, include_top=False)
    for layer in reference_notop.layers:
        if layer.weights:
            layer.set_weights(reference.get_layer(layer.name).get_weights())
    serve(monkeypatch, "mobilenet_v3_small",
          full=save_keras_applications_h5(reference, tmp_path / "weights_mobilenet_v3_small_224_1.0_float.h5"),
          notop=save_keras_applications_h5(reference_notop, tmp_path / "weights_mobilenet_v3_small_notop.h5"))
    x = images(shape)

    # 1000-class head: the full file, layer for layer (Keras' own head names); same function.
    model = zoo.create_model("mobilenet_v3_small", input_shape=shape, pretrained="imagenet")
    np.testing.assert_allclose(run(model, x), run(reference, x), rtol=1e-4, atol=1e-6)

    # features_only (detector backbones): the notop file; P5 = Keras' include_top=False output.
    features = zoo.create_model("mobilenet_v3_small", input_shape=shape, features_only=True, pretrained="imagenet")
    expected = run(reference_notop, x)
    np.testing.assert_allclose(run(features, x)["P5"], expected, rtol=1e-4, atol=1e-4)

    # An encoder built elsewhere (U-Net, CNN+LSTM): load_backbone_weights, the same weights.
    encoder = zoo.create_model("mobilenet_v3_small", input_shape=shape, features_only=True)
    assert weights.load_backbone_weights(encoder, "mobilenet_v3_small", "imagenet") is encoder
    np.testing.assert_allclose(run(encoder, x)["P5"], expected, rtol=1e-4, atol=1e-4)

    # Fine-tuning head: every other layer (conv_2 of Keras' top included) keeps its weights.
    with pytest.warns(UserWarning, match=r"layer\(s\) logits start fresh"):
        tuned = zoo.create_model("mobilenet_v3_small", input_shape=shape, num_classes=5, pretrained="imagenet")
    for name in ("conv", "expanded_conv_10_project", "conv_1_bn", "conv_2"):
        for a, b in zip(tuned.get_layer(name).get_weights(), reference.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert tuned.get_layer("logits").kernel.shape == (1, 1, 1024, 5)


def test_efficientnet_imagenet_normalization_is_squared(tmp_path, monkeypatch):
    """Keras stores the ImageNet std as the Normalization variance (and rescales by 1/sqrt(std)
    only when built with weights="imagenet"): the zoo's backbone must compute (x/255 - mean)/std."""
    shape = (32, 32, 3)
    reference = keras.applications.EfficientNetB0(input_shape=shape, weights=None, include_top=False)
    perturb(reference)
    norm = next(layer for layer in reference.layers if isinstance(layer, keras.layers.Normalization))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    norm.set_weights([mean.astype("float32"), std.astype("float32"), norm.get_weights()[2]])
    serve(monkeypatch, "efficientnet_b0", notop=save_keras_applications_h5(reference, tmp_path / "effb0_notop.h5"))
    features = zoo.create_model("efficientnet_b0", input_shape=shape, features_only=True, pretrained="imagenet")
    ours = next(layer for layer in features.layers if isinstance(layer, keras.layers.Normalization))
    x = images(shape)
    normalized = run(keras.Model(features.input, ours.output), x)
    np.testing.assert_allclose(normalized, (x / 255.0 - mean) / std, rtol=1e-4, atol=1e-4)
    # The rest of the backbone: Keras' own graph with the corrected variance gives the same P5.
    norm.set_weights([mean.astype("float32"), np.square(std).astype("float32"), norm.get_weights()[2]])
    norm.finalize_state()
    np.testing.assert_allclose(run(features, x)["P5"], run(reference, x),
                               rtol=1e-3, atol=1e-3)


def test_imagenet_weights_of_the_wrong_architecture_are_refused(tmp_path, monkeypatch):
    other = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, include_top=False)
    serve(monkeypatch, "mobilenet_v2", notop=save_keras_applications_h5(other, tmp_path / "wrong.h5"))
    with pytest.raises(ZooError, match="weights mobilenet_v2.imagenet .*wrong.h5.*layer") as err:
        zoo.create_model("mobilenet_v2", input_shape=(32, 32, 3), features_only=True, pretrained="imagenet")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------- .keras files


def saved_digits_cnn(tmp_path, seed=2):
    model = zoo.create_model("digits_cnn")
    perturb(model, seed=seed)
    model.save(tmp_path / "model.keras")
    return model, tmp_path / "model.keras"


def garbage_file(tmp_path):
    (tmp_path / "garbage.keras").write_bytes(b"not a zip")
    return tmp_path / "garbage.keras"


def truncated_file(tmp_path):
    _, path = saved_digits_cnn(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def lambda_file(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Lambda(lambda x: x / 255.0)(inputs)))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    return tmp_path / "lambda.keras"


def unknown_layer_file(tmp_path):
    with zipfile.ZipFile(tmp_path / "unknown.keras", "w") as archive:
        archive.writestr("config.json", '{"class_name": "NoSuchLayer", "config": {}}')
        archive.writestr("metadata.json", "{}")
    return tmp_path / "unknown.keras"


@pytest.mark.parametrize("make, message", [
    (lambda tmp_path: tmp_path / "missing.keras", "^model file not found: {path}$"),
    (garbage_file, "^{path} is not a valid Keras model file \\(File is not a zip file\\)$"),
    (truncated_file, "^{path} is not a valid Keras model file \\(File is not a zip file\\)$"),
    (lambda_file, "^{path} contains a Lambda layer \\(arbitrary Python code\\), which Keras' safe mode "
                  "refuses to load; if you trust the file, rebuild the model without it"),
    (unknown_layer_file, "^{path} is not a valid Keras model file: Could not locate class 'NoSuchLayer'"),
], ids=["missing", "garbage", "truncated", "lambda", "unknown_layer"])
def test_bad_model_files_are_one_line_errors_naming_the_file(tmp_path, make, message):
    path = make(tmp_path)
    as_weights = [lambda: zoo.create_model("digits_cnn", pretrained=path)] if path.exists() else []
    for load in [*as_weights, lambda: weights.load_model_file(path)]:
        with pytest.raises(ZooError) as err:
            load()
        text = str(err.value)
        assert "\n" not in text and re.search(message.format(path=re.escape(str(path))), text), text


def test_a_good_model_file_loads_with_identical_outputs(tmp_path):
    model, path = saved_digits_cnn(tmp_path)
    loaded = weights.load_model_file(str(path))
    x = images((8, 8, 3))
    np.testing.assert_array_equal(run(loaded, x), run(model, x))
    assert not loaded.compiled
