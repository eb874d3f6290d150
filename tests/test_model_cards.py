"""Model cards: `zoo info MODEL[.TAG]` and `zoo list --pretrained --json` (zoo/model_cards.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from conftest import run_cli

import zoo
from zoo import model_cards
from zoo.models import get_spec

ROOT = Path(__file__).resolve().parents[1]
TEXT_FIELDS = [k for k in model_cards.WEIGHT_FIELDS if k not in ("architecture", "task", "parameters", "flops")]


def zoo_process(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # conftest's; the CLI's own default is what users get
    return subprocess.run([sys.executable, "-m", "zoo.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_zoo_info_digits_says_what_input_the_weights_expect():
    done = zoo_process("info", "digits_cnn.digits")
    assert done.returncode == 0 and done.stderr == ""  # no TensorFlow or profiler noise
    out = " ".join(done.stdout.split())  # unwrapped
    assert "8x8 RGB images, raw pixel values 0..255: white-on-black handwritten digits" in out
    assert "UCI Optical Recognition of Handwritten Digits" in out and "1,437 images" in out
    assert "accuracy 0.9944" in out and "measured by benchmarks/make_pretrained.py" in out
    assert "recipes/classification/digits_cnn.yaml" in out and "CC BY 4.0" in out
    assert "black-on-white" in out.split("known limits", 1)[1]


def test_parameters_and_flops_are_those_of_the_model_the_weights_load_into(capsys):
    code, out, _ = run_cli(capsys, "info", "digits_cnn.digits")
    assert code == 0
    rows = {line[:15].strip(): line[15:] for line in out.splitlines() if line[:15].strip()}
    model = zoo.create_model("digits_cnn.digits")
    assert rows["parameters"] == f"{model.count_params():,}"
    assert rows["FLOPs"].startswith(f"{model_cards.count_flops(model) / 1e6:.3g} MFLOPs at 1x8x8x3")


def test_flops_are_twice_the_multiply_adds_of_the_convolutions_and_dense_layers():
    model = zoo.create_model("digits_cnn")
    multiply_adds = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            multiply_adds += int(np.prod(layer.output.shape[1:3])) * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Dense):
            multiply_adds += int(np.prod(layer.kernel.shape))
    flops = model_cards.count_flops(model)
    # the rest: bias adds, ReLUs, pooling, the input scaling and the softmax, about 1%
    assert 2 * multiply_adds <= flops <= 1.03 * 2 * multiply_adds, (flops, multiply_adds)


def test_recurrent_layers_are_counted_at_every_time_step():
    """The profiler counts a loop's body once: an LSTM is unrolled before counting."""
    def lstm(steps, features=64, units=32):
        inputs = keras.Input((steps, features))
        return keras.Model(inputs, keras.layers.LSTM(units)(inputs))

    one, eight = model_cards.count_flops(lstm(1)), model_cards.count_flops(lstm(8))
    assert one >= 2 * 4 * 32 * (64 + 32)  # the four gates' input and recurrent kernels
    assert eight == pytest.approx(8 * one, rel=0.05)


def test_on_another_backend_the_card_says_flops_were_not_counted(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    info = model_cards.card("digits_cnn")
    assert info["flops"] is None and info["parameters"] == 21_962
    (line,) = [line for line in model_cards.format_card(info) if line.startswith("FLOPs")]
    assert "not counted" in line and "KERAS_BACKEND=tensorflow" in line


def test_every_pretrained_weight_has_a_card_with_every_field_filled():
    for name in zoo.list_pretrained():
        fields = model_cards.weight_fields(get_spec(name))
        for key in TEXT_FIELDS[1:]:  # all but "name", which `card` adds
            if key == "metrics" and not fields[key]:  # none published (ConvNeXt): the source says so
                assert fields["metrics_source"].startswith("none:"), name
                continue
            assert fields[key], f"{name}: empty {key}"
        zoo_weight = not get_spec(name).application
        assert ("measured by benchmarks/make_pretrained.py" if zoo_weight else "not re-measured here") \
            in fields["metrics_source"], name
    assert len(model_cards.ZOO_CARDS) == 4 and set(model_cards.ZOO_CARDS) <= set(zoo.list_pretrained())


def test_list_pretrained_json_carries_the_cards_fields(capsys):
    code, out, _ = run_cli(capsys, "list", "unet_small", "--pretrained", "--json")
    assert code == 0
    (listed,) = json.loads(out)  # one array, one card per weight
    assert listed == model_cards.card("unet_small.shapes")
    assert set(model_cards.WEIGHT_FIELDS) <= set(listed)
    assert listed["parameters"] == zoo.create_model("unet_small.shapes").count_params()
    assert listed["flops"] > 0 and listed["flops_input"] == [1, 64, 64, 3]
    assert listed["metrics"]["mIoU"] == get_spec("unet_small.shapes").metrics["mIoU"]
    code, _, err = run_cli(capsys, "list", "--json")
    assert code == 2 and "add --pretrained" in err


def test_zoo_info_of_a_model_lists_its_weight_tags(capsys):
    code, out, _ = run_cli(capsys, "info", "retinanet_small")
    assert code == 0
    rows = {line[:15].strip(): line[15:] for line in out.splitlines() if line[:15].strip()}
    assert rows["weights"] == "retinanet_small.shapes" and rows["default input"] == "128x128x3"
    assert rows["parameters"] == f"{zoo.create_model('retinanet_small').count_params():,}"
    assert "GFLOPs at 1x128x128x3" in rows["FLOPs"] and "Focal Loss" in rows["architecture"]


def test_keras_applications_card_needs_no_download(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("zoo info downloaded something")

    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(keras.utils, "get_file", no_network)
    info = model_cards.card("mobilenet_v3_small.imagenet")
    assert info["parameters"] == 2_554_968  # Keras Applications' MobileNetV3Small, 1000 classes
    assert "ImageNet-1k" in info["data"] and info["metrics"] == {"accuracy": 0.681}
    assert "docstring" in info["metrics_source"] and info["flops"] > 0


@pytest.mark.parametrize("name, message", [
    ("digits_cnn.digit", "digits_cnn.digit: digits_cnn has no weights tagged 'digit'; did you mean digits_cnn.digits?"),
    ("digitz_cnn.digits", "unknown model 'digitz_cnn'; did you mean digits_cnn.digits"),
    ("resnet18.imagenet", "resnet18.imagenet: resnet18 has no pretrained weights"),
])
def test_unknown_model_or_tag_is_one_line_and_status_2(name, message):
    done = zoo_process("info", name)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"zoo: error: {message}")


def test_the_digits_cards_limit_holds():
    """The card says inverted (black-on-white) digits score near chance: re-measured here."""
    with np.load(ROOT / "zoo" / "assets" / "digits.npz") as f:
        images, labels = f["images"], f["labels"]
    white_on_black = np.repeat((images * (255 / 16)).round()[..., None], 3, -1).astype("float32")
    model = zoo.create_model("digits_cnn.digits")
    accuracy = [float((model.predict(x, verbose=0).argmax(-1) == labels).mean())
                for x in (white_on_black, 255 - white_on_black)]
    assert accuracy[0] > 0.97 and accuracy[1] < 0.2, accuracy
