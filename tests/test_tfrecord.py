"""`zoo convert` and the `tfrecord` source: every task's examples come back identical (pixels,
labels, boxes, masks, frames, dtypes, classes, category ids) from every kind of source; training
reads the shards; each worker reads its own shards; a killed conversion leaves nothing that looks
finished; user errors are one line with status 2."""
import dataclasses
import hashlib
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from zoo.data import load_split
from zoo.data.tfrecord import parsed_records, parser, shard_name
from zoo.errors import DataError
from zoo.tasks import get_task

from conftest import run_cli

SYNTHETIC = ["data.train_size=12", "data.eval_size=5", "data.image_size=[32,32]"]


def content_key(example) -> str:
    return hashlib.sha1(b"".join(np.ascontiguousarray(example[k]).tobytes() for k in sorted(example))).hexdigest()


def examples(dataset) -> list[dict]:
    """A dataset's examples as NumPy, in content order (shards are read interleaved, and a
    file-listing source is written in a shuffled order)."""
    return sorted(dataset.as_numpy_iterator(), key=content_key)


def keys(dataset) -> list[str]:
    return sorted(map(content_key, dataset.as_numpy_iterator()))


def open_splits(recipe) -> dict:
    """The recipe's splits as training opens them: the eval split's classes are the training split's."""
    task = get_task(recipe.task)
    train = load_split(recipe, task, recipe.data.train_split)
    return {"train": train, "eval": load_split(recipe, task, recipe.data.eval_split, truth=train.info)}


def assert_round_trip(recipe_name, overrides, output):
    """Both splits, through the recipe's own source and through the tfrecord source: the same
    examples (keys, dtypes, shapes, values), classes, extras and counts."""
    source = open_splits(zoo.load_recipe(recipe_name, overrides))
    stored = open_splits(zoo.load_recipe(recipe_name, [*overrides, "data.source=tfrecord", f"data.path={output}"]))
    for name in ("train", "eval"):
        expected, got = examples(source[name].dataset), examples(stored[name].dataset)
        assert len(got) == len(expected) and source[name].info.num_examples in (len(expected), None)
        assert stored[name].info == dataclasses.replace(source[name].info, num_examples=len(expected))
        for want, have in zip(expected, got):
            assert have.keys() == want.keys()
            for key in want:
                assert (have[key].dtype, have[key].shape) == (want[key].dtype, want[key].shape), key
                np.testing.assert_array_equal(have[key], want[key])


def convert(capsys, recipe, output, *args):
    code, out, err = run_cli(capsys, "convert", recipe, "--output", output, *args)
    assert code == 0, err
    return out


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ---------------------------------------------------------------- round trips: every task, every kind of source


@pytest.mark.parametrize("recipe", ["shapes_resnet20", "shapes_retinanet", "shapes_unet", "moving_shapes_cnn_lstm"])
def test_synthetic_round_trip_every_task(tmp_path, capsys, recipe):
    out = convert(capsys, recipe, tmp_path / "tfr", *SYNTHETIC, "--shards", "3")
    assert "12/12" in out  # the progress bar
    assert out.splitlines()[-1].endswith(f"data.source=tfrecord data.path={tmp_path / 'tfr'}")
    assert sorted(os.listdir(tmp_path / "tfr")) == sorted(
        [shard_name(s, k, 3) for s in ("train", "test", "val") for k in range(3)]  # val: the recipe's data.val_split
        + ["train.json", "test.json", "val.json", ".lock"])
    assert_round_trip(recipe, SYNTHETIC, tmp_path / "tfr")


def test_classification_folder_round_trip(tmp_path, capsys):
    """Grey, RGBA and JPEG files of several sizes; an eval split lacking a training class."""
    rng = np.random.default_rng(0)
    for split, classes in (("train", ["ant", "bee", "cat"]), ("test", ["ant", "cat"])):
        for c, name in enumerate(classes):
            folder = tmp_path / "images" / split / name
            for i in range(3):
                write_png(folder / f"{i}.png", rng.integers(0, 255, (9 + i, 12 + c, 3), dtype=np.uint8))
            write_png(folder / "grey.png", rng.integers(0, 255, (10, 7), dtype=np.uint8))
            write_png(folder / "alpha.png", rng.integers(0, 255, (6, 8, 4), dtype=np.uint8))
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    overrides = ["data.source=folder", f"data.path={tmp_path / 'images'}"]
    convert(capsys, "digits_cnn", tmp_path / "tfr", *overrides, "--shards", "2")
    meta = json.loads((tmp_path / "tfr" / "test.json").read_text())
    assert meta["class_names"] == ["ant", "bee", "cat"]
    assert meta["features"]["image"] == {"encoding": "image", "dtype": "uint8", "shape": [None, None, 3]}
    stored = {bytes(tf.train.Example.FromString(record).features.feature["image"].bytes_list.value[0])
              for record in tf.data.TFRecordDataset(sorted(map(str, (tmp_path / "tfr").glob("test-*")))).as_numpy_iterator()}
    assert stored == {path.read_bytes() for path in (tmp_path / "images" / "test").glob("*/*")}  # the files as they are
    assert_round_trip("digits_cnn", overrides, tmp_path / "tfr")


def test_coco_round_trip_keeps_category_ids_crowd_and_area(tmp_path, capsys):
    root = tmp_path / "coco"
    categories = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    for split, count in (("train", 4), ("val", 3)):
        images, annotations = [], []
        for i in range(count):
            write_png(root / split / f"{i}.png", np.full((20 + i, 30, 3), 40 * i, np.uint8))
            images.append({"id": i, "file_name": f"{i}.png", "width": 30, "height": 20 + i})
            for j in range(i % 3):  # 0, 1 or 2 objects
                annotations.append({"id": len(annotations), "image_id": i, "category_id": [3, 7][j],
                                    "bbox": [2.5 + j, 3, 10, 8.25], "iscrowd": j, "area": 50.5 + j})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": categories}))
    overrides = ["data.source=coco", f"data.path={root}", "data.eval_split=val"]
    convert(capsys, "shapes_retinanet", tmp_path / "tfr", *overrides)
    meta = json.loads((tmp_path / "tfr" / "val.json").read_text())
    assert meta["extras"] == {"category_ids": [3, 7]} and meta["shards"] == 1
    assert set(meta["features"]) == {"image", "boxes", "labels", "crowd", "area"}
    assert_round_trip("shapes_retinanet", overrides, tmp_path / "tfr")


def test_segmentation_and_video_folder_round_trip(tmp_path, capsys):
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for i in range(3):
            write_png(tmp_path / "seg" / split / "images" / f"{i}.png", rng.integers(0, 255, (12, 9 + i, 3), np.uint8))
            write_png(tmp_path / "seg" / split / "masks" / f"{i}.png",
                      rng.choice(np.array([0, 1, 2, 255], np.uint8), (12, 9 + i)))
        for name in ("left", "right"):
            for i in range(2):
                for t in range(3 + i):
                    write_png(tmp_path / "clips" / split / name / f"clip{i}" / f"{t}.png",
                              rng.integers(0, 255, (10, 14, 3), np.uint8))
    (tmp_path / "seg" / "classes.txt").write_text("sky\nroad\ncar\n")
    for recipe, folder in (("shapes_unet", "seg"), ("moving_shapes_cnn_lstm", "clips")):
        overrides = ["data.source=folder", f"data.path={tmp_path / folder}", "data.val_split=null"]  # no val folder
        convert(capsys, recipe, tmp_path / f"tfr_{folder}", *overrides, "--shards", "2")
        assert_round_trip(recipe, overrides, tmp_path / f"tfr_{folder}")


@pytest.mark.parametrize("recipe", ["mnist_cnn", "voc_retinanet_resnet50", "oxford_pets_unet"])  # video: ucf101 mocks take 10 s
def test_tfds_round_trip_with_mock_data(tmp_path, capsys, recipe):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        convert(capsys, recipe, tmp_path / "tfr", "--shards", "2")
        assert_round_trip(recipe, [], tmp_path / "tfr")


# ---------------------------------------------------------------- training, sharding across workers


@pytest.fixture(scope="module")
def digits_tfrecord(tmp_path_factory):
    """The embedded digits converted once (2 shards per split); tests damage their own copy."""
    from zoo.convert import convert as convert_recipe

    folder = tmp_path_factory.mktemp("digits") / "tfr"
    convert_recipe(zoo.load_recipe("digits_cnn"), folder, shards=2)
    return folder


def test_train_from_tfrecord_through_the_cli(tmp_path, capsys, digits_tfrecord):
    code, _, err = run_cli(capsys, "train", "digits_cnn", "data.source=tfrecord", f"data.path={digits_tfrecord}",
                           "train.epochs=3", "train.verbose=0", "--output", tmp_path / "run")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_examples"] == 360 and metrics["accuracy"] > 0.8, metrics  # chance: 0.1


def test_an_uncached_stream_is_shuffled_encoded_then_decoded_in_one_map(digits_tfrecord):
    """Too large to cache: parsed, still-encoded examples go through a buffer smaller than the
    split, are decoded and prepared in one map, and every epoch holds every example once, in a
    new order."""
    recipe = zoo.load_recipe("digits_cnn", ["data.source=tfrecord", f"data.path={digits_tfrecord}",
                                            "data.shuffle_buffer=64", "data.batch_size=1"])
    task = get_task("classification")
    split = load_split(recipe, task, "train")
    assert split.stream and split.records.element_spec["image"].dtype == tf.string  # encoded until the map
    dataset = task.make_dataset(split, recipe, True, cache=False)
    epochs = [[(x.numpy().tobytes(), int(y[0])) for x, y in dataset] for _ in range(2)]
    expected = sorted((image.astype("float32").tobytes(), int(label)) for image, label in
                      ((ex["image"], ex["label"]) for ex in load_split(zoo.load_recipe("digits_cnn"), task, "train")
                       .dataset.as_numpy_iterator()))
    assert len(epochs[0]) == split.info.num_examples == 1437
    assert sorted(epochs[0]) == sorted(epochs[1]) == expected and epochs[0] != epochs[1]


def test_each_worker_reads_its_own_shards(tmp_path, capsys, monkeypatch):
    """A multi-worker strategy's auto-shard rewrite (applied here directly, as the strategy
    applies it): worker k of 2 reads shards k and k + 2, whole; with fewer shards than
    workers, a note, and every worker reads every shard and keeps every n-th example."""
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    folder = tmp_path / "tfr"
    convert(capsys, "shapes_resnet20", folder, *SYNTHETIC, "--shards", "4")
    recipe = zoo.load_recipe("shapes_resnet20", ["data.source=tfrecord", f"data.path={folder}"])
    split = load_split(recipe, get_task("classification"), "train")
    parse, decode = parser(json.loads((folder / "train.json").read_text())["features"])
    for worker in range(2):
        shards = [str(folder / shard_name("train", k, 4)) for k in (worker, worker + 2)]
        own = parsed_records(tf.data.TFRecordDataset(shards), parse).map(decode)
        assert keys(_AutoShardDataset(split.dataset, 2, worker, 2)) == keys(own)

    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": [f"w{i}:1" for i in range(8)]},
                                                "task": {"type": "worker", "index": 0}}))
    split = load_split(recipe, get_task("classification"), "train")
    assert "note: 4 TFRecord shard(s) for 8 workers" in capsys.readouterr().out
    assert len(keys(_AutoShardDataset(split.dataset, 8, 0, 8))) == 2  # examples 0 and 8 of 12


# ---------------------------------------------------------------- failures


def test_a_killed_conversion_leaves_no_finished_shard(tmp_path, capsys, monkeypatch):
    import zoo.convert

    folder = tmp_path / "tfr"
    convert(capsys, "shapes_resnet20", folder, *SYNTHETIC, "--shards", "2")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    serialize, calls = zoo.convert.serialize, []

    def dies_midway(example, layout):
        calls.append(example)
        if len(calls) == 6:  # in the second of 3 shards of 4
            raise KeyboardInterrupt
        return serialize(example, layout)

    monkeypatch.setattr(zoo.convert, "serialize", dies_midway)
    code, _, err = run_cli(capsys, "convert", "shapes_resnet20", *SYNTHETIC, "--shards", "3", "--output", folder)
    assert code == 130 and "interrupted" in err
    # The earlier conversion is untouched, and nothing of the killed one is left.
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    calls.clear()
    code, _, _ = run_cli(capsys, "convert", "shapes_resnet20", *SYNTHETIC, "--output", tmp_path / "fresh")
    assert code == 130 and not (tmp_path / "fresh").exists()


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    ("no path", "data.path: required for data.source=tfrecord"),
    ("wrong path", "TFRecord folder not found: {tmp}/nowhere"),
    ("empty folder", "no TFRecord split 'test' in {tmp}/empty: expected test.json and test-00000-of-NNNNN"),
    ("no json", "{tmp}/tfr/test.json not found: the conversion of split 'test' did not finish"),
    ("missing shard", "TFRecord shard not found: {tmp}/tfr/test-00001-of-00002.tfrecord (1 of 2 missing"),
    ("corrupt shard", "TFRecord shard {tmp}/tfr/test-00001-of-00002.tfrecord does not match {tmp}/tfr/test.json: "
                      "the sha256 of its first"),
])
def test_user_errors_are_one_line_with_status_2(tmp_path, capsys, digits_tfrecord, damage, message):
    folder = tmp_path / "tfr"
    shutil.copytree(digits_tfrecord, folder)
    (tmp_path / "empty").mkdir()
    path = {"wrong path": tmp_path / "nowhere", "empty folder": tmp_path / "empty"}.get(damage, folder)
    if damage == "no json":
        (folder / "test.json").unlink()
    if damage == "missing shard":
        (folder / shard_name("test", 1, 2)).unlink()
    if damage == "corrupt shard":
        flip_a_byte(folder / shard_name("test", 1, 2))
    args = [] if damage == "no path" else [f"data.path={path}"]
    code, out, err = run_cli(capsys, "evaluate", "digits_cnn", "data.source=tfrecord", *args)
    assert code == 2, err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err, err


def test_tfrecords_of_another_task_are_refused(digits_tfrecord):
    recipe = zoo.load_recipe("shapes_unet", ["data.source=tfrecord", f"data.path={digits_tfrecord}"])
    with pytest.raises(DataError, match="holds classification examples, not segmentation"):
        load_split(recipe, get_task("segmentation"), "train")


def test_an_output_that_cannot_be_created_is_one_line_with_status_2(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    code, _, err = run_cli(capsys, "convert", "digits_cnn", "--output", tmp_path / "file" / "tfr")
    assert code == 2 and err.startswith(f"zoo: error: cannot write {tmp_path}/file/tfr: Not a directory")
    assert len(err.splitlines()) == 1


def test_a_corrupt_file_in_a_folder_is_named_and_nothing_is_written(tmp_path, capsys):
    """Class folders are stored as their files' bytes: each file must still decode first."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("ant", "bee"):
            for i in range(4):
                write_png(tmp_path / "images" / split / name / f"{i}.png", rng.integers(0, 255, (8, 8, 3), np.uint8))
    bad = tmp_path / "images" / "train" / "bee" / "2.png"
    bad.write_bytes(b"\x89PNG not really")
    code, _, err = run_cli(capsys, "convert", "digits_cnn", "data.source=folder", f"data.path={tmp_path / 'images'}",
                           "--output", tmp_path / "tfr")
    assert code == 2 and err.startswith(f"zoo: error: corrupt image file: {bad}") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "tfr").exists()
