"""What a run is: the data it read, recorded with absolute paths (`absolute_data_paths`), and
what `--resume` may change (`check_resume`: never the model, its data shapes or the training
classes; other keys are applied and listed)."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from zoo.data import preview
from zoo.errors import ZooError

FIXED_ON_RESUME = ("task", "model", "data.image_size", "data.num_classes", "data.num_frames",
                   "train.optimizer.name", "runtime.mixed_precision")
RESOLVED = "# resolved: runtime.mixed_precision "  # the recipe.yaml header line with the policy a run trained in
RECORDED_BACKEND = "# backend: "  # the recipe.yaml header line naming the Keras backend that trained


def header_value(recipe_yaml: Path, prefix: str) -> str | None:
    """What follows `prefix` on a line of a run's recipe.yaml header; None without that line."""
    for line in recipe_yaml.read_text().splitlines():
        if not line.startswith("#"):
            return None
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def recorded_backend(recipe_yaml: Path) -> str | None:
    """The backend and version ("jax 0.10.2") a run's recipe.yaml records; None for runs from
    before the zoo recorded it."""
    return header_value(recipe_yaml, RECORDED_BACKEND)


def backend_history(run_recipe: Path, now: str) -> str:
    """The recipe.yaml `# backend:` value for a run now trained on `now`: `now`, followed by the
    other backends its earlier epochs ran on ("tensorflow 2.21.0 (earlier epochs: jax 0.10.2)")."""
    before = recorded_backend(run_recipe) if run_recipe.is_file() else None
    if not before:
        return now
    latest, _, rest = before.partition(" (earlier epochs: ")
    earlier = [b for b in [latest, *rest.rstrip(")").split(", ")] if b and b != now]
    return f"{now} (earlier epochs: {', '.join(dict.fromkeys(earlier))})" if earlier else now


def _flatten(tree: dict, prefix="") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def absolute_data_paths(recipe):
    """`recipe` with its local `data.path` and `data.data_dir` absolute, as a run records them in
    its recipe.yaml: a run's data is the data it read, wherever export, evaluate or --resume run
    from later. Remote paths (gs://...) stay as they are."""
    absolute = {key: os.path.abspath(os.path.expanduser(value)) for key in ("path", "data_dir")
                if isinstance(value := getattr(recipe.data, key, None), str) and value and "://" not in value}
    if not absolute:
        return recipe
    return dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, **absolute))


def check_resume(out: Path, recipe, class_names: list[str]) -> list[str]:
    """Compare a resumed run's new recipe and classes with the saved ones before anything is
    written: keys that fix the model or data shapes must not change (ZooError naming them);
    returns the other changed keys as "key: old -> new" lines."""
    from zoo.recipe import load_recipe

    saved_path = out / "recipe.yaml"
    if not saved_path.is_file():
        return []
    # Both with absolute paths: a relative data.path given again from the same folder is no change.
    old = _flatten(absolute_data_paths(load_recipe(saved_path)).to_dict())
    new = _flatten(absolute_data_paths(recipe).to_dict())
    changed = [k for k in sorted(old.keys() | new.keys()) if k != "name" and old.get(k) != new.get(k)]
    fixed = [k for k in changed if any(k == f or k.startswith(f + ".") for f in FIXED_ON_RESUME)]
    if fixed:
        details = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in fixed)
        raise ZooError(f"--resume: {details}: these keys fix the model or its data shapes and cannot "
                       f"change in a resumed run (start a new run with another --output)")
    carved = not isinstance(new.get("data.val_split"), str)  # drawn from train_split by runtime.seed
    held = [k for k in changed if k == "data.val_split" or (carved and k in ("runtime.seed", "data.train_split"))]
    if held:
        details = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in held)
        raise ZooError(f"--resume: {details}: this changes the validation split, on which best.keras and early "
                       f"stopping compare every epoch, so it cannot change in a resumed run (start a new run "
                       f"with another --output)")
    meta = out / "dataset.json"
    if meta.is_file():
        saved_classes = json.loads(meta.read_text()).get("class_names")
        if saved_classes is not None and list(saved_classes) != list(class_names):
            raise ZooError(f"--resume: the training data's classes changed since the run started "
                           f"({len(saved_classes)} -> {len(class_names)} classes: "
                           f"[{preview(saved_classes)}] -> [{preview(class_names)}])")
    _say_backend_switch(saved_path)
    _say_precision_change(saved_path)
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed]


def _say_backend_switch(saved_path: Path):
    """One line when a run goes on under another Keras backend than the one that trained it (its
    checkpoints are Keras weight files, which every backend reads)."""
    from zoo.runtime import backend_description

    before, now = recorded_backend(saved_path), backend_description()
    if before and before.split()[0] != now.split()[0]:
        print(f"resuming on another backend: the run was trained on {before}, this process runs {now} "
              f"(the checkpoints are backend-neutral Keras weights)", flush=True)


def _say_precision_change(saved_path: Path):
    """One line when the precision policy set for this process (`auto` resolves per backend and
    device) is not the one the run's recipe.yaml records."""
    import keras

    before, now = (header_value(saved_path, RESOLVED) or "").split(",")[0], keras.config.dtype_policy().name
    if before and before != now:
        print(f"resuming in {now}: the earlier epochs trained in {before} (runtime.mixed_precision auto resolves "
              f"per backend and device; set it to keep one)", flush=True)
