"""A folder too big to cache trains: a streamed split (data.cache=auto above the cache budget,
lowered here through ZOO_CACHE_BUDGET_BYTES) keeps the size its listing knows, so `zoo train`
needs no train.steps_per_epoch and each epoch is every file once, for every folder-like source."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TINY_DETECTOR = ["model.backbone=simple_cnn", "model.min_level=2", "model.max_level=3",
                 "model.anchor_size=2.0", "model.fpn_channels=32", "data.image_size=[32, 32]",
                 "data.name=null"]
# Records, in the `zoo train` process, whether each training dataset was cached and what `fit`
# gets: its steps_per_epoch, and per epoch (one pass over the dataset, as Keras makes it) the
# batches and the classification labels it holds.
DRIVER = """
import json, os, sys
import keras
from zoo.tasks.base import Task
seen = {"cache": [], "epochs": []}
make_dataset = Task.make_dataset
def recording_make_dataset(self, split, recipe, training, cache):
    if training:
        seen["cache"].append(bool(cache))
    return make_dataset(self, split, recipe, training, cache)
fit = keras.Model.fit
def recording_fit(self, x, *args, **kwargs):
    for _ in range(kwargs["epochs"] - kwargs.get("initial_epoch", 0)):
        batches = [y for _, y in x.as_numpy_iterator()]
        labels = [int(v) for y in batches if y.ndim == 1 for v in y]
        seen["epochs"].append({"batches": len(batches), "labels": labels})
    seen["steps_per_epoch"] = kwargs["steps_per_epoch"]
    with open(os.environ["SEEN"], "w") as f:
        json.dump(seen, f)
    return fit(self, x, *args, **kwargs)
Task.make_dataset = recording_make_dataset
keras.Model.fit = recording_fit
from zoo.cli import main
sys.exit(main(sys.argv[1:]))
"""


def zoo_streamed(tmp_path, *args, driver=True):
    """`zoo ARGS...` in a fresh process with a 1 KiB cache budget: (exit status, output, seen)."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    seen = tmp_path / "seen.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3",
           "ZOO_CACHE_BUDGET_BYTES": "1024", "SEEN": str(seen)}
    command = [str(script)] if driver else ["-m", "zoo.cli"]
    proc = subprocess.run([sys.executable, *command, *map(str, args)], env=env, text=True,
                          capture_output=True, timeout=300)
    output = proc.stdout + proc.stderr
    return proc.returncode, output, json.loads(seen.read_text()) if seen.exists() else None


def train_streamed(tmp_path, recipe, *overrides, epochs=1):
    code, output, seen = zoo_streamed(tmp_path, "train", recipe, "train.verbose=0", f"train.epochs={epochs}",
                                      *overrides, "--output", tmp_path / "run")
    assert code == 0, output
    assert "steps_per_epoch" not in output
    assert seen["cache"] == [False], "the split was streamed, not cached"
    return seen


def png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def write_one_file_per_class(root, classes=16):
    """Class folders of one 8x8 image each: a label names its file."""
    for split in ("train", "test"):
        for c in range(classes):
            png(root / split / f"class{c:02d}" / "0.png", np.full((8, 8), c * 15))
    return root


def test_class_folders_stream_every_file_once_per_epoch(tmp_path):
    root = write_one_file_per_class(tmp_path / "data")
    seen = train_streamed(tmp_path, "digits_cnn", "data.source=folder", f"data.path={root}",
                          "data.batch_size=4", "data.val_split=test", epochs=2)  # no file held out
    assert seen["steps_per_epoch"] == 16 // 4
    one, two = (epoch["labels"] for epoch in seen["epochs"])
    assert sorted(one) == sorted(two) == list(range(16))  # every file once per epoch
    assert one != two  # in a new order


def test_tfrecord_streams_every_example_once_per_epoch(tmp_path):
    """A guard: the TFRecord stream already knew its size before the fix (from `<split>.json`)."""
    root = write_one_file_per_class(tmp_path / "data")
    code, output, _ = zoo_streamed(tmp_path, "convert", "digits_cnn", "data.source=folder",
                                   f"data.path={root}", "--shards", "2", "--output", tmp_path / "tfr",
                                   driver=False)
    assert code == 0, output
    seen = train_streamed(tmp_path, "digits_cnn", "data.source=tfrecord", f"data.path={tmp_path / 'tfr'}",
                          "data.batch_size=4", "data.shuffle_buffer=4", "data.val_split=test", epochs=2)
    assert seen["steps_per_epoch"] == 16 // 4
    assert all(sorted(epoch["labels"]) == list(range(16)) for epoch in seen["epochs"])


def test_mask_folder_streams_floor_n_over_batch_steps(tmp_path):
    root = tmp_path / "seg"
    for split, count in (("train", 18), ("val", 4)):
        for i in range(count):
            mask = np.zeros((16, 16), np.uint8)
            mask[4:12, 4:12] = 1 + i % 2
            png(root / split / "images" / f"{i:02d}.png", np.repeat(mask[..., None] * 100, 3, -1))
            png(root / split / "masks" / f"{i:02d}.png", mask)
    seen = train_streamed(tmp_path, "shapes_unet", "data.source=folder", f"data.path={root}",
                          "data.eval_split=val", "data.image_size=[16, 16]", "data.batch_size=4")
    assert seen["steps_per_epoch"] == seen["epochs"][0]["batches"] == 18 // 4


def test_coco_folder_streams_floor_n_over_batch_steps(tmp_path):
    root = tmp_path / "coco"
    for split, count in (("train", 10), ("val", 4)):
        images, annotations = [], []
        for i in range(count):
            image = np.zeros((32, 32, 3), np.uint8)
            image[8:24, 8:24] = 200
            png(root / split / f"{i}.png", image)
            images.append({"id": i, "file_name": f"{i}.png", "height": 32, "width": 32})
            annotations.append({"id": i, "image_id": i, "category_id": 1 + i % 2, "bbox": [8, 8, 16, 16]})
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps({
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    seen = train_streamed(tmp_path, "shapes_retinanet", *TINY_DETECTOR, "data.source=coco", f"data.path={root}",
                          "data.eval_split=val", "data.batch_size=4", "runtime.mixed_precision=float32")
    assert seen["steps_per_epoch"] == seen["epochs"][0]["batches"] == 10 // 4


def test_clip_folders_stream_every_clip_once(tmp_path):
    root = tmp_path / "clips"
    for split in ("train", "test"):
        for c in range(12):
            for t in range(2):
                png(root / split / f"class{c:02d}" / "clip" / f"{t}.png", np.full((8, 8, 3), c * 20 + t))
    seen = train_streamed(tmp_path, "moving_shapes_cnn_lstm", "data.source=folder", f"data.path={root}",
                          "data.image_size=[8, 8]", "data.num_frames=2", "data.batch_size=5", "data.val_split=test")
    assert seen["steps_per_epoch"] == 12 // 5
    labels = seen["epochs"][0]["labels"]
    assert len(labels) == len(set(labels)) == 10  # 2 batches of 5 distinct clips; the last 2 dropped


def test_a_bad_cache_budget_is_one_line(tmp_path):
    root = write_one_file_per_class(tmp_path / "data", classes=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "ZOO_CACHE_BUDGET_BYTES": "1GB"}
    proc = subprocess.run([sys.executable, "-m", "zoo.cli", "train", "digits_cnn", "data.source=folder",
                           f"data.path={root}", "data.val_split=test", "--output", tmp_path / "run"],
                          env=env, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "zoo: error: ZOO_CACHE_BUDGET_BYTES: expected a whole number of bytes, got '1GB'")
