"""Pretrained weights, one way: fetch a file, verify it, load it into a built model.

What exists is declared elsewhere: zoo/weights_table.py holds the rows, and `zoo.registry`
gives each registered model its `WeightsSpec`s and its head layer names. This module imports
neither the models nor the catalogue. Fetching, caching and checksums are zoo/weight_files.py;
loading legacy `.h5` files by layer name is zoo/weight_mapping.py.

* Zoo weights (`.weights.h5`, Keras 3 format) load with Keras' own `load_weights`: into the
  model as built, or, for another class count, with `objects_to_skip` = the model's declared
  head (those layers start fresh, every other layer must fit), or into a `features_only` model
  (which has no head). Keras Applications' ImageNet `.h5` files (legacy format) load by layer
  name (`weight_mapping.assign_by_name`).
* `load_model_file` loads a `.keras` file; what a user can get wrong is a one-line `ZooError`.
* `build_pretrained` is `create_model(..., pretrained=X)`, the recipe's `model.pretrained`: a
  tag, a local file, a URL (`weight_files.url_weight_file`: cached under `urls/<hash>/`, an
  optional `#sha256=` fragment is its checksum) or, for a model built on a backbone, the
  backbone's tag or file (passed to the builder as `backbone_weights`). Fresh layers are named
  in a warning and in one line on stdout (the training log).
"""
from __future__ import annotations

import inspect
import re
import warnings
import zipfile
from pathlib import Path

from zoo.errors import ZooError
from zoo.lazy import keras
from zoo.registry import KERAS_APPLICATIONS, ModelEntry, WeightsSpec, get_entry
from zoo.weight_files import fetch, fetch_url, is_url
from zoo.weight_mapping import POST_LOAD, assign_by_name, read_legacy_h5, transfer

PRETRAINED = "model.pretrained"  # the recipe key (create_model's `pretrained`) that errors name


class UnknownWeightsError(ZooError):
    """`pretrained` names no tag of the model's table and no file."""


class BackboneWeightsError(ZooError):
    """Backbone weights that cannot be loaded (raised by `zoo.models.layers.backbone_pyramid`).
    `reason` is the message without its `backbone_weights: ` prefix, so that `build_pretrained`
    can name `model.pretrained` instead; `unknown`: the backbone has no such tag or file."""

    def __init__(self, reason: str, unknown: bool = False):
        super().__init__(f"backbone_weights: {reason}")
        self.reason, self.unknown = reason, unknown


def _own(entry: ModelEntry, pretrained):
    """What `pretrained` names among `entry`'s own weights: a WeightsSpec of its table, a local
    Path (a URL is fetched into the cache first), or None (neither a tag of it nor a file)."""
    if isinstance(pretrained, WeightsSpec):
        return pretrained
    if pretrained is True:
        return entry.pretrained[entry.default_tag] if entry.default_tag is not None else None
    key = str(pretrained)
    if key in entry.pretrained:
        return entry.pretrained[key]
    if not isinstance(pretrained, Path) and is_url(key):
        return fetch_url(key)
    path = Path(key).expanduser()
    if path.is_file():
        return path
    if isinstance(pretrained, Path) or "/" in key or path.suffix in (".h5", ".keras", ".hdf5"):
        raise ZooError(f"{entry.name}: weights file not found: {path}")
    return None


def _unknown(entry: ModelEntry, pretrained) -> UnknownWeightsError:
    if pretrained is True:
        return UnknownWeightsError(f"model {entry.name} has no pretrained weights "
                                   f"(`zoo list --pretrained` lists them)")
    tags = ", ".join(entry.pretrained) or "none"
    return UnknownWeightsError(f"{entry.name}: no pretrained tag or file {str(pretrained)!r} (tags: {tags})")


def _resolve(entry: ModelEntry, pretrained):
    """A WeightsSpec of the entry's table or a local Path; else UnknownWeightsError."""
    resolved = _own(entry, pretrained)
    if resolved is None:
        raise _unknown(entry, pretrained)
    return resolved


def _backbone_problem(entry: ModelEntry, kwargs) -> str | None:
    """Why `entry`, built with `kwargs`, cannot load a backbone's weights (a clause to append to
    an error; "" when it has no backbone at all); None when it can: its builder takes
    `backbone_weights` and its `backbone`, if it has that argument, is a classifier."""
    params = inspect.signature(entry.builder).parameters
    if "backbone_weights" not in params:
        return ""
    if "backbone" in params:
        name = kwargs.get("backbone", params["backbone"].default)
        try:
            backbone = get_entry(str(name))
        except ZooError:
            backbone = None
        if backbone is None or backbone.task != "classification":
            return f"; its backbone {name!r} is not a registered classifier"
    return None


def _say(line: str):
    """A line of the training log (stdout: the pipeline prints there; warnings may be filtered)."""
    print(f"{PRETRAINED}: {line}", flush=True)


def build_pretrained(entry: ModelEntry, pretrained, num_classes, input_shape, kwargs):
    """Build `entry` with weights: `pretrained` is True (default tag), a tag, a WeightsSpec, a
    local file or a URL (fetched into the cache, then a local file). With a tag, `num_classes`
    defaults to the weights' and the builder arguments to those the weights were trained with
    (`model_kwargs`); `input_shape` None means the weights' input size (a file: the model's
    default).

    A model built on a backbone (its builder takes `backbone_weights`: RetinaNet, U-Nets over a
    classifier, CNN+LSTM with a classifier frame encoder) also takes what is not its own: a tag
    of the backbone classifier (`imagenet`), or a file of it (tried after the model's own file
    format failed), loaded as `backbone_weights`; the layers outside the backbone start fresh.

    Layers that start fresh (another class count: the declared head; backbone weights:
    everything outside the backbone) are named in a warning and in one printed line. Errors are
    one ZooError line: those about finding the weights (no such tag or file, a URL that cannot
    be downloaded, offline, a checksum) and weights that do not fit start with
    `model.pretrained:`; a local file that cannot be read starts with its path.
    """
    if kwargs.get("backbone_weights") not in (None, False, ""):
        raise ZooError(f"{PRETRAINED}: given together with backbone_weights; give only {PRETRAINED} "
                       f"(a backbone's tag, e.g. imagenet, loads the backbone)")
    try:
        resolved = _own(entry, pretrained)
    except ZooError as err:
        raise ZooError(f"{PRETRAINED}: {err}") from None
    if resolved is None:
        problem = _backbone_problem(entry, kwargs)
        if problem is not None:
            raise ZooError(f"{PRETRAINED}: {_unknown(entry, pretrained)}{problem}")
        return _build_with_backbone_weights(entry, pretrained, num_classes, input_shape, kwargs)
    features_only = bool(kwargs.get("features_only"))
    if isinstance(resolved, WeightsSpec):
        spec = resolved
        input_shape = tuple(spec.input_size) if input_shape is None else input_shape
        kwargs = {**spec.model_kwargs, **kwargs}
        num_classes = spec.num_classes if num_classes is None else num_classes
        model = entry.builder(input_shape=input_shape, num_classes=num_classes, **kwargs)
        try:
            fresh = load_spec(model, spec, entry, new_head=num_classes != spec.num_classes,
                              features_only=features_only)
        except ZooError as err:
            raise ZooError(f"{PRETRAINED}: {err}") from None
        what = f"{spec.name}: {num_classes} classes instead of the weights' {spec.num_classes}"
    else:
        described = str(pretrained).partition("#")[0] if is_url(str(pretrained)) else resolved
        input_shape = entry.input_shape if input_shape is None else input_shape
        model = entry.builder(input_shape=input_shape, **({"num_classes": num_classes} if num_classes else {}),
                              **kwargs)
        try:
            fresh = load_file(model, resolved, entry, new_head=num_classes is not None, features_only=features_only)
        except ZooError as err:
            if _backbone_problem(entry, kwargs) is not None:
                raise  # names the file: `<path> is not a valid Keras model file (...)`
            return _build_with_backbone_weights(entry, resolved, num_classes, input_shape, kwargs,
                                                described=described, own_error=str(err))
        what = f"{described}: its head has another number of classes"
    if fresh:
        line = f"{what}; layer(s) {', '.join(fresh)} start fresh (fine-tuning)"
        warnings.warn(line, stacklevel=3)
        _say(line)
    return model


def _build_with_backbone_weights(entry: ModelEntry, weights, num_classes, input_shape, kwargs, *,
                                 described=None, own_error=None):
    """Build `entry` with `weights` (a tag, True or a local file of its backbone classifier)
    as its `backbone_weights`; errors name `model.pretrained`."""
    described = weights if described is None else described
    shape = entry.input_shape if input_shape is None else input_shape
    try:
        model = entry.builder(input_shape=shape, **({"num_classes": num_classes} if num_classes else {}),
                              **kwargs, backbone_weights=weights)
    except BackboneWeightsError as err:
        if own_error is not None:
            raise ZooError(f"{PRETRAINED}: {described} fits neither {entry.name} ({own_error}) "
                           f"nor its backbone ({err.reason})") from None
        if err.unknown and weights is True:
            raise ZooError(f"{PRETRAINED}: {entry.name} has no pretrained weights, nor has its backbone "
                           f"({err.reason})") from None
        if err.unknown:
            tags = ", ".join(entry.pretrained) or "none"
            raise ZooError(f"{PRETRAINED}: {str(weights)!r} is neither weights of {entry.name} (tags: {tags}) "
                           f"nor of its backbone ({err.reason})") from None
        raise ZooError(f"{PRETRAINED}: {err.reason}") from None
    line = (f"{'the default weights' if weights is True else described} loaded into the backbone of "
            f"{model.name}; the layers outside the backbone start fresh")
    _say(line)
    return model


def load_spec(model, spec: WeightsSpec, entry: ModelEntry, *, new_head=False, features_only=False) -> list[str]:
    """Load a table weight into `model` (built by the spec's builder); returns the layers that
    start fresh (the declared head, when `new_head`)."""
    what = f"weights {spec.name}"
    head = entry.head if new_head and not features_only else ()
    if spec.format == KERAS_APPLICATIONS:
        path = fetch(spec.notop if features_only and spec.notop else spec.file)
        fresh = assign_by_name(model, read_legacy_h5(path), what=f"{what} ({path.name})",
                               legacy_order=True, skip=head)
        if spec.post_load:
            POST_LOAD[spec.post_load](model)
        return fresh
    return _load_keras_weights(model, fetch(spec.file), what, head,
                               f" ({spec.num_classes} classes, input {'x'.join(map(str, spec.input_size))})")


def _load_keras_weights(model, path: Path, what: str, head, described: str = "") -> list[str]:
    """Keras' own loading of a `.weights.h5` file, the `head` layers skipped (left fresh)."""
    skipped = [model.get_layer(name) for name in head if name in {layer.name for layer in model.layers}]
    try:
        with warnings.catch_warnings():  # a file that does not fit is one line below, not Keras' warnings
            warnings.simplefilter("ignore")
            model.load_weights(path, objects_to_skip=skipped or None)
    except ValueError as err:
        raise ZooError(f"{what}{described} do not fit {model.name} with input "
                       f"{'x'.join(map(str, model.input_shape[1:]))}: {_first_line(err)}") from None
    except OSError as err:
        raise ZooError(f"cannot read {path}: {_first_line(err)}") from None
    return [layer.name for layer in skipped]


def _first_line(err) -> str:
    """One line out of an exception; Keras' multi-line load errors shrink to the layer and shapes."""
    text = str(err)
    layer = re.search(r"object <\w+ name=([^,>]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if layer and shapes:
        return f"layer {layer.group(1)!r} expects shape {shapes.group(1)}, the file has {shapes.group(2)}"
    total = re.match(r"A total of \d+ objects could not be loaded", text)
    example = re.search(r"^(Layer '.*?variables during loading)", text, re.MULTILINE)
    if total and example:  # Keras: a file of another model
        return f"{total.group(0)}, e.g. {example.group(1)[0].lower()}{example.group(1)[1:]}"
    return (text.strip().splitlines() or [type(err).__name__])[0]


def load_model_file(path, *, compile: bool = False) -> keras.Model:
    """Load a Keras 3 `.keras` file; any failure a user can cause is a one-line ZooError naming it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ZooError(f"model file not found: {path}")
    try:  # Keras reports a file that is not a zip archive as "File not found"
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise zipfile.BadZipFile("no config.json in the archive")
    except (zipfile.BadZipFile, OSError) as err:
        raise ZooError(f"{path} is not a valid Keras model file ({_first_line(err)})") from None
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as err:  # noqa: BLE001  (whatever Keras cannot deserialize is the file's fault)
        if "safe_mode=False" in str(err):  # Keras' safe mode refuses Python lambdas
            what = "a Lambda layer" if "`Lambda` layer" in str(err) else "a Python lambda"
            raise ZooError(f"{path} contains {what} (arbitrary Python code), which Keras' safe mode refuses "
                           f"to load; if you trust the file, rebuild the model without it (e.g. a custom layer "
                           f"registered with keras.saving.register_keras_serializable) and save it again") from None
        raise ZooError(f"{path} is not a valid Keras model file: {_first_line(err)}") from None


def load_file(model, path, entry: ModelEntry, *, new_head=False, features_only=False) -> list[str]:
    """Load a local weights file into `model` (built by `entry`'s builder); returns fresh layers.

    `.keras`: a saved model, copied by layer name. `.weights.h5`: the zoo model's own weights,
    by Keras; with `new_head`, the declared head is kept fresh when the file's does not fit. Any
    other `.h5`: a legacy Keras file (e.g. a Keras Applications download), by layer name.
    """
    path = Path(path)
    what = f"weights file {path}"

    def load(skip):
        if path.suffix == ".keras":
            return transfer(load_model_file(path), model, what=what, skip=skip)
        if not path.name.endswith(".weights.h5"):
            return assign_by_name(model, read_legacy_h5(path), what=what, legacy_order=True, skip=skip)
        return _load_keras_weights(model, path, what, skip)

    head = entry.head if new_head and not features_only else ()
    if head:
        try:  # the file's head may fit as it is
            return load(())
        except ZooError:
            pass
    return load(head)


def load_backbone_weights(features, backbone: str, pretrained):
    """Load a classifier's pretrained weights into its `features_only` model, in place.

    features: `create_model(backbone, features_only=True, ...)`, before anything is attached.
    backbone: the registered classifier ("resnet50", "mobilenet_v2", "resnet18"...).
    pretrained: "imagenet" (Keras Applications' include_top=False file), any tag of the
        classifier's table, True (its default tag), a local path (the classifier's
        `.weights.h5` (any num_classes) or `.keras`, or a Keras-style legacy `.h5`) or a URL
        (fetched into the weights cache first).
    Returns `features`. Raises ZooError (one line) when the weights do not fit, and
    UnknownWeightsError when `pretrained` is no tag of the classifier and no file.
    """
    entry = get_entry(backbone)
    resolved = _resolve(entry, pretrained)
    if isinstance(resolved, WeightsSpec):
        load_spec(features, resolved, entry, features_only=True)
    else:
        load_file(features, resolved, entry, features_only=True)
    return features
