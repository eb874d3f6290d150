"""Pretrained weights: the weights table, a checksummed offline-capable cache, loading by name.

* Every weight is a `WeightsSpec` (zoo/weights_table.py holds the rows); at import the specs
  are attached to their models' registry entries (`ModelEntry.pretrained[tag]`).
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
* `load_model_file` loads a `.keras` file; what a user can get wrong is a one-line `ZooError`.
* Zoo weights (`.weights.h5`, Keras 3 format) load into a model built by the same builder;
  Keras Applications' ImageNet `.h5` files (legacy format) load by layer name, since the zoo's
  wrappers keep Keras Applications' layer names (zoo/models/applications.py).
* A requested head that differs from the weights' (`num_classes`, or `features_only=True`)
  keeps every other layer and starts the differing head layers fresh (fine-tuning). Only the
  output dimension may differ; any other difference (architecture, an input size a Flatten
  head depends on) is an error naming the layer.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from zoo.errors import ZooError
from zoo.registry import _MODELS, get_entry, list_models

ASSETS_DIR = Path(__file__).resolve().parent / "assets" / "weights"
KERAS_APPLICATIONS = "keras_applications"  # WeightsSpec.format of Keras' legacy ImageNet .h5 files
ZOO = "zoo"  # WeightsSpec.format of a zoo model's own `.weights.h5` (Keras 3 format)

# Keras Applications' names of the classifier Dense / 1x1 conv that the zoo calls
# "predictions_dense" (zoo.models.layers.classifier_head).
HEAD_ALIASES = {"predictions_dense": ("predictions", "logits", "Logits", "convnext_tiny_head_dense")}


@dataclass(frozen=True)
class WeightFile:
    """One weights file: a package file (url None) or a URL; its published checksum."""

    name: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None  # Keras Applications publishes md5 for most of its files


@dataclass(frozen=True)
class WeightsSpec:
    """One row of a model's weights table (tag -> spec)."""

    model: str
    tag: str
    file: WeightFile
    dataset: str
    input_size: tuple
    num_classes: int
    preprocessing: str
    metrics: dict = field(default_factory=dict)
    tolerance: float = 0.01
    recipe: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    measured: str = ""
    format: str = ZOO
    notop: WeightFile | None = None  # include_top=False file (Keras Applications)
    application: str | None = None  # Keras Applications constructor name

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"


# ---------------------------------------------------------------------------- the table


def _file_from_url(url, sha256=None, md5=None) -> WeightFile:
    name = Path(urllib.parse.urlparse(url).path).name
    return WeightFile(name, url, sha256, md5)


def spec_from_row(row: dict) -> WeightsSpec:
    """A WeightsSpec from a ZOO_WEIGHTS row of zoo/weights_table.py."""
    row = dict(row)
    if row.get("url"):
        weight_file = _file_from_url(row.pop("url"), row.pop("sha256", None))
    else:
        weight_file = WeightFile(row.pop("file"), None, row.pop("sha256", None))
    row.pop("file", None)
    return WeightsSpec(file=weight_file, input_size=tuple(row.pop("input_size")), **row)


def spec_from_keras_row(row: dict) -> WeightsSpec:
    """A WeightsSpec from a KERAS_APPLICATIONS row of zoo/weights_table.py."""
    return WeightsSpec(
        model=row["model"],
        tag="imagenet",
        file=_file_from_url(row["url"], row.get("sha256"), row.get("md5")),
        notop=_file_from_url(row["notop_url"], row.get("notop_sha256"), row.get("notop_md5")),
        dataset="ImageNet-1k (ILSVRC 2012), validation split, 50,000 images",
        input_size=tuple(row["input_size"]),
        num_classes=1000,
        preprocessing=row["preprocessing"],
        metrics=dict(row.get("metrics", {})),
        recipe=None,
        measured="published by Keras Applications; not re-measured here" if row.get("metrics") else "",
        format=KERAS_APPLICATIONS,
        application=row["application"],
    )


def table_specs() -> list[WeightsSpec]:
    from zoo import weights_table

    return ([spec_from_row(row) for row in weights_table.ZOO_WEIGHTS]
            + [spec_from_keras_row(row) for row in weights_table.KERAS_APPLICATIONS])


_TABLE: list[WeightsSpec] = []


def register_weights(spec: WeightsSpec):
    """Add a weight to the table (and to its model's entry, once that model is registered)."""
    _TABLE.append(spec)
    _attach()


def _attach():
    """Attach the table's specs to the registry entries (idempotent; first row = default tag)."""
    for spec in _TABLE:
        entry = _MODELS.get(spec.model)
        if entry is not None and spec.tag not in entry.pretrained:
            entry.pretrained[spec.tag] = spec


def _load_table():
    from zoo.registry import _ensure_loaded

    _ensure_loaded()
    _TABLE.extend(table_specs())
    _attach()


def list_pretrained(pattern: str = "*") -> list[str]:
    """Every pretrained weight as "<model>.<tag>", filtered by an fnmatch pattern."""
    _attach()
    names = [f"{m}.{tag}" for m in list_models(pretrained=True) for tag in get_entry(m).pretrained]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def get_spec(name: str) -> WeightsSpec:
    """The spec of "<model>.<tag>" (or of "<model>", its default tag)."""
    _attach()
    model, _, tag = name.partition(".")
    entry = get_entry(model)
    tag = tag or entry.default_tag
    if tag not in entry.pretrained:
        raise ZooError(f"{model}: no pretrained tag {tag!r} (tags: {', '.join(entry.pretrained) or 'none'})")
    return entry.pretrained[tag]


def pretrained_specs(pattern: str = "*", task: str | None = None) -> list[WeightsSpec]:
    """The specs of the models matching `pattern` (fnmatch on the model name) and `task`."""
    _attach()
    return [spec for m in list_models(pattern, task=task, pretrained=True)
            for spec in get_entry(m).pretrained.values()]


def pretrained_lines(pattern: str = "*", task: str | None = None) -> list[str]:
    """`zoo list --pretrained`: one line per weight."""
    lines = []
    for spec in pretrained_specs(pattern, task):
        task_name = get_entry(spec.model).task
        by = "keras" if spec.format == KERAS_APPLICATIONS else "zoo"  # who measured the metrics
        lines.append(f"{spec.name:28s} {task_name:15s} {format_shape(spec.input_size):10s} "
                     f"{spec.num_classes:5d} classes  {by:5s}  {format_metrics(spec.metrics):36s} {spec.dataset}")
    return lines


def format_metrics(metrics: dict) -> str:
    shown = {k: v for k, v in metrics.items() if k != "num_examples"}
    return ", ".join(f"{k} {v:.4f}" if 0 <= v <= 1 else f"{k} {v:.4g}" for k, v in shown.items()) or "—"


def format_shape(shape) -> str:
    return "x".join(str(s) for s in shape)


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


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(path: Path, weight_file: WeightFile) -> str | None:
    """None when `path` matches every published checksum, else "<algo> <got> (expected <want>)"."""
    hashers = _hashers(weight_file)
    if not hashers:
        return None
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            for digest, _ in hashers.values():
                digest.update(chunk)
    for algo, (digest, want) in hashers.items():
        if digest.hexdigest() != want:
            return f"{algo} {digest.hexdigest()}, expected {want}"
    return None


_UNVERIFIED_WARNED = set()


def _warn_unverified(weight_file: WeightFile):
    if not _hashers(weight_file) and weight_file.name not in _UNVERIFIED_WARNED:
        _UNVERIFIED_WARNED.add(weight_file.name)
        warnings.warn(f"{weight_file.name}: its source publishes no checksum, so its first download is "
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
            source = "" if published else f" (recorded in {_record_path(dest).name})"
            raise ZooError(f"checksum mismatch: cached {dest} has {bad}{source}; removed it "
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
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
                    for digest, _ in hashers.values():
                        digest.update(chunk)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
            raise ZooError(f"cannot download {url}: {reason}; put the file at {dest} "
                           f"to use it offline") from None
        for algo, (digest, want) in hashers.items():
            if digest.hexdigest() != want:
                raise ZooError(f"checksum mismatch for {url}: {algo} {digest.hexdigest()}, "
                               f"expected {want}; the download was removed")
        if not hashers:  # no published checksum: record what was downloaded, to verify later uses
            _write_record(dest, file_sha256(tmp))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


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
        return value.reshape(shape)  # e.g. a 1x1 conv "logits" kernel into a Dense kernel
    return None


def _head_only(value_shape, shape) -> bool:
    """True when the two shapes differ only in their last (output) dimension."""
    a, b = _strip_ones(value_shape), _strip_ones(shape)
    return len(a) == len(b) and a[:-1] == b[:-1] and a[-1] != b[-1]


def _weighted_layers(model):
    return [layer for layer in model.layers if layer.weights]


def _refresh(layer):
    """Layers that cache tensors computed from their variables recompute them (Normalization)."""
    sublayers = getattr(layer, "_flatten_layers", None)
    for sub in (sublayers(include_self=True, recursive=True) if sublayers else [layer]):
        if isinstance(sub, keras.layers.Normalization):
            sub.finalize_state()


def _match(targets, sources: dict, aliases: dict, what: str) -> list:
    """Pair target layers with source names: same name, an alias, the same auto-name stem
    (Keras numbers auto-named layers per session: "normalization" vs "normalization_3"),
    then the remaining ones in order when as many remain on both sides."""
    used, pairs, pending = set(), [], []
    for layer in targets:
        for name in (layer.name, *aliases.get(layer.name, ())):
            if name in sources and name not in used:
                used.add(name)
                pairs.append((layer, name))
                break
        else:
            pending.append(layer)
    still = []
    for layer in pending:
        stems = [n for n in sources if n not in used and _base_name(n) == _base_name(layer.name)]
        if len(stems) == 1:
            used.add(stems[0])
            pairs.append((layer, stems[0]))
        else:
            still.append(layer)
    if still:
        leftovers = [n for n in sources if n not in used]
        if len(leftovers) != len(still):
            raise ZooError(f"{what}: no weights for layer {still[0].name!r} "
                           f"({len(still)} layer(s) of the model are not in the weights)")
        pairs += list(zip(still, leftovers))
    return pairs


def assign_by_name(model, sources: dict, *, what: str, legacy_order: bool, allow_head: bool = False,
                   aliases: dict | None = None) -> list[str]:
    """Set every weighted layer of `model` from `sources` ({layer name: arrays}), by name.

    `legacy_order`: the arrays are in Keras' legacy h5 order (trainable, then non-trainable),
    else in `layer.weights` order. With `allow_head`, a layer whose weights differ from the
    source only in the last (output) dimension is left as built; those layers' names are
    returned. Any other missing layer or shape difference is a ZooError naming the layer.
    """
    fresh = []
    for layer, source_name in _match(_weighted_layers(model), sources, aliases or {}, what):
        variables = (layer.trainable_weights + layer.non_trainable_weights) if legacy_order else layer.weights
        values = sources[source_name]
        if len(values) != len(variables):
            raise ZooError(f"{what}: layer {layer.name!r} has {len(variables)} weights, "
                           f"the file's {source_name!r} has {len(values)}")
        fitted = [_fit(np.asarray(v), var.shape) for v, var in zip(values, variables)]
        if any(f is None for f in fitted):
            if allow_head and all(f is not None or _head_only(v.shape, var.shape)
                                  for f, v, var in zip(fitted, values, variables)):
                fresh.append(layer.name)
                continue
            expected = [tuple(var.shape) for var in variables]
            got = [tuple(np.shape(v)) for v in values]
            raise ZooError(f"{what}: layer {layer.name!r} expects weights of shapes {expected}, "
                           f"the weights have {got}")
        for variable, value in zip(variables, fitted):
            variable.assign(value.astype(variable.dtype))
        _refresh(layer)
    return fresh


def transfer(source_model, target_model, *, what: str, allow_head: bool = False) -> list[str]:
    """Copy weights layer by layer (by name) from one model into another; see assign_by_name."""
    sources = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in _weighted_layers(source_model)}
    return assign_by_name(target_model, sources, what=what, legacy_order=False, allow_head=allow_head)


def _square_normalization_variance(model):
    """EfficientNet: Keras stores the ImageNet std as the Normalization "variance" and, only when
    built with weights="imagenet", adds a Rescaling(1/sqrt(std)) that the zoo's backbone (built
    with weights=None) lacks; squaring the variance gives the same (x/255 - mean) / std."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.weights:
            mean, variance, *rest = layer.get_weights()
            layer.set_weights([mean, np.square(variance), *rest])
            layer.finalize_state()


# ------------------------------------------------------------------------------ loading


def _resolve(entry, pretrained):
    """A WeightsSpec of the entry's table or a local Path."""
    if isinstance(pretrained, WeightsSpec):
        return pretrained
    if pretrained is True:
        if entry.default_tag is None:
            raise ZooError(f"model {entry.name} has no pretrained weights (`zoo list --pretrained` lists them)")
        return entry.pretrained[entry.default_tag]
    key = str(pretrained)
    if key in entry.pretrained:
        return entry.pretrained[key]
    path = Path(key).expanduser()
    if path.is_file():
        return path
    if isinstance(pretrained, Path) or "/" in key or path.suffix in (".h5", ".keras", ".hdf5"):
        raise ZooError(f"{entry.name}: weights file not found: {path}")
    tags = ", ".join(entry.pretrained) or "none"
    raise ZooError(f"{entry.name}: no pretrained tag or file {key!r} (tags: {tags})")


def build_pretrained(entry, pretrained, num_classes, input_shape, kwargs) -> keras.Model:
    """Build `entry` with weights: `pretrained` is True (default tag), a tag, or a local file.

    With a tag, `num_classes` defaults to the weights' and the recipe's builder arguments
    (`model_kwargs`) to those the weights were trained with; `input_shape` None means the
    weights' input size (a local file: the model's default).
    """
    _attach()
    source = _resolve(entry, pretrained)
    if isinstance(source, WeightsSpec):
        spec = source
        input_shape = tuple(spec.input_size) if input_shape is None else input_shape
        kwargs = {**spec.model_kwargs, **kwargs}
        num_classes = spec.num_classes if num_classes is None else num_classes
        model = entry.builder(input_shape=input_shape, num_classes=num_classes, **kwargs)
        fresh = load_spec(model, spec, num_classes=num_classes, features_only=bool(kwargs.get("features_only")))
        if fresh:
            warnings.warn(f"{spec.name}: {num_classes} classes instead of the weights' {spec.num_classes}; "
                          f"layer(s) {', '.join(fresh)} start fresh (fine-tuning)", stacklevel=3)
        return model
    input_shape = entry.input_shape if input_shape is None else input_shape
    model = entry.builder(input_shape=input_shape, **({"num_classes": num_classes} if num_classes else {}), **kwargs)
    fresh = load_file(model, source, entry=entry, allow_head=num_classes is not None,
                      builder_kwargs={"input_shape": input_shape, **kwargs})
    if fresh:
        warnings.warn(f"{source}: its head has another number of classes; layer(s) "
                      f"{', '.join(fresh)} start fresh (fine-tuning)", stacklevel=3)
    return model


def load_spec(model, spec: WeightsSpec, *, num_classes=None, features_only=False) -> list[str]:
    """Load a table weight into `model` (built by spec.model's builder); returns fresh layers."""
    what = f"weights {spec.name}"
    allow_head = num_classes is not None and num_classes != spec.num_classes
    if spec.format == KERAS_APPLICATIONS:
        weight_file = spec.notop if features_only and spec.notop else spec.file
        path = fetch(weight_file)
        fresh = assign_by_name(model, read_legacy_h5(path), what=f"{what} ({path.name})", legacy_order=True,
                               allow_head=allow_head, aliases=HEAD_ALIASES)
        if spec.application and spec.application.startswith("EfficientNet"):
            _square_normalization_variance(model)
        return fresh
    path = fetch(spec.file)
    if not features_only and not allow_head:
        try:
            _quiet_load(model, path)
            return []
        except ValueError as err:
            raise ZooError(f"{what} ({spec.num_classes} classes, input {format_shape(spec.input_size)}) "
                           f"do not fit {model.name} with input {format_shape(model.input_shape[1:])}: "
                           f"{_first_line(err)}") from None
    source = get_entry(spec.model).builder(input_shape=spec.input_size, num_classes=spec.num_classes,
                                           **spec.model_kwargs)
    _quiet_load(source, path)
    return transfer(source, model, what=what, allow_head=allow_head)


def _quiet_load(model, path):
    """model.load_weights, without Keras' warnings about a file that does not fit (the caller
    turns the ValueError into one clear line, or tries another build)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.load_weights(path)


def _first_line(err) -> str:
    """One line out of an exception; Keras' multi-line load errors shrink to the layer and shapes."""
    text = str(err)
    layer = re.search(r"object <\w+ name=([^,>]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if layer and shapes:
        return f"layer {layer.group(1)!r} expects shape {shapes.group(1)}, the file has {shapes.group(2)}"
    return (text.strip().splitlines() or [type(err).__name__])[0]


def _candidate_num_classes(path) -> list[int]:
    """Output sizes of the layers of a Keras 3 `.weights.h5` that look like a head (a kernel
    whose last dimension is its bias' length), last layers first."""
    import h5py

    found = []

    def visit(name, obj):
        if isinstance(obj, h5py.Group) and name.endswith("vars") and set(obj.keys()) == {"0", "1"}:
            kernel, bias = obj["0"], obj["1"]
            if bias.ndim == 1 and kernel.ndim >= 2 and kernel.shape[-1] == bias.shape[0]:
                found.append(int(bias.shape[0]))

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError:
        return []
    return list(dict.fromkeys(reversed(found)))


def load_model_file(path, *, compile: bool = False) -> keras.Model:
    """Load a Keras 3 `.keras` file; any failure a user can cause is a one-line ZooError naming it."""
    import zoo.models  # noqa: F401  (registers the zoo's custom layers)

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


def load_file(model, path, *, entry, allow_head=False, builder_kwargs=None) -> list[str]:
    """Load a local weights file into `model` (built by `entry`'s builder).

    `.keras`: a saved model, copied by layer name. `.weights.h5`: the zoo model's own weights;
    when they do not fit as built (another num_classes, or `model` is features_only), the
    builder is rebuilt with the file's head size and the weights copied by name. Any other
    `.h5`: a legacy Keras file (e.g. a Keras Applications download), loaded by layer name.
    """
    path = Path(path)
    what = f"weights file {path}"
    if path.suffix == ".keras":
        return transfer(load_model_file(path), model, what=what, allow_head=allow_head)
    if not path.name.endswith(".weights.h5"):
        return assign_by_name(model, read_legacy_h5(path), what=what, legacy_order=True,
                              allow_head=allow_head, aliases=HEAD_ALIASES)
    kwargs = dict(builder_kwargs or {"input_shape": model.input_shape[1:]})
    features_only = bool(kwargs.pop("features_only", False))
    first_error = None
    if not features_only:
        try:
            _quiet_load(model, path)
            return []
        except ValueError as err:
            first_error = err
        except OSError as err:
            raise ZooError(f"cannot read {path}: {_first_line(err)}") from None
    built_with = None if features_only else model.output_shape[-1]
    candidates = [None] + [k for k in _candidate_num_classes(path) if k != built_with]
    for num_classes in candidates[:8]:
        try:
            source = entry.builder(**kwargs, **({"num_classes": num_classes} if num_classes else {}))
            _quiet_load(source, path)
        except (ValueError, TypeError):
            continue
        except OSError as err:
            raise ZooError(f"cannot read {path}: {_first_line(err)}") from None
        return transfer(source, model, what=what, allow_head=allow_head or features_only)
    reason = (_first_line(first_error) if first_error
              else "no build of it with any head size in the file loads it (another architecture?)")
    raise ZooError(f"{what} does not fit {entry.name} with input "
                   f"{format_shape(model.input_shape[1:])}: {reason}")


def load_encoder_weights(encoder_model, encoder_name: str, spec) -> keras.Model:
    """Load a classifier's pretrained weights into an encoder built from it, in place.

    encoder_model: a model whose weighted layers all carry the classifier's layer names, e.g.
        `zoo.create_model(encoder_name, features_only=True, input_shape=...)`, before any
        decoder / head is attached (every weighted layer must be found in the weights).
    encoder_name: the registered classifier ("resnet50", "mobilenet_v2", "resnet18"...).
    spec: "imagenet" (Keras Applications' include_top=False file), any tag of the
        classifier's weights table, True (its default tag), or a local path: the zoo
        classifier's `.weights.h5` (any num_classes) or `.keras`, or a Keras-style legacy `.h5`.
    Returns encoder_model. Raises ZooError (one line) when the weights do not fit.
    """
    _attach()
    entry = get_entry(encoder_name)
    source = _resolve(entry, spec)
    if isinstance(source, WeightsSpec):
        load_spec(encoder_model, source, num_classes=source.num_classes, features_only=True)
    else:
        load_file(encoder_model, source, entry=entry, allow_head=False,
                  builder_kwargs={"input_shape": tuple(encoder_model.input_shape[1:]), "features_only": True})
    return encoder_model


_load_table()
