"""The model registry: builders registered by decorator, each with its head and its pretrained
weights (the rows of zoo/weights_table.py for that model), listed by pattern and task.

Registering imports no model code and no TensorFlow: `zoo.models` imports the families, whose
decorators fill this table; nothing here imports them back.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from zoo.errors import ZooError

KERAS_APPLICATIONS = "keras_applications"  # WeightsSpec.format of Keras' legacy ImageNet .h5 files
ZOO = "zoo"  # WeightsSpec.format of a zoo model's own `.weights.h5` (Keras 3 format)


@dataclass(frozen=True)
class WeightFile:
    """One weights file: a package file (url None) or a URL; its published checksum."""

    name: str
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None  # Keras Applications publishes md5 for most of its files

    @classmethod
    def from_url(cls, url, sha256=None, md5=None) -> "WeightFile":
        return cls(Path(urllib.parse.urlparse(url).path).name, url, sha256, md5)


@dataclass(frozen=True)
class WeightsSpec:
    """One pretrained weight of a model (a row of zoo/weights_table.py)."""

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
    post_load: str | None = None  # a fix applied after loading (zoo.weight_mapping.POST_LOAD)
    class_names: tuple = ()  # the name of each class index (zoo predict); () where unknown

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"


@dataclass
class ModelEntry:
    name: str
    task: str
    builder: Callable
    input_shape: tuple  # default input shape (H, W, C) or (T, H, W, C) for video
    citation: str  # one line: the builder's docstring first line
    head: tuple = ()  # names of the layers that depend on num_classes (replaced when it differs)
    pretrained: dict = field(default_factory=dict)  # tag -> WeightsSpec, first = default

    @property
    def default_tag(self):
        return next(iter(self.pretrained), None)


_MODELS: dict[str, ModelEntry] = {}


def _zoo_spec(row: dict) -> WeightsSpec:
    row = dict(row)
    url, sha256 = row.pop("url", None), row.pop("sha256", None)
    name = row.pop("file", None)
    weight_file = WeightFile.from_url(url, sha256) if url else WeightFile(name, None, sha256)
    return WeightsSpec(file=weight_file, input_size=tuple(row.pop("input_size")),
                       class_names=tuple(row.pop("class_names", ())), **row)


def _keras_spec(row: dict) -> WeightsSpec:
    from zoo import weights_table

    return WeightsSpec(
        model=row["model"], tag="imagenet",
        file=WeightFile.from_url(row["url"], row.get("sha256"), row.get("md5")),
        notop=WeightFile.from_url(row["notop_url"], row.get("notop_sha256"), row.get("notop_md5")),
        dataset=weights_table.IMAGENET, input_size=tuple(row["input_size"]), num_classes=1000,
        preprocessing=row["preprocessing"], metrics=dict(row.get("metrics", {})),
        measured=weights_table.KERAS_MEASURED if row.get("metrics") else "",
        format=KERAS_APPLICATIONS, application=row["application"], post_load=row.get("post_load"),
        class_names=tuple(row.get("class_names", ())))


def _table() -> dict[str, list[WeightsSpec]]:
    """Every row of zoo/weights_table.py as a WeightsSpec, by model name (read once)."""
    global _SPECS
    if _SPECS is None:
        from zoo import weights_table

        _SPECS = {}
        for spec in ([_zoo_spec(r) for r in weights_table.ZOO_WEIGHTS]
                     + [_keras_spec(r) for r in weights_table.KERAS_APPLICATIONS]):
            _SPECS.setdefault(spec.model, []).append(spec)
    return _SPECS


_SPECS: dict | None = None


def register(task: str, input_shape, name: str | None = None, head=("predictions_dense",)):
    """Register a builder `fn(input_shape, num_classes, **kwargs) -> keras.Model` of `task`.

    `head`: the layers whose shapes follow num_classes; fine-tuning to another class count
    replaces exactly these and keeps every other layer of the pretrained weights.
    """
    from zoo.tasks import TASKS

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; registered tasks: {', '.join(TASKS)}")

    def decorate(fn):
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} registered twice")
        doc = (inspect.getdoc(fn) or "").strip().splitlines()
        pretrained = {spec.tag: spec for spec in _table().get(key, [])}
        _MODELS[key] = ModelEntry(key, task, fn, tuple(input_shape), doc[0] if doc else "",
                                  tuple(head), pretrained)
        return fn

    return decorate


def get_entry(name: str) -> ModelEntry:
    """A registered model (the families must be imported: `zoo.models` does it)."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo list` shows them all"
        raise ZooError(f"unknown model {name!r}{hint}")
    return _MODELS[name]


def list_models(pattern: str = "*", task: str | None = None, pretrained: bool = False) -> list[str]:
    from zoo.tasks import TASKS

    if task is not None and task not in TASKS:
        raise ZooError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return sorted(name for name, entry in _MODELS.items()
                  if fnmatch.fnmatch(name, pattern) and (task is None or entry.task == task)
                  and (not pretrained or entry.pretrained))


def list_pretrained(pattern: str = "*") -> list[str]:
    """Every pretrained weight as "<model>.<tag>", filtered by an fnmatch pattern."""
    names = [f"{m}.{tag}" for m in list_models(pretrained=True) for tag in _MODELS[m].pretrained]
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def pretrained_specs(pattern: str = "*", task: str | None = None) -> list[WeightsSpec]:
    """The weights of the models matching `pattern` (fnmatch on the model name) and `task`."""
    return [spec for m in list_models(pattern, task=task, pretrained=True) for spec in _MODELS[m].pretrained.values()]


def get_spec(name: str) -> WeightsSpec:
    """The spec of "<model>.<tag>" (or of "<model>", its default tag)."""
    model, _, tag = name.partition(".")
    entry = get_entry(model)
    tag = tag or entry.default_tag
    if tag not in entry.pretrained:
        raise ZooError(f"{model}: no pretrained tag {tag!r} (tags: {', '.join(entry.pretrained) or 'none'})")
    return entry.pretrained[tag]
