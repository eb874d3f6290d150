"""Fine-tuning from a recipe or the command line: `model.pretrained: TAG | imagenet | PATH | URL`
in every family (docs/weights.md), the retired `backbone_weights` recipe key, and the errors a user
can cause (one line naming `model.pretrained`, exit status 2)."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo import weight_files
from zoo.cli import main as cli_main
from zoo.errors import RecipeError, ZooError
from zoo.models import get_entry

FAST = ["train.verbose=0", "train.validate=false"]


# ------------------------------------------------------------- printed digits: another domain


def _glyphs():
    """Digits 0-9 in PIL's built-in bitmap font (5x7 pixels), white on black, cropped."""
    from PIL import Image, ImageDraw, ImageFont

    font = getattr(ImageFont, "load_default_imagefont", ImageFont.load_default)()
    out = []
    for digit in range(10):
        img = Image.new("L", (12, 14), 0)
        ImageDraw.Draw(img).text((2, 1), str(digit), fill=255, font=font)
        out.append(img.crop(img.getbbox()))
    return out


def _render(glyph, rng):
    """One printed digit on an 8x8..16x16 canvas: random size, aspect, rotation, offset, ink
    level, background and noise (the embedded UCI digits are handwritten and fill their frame)."""
    from PIL import Image

    size = int(rng.integers(8, 17))
    scale = rng.uniform(0.55, 0.95) * size / glyph.height
    g = glyph.resize((max(2, round(glyph.width * scale * rng.uniform(0.8, 1.25))), max(3, round(glyph.height * scale))),
                     Image.BILINEAR)
    g = g.rotate(rng.uniform(-20, 20), resample=Image.BILINEAR, expand=True)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(g, (int(rng.integers(0, max(1, size - g.width + 1))), int(rng.integers(0, max(1, size - g.height + 1)))), g)
    pixels = np.asarray(canvas, np.float32) * rng.uniform(0.6, 1.0)
    pixels += rng.normal(0, rng.uniform(10, 40), pixels.shape) + rng.uniform(0, 40)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")


def write_printed_digits(root, per_split: dict, digits=range(10), seed=0):
    """PNG files `root/<split>/<digit>/<i>.png` (the folder source's layout)."""
    rng = np.random.default_rng(seed)
    glyphs = _glyphs()
    for split, count in per_split.items():
        for digit in digits:
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for i in range(count):
                _render(glyphs[digit], rng).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    return write_printed_digits(tmp_path_factory.mktemp("printed"), {"train": 30, "test": 50})


def folder_recipe(path, *overrides):
    return zoo.load_recipe("digits_cnn", ["data.source=folder", f"data.path={path}", *FAST, *overrides])


def test_finetuning_from_the_digits_weights_beats_training_from_scratch(printed, tmp_path, capsys):
    """digits_cnn.digits (handwritten UCI digits) fine-tuned on printed digits, 2 epochs x 15
    steps of 16 images, against the same 30 steps from random weights, on 500 test images."""
    budget = ["train.epochs=2", "train.steps_per_epoch=15", "data.batch_size=16"]
    zero_shot = zoo.evaluate(folder_recipe(printed), weights="digits")["accuracy"]
    tuned = zoo.train(folder_recipe(printed, "model.pretrained=digits", *budget), output_dir=tmp_path / "tuned")
    scratch = zoo.train(folder_recipe(printed, "model.pretrained=null", *budget), output_dir=tmp_path / "scratch")
    tuned_acc, scratch_acc = tuned.metrics["accuracy"], scratch.metrics["accuracy"]
    log = capsys.readouterr().out
    print(f"printed digits, 500 test images: pretrained zero-shot {zero_shot:.3f}, fine-tuned {tuned_acc:.3f}, "
          f"from scratch {scratch_acc:.3f}")
    assert tuned.metrics["num_examples"] == 500
    assert tuned_acc >= scratch_acc + 0.15, (tuned_acc, scratch_acc)
    assert tuned_acc >= zero_shot + 0.04, (tuned_acc, zero_shot)  # fine-tuning learned the new domain
    assert "start fresh" not in log  # the same 10 classes: every layer loads
    assert "pretrained: digits" in (tmp_path / "tuned" / "recipe.yaml").read_text()


def test_another_class_count_says_in_the_log_which_layers_start_fresh(tmp_path, capsys):
    root = write_printed_digits(tmp_path / "five", {"train": 4, "test": 2}, digits=range(5))
    with pytest.warns(UserWarning, match=r"layer\(s\) predictions_dense start fresh"):
        run = zoo.train(folder_recipe(root, "model.pretrained=digits", "train.epochs=1", "train.steps_per_epoch=2",
                                      "data.batch_size=8"), output_dir=tmp_path / "run")
    lines = [line for line in capsys.readouterr().out.splitlines() if "start fresh" in line]
    assert lines == ["model.pretrained: digits_cnn.digits: 5 classes instead of the weights' 10; "
                     "layer(s) predictions_dense start fresh (fine-tuning)"]
    assert run.model.get_layer("predictions_dense").kernel.shape[-1] == 5


# ------------------------------------------------------------------------------------- URLs


@pytest.fixture
def zoo_home(tmp_path, monkeypatch):
    """A private, empty weights cache; Keras' own caches isolated too; online."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo_home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return tmp_path / "zoo_home"


def test_a_url_in_model_pretrained_is_downloaded_once_verified_and_trains(zoo_home, tmp_path, monkeypatch):
    served = tmp_path / "server" / "digits.weights.h5"
    served.parent.mkdir()
    zoo.create_model("digits_cnn.digits").save_weights(served)
    url = f"{served.as_uri()}#sha256={weight_files.file_sha256(served)}"
    steps = ["train.epochs=1", "train.steps_per_epoch=2", "train.optimizer.learning_rate=1e-5"]
    run = zoo.train(zoo.load_recipe("digits_cnn", [*FAST, *steps, f"model.pretrained={url}"]),
                    output_dir=tmp_path / "run")
    assert run.metrics["accuracy"] >= 0.95, run.metrics  # the served weights; 2 such steps from scratch: 0.14
    cached = list((zoo_home / "weights").rglob("digits.weights.h5"))
    assert len(cached) == 1 and cached[0].read_bytes() == served.read_bytes()
    monkeypatch.setenv("ZOO_OFFLINE", "1")  # the second use is the cached copy, verified
    again = zoo.train(zoo.load_recipe("digits_cnn", [*FAST, *steps, f"model.pretrained={url}"]),
                      output_dir=tmp_path / "again")
    assert again.metrics["accuracy"] >= 0.95
    monkeypatch.delenv("ZOO_OFFLINE")
    wrong = f"{served.as_uri()}#sha256={'0' * 64}"
    with pytest.raises(ZooError, match=r"^model\.pretrained: checksum mismatch"):
        zoo.create_model("digits_cnn", pretrained=wrong)


def test_urls_ending_in_the_same_file_name_do_not_share_a_cache_entry(zoo_home, tmp_path):
    paths = []
    for name, seed in (("a", 1), ("b", 2)):
        model = zoo.create_model("digits_cnn")
        for v in model.weights:
            v.assign(np.random.default_rng(seed).normal(size=v.shape).astype(v.dtype) * 0.1)
        (tmp_path / name).mkdir()
        model.save_weights(tmp_path / name / "model.weights.h5")
        paths.append(tmp_path / name / "model.weights.h5")
    x = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    a, b = (zoo.create_model("digits_cnn", pretrained=p.as_uri()).predict(x, verbose=0) for p in paths)
    assert not np.allclose(a, b)
    assert len(list((zoo_home / "weights").rglob("model.weights.h5"))) == 2


# ------------------------------------------------------------------------------------ errors


def cli_error(capsys, *argv) -> str:
    """Run `zoo ARGV`; expect exit status 2 and one error line without a traceback; return it."""
    code = cli_main(list(argv))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, (code, err)
    return lines[0]


def test_bad_tag_missing_file_and_unreachable_url_are_one_line_naming_model_pretrained(zoo_home, tmp_path, capsys):
    out = ["--output", str(tmp_path / "run")]
    line = cli_error(capsys, "train", "digits_cnn", "model.pretrained=nope", *out)
    assert "model.pretrained: digits_cnn has no pretrained tag 'nope' (tags: digits)" in line
    line = cli_error(capsys, "train", "shapes_unet", "model.pretrained=imagenet", *out)
    assert "model.pretrained: unet_small has no pretrained tag 'imagenet' (tags: shapes)" in line
    missing = tmp_path / "missing.weights.h5"
    line = cli_error(capsys, "train", "digits_cnn", f"model.pretrained={missing}", *out)
    assert f"model.pretrained: digits_cnn: weights file not found: {missing}" in line
    gone = (tmp_path / "nowhere" / "x.weights.h5").as_uri()
    line = cli_error(capsys, "train", "digits_cnn", f"model.pretrained={gone}", *out)
    assert f"model.pretrained: cannot download {gone}" in line
    for url, what in (("ftp://host/x.weights.h5", "unsupported URL scheme"),
                      (f"{gone}#md5=123", "#sha256=<64 hex digits>")):
        with pytest.raises(ZooError, match=f"^model.pretrained: .*{what}"):
            zoo.create_model("digits_cnn", pretrained=url)
    with pytest.raises(ZooError, match=r"^model.pretrained: cnn_lstm: .*its backbone 'small' is not a registered"):
        zoo.create_model("cnn_lstm", pretrained="imagenet")


def test_imagenet_on_unet_mobilenet_v2_offline_names_the_missing_file(zoo_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    missing = zoo_home / "weights" / get_entry("mobilenet_v2").pretrained["imagenet"].notop.name
    line = cli_error(capsys, "train", "shapes_unet", "model.name=unet_mobilenet_v2", "model.pretrained=imagenet",
                     "data.image_size=[32,32]", "data.train_size=8", "data.eval_size=8", "data.batch_size=4",
                     "train.epochs=1", "--output", str(tmp_path / "run"))
    assert f"model.pretrained: ZOO_OFFLINE=1 and the weights file is not cached: missing {missing} " in line
    # the same mapping in the other families: the backbone classifier's ImageNet file
    for name, shape, backbone in (("cnn_lstm_mobilenet_v2", (2, 32, 32, 3), "mobilenet_v2"),
                                  ("retinanet_resnet50", (64, 64, 3), "resnet50")):
        notop = zoo_home / "weights" / get_entry(backbone).pretrained["imagenet"].notop.name
        with pytest.raises(ZooError, match=f"^model.pretrained: ZOO_OFFLINE=1 .*missing {notop} "):
            zoo.create_model(name, input_shape=shape, num_classes=3, pretrained="imagenet")


# ------------------------------------------------------------- backbones: tags, files, URLs


def test_a_backbone_model_takes_its_own_file_or_its_backbone_classifiers(zoo_home, tmp_path, capsys):
    classifier = zoo.create_model("resnet18", input_shape=(32, 32, 3), num_classes=7)
    for v in classifier.weights:
        v.assign(np.random.default_rng(0).normal(size=v.shape).astype(v.dtype) * 0.1 + 0.5)
    classifier.save_weights(tmp_path / "r18.weights.h5")
    for pretrained in (tmp_path / "r18.weights.h5", (tmp_path / "r18.weights.h5").as_uri()):
        unet = zoo.create_model("unet_resnet18", input_shape=(32, 32, 3), num_classes=3, pretrained=pretrained)
        for layer in ("conv1_conv", "conv5_block2_2_conv"):
            np.testing.assert_array_equal(unet.get_layer(layer).get_weights()[0],
                                          classifier.get_layer(layer).get_weights()[0])
        assert "loaded into the backbone of unet_resnet18; the layers outside the backbone start fresh" \
            in capsys.readouterr().out
    unet.save_weights(tmp_path / "unet.weights.h5")  # the model's own file: every layer, decoder too
    again = zoo.create_model("unet_resnet18", input_shape=(32, 32, 3), num_classes=3,
                             pretrained=tmp_path / "unet.weights.h5")
    for a, b in zip(again.get_weights(), unet.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ZooError, match=r"^model.pretrained: .*fits neither unet_resnet18 \(.*\) nor its backbone"):
        zoo.create_model("unet_resnet18", input_shape=(32, 32, 3), pretrained=weight_files.ASSETS_DIR
                         / "digits_cnn.digits.weights.h5")
    with pytest.raises(ZooError, match=r"^model.pretrained: 'nope' is neither weights of unet_resnet18 "
                                       r"\(tags: none\) nor of its backbone \(resnet18: no pretrained tag"):
        zoo.create_model("unet_resnet18", input_shape=(32, 32, 3), pretrained="nope")


# ------------------------------------------------------------------ the retired recipe key


def test_backbone_weights_in_a_recipe_is_deprecated_and_maps_to_model_pretrained(zoo_home, capsys):
    data = zoo.load_recipe("oxford_pets_unet").to_dict()
    assert data["model"]["pretrained"] == "imagenet" and "backbone_weights" not in data["model"]
    for old in ("backbone_weights", "pretrained_encoder"):
        model = {k: v for k, v in data["model"].items() if k != "pretrained"}
        recipe = zoo.load_recipe({**data, "model": {**model, old: "imagenet"}})
        assert recipe.model.pretrained == "imagenet" and old not in recipe.model.params
        assert f"warning: model.{old} is deprecated; it is now model.pretrained" in capsys.readouterr().err
        assert "backbone_weights" not in recipe.to_yaml()
    off = zoo.load_recipe("oxford_pets_unet", ["model.backbone_weights=null"])  # turned off before the rename
    assert off.model.pretrained is None
    with pytest.raises(RecipeError, match=r"^model.backbone_weights: the old name of model.pretrained, which is "
                                          r"also given .*; give only model.pretrained$"):
        zoo.load_recipe("oxford_pets_unet", ["model.backbone_weights=other.weights.h5"])
    line = cli_error(capsys, "train", "oxford_pets_unet", "model.backbone_weights=x.h5")
    assert "give only model.pretrained" in line


def test_encoder_keys_of_old_recipes_load_as_backbone_keys_and_build(capsys):
    """U-Net and CNN+LSTM recipes written before the rename (`encoder`, `freeze_encoder`) still
    train: the keys map to `backbone` / `freeze_backbone`, with one deprecation line each."""
    recipe = zoo.load_recipe({"task": "segmentation", "model": {"name": "unet_backbone", "encoder": "simple_cnn",
                                                                 "freeze_encoder": True},
                              "data": {"source": "synthetic", "name": "shapes_segmentation", "image_size": [32, 32]}})
    assert recipe.model.params == {"backbone": "simple_cnn", "freeze_backbone": True}
    err = capsys.readouterr().err
    assert "model.encoder is deprecated; it is now model.backbone" in err
    assert "model.freeze_encoder is deprecated; it is now model.freeze_backbone" in err
    model = zoo.create_model(recipe.model.name, input_shape=(32, 32, 3), num_classes=4, **recipe.model.params)
    assert model.get_layer("conv1_relu").trainable is False and model.get_layer("logits").trainable
