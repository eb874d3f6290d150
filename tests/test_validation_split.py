"""data.val_split: what chooses the model (validation) is never what metrics.json reports (eval_split).
The carve-out (zoo/data/holdout.py) per class, per image and by index; synthetic splits of their
own; a trained run's metrics.json and history; bad values; --resume."""
import json

import numpy as np
import pytest
from conftest import history_rows, run_cli, tiny
from PIL import Image

import zoo
from zoo.data import DatasetInfo, Split, holdout, load_split, synthetic
from zoo.errors import DataError, ZooError
from zoo.lazy import tf
from zoo.tasks import get_task

CLASSIFICATION = get_task("classification")


def examples(split: Split) -> list:
    """Each canonical example of a split as a hashable (image bytes, label)."""
    return [(ex["image"].tobytes(), int(ex["label"])) for ex in split.dataset.as_numpy_iterator()]


def test_digits_carve_out_is_stratified_disjoint_whole_and_seeded():
    recipe = tiny("digits_cnn")
    train = load_split(recipe, CLASSIFICATION, "train")
    kept, held, how = holdout.carve(train, 0.1, 0, "train")
    assert how == "stratified" and (kept.info.num_examples, held.info.num_examples) == (1293, 144)
    counts = np.bincount(train.labels, minlength=10)
    share = np.bincount(held.labels, minlength=10)
    assert np.all(np.abs(share - 0.1 * counts) < 1)  # each class gives floor or ceil of its 10%
    assert sorted(examples(kept) + examples(held)) == sorted(examples(train))  # together: the split
    assert not set(examples(kept)) & set(examples(held))
    assert [label for _, label in examples(held)] == list(held.labels)
    again = holdout.carve(train, 0.1, 0, "train")[1]
    other = holdout.carve(train, 0.1, 1, "train")[1]
    assert examples(again) == examples(held) and examples(other) != examples(held)


def test_a_class_with_one_example_stays_in_training():
    labels = [0] * 9 + [1] + [2] * 3
    for seed in range(5):
        held = holdout.holdout_indices(labels, 0.5, seed)
        assert 9 not in held  # class 1's only example
        assert len(set(held) & {10, 11, 12}) <= 2  # never a class's last example
    assert list(holdout.holdout_counts([9, 1, 3], 0.5)) == [5, 0, 1]  # round(0.5 * 12) = 6
    assert list(holdout.holdout_counts([3, 4], 0.01)) == [0, 1]  # at least one, largest remainder
    with pytest.raises(DataError, match="no class with two examples"):
        holdout.carve(Split(tf.data.Dataset.range(2), DatasetInfo(2, ["a", "b"], 2), labels=np.array([0, 1])),
                      0.1, 0, "train")


def test_a_stream_is_carved_by_index_with_known_sizes():
    recipe = tiny("shapes_resnet20", "data.train_size=40", "data.image_size=[16, 16]")
    train = load_split(recipe, CLASSIFICATION, "train")  # a generator: no listing in memory
    kept, held, how = holdout.carve(train, 0.25, 0, "train")
    assert how == "by index"
    assert [int(s.records.cardinality()) for s in (kept, held)] == [30, 10]  # known without a pass
    assert sorted(examples(kept) + examples(held)) == sorted(examples(train))
    assert not set(examples(kept)) & set(examples(held))
    assert examples(holdout.carve(train, 0.25, 0, "train")[1]) == examples(held)
    with pytest.raises(DataError, match="data.val_split: the training split 'train' is of unknown size"):
        holdout.carve(Split(tf.data.Dataset.range(5), DatasetInfo(2, ["a", "b"], None)), 0.1, 0, "train")


def test_a_listing_without_labels_is_carved_per_image_and_trains_fully_shuffled():
    paths = [f"image_{i:02d}.png" for i in range(20)]
    listing = Split(tf.data.Dataset.from_tensor_slices(paths), DatasetInfo(2, ["a", "b"], 20),
                    decode=lambda path: {"path": path})
    kept, held, how = holdout.carve(listing, 0.1, 0, "train")
    assert how == "per image" and kept.listed and held.info.num_examples == 2
    names = [p.decode() for p in kept.records.as_numpy_iterator()]
    assert sorted(names + [p.decode() for p in held.records.as_numpy_iterator()]) == paths
    order = [p.decode() for p in kept.shuffled(0, 1).as_numpy_iterator()]  # a buffer of 1: the permutation alone
    assert sorted(order) == names and order != names


def test_synthetic_splits_each_have_their_own_seed():
    recipe = tiny("shapes_resnet20", "data.train_size=3", "data.eval_size=3", "data.image_size=[16, 16]")
    assert [load_split(recipe, CLASSIFICATION, s).info.num_examples for s in ("train", "val", "test")] == [3, 3, 3]
    images = {s: [ex["image"] for ex in load_split(recipe, CLASSIFICATION, s).dataset.as_numpy_iterator()]
              for s in ("train", "val", "test")}
    assert not np.array_equal(images["val"][0], images["test"][0])
    assert not np.array_equal(images["val"][0], images["train"][0])
    # Training and test data are what they were before `val` existed (seeds 1 and 2): the shipped
    # synthetic weights trained and were measured on exactly this data.
    for split, seed in (("train", 1), ("test", 2)):
        assert np.array_equal(images[split][2], synthetic.generate("shapes", 2, seed, (16, 16))["image"])


def write_folder(root, splits, n_per_class=12, size=16, seed=0):
    """Two classes a linear model separates (bright top / bright bottom half); `splits` maps a
    split to whether its labels are swapped (a validation folder that disagrees with test)."""
    rng = np.random.default_rng(seed)
    for split, swapped in splits.items():
        for label, name in enumerate(["bottom", "top"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n_per_class):
                image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                image[slice(0, size // 2) if label != swapped else slice(size // 2, size)] += 150
                Image.fromarray(image).save(folder / f"{i}.png")
    return root


def test_validation_chooses_and_the_eval_split_reports(tmp_path, capsys):
    # A named `val` folder whose labels are swapped: validation accuracy falls as test accuracy rises.
    root = write_folder(tmp_path / "data", {"train": False, "val": True, "test": False})
    recipe = tiny("digits_cnn", "data.source=folder", f"data.path={root}", "data.val_split=val",
                  "data.image_size=[16, 16]", "data.batch_size=8", "train.epochs=4")
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    out = capsys.readouterr().out
    assert "validating on val (24 examples); reporting on test (24 examples)" in out
    rows = history_rows(run.output_dir)
    val = [float(r["val_accuracy"]) for r in rows]
    assert run.metrics["accuracy"] >= 0.9 and val[-1] <= 0.1  # history's val_*: the val folder
    saved = json.loads((run.output_dir / "metrics.json").read_text())
    assert saved == run.metrics
    assert saved["eval_split"] == "test" and saved["val_split"] == "val" and saved["num_examples"] == 24
    assert saved["best_epoch"] == int(np.argmax(val)) + 1 < 4  # chosen by validation, not by test
    best = zoo.evaluate(run.output_dir / "recipe.yaml", weights=run.output_dir / "best.keras")
    assert saved["best/accuracy"] == pytest.approx(best["accuracy"])  # best.keras, measured on test


def test_a_carve_out_run_and_its_resume_hold_out_the_same_examples(tmp_path, capsys, monkeypatch):
    drawn = []
    draw = holdout.holdout_indices
    monkeypatch.setattr(holdout, "holdout_indices", lambda *a: drawn.append(draw(*a)) or drawn[-1])
    recipe = ["data.val_split=0.05", "runtime.seed=3"]
    run = zoo.train(tiny("digits_cnn", *recipe, "train.epochs=1"), output_dir=tmp_path)
    assert "validating on 5% of train (72 examples, stratified, seed 3)" in capsys.readouterr().out
    assert run.metrics["val_split"] == "5% of train (stratified, seed 3)" and run.metrics["best_epoch"] == 1
    assert run.metrics["best/accuracy"] == run.metrics["accuracy"]  # the best epoch is the last: not measured again
    zoo.train(tiny("digits_cnn", *recipe, "train.epochs=2"), output_dir=tmp_path, resume=True)
    assert "changed recipe key: data.val_split" not in capsys.readouterr().out
    assert len(drawn) == 2 and np.array_equal(drawn[0], drawn[1])
    for change in ("data.val_split=0.1", "runtime.seed=4"):  # another held-out part: refused, nothing written
        with pytest.raises(ZooError, match=rf"--resume: {change.split('=')[0]} .* changes the validation split"):
            zoo.train(tiny("digits_cnn", *recipe, "train.epochs=3", change), output_dir=tmp_path, resume=True)
    assert len(history_rows(tmp_path)) == 2


def test_validating_on_the_eval_split_is_allowed_with_a_warning(tmp_path, capsys):
    run = zoo.train(tiny("digits_cnn", "data.val_split=test", "train.epochs=1"), output_dir=tmp_path)
    out = capsys.readouterr().out
    assert ("warning: data.val_split is data.eval_split (test): best.keras and early stopping choose on "
            "the split that metrics.json reports") in out
    assert float(history_rows(tmp_path)[0]["val_accuracy"]) == pytest.approx(run.metrics["accuracy"])


@pytest.mark.parametrize("value, words", [
    ("1.5", "data.val_split: expected null (10% of data.train_split), a fraction in (0, 1) or a split name, got 1.5"),
    ("0", "data.val_split: expected null"),
    ("''", "data.val_split: expected null"),
    ("true", "data.val_split: expected a number or a string, got True"),
    ("[0.1]", "data.val_split: expected a number or a string"),
    ("train", "data.val_split: 'train' is data.train_split: the model would be chosen on the data it trained on"),
])
def test_a_bad_val_split_is_one_line(capsys, value, words):
    code, out, err = run_cli(capsys, "train", "digits_cnn", f"data.val_split={value}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_a_val_split_outside_data_path_is_refused(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "digits_cnn", "data.source=folder", f"data.path={tmp_path}",
                           "data.val_split=../elsewhere")
    assert code == 2 and "data.val_split: expected a split name inside data.path" in err


def test_a_missing_named_val_split_names_the_key(capsys, tmp_path):
    root = write_folder(tmp_path / "data", {"train": False, "test": False}, n_per_class=2)
    code, _, err = run_cli(capsys, "train", "digits_cnn", "data.source=folder", f"data.path={root}",
                           "data.val_split=val", "data.image_size=[16, 16]")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (f"dataset folder not found: {root / 'val'} (the validation split, data.val_split; null holds out "
            f"10% of train instead)") in err


def test_a_split_too_small_after_the_carve_out_says_what_was_held_out(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "digits_cnn", "data.batch_size=1400", "--output", tmp_path / "run")
    assert code == 2 and err.splitlines() == [
        "zoo: error: the training split has 1293 examples after holding out 144 to validate (data.val_split), "
        "fewer than one batch (data.batch_size=1400)"]
    metrics = zoo.train(tiny("digits_cnn", "train.validate=false", "train.epochs=1"), output_dir=tmp_path / "b").metrics
    assert metrics["val_split"] == "none (train.validate false)" and "best_epoch" not in metrics
