"""Model cards: `zoo info MODEL[.TAG]` and `zoo list --pretrained --json`.

A card joins three sources, and caches nothing:
* the architecture, measured when asked: the registry's citation (the builder's first docstring
  line), the parameters of the model built at the weight's input size and class count (or the
  model's defaults; no weights are loaded, nothing is downloaded) and its FLOPs, counted by
  TensorFlow's profiler on the model's graph (`count_flops`);
* the weight's row of zoo/weights_table.py: input size, preprocessing, classes, metrics and
  who measured them, recipe;
* the text below, which the table has no column for: what the input images look like, the
  data the weight was trained on, its licence and known limits. `ZOO_CARDS` holds the zoo's own
  weights by "model.tag"; the Keras Applications ImageNet weights share one text, plus the notes
  of `KERAS_NOTES` where Keras documents something particular.
"""
from __future__ import annotations

import difflib
import textwrap

from zoo.errors import ZooError

# The card's fields in print order, with their labels; `zoo list --pretrained --json` uses the keys.
WEIGHT_FIELDS = {
    "name": "weights", "architecture": "architecture", "task": "task", "parameters": "parameters",
    "flops": "FLOPs", "input": "input", "preprocessing": "preprocessing", "classes": "classes",
    "data": "trained on", "metrics": "metrics", "metrics_source": "metrics from", "recipe": "recipe",
    "licence": "licence", "limits": "known limits",
}
MODEL_FIELDS = {
    "name": "model", "architecture": "architecture", "task": "task", "parameters": "parameters",
    "flops": "FLOPs", "input_size": "default input", "weights": "weights",
}

FLOPS_METHOD = "counted by TensorFlow's profiler on the Keras model; a multiply-add is 2 FLOPs"

_ZOO_LICENCE = ("released with keras-zoo under the project's licence (the repository declares none yet: "
                "no LICENSE file, no license in pyproject.toml)")
_SYNTHETIC_DATA_LICENCE = "; trained only on images that zoo/data/synthetic.py generates (no third-party data)"

ZOO_CARDS = {
    "digits_cnn.digits": {
        "input": "8x8 RGB images, raw pixel values 0..255: white-on-black handwritten digits (light "
                 "strokes on a black background, R = G = B, the digit filling the frame), like the UCI "
                 "digits, whose 32x32 scans were reduced to 8x8 by counting the ink pixels of each 4x4 "
                 "block (0..16, scaled to 0..255 by the zoo). A larger image is resized to 8x8",
        "data": "UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998, "
                "doi:10.24432/C50P49): the 1,797 images of its test set (13 writers; "
                "sklearn.datasets.load_digits), shipped as zoo/assets/digits.npz. Trained on 1,293 "
                "of the `train` split's 1,437 images (a fixed seeded 80/20 split, data.source=digits; "
                "the other 144, a seeded stratified 10%, validate), measured on the `test` split (the "
                "other 360)",
        "licence": "the UCI digits are CC BY 4.0 (attribution: E. Alpaydin, C. Kaynak, UCI Machine "
                   "Learning Repository); the weights are " + _ZOO_LICENCE,
        "limits": "white-on-black only: black-on-white digits (printed or scanned dark ink on paper) "
                  "are out of distribution and get confident wrong answers (in a user's test, every "
                  "black-on-white digit was called \"8\" at 0.95-1.0; the 1,797 UCI digits inverted "
                  "score 0.08 accuracy, chance is 0.10) - invert such images (255 - x) first. The "
                  "80/20 split is random, not by writer, so the test accuracy is for the 13 writers "
                  "seen in training. No \"not a digit\" class: any image gets one of 0-9",
    },
    "cnn_lstm.moving_shapes": {
        "input": "clips of 8 RGB frames of 64x64, raw pixel values 0..255: one flat-coloured shape "
                 "(circle, square, triangle, cross, ring or star) moving in a straight horizontal "
                 "line over a fixed, noisy background of a random colour with a gentle gradient",
        "data": "synthetic moving_shapes (zoo/data/synthetic.py, data.source=synthetic): 2,000 "
                "training clips, measured on 500 test clips drawn with other seeds; a \"left\" clip "
                "is a time-reversed \"right\" one, so only the frame order tells the classes apart",
        "licence": "the weights are " + _ZOO_LICENCE + _SYNTHETIC_DATA_LICENCE,
        "limits": "knows only horizontal motion of one synthetic shape over 8 frames; real video, "
                  "camera motion, several moving objects or vertical motion are out of distribution, "
                  "and every clip gets \"left\" or \"right\"",
    },
    "unet_small.shapes": {
        "input": "64x64 RGB images, raw pixel values 0..255: 1-4 flat-coloured circles, squares and "
                 "triangles (radius 8-25% of the side, later ones overlapping earlier ones) on a noisy "
                 "background of a random colour with a gentle gradient",
        "data": "synthetic shapes_segmentation (zoo/data/synthetic.py, data.source=synthetic): 2,000 "
                "training images, measured on 500 test images drawn with other seeds",
        "licence": "the weights are " + _ZOO_LICENCE + _SYNTHETIC_DATA_LICENCE,
        "limits": "knows only the three synthetic shapes on plain backgrounds; photographs are out of "
                  "distribution. Triangles are its weakest class (IoU 0.80 against 0.92 for circles); "
                  "every pixel of any other object gets one of the four classes",
    },
    "retinanet_small.shapes": {
        "input": "128x128 RGB images, raw pixel values 0..255: 1-6 flat-coloured circles, squares and "
                 "triangles of 5-56 px, barely overlapping (IoU < 0.3), on a noisy background of a "
                 "random colour with a gentle gradient",
        "data": "synthetic shapes_detection (zoo/data/synthetic.py, data.source=synthetic): 5,000 "
                "training images, measured on 500 test images drawn with other seeds",
        "licence": "the weights are " + _ZOO_LICENCE + _SYNTHETIC_DATA_LICENCE,
        "limits": "knows only the three synthetic shapes on plain backgrounds; photographs are out of "
                  "distribution. Trained on at most 6 objects per image that barely overlap; "
                  "triangles are its weakest class (AP 0.68 against 0.84 for circles). The weights are "
                  "stored as float16 (its metrics include that rounding)",
    },
}

# Keras Applications' ImageNet weights.
_IMAGENET_DATA = ("ImageNet-1k (ILSVRC 2012): 1.28 million training images of 1,000 classes; the "
                  "metrics are on its 50,000 validation images")
_KERAS_LICENCE = ("distributed by Keras Applications (the Keras code is Apache 2.0); Keras documents no "
                  "licence for this weights file itself: check the original release before commercial "
                  "use. Trained on ImageNet, whose images may be used for non-commercial research and "
                  "education only")
_KERAS_LIMITS = ("the 1,000 ImageNet-1k classes only (web photos, mostly one central object; its known "
                 "label noise and biases); no \"none of these\" class. Class names appear only where "
                 "Keras has cached imagenet_class_index.json (else class indices). Metrics are quoted, "
                 "not re-measured here")
_DEEP_LEARNING_MODELS = "github.com/fchollet/deep-learning-models, README, License"
_CONVNEXT_21K = ("first pre-trained on ImageNet-21k, then fine-tuned on ImageNet-1k (Keras "
                 "Applications' ConvNeXt documentation); ")
KERAS_NOTES = {  # "model.tag": fields that replace or extend the shared text
    "vgg16.imagenet": {"licence": "CC BY 4.0: ported from the weights Oxford's VGG group released ("
                                  + _DEEP_LEARNING_MODELS + "); distributed by Keras Applications"},
    "vgg19.imagenet": {"licence": "CC BY 4.0: ported from the weights Oxford's VGG group released ("
                                  + _DEEP_LEARNING_MODELS + "); distributed by Keras Applications"},
    "resnet50.imagenet": {"licence": "MIT: ported from the weights Kaiming He released ("
                                     + _DEEP_LEARNING_MODELS + "); distributed by Keras Applications"},
    "inception_v3.imagenet": {"licence": "MIT: trained by the Keras team (" + _DEEP_LEARNING_MODELS
                                         + "); distributed by Keras Applications"},
    **{f"convnext_{size}.imagenet": {"data": _CONVNEXT_21K + _IMAGENET_DATA}
       for size in ("base", "large", "xlarge")},
}


def card(name: str) -> dict:
    """The model card of "model.tag" (a weight) or "model" (the architecture and its weight tags)."""
    entry, spec = _resolve(name)
    if spec is None:
        return {"name": entry.name, **_architecture(entry, entry.input_shape, None, {}),
                "input_size": list(entry.input_shape),
                "weights": [f"{entry.name}.{tag}" for tag in entry.pretrained]}
    return {"name": spec.name, **_architecture(entry, spec.input_size, spec.num_classes, spec.model_kwargs),
            **weight_fields(spec)}


def pretrained_cards(pattern: str = "*", task: str | None = None) -> list[dict]:
    """The card of every weight `zoo list --pretrained PATTERN --task TASK` lists (a build each)."""
    import gc

    import keras

    from zoo.registry import pretrained_specs

    cards = []
    for spec in pretrained_specs(pattern, task=task):
        cards.append(card(spec.name))
        keras.backend.clear_session()  # one model in memory at a time
        gc.collect()
    return cards


def format_card(info: dict) -> list[str]:
    """The card as text lines: a label column, long values wrapped under their value column."""
    fields = WEIGHT_FIELDS if "data" in info else MODEL_FIELDS
    width = max(len(label) for label in fields.values()) + 2
    lines = []
    for key, label in fields.items():
        text = _field_text(key, info)
        wrapped = textwrap.wrap(text, 100 - width, break_on_hyphens=False) or [""]
        lines.append(f"{label:{width}s}{wrapped[0]}")
        lines.extend(" " * width + rest for rest in wrapped[1:])
    return lines


# ---------------------------------------------------------------- the parts of a card


def _resolve(name: str):
    """(entry, spec) for "model.tag", (entry, None) for "model"; a one-line ZooError otherwise."""
    from zoo.models import get_entry, list_models, list_pretrained

    model, dot, tag = str(name).partition(".")
    if model not in list_models():
        close = difflib.get_close_matches(str(name), list_pretrained() + list_models(), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows them all"
        raise ZooError(f"unknown model {model!r}{hint}")
    entry = get_entry(model)
    if not dot:
        return entry, None
    if tag not in entry.pretrained:
        tags = [f"{model}.{t}" for t in entry.pretrained]
        if not tags:
            raise ZooError(f"{name}: {model} has no pretrained weights (`zoo list --pretrained` lists them)")
        close = difflib.get_close_matches(str(name), tags, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"its weights: {', '.join(tags)}"
        raise ZooError(f"{name}: {model} has no weights tagged {tag!r}; {hint}")
    return entry, entry.pretrained[tag]


def _architecture(entry, input_shape, num_classes, model_kwargs) -> dict:
    """Built without weights (nothing is downloaded): the parameter count and FLOPs at `input_shape`."""
    from zoo.models import create_model

    kwargs = dict(model_kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    model = create_model(entry.name, input_shape=tuple(input_shape), **kwargs)
    return {"model": entry.name, "task": entry.task, "architecture": entry.citation,
            "parameters": int(model.count_params()), "flops": count_flops(model),
            "flops_input": [1, *map(int, input_shape)]}


def count_flops(model) -> int | None:
    """FLOPs of one forward pass at batch 1 (FLOPS_METHOD); None on another Keras backend than
    TensorFlow's. Recurrent layers are unrolled first: the profiler counts a loop's body once."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if any(_is_recurrent(layer) for layer in model.layers):
        model = keras.models.clone_model(model, clone_function=_unrolled)
    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the profiler's own use of a deprecated TF1 function is no news to a user
    try:
        profile = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                                cmd="op", options=options)
    finally:
        logger.setLevel(level)
    return int(profile.total_float_ops)


def _is_recurrent(layer) -> bool:
    import keras

    return isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))


def _unrolled(layer):
    """A copy of `layer` (fresh weights: only its FLOPs matter) with every `unroll` option on."""
    if not _is_recurrent(layer):
        return layer.__class__.from_config(layer.get_config())

    def unroll(config):
        if isinstance(config, dict):
            return {k: True if k == "unroll" else unroll(v) for k, v in config.items()}
        return config

    return layer.__class__.from_config(unroll(layer.get_config()))


def weight_fields(spec) -> dict:
    """The fields of a weight's card that need no model built: the table row and the card text."""
    from zoo.registry import KERAS_APPLICATIONS

    names = f": {', '.join(spec.class_names)}" if spec.class_names else ""
    fields = {"tag": spec.tag, "input_size": list(spec.input_size), "preprocessing": spec.preprocessing,
              "num_classes": spec.num_classes, "classes": f"{spec.num_classes}{names}",
              "metrics": dict(spec.metrics)}
    if spec.format == KERAS_APPLICATIONS:
        return {**fields, **_keras_fields(spec), **KERAS_NOTES.get(spec.name, {})}
    if spec.name not in ZOO_CARDS:
        raise ZooError(f"{spec.name}: no model card; add its text to ZOO_CARDS in zoo/model_cards.py")
    return {**fields, **ZOO_CARDS[spec.name], "metrics_source": _measured_by(spec),
            "recipe": _recipe_summary(spec)}


def _keras_fields(spec) -> dict:
    size = "x".join(map(str, spec.input_size[:2]))
    if not spec.metrics:
        source = ("none: the copy of the Keras Applications table (keras.io/api/applications) checked offline "
                  f"has no {spec.application} row; not re-measured here (ImageNet needs a manual download)")
    elif "top5_accuracy" in spec.metrics:
        source = ("quoted from the Keras Applications table (keras.io/api/applications: top-1 and top-5 "
                  "on the ImageNet validation set); not re-measured here (ImageNet needs a manual download)")
    else:
        source = (f"quoted from the keras.applications.{spec.application} docstring (top-1 on the ImageNet "
                  "validation set); not re-measured here (ImageNet needs a manual download)")
    return {"input": f"{size} RGB photographs, raw pixel values 0..255 (natural images such as ImageNet's, "
                     f"one main object; `zoo predict` takes the central 87.5% and resizes it to {size})",
            "classes": f"{spec.num_classes} ImageNet-1k classes", "data": _IMAGENET_DATA,
            "metrics_source": source,
            "recipe": (f"none in the zoo: trained by its authors, published as keras.applications."
                       f"{spec.application}(weights=\"imagenet\"); the zoo loads that file by layer name "
                       "(zoo/models/applications.py)"),
            "licence": _KERAS_LICENCE, "limits": _KERAS_LIMITS}


def _measured_by(spec) -> str:
    return (f"measured by {spec.measured}, on {spec.dataset}; tests/test_weights.py re-measures them "
            f"with the recipe on every test run (tolerance {spec.tolerance:g})")


def _recipe_summary(spec) -> str:
    """The shipped recipe that made the weight and its training settings, read from the recipe."""
    from zoo.recipe import RECIPES_DIR, find_recipe, load_recipe

    path, recipe = find_recipe(spec.recipe), load_recipe(spec.recipe)
    train, augment = recipe.train, recipe.data.augment
    augments = [k for k in ("flip", "random_resized_crop") if getattr(augment, k)]
    augments += [f"crop_padding {augment.crop_padding}"] * bool(augment.crop_padding)
    augments += [f"scale_jitter {augment.scale_jitter}"] * bool(augment.scale_jitter)
    float16 = " --float16" if "--float16" in spec.measured else ""
    return (f"recipes/{path.relative_to(RECIPES_DIR).as_posix()} (`zoo train {spec.recipe}`): "
            f"{train.epochs} epochs at batch {recipe.data.batch_size}, {train.optimizer.name} learning rate "
            f"{train.optimizer.learning_rate:g}, {train.schedule.name} schedule with "
            f"{train.schedule.warmup_epochs:g} warm-up epoch(s), augmentation: "
            f"{', '.join(augments) or 'none'}, seed {recipe.runtime.seed}; the last epoch's weights, "
            f"saved by `python benchmarks/make_pretrained.py {spec.recipe} --tag {spec.tag}{float16}`")


def _field_text(key: str, info: dict) -> str:
    value = info[key]
    if key == "architecture":
        return f"{info['model']}: {value}"
    if key == "parameters":
        return f"{value:,}"
    if key == "flops" and value is None:
        return "not counted: TensorFlow's profiler counts them, run with KERAS_BACKEND=tensorflow"
    if key == "flops":
        return f"{_giga_or_mega(value)} at {'x'.join(map(str, info['flops_input']))} ({FLOPS_METHOD})"
    if key == "metrics":
        return ", ".join(f"{k} {v:.4f}" for k, v in value.items()) or "none"
    if key == "input_size":
        return "x".join(map(str, value))
    if key == "weights":
        return ", ".join(value) or "none (train it with a recipe: `zoo recipes`)"
    return str(value)


def _giga_or_mega(flops: int) -> str:
    return f"{flops / 1e9:.3g} GFLOPs" if flops >= 1e9 else f"{flops / 1e6:.3g} MFLOPs"
