"""Regenerate docs/models.md from the registry: `python docs/generate_models.py`.

Builds every registered model once at its default input shape to count parameters, then
lists every pretrained weight of the weights table (zoo/weights_table.py; docs/weights.md).
"""
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import zoo  # noqa: E402
from zoo.cli import format_metrics, format_shape  # noqa: E402
from zoo.models import get_entry  # noqa: E402
from zoo.registry import KERAS_APPLICATIONS, pretrained_specs  # noqa: E402

HEADER = """# Models

Generated from the registry by `python docs/generate_models.py`; do not edit by hand.
Parameters are counted at the default input shape with the builder's default `num_classes`
(BatchNorm moving statistics included, as Keras counts them). Every model takes raw pixels
(0..255) and normalizes them itself. `zoo info MODEL` prints a model's parameters and FLOPs at its
default input; `zoo info MODEL.TAG` a weight's full card.

| name | task | params | input | pretrained | citation |
| --- | --- | ---: | --- | --- | --- |
"""


WEIGHTS_HEADER = """
## Pretrained weights

`zoo.create_model(name, pretrained=True | "<tag>")`; `zoo list --pretrained`; how they are
cached, checked and added: [weights.md](weights.md). Metrics are on the dataset's evaluation
split. "zoo": measured by `benchmarks/make_pretrained.py` and re-measured by the test suite
(tests/test_weights.py) within the stated tolerance; "keras": as published by Keras
Applications, not re-measured here.

| weight | task | dataset | input | classes | metrics | measured by | recipe | file | checksum |
| --- | --- | --- | --- | ---: | --- | --- | --- | --- | --- |
"""


FEATURES_HEADER = """
## Feature extractors

`zoo.create_model(name, features_only=True)` builds a classifier without its head: raw pixels in
(its `Normalize` inside), out a dict `{"P<k>": feature map at stride 2**k}`, levels sorted by
stride (KerasHub's `pyramid_outputs` naming). `out_indices` keeps some levels, as in timm: an
index into the levels below (negative counts from the end) or a name; for a P1..P5 model
`(2, 3, 4)`, `(-3, -2, -1)` and `("P3", "P4", "P5")` are the same levels. `pretrained=` loads
the classifier's weights (of Keras Applications weights, the notop file). `model.feature_info`
(and `zoo.models.feature_info(model)`, for a model reloaded with `keras.saving.load_model`)
gives each level's `name`, `channels`, `reduction` (stride) and `module` (the layer that
outputs it); `.names()`, `.channels()`, `.reduction()`, `.module_name()` list them. At the
default input, "P<k> channels/stride":

| name | input | levels |
| --- | --- | --- |
"""


def features_rows():
    rows = []
    for name in zoo.list_models(task="classification"):
        entry = get_entry(name)
        with keras.StatelessScope(initialize_variables=False):
            info = zoo.create_model(name, features_only=True).feature_info
        levels = ", ".join(f"{level['name']} {level['channels']}/{level['reduction']}" for level in info)
        rows.append(f"| `{name}` | {format_shape(entry.input_shape)} | {levels} |")
        keras.backend.clear_session()
    return rows


def checksum(weight_file):
    if weight_file.sha256:
        return f"sha256 `{weight_file.sha256[:12]}…`"
    if weight_file.md5:
        return f"md5 `{weight_file.md5}`"
    return "none published"


def weights_rows():
    rows = []
    for spec in pretrained_specs():
        keras_app = spec.format == KERAS_APPLICATIONS
        location = f"[{spec.file.name}]({spec.file.url})" if spec.file.url else f"`zoo/assets/weights/{spec.file.name}`"
        if keras_app:
            location += f" (+ [notop]({spec.notop.url}))"
        measured = "keras" if keras_app else f"zoo (± {spec.tolerance:g})"
        recipe = f"`{spec.recipe}`" if spec.recipe else "—"
        rows.append(f"| `{spec.name}` | {get_entry(spec.model).task} | {spec.dataset} | "
                    f"{format_shape(spec.input_size)} | {spec.num_classes} | {format_metrics(spec.metrics)} | "
                    f"{measured} | {recipe} | {location} | {checksum(spec.file)} |")
    return rows


def main():
    rows = []
    for name in zoo.list_models():
        entry = get_entry(name)
        model = zoo.create_model(name)
        shape = "x".join(map(str, entry.input_shape))
        tags = ", ".join(entry.pretrained) or "—"
        rows.append(f"| `{name}` | {entry.task} | {model.count_params():,} | {shape} | {tags} | {entry.citation} |")
        keras.backend.clear_session()
    text = (HEADER + "\n".join(rows) + "\n" + WEIGHTS_HEADER + "\n".join(weights_rows()) + "\n"
            + FEATURES_HEADER + "\n".join(features_rows()) + "\n")
    Path(__file__).with_name("models.md").write_text(text)


if __name__ == "__main__":
    main()
