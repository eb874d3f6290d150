"""Input speed: the zoo's folder and TFRecord inputs against `keras.utils.image_dataset_from_directory`.

One process reads the same class-sorted ImageFolder of 28x28 grey PNGs (built once from the
embedded digits as in benchmarks/sorted_folder.py, about 60,000 training images by default) three
ways, each producing shuffled batches of 128 float32 RGB images with their labels, without
caching and without training:

* keras: `keras.utils.image_dataset_from_directory(..., color_mode="rgb", image_size=(28, 28))`;
* zoo folder: the training dataset `zoo.train` builds for `data.source: folder`, `data.cache: false`;
* zoo tfrecord: the same for `data.source: tfrecord`, on the shards `zoo convert` wrote from the
  folder (converted once; the conversion time is printed).

Each repeat times one full pass (an epoch: every batch pulled) of each input, in a rotating order
so drifting machine load hits all three alike; medians and the spread are printed, in images per
second and in images per CPU-second of this process (what the input costs, less swayed by other
load). Warm (default): the files sit in the OS page cache after the first pass, as they do after
a training run's first epoch on a folder that fits in RAM. `--cold` empties the page cache before
every pass (`/proc/sys/vm/drop_caches`, root only), as for a dataset larger than RAM.

`--photos N` measures the same on N 224x224 RGB JPEGs (quality 90) made from those digits
instead, where decoding, not file access, is the cost.

    python benchmarks/input_speed.py [--data /tmp/zoo_input_speed] [--copies 42] [--repeats 7]
                                     [--photos 3000] [--cold]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from sorted_folder import build_folder  # noqa: E402

import zoo  # noqa: E402
from zoo.convert import convert  # noqa: E402
from zoo.data import load_split  # noqa: E402
from zoo.tasks import get_task  # noqa: E402

BATCH, PHOTO = 128, 224


def recipe(source: str, path: Path, size: int):
    return zoo.load_recipe({
        "name": "input_speed", "task": "classification", "model": {"name": "simple_cnn"},
        "data": {"source": source, "path": str(path), "image_size": [size, size], "batch_size": BATCH,
                 "cache": False},
    })


def zoo_input(source: str, path: Path, size: int):
    r = recipe(source, path, size)
    task = get_task("classification")
    return task.make_dataset(load_split(r, task, "train"), r, training=True, cache=False)


def keras_input(path: Path, size: int):
    return keras.utils.image_dataset_from_directory(
        path / "train", color_mode="rgb", image_size=(size, size), batch_size=BATCH, shuffle=True, seed=0,
        verbose=False)


def build_photos(digits: Path, root: Path, count: int) -> int:
    """`root/{train,test}/<digit>/*.jpg`: the first `count` training digits (every class) as
    224x224 RGB JPEGs, a test split of 10 (built once; reused while the count matches)."""
    marker = root / "count.txt"
    if marker.is_file() and marker.read_text() == str(count):
        return count
    for split, n in (("train", count), ("test", 10)):
        files = sorted((digits / split).glob("*/*.png"))
        for path in files[:: max(1, len(files) // n)][:n]:
            target = root / split / path.parent.name / (path.stem + ".jpg")
            target.parent.mkdir(parents=True, exist_ok=True)
            grey = Image.open(path).resize((PHOTO, PHOTO), Image.BILINEAR)
            Image.merge("RGB", (grey, grey.point(lambda v: 255 - v), grey)).save(target, quality=90)
    marker.write_text(str(count))
    return count


def drop_page_cache():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def one_pass(dataset, cold: bool) -> tuple[int, float, float]:
    """(images, wall seconds, CPU seconds of this process) of pulling every batch of one epoch."""
    if cold:
        drop_page_cache()
    start, cpu, images = time.perf_counter(), time.process_time(), 0
    for inputs, labels in dataset:
        assert inputs.dtype.name == "float32" and inputs.shape[-1] == 3, (inputs.dtype, inputs.shape)
        images += int(labels.shape[0])
    return images, time.perf_counter() - start, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/tmp/zoo_input_speed"))
    parser.add_argument("--copies", type=int, default=42, help="jittered PNGs per training digit")
    parser.add_argument("--repeats", type=int, default=7, help="passes of each input")
    parser.add_argument("--photos", type=int, default=0, help="read this many 224x224 JPEGs instead")
    parser.add_argument("--cold", action="store_true", help="empty the OS page cache before every pass (root)")
    args = parser.parse_args()
    if args.cold and not os.access("/proc/sys/vm/drop_caches", os.W_OK):
        parser.error("--cold empties the page cache through /proc/sys/vm/drop_caches: run as root (Linux)")

    counts = build_folder(args.data, args.copies, 1)
    folder, size, images = args.data, 28, sum(counts["train"].values())
    if args.photos:
        folder, size = args.data.with_name(args.data.name + "_photos"), PHOTO
        images = build_photos(args.data, folder, args.photos)
    shards = folder / "tfrecord"
    if not (shards / "train.json").is_file():
        start = time.perf_counter()
        convert(recipe("folder", folder, size), shards)
        print(f"zoo convert: {time.perf_counter() - start:.0f} s", flush=True)
    megabytes = {name: sum(f.stat().st_size for f in path.glob(pattern)) / 2**20
                 for name, path, pattern in (("folder", folder / "train", "*/*"), ("shards", shards, "train-*"))}
    print(f"folder {megabytes['folder']:.1f} MiB, TFRecord shards {megabytes['shards']:.1f} MiB", flush=True)

    inputs, built = {}, {}
    for name, make in (("keras image_dataset_from_directory", lambda: keras_input(folder, size)),
                       ("zoo folder", lambda: zoo_input("folder", folder, size)),
                       ("zoo tfrecord", lambda: zoo_input("tfrecord", shards, size))):
        start = time.perf_counter()
        inputs[name] = make()
        built[name] = time.perf_counter() - start
    rates, per_cpu = {name: [] for name in inputs}, {name: [] for name in inputs}
    names = list(inputs)
    for repeat in range(args.repeats):
        for name in names[repeat % 3:] + names[:repeat % 3]:
            images, seconds, cpu = one_pass(inputs[name], args.cold)
            rates[name].append(images / seconds)
            per_cpu[name].append(images / cpu)
        print(f"pass {repeat + 1}: " + ", ".join(f"{n} {r[-1]:,.0f}" for n, r in rates.items()), flush=True)

    keras_median, keras_cpu = float(np.median(rates[names[0]])), float(np.median(per_cpu[names[0]]))
    kind = f"{PHOTO}x{PHOTO} JPEGs" if args.photos else "28x28 PNGs"
    print(f"\n{images:,} {kind}, batches of {BATCH}, float32 RGB, {args.repeats} uncached passes each, "
          f"{'page cache emptied before each' if args.cold else 'files in the page cache'} (images/s)")
    print("images per CPU-second of this process: what the input costs, less swayed by other load")
    print(f"{'input':<36}{'built (s)':>10}{'median':>9}{'min':>9}{'max':>9}{'/ keras':>9}"
          f"{'per CPU-s':>11}{'/ keras':>9}")
    for name, values in rates.items():
        cpu = float(np.median(per_cpu[name]))
        print(f"{name:<36}{built[name]:>10.1f}{np.median(values):>9,.0f}{min(values):>9,.0f}"
              f"{max(values):>9,.0f}{np.median(values) / keras_median:>9.2f}{cpu:>11,.0f}{cpu / keras_cpu:>9.2f}")


if __name__ == "__main__":
    main()
