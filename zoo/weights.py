"""Pretrained weights, one way: fetch a file, verify it, load it into a built model.

What exists is declared elsewhere: zoo/weights_table.py holds the rows, and `zoo.registry`
gives each registered model its `WeightsSpec`s and its head layer names. This module imports
neither the models nor the catalogue.

* Files are package files under zoo/assets/weights/ (the weights the zoo trains) or URLs
  (https:// or file://), downloaded once into `$ZOO_HOME/weights/` (default
  `~/.keras/zoo/weights/`) through a temporary file that replaces the final name only after its
  checksum matched. A cached file is verified before each use; a mismatch removes it and is a
  one-line `ZooError`. `ZOO_OFFLINE=1` never downloads and names the missing file. A file with
  a published checksum that Keras itself has cached (`~/.keras/models/`, `$KERAS_HOME/models/`,
  `/tmp/.keras/models/`) is used in place when it verifies. A file without one is never taken
  from those shared caches: its sha256 is recorded next to it at its download
  (`<name>.sha256`) and verified on every later use; a cached file without a record (copied
  there by hand) is trusted on first use, with a warning, and recorded.
* Zoo weights (`.weights.h5`, Keras 3 format) load with Keras' own `load_weights`: into the
  model as built, or, for another class count, with `objects_to_skip` = the model's declared
  head (those layers start fresh, every other layer must fit), or into a `features_only` model
  (which has no head). Keras Applications' ImageNet `.h5` files (legacy format) load by layer
  name, since the zoo's wrappers keep Keras Applications' layer names; Keras' own by-name
  loading skips unmatched layers silently, so the zoo matches them itself and names the first
  layer that does not fit.
* `load_model_file` loads a `.keras` file; what a user can get wrong is a one-line `ZooError`.
* `build_pretrained` is `create_model(..., pretrained=X)`, the recipe's `model.pretrained`: a
  tag, a local file, a URL (`url_weight_file`: cached under `urls/<hash>/`, an optional
  `#sha256=` fragment is its checksum) or, for a model built on a backbone, the backbone's tag or
  file (passed to the builder as `backbone_weights`). Fresh layers are named in a warning and
  in one line on stdout (the training log).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np

from zoo.errors import ZooError
from zoo.lazy import keras
from zoo.registry import KERAS_APPLICATIONS, ModelEntry, WeightFile, WeightsSpec, get_entry

ASSETS_DIR = Path(__file__).resolve().parent / "assets" / "weights"


# ------------------------------------------------------------------- cache and downloads


def zoo_home() -> Path:
    return Path(os.environ.get("ZOO_HOME") or Path.home() / ".keras" / "zoo").expanduser()


def cache_dir() -> Path:
    return zoo_home() / "weights"


def offline() -> bool:
    return os.environ.get("ZOO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hashers(weight_file: WeightFile) -> dict:
    out = {}
    if weight_file.sha256:
        out["sha256"] = (hashlib.sha256(), weight_file.sha256.lower())
    if weight_file.md5:
        out["md5"] = (hashlib.md5(), weight_file.md5.lower())
    return out


def _chunks(stream):
    return iter(lambda: stream.read(1 << 20), b"")


def _wrong_digest(hashers: dict) -> str | None:
    """None when every digest fed so far equals its expected value, else "<algo> <got>, expected <want>"."""
    for algo, (digest, want) in hashers.items():
        if digest.hexdigest() != want:
            return f"{algo} {digest.hexdigest()}, expected {want}"
    return None


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in _chunks(f):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path, weight_file: WeightFile) -> str | None:
    """None when `path` matches every published checksum, else what differs."""
    hashers = _hashers(weight_file)
    with open(path, "rb") as f:
        for chunk in _chunks(f) if hashers else ():
            for digest, _ in hashers.values():
                digest.update(chunk)
    return _wrong_digest(hashers)


_UNVERIFIED_WARNED = set()


def _warn_unverified(weight_file: WeightFile):
    if not _hashers(weight_file) and weight_file.name not in _UNVERIFIED_WARNED:
        _UNVERIFIED_WARNED.add(weight_file.name)
        warnings.warn(f"{weight_file.url or weight_file.name}: its source publishes no checksum, so its first download is "
                      f"unverified; its sha256 is recorded then and verified on every later use", stacklevel=3)


def _keras_cache_dirs() -> list[Path]:
    """Keras' own download caches: shared (/tmp world-writable), so only for checksummed files."""
    roots = [Path(os.environ["KERAS_HOME"])] if os.environ.get("KERAS_HOME") else []
    roots += [Path.home() / ".keras", Path("/tmp/.keras")]
    return [root / "models" for root in roots]


def _record_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".sha256")


def _recorded(dest: Path) -> WeightFile | None:
    """The sha256 recorded at `dest`'s download (as a WeightFile to check against), if any."""
    record = _record_path(dest)
    if not record.is_file():
        return None
    return WeightFile(dest.name, sha256=(record.read_text().split() or ["(empty record)"])[0])


def _write_record(dest: Path, digest: str):
    """Write `dest`'s sha256 record (`sha256sum` format) atomically."""
    record = _record_path(dest)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{digest}  {dest.name}\n")
            os.replace(tmp, record)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as err:
        raise ZooError(f"cannot record the sha256 of {dest} in {record}: {err.strerror or err}") from None


def fetch(weight_file: WeightFile) -> Path:
    """A verified local path of `weight_file`: the package file, the cache, or a download."""
    if weight_file.url is None:
        path = ASSETS_DIR / weight_file.name
        if not path.is_file():
            raise ZooError(f"package weights file missing: {path} (reinstall keras-zoo)")
        bad = _mismatch(path, weight_file)
        if bad:
            raise ZooError(f"checksum mismatch: package file {path} has {bad} (reinstall keras-zoo)")
        return path

    dest = cache_dir() / weight_file.name
    published = bool(_hashers(weight_file))
    if dest.is_file():
        expected = weight_file if published else _recorded(dest)
        if expected is None:  # put there by hand: trust on first use
            _write_record(dest, file_sha256(dest))
            warnings.warn(f"{dest}: no published checksum and no record of its download; used unverified, "
                          f"its sha256 now recorded in {_record_path(dest)} and verified on every later use",
                          stacklevel=2)
            return dest
        bad = _mismatch(dest, expected)
        if bad:
            dest.unlink(missing_ok=True)
            if not published:
                _record_path(dest).unlink(missing_ok=True)
            recorded = "" if published else f" (recorded in {_record_path(dest).name})"
            raise ZooError(f"checksum mismatch: cached {dest} has {bad}{recorded}; removed it "
                           f"(the next call downloads it again)")
        _warn_unverified(weight_file)
        return dest
    for keras_dir in _keras_cache_dirs() if published else []:
        keras_copy = keras_dir / weight_file.name
        if keras_copy.is_file() and _mismatch(keras_copy, weight_file) is None:
            return keras_copy
    if offline():
        raise ZooError(f"ZOO_OFFLINE=1 and the weights file is not cached: missing {dest} "
                       f"(download {weight_file.url} to that path, or unset ZOO_OFFLINE)")
    _download(weight_file, dest)
    _warn_unverified(weight_file)
    return dest


def _download(weight_file: WeightFile, dest: Path):
    """Download to a temporary file next to `dest`, verify, then rename atomically."""
    url = weight_file.url
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ZooError(f"cannot create the weights cache {dest.parent}: {err.strerror or err} "
                       f"(set ZOO_HOME to a writable directory)") from None
    print(f"zoo: downloading {url} -> {dest}", file=sys.stderr, flush=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    hashers = _hashers(weight_file)
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                for chunk in _chunks(response):
                    out.write(chunk)
                    for digest, _ in hashers.values():
                        digest.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
            raise ZooError(f"cannot download {url}: {reason}; put the file at {dest} "
                           f"to use it offline") from None
        wrong = _wrong_digest(hashers)
        if wrong:
            raise ZooError(f"checksum mismatch for {url}: {wrong}; the download was removed")
        if not hashers:  # no published checksum: record what was downloaded, to verify later uses
            _write_record(dest, file_sha256(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


URL_SCHEMES = ("https", "file")


def is_url(value) -> bool:
    """`scheme://...`: weights named by a URL rather than a tag or a local path."""
    return isinstance(value, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def url_weight_file(url: str) -> WeightFile:
    """The WeightFile of weights a user names by URL (`model.pretrained: https://...`).

    An optional pip-style fragment `#sha256=<64 hex digits>` is its published checksum (the
    download is verified against it); without one the download is recorded and verified on later
    uses, like any file without a published checksum. It is cached as
    `urls/<hash of the URL>/<its file name>` under the weights cache, so URLs that end in the same
    file name (`.../a/model.keras`, `.../b/model.keras`) never share a cache entry.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in URL_SCHEMES:
        raise ZooError(f"{url}: unsupported URL scheme {parts.scheme + '://'!r} "
                       f"(expected {' or '.join(s + '://' for s in URL_SCHEMES)})")
    sha256 = None
    if parts.fragment:
        match = re.fullmatch(r"sha256=([0-9a-fA-F]{64})", parts.fragment)
        if match is None:
            raise ZooError(f"{url}: the URL fragment must be #sha256=<64 hex digits>, got #{parts.fragment}")
        sha256 = match.group(1).lower()
    bare = urllib.parse.urlunsplit(parts._replace(fragment=""))
    plain = WeightFile.from_url(bare, sha256)
    key = hashlib.sha256(bare.encode()).hexdigest()[:16]
    return dataclasses.replace(plain, name=f"urls/{key}/{plain.name or 'weights'}")


def fetch_url(url: str) -> Path:
    """A verified local copy of the weights at `url` (downloaded once into the weights cache)."""
    return fetch(url_weight_file(url))


# ------------------------------------------------------------ reading and assigning weights


def read_legacy_h5(path) -> dict[str, list[np.ndarray]]:
    """{layer name: weights} of a legacy Keras `.h5` file, in the file's layer order.

    The format of Keras Applications' files (and of `model.save("x.h5")`): attribute
    "layer_names" (possibly chunked as layer_names0, layer_names1, ...), one group per layer
    with attribute "weight_names", the weights in the layer's trainable + non-trainable order.
    """
    import h5py

    def names(group, attr):
        if attr in group.attrs:
            values = list(group.attrs[attr])
        else:
            values, chunk = [], 0
            while f"{attr}{chunk}" in group.attrs:
                values += list(group.attrs[f"{attr}{chunk}"])
                chunk += 1
        return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]

    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            out = {}
            for layer_name in names(root, "layer_names"):
                group = root[layer_name]
                values = [np.asarray(group[w]) for w in names(group, "weight_names")]
                if values:
                    out[layer_name] = values
    except (OSError, KeyError) as err:
        raise ZooError(f"{path}: not a readable Keras .h5 weights file ({err})") from None
    if not out:
        raise ZooError(f"{path}: no layer weights found (expected a Keras Applications-style .h5)")
    return out


def _base_name(name: str) -> str:
    return re.sub(r"_\d+$", "", name)


def _strip_ones(shape) -> tuple:
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _fit(value: np.ndarray, shape) -> np.ndarray | None:
    shape = tuple(shape)
    if value.shape == shape:
        return value
    if value.size == int(np.prod(shape)) and _strip_ones(value.shape) == _strip_ones(shape):
        return value.reshape(shape)  # e.g. a 1x1 conv kernel into a Dense kernel
    return None


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _refresh(layer):
    """Layers that cache tensors computed from their variables recompute them (Normalization)."""
    sublayers = getattr(layer, "_flatten_layers", None)
    for sub in (sublayers(include_self=True, recursive=True) if sublayers else [layer]):
        if isinstance(sub, keras.layers.Normalization):
            sub.finalize_state()


def _auto_named(layer) -> bool:
    """Keras named the layer itself ("conv2d", "conv2d_57"): its number depends on the session."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)  # Keras' snake case:
    stem = re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()             # Conv2D -> conv2d
    return re.fullmatch(rf"{re.escape(stem)}(_\d+)?", layer.name) is not None


def _pair_layers(layers, stored: dict) -> dict:
    """{model layer name: the file's layer name}. A named layer pairs with the same name; the
    auto-named layers of one kind ("conv2d", "conv2d_1"...) pair in order with the file's layers
    of that kind, as Keras' own legacy loader pairs all layers: the numbers differ between
    sessions (a file written in a fresh session starts at conv2d, a model built after another
    one at conv2d_57), so the same number can even be another layer."""
    pairs, auto = {}, {}
    for layer in layers:
        if _auto_named(layer):
            auto.setdefault(_base_name(layer.name), []).append(layer.name)
        elif layer.name in stored:
            pairs[layer.name] = layer.name
    for stem, names in auto.items():
        in_file = [name for name in stored if _base_name(name) == stem and name not in pairs.values()]
        if len(in_file) == len(names):
            pairs.update(zip(names, in_file))
    return pairs


def assign_by_name(model, stored: dict, *, what: str, legacy_order: bool, skip=()) -> list[str]:
    """Set every weighted layer of `model` from `stored` ({layer name: arrays}) by name, except
    the layers named in `skip` (a head to start fresh), which are returned when the model has them.

    `legacy_order`: the arrays are in Keras' legacy h5 order (trainable, then non-trainable),
    else in `layer.weights` order. A layer missing from `stored` or of another shape is a
    ZooError naming it.
    """
    fresh = []
    layers = _weighted_layers(model)
    pairs = _pair_layers([layer for layer in layers if layer.name not in skip], stored)
    for layer in layers:
        if layer.name in skip:
            fresh.append(layer.name)
            continue
        stored_name = pairs.get(layer.name)
        if stored_name is None:
            raise ZooError(f"{what}: no weights for layer {layer.name!r}")
        variables = (layer.trainable_weights + layer.non_trainable_weights) if legacy_order else layer.weights
        values = stored[stored_name]
        if len(values) != len(variables):
            raise ZooError(f"{what}: layer {layer.name!r} has {len(variables)} weights, "
                           f"the file's {stored_name!r} has {len(values)}")
        fitted = [_fit(np.asarray(v), var.shape) for v, var in zip(values, variables)]
        if any(f is None for f in fitted):
            expected = [tuple(var.shape) for var in variables]
            got = [tuple(np.shape(v)) for v in values]
            raise ZooError(f"{what}: layer {layer.name!r} expects weights of shapes {expected}, "
                           f"the weights have {got}")
        for variable, value in zip(variables, fitted):
            variable.assign(value.astype(variable.dtype))
        _refresh(layer)
    return fresh


def square_normalization_variance(model):
    """EfficientNet: Keras stores the ImageNet std as the Normalization "variance" and, only when
    built with weights="imagenet", adds a Rescaling(1/sqrt(std)) that the zoo's backbone (built
    with weights=None) lacks; squaring the variance gives the same (x/255 - mean) / std."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.weights:
            mean, variance, *rest = layer.get_weights()
            layer.set_weights([mean, np.square(variance), *rest])
            layer.finalize_state()


POST_LOAD = {"square_normalization_variance": square_normalization_variance}


# ------------------------------------------------------------------------------ loading


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


def transfer(saved_model, target_model, *, what: str, skip=()) -> list[str]:
    """Copy weights layer by layer (by name) from one model into another; see assign_by_name."""
    stored = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in _weighted_layers(saved_model)}
    return assign_by_name(target_model, stored, what=what, legacy_order=False, skip=skip)


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
