"""Recipes: YAML (zoo.recipe_yaml) -> `extends` deep merge -> dotted overrides -> validated dataclasses."""
from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath
from typing import Literal, Union

import yaml

from zoo.config import DataConfig, ModelConfig, RuntimeConfig, TrainConfig
from zoo.errors import QUOTE_CHARS, RecipeError, quote
from zoo.recipe_yaml import MAX_DEPTH, MAX_EXTENDS, Dumper, Loader, read_yaml


def _recipes_dir() -> Path:
    """zoo/recipes in an installed wheel (pyproject maps recipes/ there), else the checkout's recipes/."""
    package = Path(__file__).resolve().parent
    installed = package / "recipes"
    return installed if installed.is_dir() else package.parent / "recipes"


RECIPES_DIR = _recipes_dir()

@dataclass
class Recipe:
    task: str  # a registered task (zoo/tasks); it decides the type of `data`
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    name: str = "recipe"  # defaults to the file's stem; names the run directory

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        model = out.pop("model")
        out["model"] = {"name": model["name"], "pretrained": model["pretrained"], **model["params"]}
        return out

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=Dumper, sort_keys=False)


# ---------------------------------------------------------------- loading


def find_recipe(name_or_path) -> Path:
    """A path to a YAML file, or the stem of a recipe shipped under recipes/."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if path.is_dir():
            raise RecipeError(f"{path}: a directory, not a recipe file")
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {path}")
        return path
    matches = [p for p in shipped_recipes() if p.stem == str(name_or_path)]
    if not matches:
        import difflib

        stems = [p.stem for p in shipped_recipes()]
        close = difflib.get_close_matches(str(name_or_path), stems, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `zoo recipes` lists them"
        raise RecipeError(f"unknown recipe {quote(str(name_or_path))}{hint}")
    return matches[0]


def shipped_recipes() -> list[Path]:
    return sorted(p for p in RECIPES_DIR.rglob("*.yaml") if p.parent.name != "base")


def recipe_fields(path: Path) -> dict:
    """A recipe file's keys (after `extends`), not validated: a quick look, as `zoo recipes` takes."""
    return _resolve_extends(Path(path))


def expected_comment(path: Path) -> str | None:
    """What a recipe file's own comments say to expect, without its sources ("# Expected: test
    accuracy 0.9125 (error 8.75%, ...)" -> "test accuracy 0.9125"); None where they say nothing."""
    comments = " ".join(line.strip().lstrip("#").strip() for line in Path(path).read_text().splitlines()
                        if line.strip().startswith("#"))
    found = re.search(r"\bExpected\b[^:(]*(?:\([^)]*\)[^:(]*)?:\s*(.+?)(?: \(| --| —|;|\.(?: |$))", comments)
    return found[1] if found else None


def _resolve_extends(path: Path, seen=()) -> dict:
    path = path.resolve()
    if path in seen:
        raise RecipeError(f"{path}: `extends` forms a cycle")
    if len(seen) >= MAX_EXTENDS:
        raise RecipeError(f"{seen[0]}: extends: a chain of more than {MAX_EXTENDS} recipes")
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: extends: expected a relative path, got {quote(parent)}")
    parent_path = path.parent / parent
    if not parent_path.is_file():
        raise RecipeError(f"{path}: extends: file not found: {parent_path}")
    return deep_merge(_resolve_extends(parent_path, seen + (path,)), data)


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_overrides(data: dict, overrides) -> dict:
    """Apply `a.b.c=value` strings; values parse as YAML (`[96,96]`, `3`, `null`)."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"override {quote(item)}: expected KEY=VALUE with a dotted key")
        parts = key.strip().split(".")
        if len(parts) > MAX_DEPTH:
            raise RecipeError(f"override {quote(item)}: a key more than {MAX_DEPTH} levels deep")
        try:
            value = yaml.load(raw, Loader=Loader)
        except yaml.YAMLError:
            raise RecipeError(f"override {quote(item)}: value is not valid YAML") from None
        except RecipeError as err:  # a bound of Loader's
            raise RecipeError(f"override {quote(item)}: {err}") from None
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"override {quote(item)}: {quote(part, as_repr=False)} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_recipe(path_or_name, overrides=()) -> Recipe:
    """Load a recipe by path or shipped stem, apply `extends` and dotted overrides, validate."""
    if isinstance(path_or_name, Recipe):
        data, name = path_or_name.to_dict(), path_or_name.name
    elif isinstance(path_or_name, dict):
        data, name = copy.deepcopy(path_or_name), "recipe"
    else:
        path = find_recipe(path_or_name)
        data, name = _resolve_extends(path), path.stem
    data.setdefault("name", name)
    return from_dict(apply_overrides(data, overrides))


def from_dict(data: dict) -> Recipe:
    data = dict(data)
    model = data.get("model")
    if isinstance(model, str):
        model = {"name": model}
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise RecipeError("model.name: required, the name of a registered model")
    model = _renamed_keys(dict(model))
    data["model"] = {"name": model.pop("name"), "pretrained": model.pop("pretrained", None), "params": model}
    task = _task_of(data)
    recipe = _build(Recipe, data, "", types_of={"data": task.data_config})
    _check(recipe, task)
    return recipe


# Model keys renamed so that one concept has one word in every family (backbone, not encoder;
# one `pretrained` for a model's own weights and its backbone's).
RENAMED_MODEL_KEYS = {"encoder": "backbone", "pretrained_encoder": "pretrained",
                      "backbone_weights": "pretrained", "freeze_encoder": "freeze_backbone"}


def _renamed_keys(model: dict) -> dict:
    """Old model keys under their new names, with a one-line deprecation warning each. An old
    key next to its new one: the old key's value when the new one is null or equal to it, or
    when the old one is null (a recipe that turned the weights off before the rename keeps them
    off: `extends` a recipe that now says `pretrained: imagenet`, override
    `model.backbone_weights=null`); two different values are an error naming the new key."""
    for old, new in RENAMED_MODEL_KEYS.items():
        if old in model:
            given = model.get(new)
            if given is not None and model[old] is not None and given != model[old]:
                raise RecipeError(f"model.{old}: the old name of model.{new}, which is also given "
                                  f"({quote(model[old])} vs {quote(given)}); give only model.{new}")
            print(f"warning: model.{old} is deprecated; it is now model.{new}", file=sys.stderr, flush=True)
            model[new] = model.pop(old)
    return model


def _task_of(data: dict):
    """The registered task a recipe names; its `data_config` is the type of the data section."""
    from zoo.tasks import TASKS

    name = data.get("task")
    if name is None:
        raise RecipeError("task: required")
    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise RecipeError(f"task: expected one of {', '.join(TASKS)}, got {quote(name)}{hint}")
    return TASKS[name]


# ---------------------------------------------------------------- validation


def _describe(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string",
            dict: "a mapping"}.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(tp, value, path):
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecipeError(f"{path}: expected a mapping, got {quote(value)}")
        return _build(tp, value, path + ".")
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        if len(args) == 1:  # Optional[X]: X's own message
            return _convert(args[0], value, path)
        for arg in args:
            try:
                return _convert(arg, value, path)
            except RecipeError:
                pass
        raise RecipeError(f"{path}: expected {_describe(tp)}, got {quote(value)}")
    if origin is Literal:
        if any(a == value and type(a) is type(value) for a in typing.get_args(tp)):
            return value
        raise RecipeError(f"{path}: expected {_describe(tp)}, got {quote(value)}")
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{path}: expected {_describe(tp)}, got {quote(value)}")
        return [_convert(typing.get_args(tp)[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp in (int, float) and isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"{path}: expected a finite number, got {quote(value)}")
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp in (bool, str, dict) and isinstance(value, tp):
        return value
    raise RecipeError(f"{path}: expected {_describe(tp)}, got {quote(value)}")


def _build(cls, data: dict, prefix: str, types_of: dict | None = None):
    hints = {**typing.get_type_hints(cls), **(types_of or {})}
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise RecipeError(_unknown_key(cls, str(key), prefix, names))
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], prefix + f.name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"{prefix}{f.name}: required")
        elif f.name in (types_of or {}):  # a task's own data section, with its defaults
            kwargs[f.name] = types_of[f.name]()
    return cls(**kwargs)


def _unknown_key(cls, key: str, prefix: str, names) -> str:
    """'unknown key', with the key of another task's data section named as such, or a close match."""
    import difflib

    if issubclass(cls, DataConfig):
        from zoo.tasks import TASKS

        owners = [t.name for t in TASKS.values() if key in {f.name for f in dataclasses.fields(t.data_config)}]
        if owners:
            return f"{prefix}{key}: a {' / '.join(owners)} key, not one of this recipe's task"
    key = quote(key, as_repr=False)
    close = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {prefix}{close[0]}?)" if close else ""
    return f"{prefix}{key}: unknown key{hint}"


def _positive(path, value, allow_zero=False):
    if value is not None and (value < 0 or (value == 0 and not allow_zero)):
        raise RecipeError(f"{path}: expected a {'non-negative' if allow_zero else 'positive'} number, "
                          f"got {quote(value)}")


def _check(recipe: Recipe, task):
    """Impossible values, and model kwargs against the builder's signature."""
    data, train, opt, sched = recipe.data, recipe.train, recipe.train.optimizer, recipe.train.schedule
    if len(data.image_size) != 2 or any(s <= 0 for s in data.image_size):
        raise RecipeError(f"data.image_size: expected two positive integers, got {quote(data.image_size)}")
    for key in ("batch_size", "num_classes", "shuffle_buffer", "train_size", "eval_size", "max_pixels"):
        _positive(f"data.{key}", getattr(data, key))
    if not 0 < data.eval_crop <= 1:
        raise RecipeError(f"data.eval_crop: expected a fraction in (0, 1], got {quote(data.eval_crop)}")
    _check_val_split(data)
    _positive("data.augment.crop_padding", data.augment.crop_padding, allow_zero=True)
    for key, top in (("crop_scale", 1), ("scale_jitter", math.inf)):  # crop_scale: area fractions
        rng = getattr(data.augment, key)
        if rng is not None and (len(rng) != 2 or not 0 < rng[0] <= rng[1] <= top):
            bound = "max <= 1" if top == 1 else "max"
            raise RecipeError(f"data.augment.{key}: expected [min, max] with 0 < min <= {bound}, got {quote(rng)}")
    _positive("train.epochs", train.epochs)
    _positive("train.steps_per_epoch", train.steps_per_epoch)
    _positive("train.eval_every", train.eval_every)
    if not 0 <= train.freeze_epochs < train.epochs:
        raise RecipeError(f"train.freeze_epochs: expected a number of epochs in [0, train.epochs) = "
                          f"[0, {quote(train.epochs)}), got {quote(train.freeze_epochs)}")
    if train.early_stopping is not None:
        _positive("train.early_stopping.patience", train.early_stopping.patience)
        if not train.validate:
            raise RecipeError("train.early_stopping: needs train.validate: true (it watches the "
                              "task's main metric on data.val_split)")
    _positive("train.optimizer.learning_rate", opt.learning_rate)
    if not 0 <= opt.momentum < 1:
        raise RecipeError(f"train.optimizer.momentum: expected a number in [0, 1), got {quote(opt.momentum)}")
    _positive("train.optimizer.weight_decay", opt.weight_decay, allow_zero=True)
    _positive("train.optimizer.clipnorm", opt.clipnorm)
    _positive("train.schedule.warmup_epochs", sched.warmup_epochs, allow_zero=True)
    if any(m < 0 for m in sched.milestones) or sched.milestones != sorted(sched.milestones):
        raise RecipeError(f"train.schedule.milestones: expected sorted non-negative epochs, "
                          f"got {quote(sched.milestones)}")
    _positive("train.schedule.decay_rate", sched.decay_rate)
    _positive("train.schedule.min_learning_rate", sched.min_learning_rate, allow_zero=True)
    if not 0 <= recipe.runtime.seed < 2**32:  # NumPy's seed range
        raise RecipeError(f"runtime.seed: expected an integer in [0, 2**32), got {quote(recipe.runtime.seed)}")
    _positive("runtime.steps_per_execution", recipe.runtime.steps_per_execution)
    if recipe.runtime.steps_per_execution > 1 and recipe.runtime.distribution in ("mirrored", "multi_worker"):
        raise RecipeError(f"runtime.steps_per_execution: must be 1 with runtime.distribution "
                          f"{recipe.runtime.distribution} (Keras 3.15's multi-step loop fails under a strategy)")
    source = task.all_sources.get(data.source)
    if source is None:
        raise RecipeError(f"data.source: {quote(data.source, as_repr=False)} is not available for task {task.name} "
                          f"(available: {', '.join(sorted(task.all_sources))})")
    for key in source.requires:
        if not getattr(data, key):
            raise RecipeError(f"data.{key}: required for data.source={quote(data.source, as_repr=False)}")
    if "path" in source.requires:  # a split names a folder or files under data.path
        for key in ("train_split", "val_split", "eval_split"):
            if isinstance(getattr(data, key), str):
                _check_split_inside(f"data.{key}", getattr(data, key))
    task.check_recipe(recipe)

    from zoo.models import get_entry

    try:
        entry = get_entry(recipe.model.name)
    except Exception as err:
        raise RecipeError(f"model.name: {quote(str(err), as_repr=False, limit=3 * QUOTE_CHARS)}") from None
    if entry.task != recipe.task:
        raise RecipeError(f"model.name: {entry.name} is a {entry.task} model, but task is {recipe.task}")
    for reserved, where in (("num_classes", "data.num_classes"), ("input_shape", "data.image_size")):
        if reserved in recipe.model.params:
            raise RecipeError(f"model.{reserved}: set {where} instead")
    check_kwargs(entry.builder, recipe.model.params, "model", exclude=("input_shape", "num_classes"))
    _check_pretrained(recipe.model.pretrained, entry)


def check_run_name(name: str):
    """A recipe's name is the folder of its runs under runs/: a name, never a path."""
    if (not name.strip() or name in (".", "..") or any(c in name for c in "/\\")
            or PureWindowsPath(name).drive or any(ord(c) < 32 for c in name)):
        raise RecipeError(f"name: expected a plain name for the run directory under runs/ "
                          f"(no '/', '\\', '..' or absolute path), got {quote(name)}")


def _check_val_split(data):
    """data.val_split: null, a fraction in (0, 1) of the training split, or another split's name."""
    value = data.val_split
    if (isinstance(value, float) and not 0 < value < 1) or (isinstance(value, str) and not value.strip()):
        raise RecipeError(f"data.val_split: expected null (10% of data.train_split), a fraction in (0, 1) "
                          f"or a split name, got {quote(value)}")
    if value == data.train_split:
        raise RecipeError(f"data.val_split: {quote(value)} is data.train_split: the model would be chosen on "
                          f"the data it trained on; give a fraction of it (e.g. 0.1) or another split")


def _check_split_inside(key: str, split: str):
    """A split read under data.path stays inside it: no absolute path, no `..`."""
    if split.startswith(("/", "\\")) or PureWindowsPath(split).drive or ".." in re.split(r"[/\\]", split):
        raise RecipeError(f"{key}: expected a split name inside data.path (no '..' or absolute path), "
                          f"got {quote(split)}")


def _check_pretrained(pretrained, entry):
    """A tag that neither the model nor (for a model built on one) its backbone can have: named
    before any data is read. Files and URLs are checked when the model is built."""
    if pretrained in (None, False) or "backbone_weights" in inspect.signature(entry.builder).parameters:
        return
    tags = ", ".join(entry.pretrained) or "none"
    if pretrained is True:
        if not entry.pretrained:
            raise RecipeError(f"model.pretrained: {entry.name} has no pretrained weights (tags: none); "
                              f"give a weights file or URL")
        return
    key = str(pretrained)
    looks_like_file = ("://" in key or "/" in key or "\\" in key
                       or Path(key).suffix in (".h5", ".keras", ".hdf5") or _exists(key))
    if key not in entry.pretrained and not looks_like_file:
        raise RecipeError(f"model.pretrained: {entry.name} has no pretrained tag {quote(key)} (tags: {tags}); "
                          f"give a tag, a weights file or a URL")


def _exists(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError):  # a name too long for a path, a NUL byte: no file
        return False


def check_kwargs(fn, kwargs: dict, prefix: str, exclude=()):
    """Name the first key of `kwargs` that `fn` does not take as a keyword argument."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
               and n not in exclude]
    for key in kwargs:
        if key not in allowed:
            raise RecipeError(f"{prefix}.{quote(str(key), as_repr=False)}: unknown key; "
                              f"allowed: {', '.join(allowed) or 'none'}")
