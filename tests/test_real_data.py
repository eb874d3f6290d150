"""Real data's traps: class-sorted folders larger than the shuffle buffer, splits whose classes
differ, a model of the wrong class count, one-class data, ties in top-5, paths out of the root."""
import json

import keras
import numpy as np
import pytest
from PIL import Image

import zoo
from conftest import tiny
from zoo.cli import main
from zoo.data import load_split
from zoo.errors import DataError
from zoo.tasks import get_task
from zoo.tasks.classification.metrics import TopKAccuracy, classification_metrics

NUM_CLASSES, PER_CLASS, BUFFER = 10, 40, 16  # 400 files, class by class; a 16-example buffer
TINY_DETECTOR = ["model.backbone=simple_cnn", "model.min_level=2", "model.max_level=3",
                 "model.anchor_size=2.0", "model.fpn_channels=32", "data.image_size=[64, 64]"]


def write_sorted_folder(root, split="train", classes=NUM_CLASSES, per_class=PER_CLASS):
    for c in range(classes):
        folder = root / split / f"class{c}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((4, 4), c * 20, np.uint8)).save(folder / f"{i:03d}.png")
    return root


def first_epochs(recipe, task, split, cache, epochs=2):
    dataset = task.make_dataset(split, recipe, True, cache)
    return [np.concatenate([labels for _, labels in dataset.as_numpy_iterator()]) for _ in range(epochs)]


def shuffle_recipe(root, seed=0):
    return tiny("digits_cnn", "data.source=folder", f"data.path={root}", "data.image_size=[4, 4]",
                f"data.shuffle_buffer={BUFFER}", "data.batch_size=25", f"runtime.seed={seed}")


@pytest.mark.parametrize("cache", [False, True])
def test_class_sorted_folder_larger_than_the_buffer_is_shuffled(tmp_path, cache):
    root = write_sorted_folder(tmp_path / "data")
    task = get_task("classification")
    recipe = shuffle_recipe(root)
    split = load_split(recipe, task, "train")
    one, two = first_epochs(recipe, task, split, cache)
    # Before the fix the first batch held one class (the buffer drained class by class).
    assert len(set(one[:25])) >= 7
    assert sorted(one) == sorted(two) and not np.array_equal(one, two)  # every example, new order
    again, _ = first_epochs(shuffle_recipe(root), task, load_split(recipe, task, "train"), cache)
    np.testing.assert_array_equal(one, again)  # a fixed seed gives the same order
    other, _ = first_epochs(shuffle_recipe(root, seed=1), task, split, cache)
    assert not np.array_equal(one, other)


def test_short_epochs_reach_every_class(tmp_path):
    """train.steps_per_epoch shorter than the split (the data repeats): before the fix, epochs of
    a few batches only ever saw the first classes of a sorted folder."""
    root = write_sorted_folder(tmp_path / "data")
    recipe = tiny("digits_cnn", "data.source=folder", f"data.path={root}", "data.image_size=[4, 4]",
                  f"data.shuffle_buffer={BUFFER}", "data.batch_size=25", "train.steps_per_epoch=4")
    task = get_task("classification")
    for cache in (False, True):
        batches = task.make_dataset(load_split(recipe, task, "train"), recipe, True, cache).take(8)
        labels = [set(y.numpy()) for _, y in batches]
        assert len(set().union(*labels[:4])) == NUM_CLASSES  # the first 4-batch epoch: every class
        assert all(len(batch) >= 6 for batch in labels)


def test_every_folder_source_shuffles_before_decoding(tmp_path):
    """Segmentation masks, COCO images and video clips listed class by class come out mixed."""
    seg, coco, video = tmp_path / "seg", tmp_path / "coco", tmp_path / "video"
    images = []
    for c in range(4):
        for i in range(PER_CLASS):
            stem = f"{c}_{i:03d}"
            for folder in ("images", "masks"):
                (seg / "train" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(seg / "train" / "images" / f"{stem}.png")
            Image.fromarray(np.full((4, 4), c, np.uint8)).save(seg / "train" / "masks" / f"{stem}.png")
            (coco / "train").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(coco / "train" / f"{stem}.png")
            images.append({"id": len(images), "file_name": f"{stem}.png", "height": 8, "width": 8, "c": c})
            clip = video / "train" / f"class{c}" / f"clip{i:03d}"
            clip.mkdir(parents=True)
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(clip / "0.png")
    (coco / "annotations").mkdir()
    (coco / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": [{k: v for k, v in im.items() if k != "c"} for im in images],
        "annotations": [{"id": k, "image_id": im["id"], "category_id": im["c"] + 1, "bbox": [1, 1, 4, 4]}
                        for k, im in enumerate(images)],
        "categories": [{"id": c + 1, "name": f"class{c}"} for c in range(4)]}))

    def first_batch_classes(recipe_name, source, root, classes_of, *extra):
        recipe = tiny(recipe_name, f"data.source={source}", f"data.path={root}", "data.batch_size=16",
                      f"data.shuffle_buffer={BUFFER}", *extra)
        task = get_task(recipe.task)
        split = load_split(recipe, task, "train")
        if recipe.task == "detection":  # its targets are matched to the model's anchors
            task.attach(zoo.create_model(recipe.model.name, num_classes=split.info.num_classes,
                                         input_shape=(*recipe.data.image_size, 3), **recipe.model.params))
        _, targets = next(iter(task.make_dataset(split, recipe, True, False)))
        return len(classes_of(targets.numpy()))

    # 4 classes of 40 examples each, in order: before the fix a batch of 16 held one class.
    assert first_batch_classes("shapes_unet", "folder", seg, lambda masks: set(masks[:, 0, 0]),
                               "data.image_size=[4, 4]") >= 3
    assert first_batch_classes("shapes_retinanet", "coco", coco, lambda t: set(t[..., 4].max(axis=1)),
                               *TINY_DETECTOR) >= 3
    assert first_batch_classes("moving_shapes_cnn_lstm", "folder", video, set,
                               "data.image_size=[4, 4]", "data.num_frames=1") >= 3


# ------------------------------------------------------------------------------ class sets


def write_quadrant_folder(root, split, classes, per_class=16, seed=0):
    """Classes a tiny CNN separates at once: the bright quadrant (a, b, c, d)."""
    rng = np.random.default_rng(seed)
    corners = {"a": (0, 0), "b": (0, 4), "c": (4, 0), "d": (4, 4)}
    for name in classes:
        folder = root / split / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 40, (8, 8), dtype=np.uint8)
            y, x = corners[name]
            image[y:y + 4, x:x + 4] += 200
            Image.fromarray(image).save(folder / f"{i}.png")
    return root


def quadrant_recipe(root, *extra):
    return tiny("digits_cnn", "data.source=folder", f"data.path={root}", "data.image_size=[8, 8]",
                "data.batch_size=8", "train.epochs=8", *extra)


def test_eval_split_classes_are_mapped_onto_the_training_classes(tmp_path, capsys):
    root = write_quadrant_folder(tmp_path / "data", "train", "abc")
    write_quadrant_folder(root, "test", "ac", seed=1)  # "c" is index 1 here, 2 in training
    run = zoo.train(quadrant_recipe(root), output_dir=tmp_path / "run")
    assert "has no examples of training class(es) b" in capsys.readouterr().out
    assert run.metrics["accuracy"] >= 0.9  # before the fix every "c" was scored as "b": 0.5
    # evaluate of the run takes the run's classes (dataset.json) as the truth too
    metrics = zoo.evaluate(quadrant_recipe(root), weights=run.output_dir / "model.keras")
    assert metrics == {key: run.metrics[key] for key in metrics}


def test_a_class_the_training_split_lacks_is_one_line(tmp_path, capsys):
    root = write_quadrant_folder(tmp_path / "data", "train", "abc", per_class=4)
    write_quadrant_folder(root, "test", "abd", per_class=4)
    code = main(["train", "digits_cnn", "data.source=folder", f"data.path={root}", "data.image_size=[8,8]",
                 "train.verbose=0", "--output", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "has class(es) the training split lacks: d" in err and str(root / "test") in err
    assert not (tmp_path / "run").exists()  # nothing was written


def test_coco_eval_categories_are_matched_by_name(tmp_path):
    root = tmp_path / "coco"
    for split, categories in (("train", [(1, "cat"), (2, "dog")]), ("val", [(2, "dog"), (7, "cat")]),
                              ("odd", [(1, "cat"), (3, "fish")])):
        (root / split).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / split / "x.png")
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps({
            "images": [{"id": 1, "file_name": "x.png", "height": 8, "width": 8}],
            "annotations": [{"id": i, "image_id": 1, "category_id": cid, "bbox": [1, 1, 3, 3]}
                            for i, (cid, _) in enumerate(categories)],
            "categories": [{"id": cid, "name": name} for cid, name in categories]}))
    task = get_task("detection")
    recipe = tiny("shapes_retinanet", "data.source=coco", f"data.path={root}")
    train = load_split(recipe, task, "train")
    val = load_split(recipe, task, "val", truth=train.info)
    example = next(iter(val.dataset))
    assert sorted(example["labels"].numpy().tolist()) == [0, 1]  # dog (id 2) -> 1, cat (id 7) -> 0
    assert val.info.class_names == ["cat", "dog"] and val.info.extras["category_ids"] == [1, 2]
    with pytest.raises(DataError, match="lacks: fish"):
        load_split(recipe, task, "odd", truth=train.info)


def test_coco_file_name_leaving_the_root_is_refused(tmp_path):
    root = tmp_path / "coco"
    (root / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "secret.png")
    (root / "annotations" / "instances_train.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "../../secret.png", "height": 8, "width": 8}],
        "annotations": [], "categories": [{"id": 1, "name": "cat"}]}))
    recipe = tiny("shapes_retinanet", "data.source=coco", f"data.path={root}")
    with pytest.raises(DataError, match="'../../secret.png' leaves the image folder"):
        load_split(recipe, get_task("detection"), "train")


# ------------------------------------------------------------------------------ class counts


def test_a_model_with_another_class_count_is_not_evaluated(tmp_path, capsys):
    model = zoo.create_model("digits_cnn", num_classes=3, input_shape=(8, 8, 3))
    model.save(tmp_path / "three.keras")
    code = main(["evaluate", "digits_cnn", "--weights", str(tmp_path / "three.keras")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "the model predicts 3 classes but the evaluation data has 10" in err


def test_a_one_class_dataset_is_refused(tmp_path):
    root = write_quadrant_folder(tmp_path / "data", "train", "a", per_class=4)
    write_quadrant_folder(root, "test", "a", per_class=4)
    with pytest.raises(DataError, match=r"the training split has 1 class\(es\) \(a\): classification needs at least 2"):
        zoo.train(quadrant_recipe(root), output_dir=tmp_path / "run")


# ------------------------------------------------------------------------------ top-5


def test_top5_has_one_definition_in_the_logs_and_in_metrics_json():
    """A diverged model's constant output: every class ties. Ties go by class index (argmax's
    rule), so labels 0-4 are in the top 5 and 5-9 are not, in both places."""
    scores = np.full((20, 10), 0.1, np.float32)
    labels = np.arange(20) % 10
    metric = TopKAccuracy(5)
    metric.update_state(labels, scores)
    assert float(metric.result()) == pytest.approx(0.5)  # keras' SparseTopK said 1.0
    assert classification_metrics(scores, labels, 10)["top5_accuracy"] == pytest.approx(0.5)
    keras_top5 = keras.metrics.SparseTopKCategoricalAccuracy(5)
    keras_top5.update_state(labels, scores)
    assert float(keras_top5.result()) == 1.0  # the definition this replaces
    # Without ties both agree with sorting; a NaN score is never a hit.
    rng = np.random.default_rng(0)
    scores = rng.random((200, 10)).astype(np.float32)
    labels = rng.integers(0, 10, 200)
    expected = np.mean([label in np.argsort(-s)[:5] for s, label in zip(scores, labels)])
    assert classification_metrics(scores, labels, 10)["top5_accuracy"] == pytest.approx(expected)
    scores[:, 0] = np.nan
    assert classification_metrics(scores, labels, 10)["top5_accuracy"] == 0.0


def test_epoch_logs_and_metrics_json_agree(tmp_path):
    # Validating on the eval split: the epoch logs and metrics.json measure the same examples.
    run = zoo.train(tiny("digits_cnn", "train.epochs=2", "data.val_split=test"), output_dir=tmp_path / "run")
    last = run.history
    for key in ("accuracy", "top5_accuracy"):
        assert last[f"val_{key}"][-1] == pytest.approx(run.metrics[key], abs=1e-6)


def test_tied_scores_give_the_same_top5_in_keras_logs_and_in_evaluation():
    """The case that showed two definitions: a diverged model whose outputs all tie. The epoch
    logs come from the compiled metrics (`model.evaluate` computes them the same way as fit's
    validation); metrics.json from Task.evaluate."""
    recipe = tiny("digits_cnn")
    task = get_task("classification")
    split = load_split(recipe, task, "test")
    model = zoo.create_model("digits_cnn")
    dense = model.get_layer("predictions_dense")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])  # a uniform softmax: all tie
    model.compile(loss=task.loss(split.info), metrics=task.metrics(split.info))
    dataset = task.make_dataset(split, recipe, False, cache=False)
    logged = model.evaluate(dataset, return_dict=True, verbose=0)
    measured = task.evaluate(model, dataset, split.info)
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    assert measured["top5_accuracy"] == pytest.approx(np.mean(labels < 5))  # ties go by class index
    assert measured["accuracy"] == pytest.approx(np.mean(labels == 0))
    for key in ("accuracy", "top5_accuracy"):
        assert logged[key] == pytest.approx(measured[key], abs=1e-6)
