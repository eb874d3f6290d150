"""Train a shipped recipe and turn the result into a pretrained weight of the zoo.

    python benchmarks/make_pretrained.py RECIPE --tag TAG [--output DIR] [--dataset TEXT] [--float16]
    python benchmarks/make_pretrained.py RECIPE --tag TAG --evaluate-only

1. trains the recipe as shipped (zoo.train; the recipe's runtime.seed fixes the run) into
   --output (default runs/pretrained/<recipe>-<tag>/);
2. saves the trained weights to zoo/assets/weights/<model>.<tag>.weights.h5 (temporary file,
   then rename) in the Keras 3 weights format, without the optimizer's state;
3. re-evaluates that file the way users and tests/test_weights.py do
   (`zoo.evaluate(recipe, weights=<file>)`);
4. prints the row for ZOO_WEIGHTS in zoo/weights_table.py: file, sha256, dataset, input size,
   num_classes, metrics, recipe. Paste it there; `python docs/generate_models.py` then lists
   it in docs/models.md and the test suite re-measures it on every run.

--evaluate-only skips training and re-measures the file already in zoo/assets/weights/.
Train with the recipe as shipped: the test re-measures with the shipped recipe, so any
override that changes evaluation (data.image_size, ...) would not reproduce.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pprint
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo.data import load_split  # noqa: E402
from zoo.pipeline import _with_num_classes  # noqa: E402
from zoo.tasks import get_task  # noqa: E402
from zoo.weight_files import ASSETS_DIR, file_sha256  # noqa: E402


def model_args(recipe) -> tuple[dict, list]:
    """(the num_classes and input_shape the pipeline builds the recipe's model with, class names)."""
    task = get_task(recipe.task)
    info = _with_num_classes(recipe, load_split(recipe, task, recipe.data.train_split).info)
    return task.model_args(recipe, info), list(info.class_names)


def describe_dataset(recipe, num_examples) -> str:
    data = recipe.data
    where = data.name or data.path or ""
    return f"{data.source}{':' + str(where) if where else ''}, {data.eval_split} split, {num_examples} examples"


def save_weights_atomic(recipe, model, path: Path, float16=False):
    """The model's weights only: copied into a fresh, uncompiled build first, because a
    compiled model's save_weights also writes the optimizer's state (3x the size for Adam)."""
    clean = zoo.create_model(recipe.model.name, **model_args(recipe)[0], **recipe.model.params)
    clean.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("tmp-" + path.name)  # still ends in .weights.h5, as Keras requires
    clean.save_weights(tmp)
    if float16:
        rewrite_as_float16(tmp)
    os.replace(tmp, path)


def rewrite_as_float16(path: Path):
    """Rewrites a weights file with its float32 arrays stored as float16 (half the size).
    Keras casts them back to the variables' float32 on load; the metrics in the table are
    re-measured from the stored file, so they include the rounding."""
    def copy(src, dst):
        dst.attrs.update(src.attrs)
        for key, item in src.items():
            if isinstance(item, h5py.Group):
                copy(item, dst.create_group(key))
            else:
                data = item[()]
                dst.create_dataset(key, data=data.astype(np.float16) if data.dtype == np.float32 else data)

    scratch = path.with_name("f16-" + path.name)
    with h5py.File(path, "r") as src, h5py.File(scratch, "w") as dst:
        copy(src, dst)
    os.replace(scratch, path)


def stored_as_float16(path: Path) -> bool:
    dtypes = set()
    with h5py.File(path, "r") as f:
        f.visititems(lambda _, item: dtypes.add(item.dtype) if isinstance(item, h5py.Dataset) else None)
    return np.float16 in dtypes and np.float32 not in dtypes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipe", help="a shipped recipe's name (or a path)")
    parser.add_argument("--tag", required=True, help="the weight's tag, e.g. the dataset: digits, shapes")
    parser.add_argument("--output", help="run directory (default runs/pretrained/<recipe>-<tag>)")
    parser.add_argument("--dataset", help="dataset description for the table (default: from the recipe)")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="absolute tolerance of the re-measured metrics (default 0.01)")
    parser.add_argument("--float16", action="store_true",
                        help="store the weights as float16 (half the file size; the metric is "
                             "re-measured from the stored file)")
    parser.add_argument("--evaluate-only", action="store_true", help="re-measure the existing file")
    args = parser.parse_args(argv)

    recipe = zoo.load_recipe(args.recipe)
    recipe_name = Path(args.recipe).stem
    path = ASSETS_DIR / f"{recipe.model.name}.{args.tag}.weights.h5"
    if not args.evaluate_only:
        output = Path(args.output or Path("runs") / "pretrained" / f"{recipe_name}-{args.tag}")
        run = zoo.train(recipe, output_dir=output)
        save_weights_atomic(recipe, run.model, path, float16=args.float16)
        print(f"trained: {run.metrics}; weights: {path} ({path.stat().st_size:,} bytes)")
        keras.backend.clear_session()
    elif not path.is_file():
        parser.error(f"--evaluate-only: no file {path}")

    metrics = zoo.evaluate(recipe, weights=path)
    built, class_names = model_args(recipe)
    float16_note = (f" --float16 (stored as float16; {path.stat().st_size / 1e6:.0f} MB)"
                    if stored_as_float16(path) else "")
    row = {
        "model": recipe.model.name,
        "tag": args.tag,
        "file": path.name,
        "sha256": file_sha256(path),
        "dataset": args.dataset or describe_dataset(recipe, metrics.get("num_examples")),
        "input_size": tuple(int(s) for s in built["input_shape"]),
        "num_classes": int(built["num_classes"]),
        "class_names": tuple(str(name) for name in class_names),
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {k: round(float(v), 4) for k, v in metrics.items() if k != "num_examples"},
        "tolerance": args.tolerance,
        "recipe": recipe_name,
        "model_kwargs": dict(recipe.model.params),
        "measured": (f"benchmarks/make_pretrained.py{float16_note}, seed {recipe.runtime.seed}, "
                     f"{'GPU' if tf.config.list_physical_devices('GPU') else 'CPU'}, "
                     f"Keras {keras.__version__} / TF {tf.__version__}, {datetime.date.today()}"),
    }
    print(f"re-measured from {path}: {metrics}")
    print("\n# paste into ZOO_WEIGHTS in zoo/weights_table.py:")
    print(pprint.pformat(row, sort_dicts=False, width=100) + ",")
    return 0


if __name__ == "__main__":
    sys.exit(main())
