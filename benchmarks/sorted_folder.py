"""Class-sorted ImageFolder: zoo.train against plain Keras on the same folders.

A folder source lists its files class by class. If the pipeline only shuffles them through a
buffer smaller than the training set, each batch holds one or two classes and accuracy drops.
This measures that offline on a class-sorted ImageFolder built once from the embedded 8x8 UCI
digits (zoo's seeded 80/20 `digits` split, so train and test never share a digit): each digit
is upscaled to 28x28 grey PNGs many times with a random scale (±15%), rotation (±12°),
shift (±2 px) and pixel noise. `--copies 30` gives about 43,000 training images, over four
times the default `data.shuffle_buffer` of 10,000.

Trained side by side in one process, seeds fixed, same epochs, no per-epoch validation, then
scored on the `test` folder:

* plain Keras: the Keras "Simple MNIST convnet" example (keras.io/examples/vision/mnist_convnet:
  Conv 32 3x3, MaxPool 2, Conv 64 3x3, MaxPool 2, Flatten, Dropout 0.5, Dense softmax; Adam
  1e-3, batch 128, grey input scaled to [0, 1]) fed by `keras.utils.image_dataset_from_directory`
  (which shuffles the whole file list);
* the zoo: the `mnist_cnn` recipe (its `simple_cnn`, Adam 1e-3, batch 128) on `data.source=folder`
  with a constant learning rate (the split fits the memory cache); `--full-shuffle` adds a run
  with `data.shuffle_buffer` = the number of training images, as a reference; `--streaming` a
  run with `data.cache=false`, decoding from disk every epoch as a folder too large to cache does.

`simple_cnn` is the example's layer sequence but not its exact model: it takes RGB input and its
convolutions pad "same" (28 -> 14 -> 7 rather than 28 -> 26 -> 13 -> 11 -> 5), so it has more
parameters (50,762 against 34,826; both counts are printed).

    python benchmarks/sorted_folder.py [--data /tmp/zoo_sorted_digits] [--epochs 3] [--copies 30]
                                       [--test-copies 10] [--full-shuffle] [--streaming]

To measure another checkout of the zoo, put it first on PYTHONPATH.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402
from PIL import Image  # noqa: E402

import zoo  # noqa: E402
from zoo.tasks.classification.sources import load_digits  # noqa: E402

SIZE = 28
BATCH = 128


def jittered(digit: np.ndarray, rng) -> Image.Image:
    """An 8x8 uint8 digit drawn about 20 px tall on a 28x28 canvas, randomly moved and noised."""
    side = int(round(20 * rng.uniform(0.85, 1.15)))
    glyph = (Image.fromarray(digit).resize((side, side), Image.BILINEAR)
             .rotate(rng.uniform(-12, 12), resample=Image.BILINEAR))
    canvas = Image.new("L", (SIZE, SIZE))
    dx, dy = rng.integers(-2, 3, size=2)
    canvas.paste(glyph, ((SIZE - side) // 2 + int(dx), (SIZE - side) // 2 + int(dy)))
    pixels = np.asarray(canvas, np.float32) + rng.normal(0, 10, (SIZE, SIZE))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def build_folder(root: Path, copies: int, test_copies: int) -> dict:
    """`root/{train,test}/<digit>/*.png` (built once; reused while the settings match)."""
    settings = {"copies": copies, "test_copies": test_copies}
    meta = root / "meta.json"
    if meta.is_file() and json.loads(meta.read_text())["settings"] == settings:
        return json.loads(meta.read_text())["counts"]
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    counts = {}
    for split, n in (("train", copies), ("test", test_copies)):
        shutil.rmtree(root / split, ignore_errors=True)
        for d in range(10):
            (root / split / str(d)).mkdir(parents=True)
        examples = list(load_digits(None, None, split).dataset.as_numpy_iterator())
        for k in range(n):
            for i, ex in enumerate(examples):
                path = root / split / str(ex["label"]) / f"{k:02d}_{i:04d}.png"
                jittered(ex["image"][..., 0], rng).save(path)
        per_class = Counter(int(ex["label"]) for ex in examples)
        counts[split] = {str(d): per_class[d] * n for d in range(10)}
    meta.write_text(json.dumps({"settings": settings, "counts": counts}))
    print(f"built {root} in {time.perf_counter() - start:.0f}s", flush=True)
    return counts


def keras_example_model(num_classes: int) -> keras.Model:
    return keras.Sequential([
        keras.Input((SIZE, SIZE, 1)),
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])


def run_keras(root: Path, epochs: int) -> dict:
    start = time.perf_counter()
    keras.utils.set_random_seed(0)

    def folder(split, shuffle):
        ds = keras.utils.image_dataset_from_directory(
            root / split, color_mode="grayscale", image_size=(SIZE, SIZE), batch_size=BATCH,
            shuffle=shuffle, seed=0)
        return ds.map(lambda x, y: (x / 255.0, y))

    model = keras_example_model(10)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(folder("train", True), epochs=epochs, verbose=2)
    _, accuracy = model.evaluate(folder("test", False), verbose=0)
    return {"accuracy": float(accuracy), "seconds": time.perf_counter() - start,
            "params": model.count_params()}


def run_zoo(root: Path, epochs: int, extra=()) -> dict:
    start = time.perf_counter()
    recipe = zoo.load_recipe("mnist_cnn", [
        "data.source=folder", "data.name=null", f"data.path={root}", f"train.epochs={epochs}",
        "train.schedule.name=constant", "train.schedule.warmup_epochs=0", "train.validate=false",
        "train.verbose=2", "runtime.mixed_precision=float32", *extra])
    with tempfile.TemporaryDirectory() as out:
        run = zoo.train(recipe, output_dir=out)
    return {"accuracy": run.metrics["accuracy"], "seconds": time.perf_counter() - start,
            "params": run.model.count_params()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/zoo_sorted_digits"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--copies", type=int, default=30, help="jittered PNGs per training digit")
    parser.add_argument("--test-copies", type=int, default=10, help="jittered PNGs per test digit")
    parser.add_argument("--full-shuffle", action="store_true",
                        help="also run the zoo with data.shuffle_buffer = number of training images")
    parser.add_argument("--streaming", action="store_true",
                        help="also run the zoo with data.cache=false (decoding from disk every epoch, "
                             "as for folders too large to cache)")
    args = parser.parse_args()

    counts = build_folder(args.data, args.copies, args.test_copies)
    n_train, n_test = sum(counts["train"].values()), sum(counts["test"].values())
    print(f"zoo from {Path(zoo.__file__).parent}")
    print(f"train images per class: {counts['train']} ({n_train})")
    print(f"test images per class:  {counts['test']} ({n_test})", flush=True)

    results = {"keras": run_keras(args.data, args.epochs), "zoo": run_zoo(args.data, args.epochs)}
    if args.full_shuffle:
        results["zoo_full_shuffle"] = run_zoo(args.data, args.epochs, [f"data.shuffle_buffer={n_train}"])
    if args.streaming:
        results["zoo_streaming"] = run_zoo(args.data, args.epochs, ["data.cache=false"])

    print(f"\n{args.epochs} epochs, {n_train} train / {n_test} test images, class-sorted folders")
    print(f"{'run':<18}{'test accuracy':>14}{'seconds':>9}{'params':>9}")
    for name, r in results.items():
        print(f"{name:<18}{r['accuracy']:>14.4f}{r['seconds']:>9.0f}{r['params']:>9,}")
    difference = results["zoo"]["accuracy"] - results["keras"]["accuracy"]
    print(f"zoo - keras test accuracy: {difference:+.4f}")
    print(json.dumps({"epochs": args.epochs, "train_images": n_train, "test_images": n_test,
                      "zoo_minus_keras": round(difference, 4),
                      **{k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()}}))


if __name__ == "__main__":
    main()
