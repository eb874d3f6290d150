"""The evaluation report (zoo/report.py): the per-class table printed before the JSON line, the
report folder (`--report DIR`, `--output DIR` -> DIR/eval/, nothing written otherwise) and its
files for classification, video and segmentation."""
import csv
import json

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import run_cli

import zoo
import zoo.errors
from zoo.report import Report, confused_pairs, save_gallery, short_label
from zoo.tasks.classification.report import ConfidentMistakes, one_vs_rest_curves, report_classes
from zoo.tasks.segmentation.report import WorstImages, per_image_iou


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def matrix_of(path) -> np.ndarray:
    """The counts of a confusion_matrix.csv (its header row and label column left out)."""
    return np.array([[int(v) for v in row[1:]] for row in read_csv(path)[1:]])


def split_stdout(out: str):
    """(the lines before the JSON line, the metrics of the last line)."""
    lines = out.rstrip("\n").splitlines()
    return lines[:-1], json.loads(lines[-1])


def assert_picture(path):
    with Image.open(path) as picture:
        assert picture.width > 200 and picture.height > 200


def test_digits_report_table_first_and_files_with_the_right_shapes(tmp_path, capsys):
    folder = tmp_path / "new" / "report"  # made, parents too
    code, out, _ = run_cli(capsys, "evaluate", "digits_cnn", "--weights", "pretrained", "--report", folder)
    assert code == 0
    before, metrics = split_stdout(out)
    assert metrics["num_examples"] == 360
    header = next(i for i, line in enumerate(before) if line.split()[:5] == ["class", "precision", "recall", "F1", "support"])
    assert before[header - 1] == "per class (360 examples)"
    rows = [line.split() for line in before[header + 1:header + 11]]
    assert [row[0] for row in rows] == [str(d) for d in range(10)] and sum(int(row[-1]) for row in rows) == 360
    assert {p.name for p in folder.iterdir()} == {
        "per_class.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png",
        "pr_curves.csv", "pr_curves.png", "worst_predictions.png"}
    table = read_csv(folder / "per_class.csv")
    assert table[0] == ["class", "precision", "recall", "F1", "support"]
    assert [row[0] for row in table[1:]] == [*map(str, range(10)), "macro avg", "weighted avg"]
    matrix = matrix_of(folder / "confusion_matrix.csv")
    assert matrix.shape == (10, 10) and matrix.sum() == 360
    assert np.trace(matrix) / 360 == pytest.approx(metrics["accuracy"])
    assert [int(row[-1]) for row in table[1:11]] == matrix.sum(1).tolist()  # support = the matrix's rows
    normalized = np.array([[float(v) for v in row[1:]] for row in read_csv(folder / "confusion_matrix_normalized.csv")[1:]])
    assert normalized.sum(1) == pytest.approx(np.ones(10), abs=1e-3)
    curves = read_csv(folder / "pr_curves.csv")
    assert curves[0] == ["class", "recall", "precision"] and len(curves) == 1 + 10 * 101
    for name in ("confusion_matrix.png", "pr_curves.png", "worst_predictions.png"):
        assert_picture(folder / name)


def test_output_writes_eval_folder_and_no_folder_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "evaluate", "digits_cnn", "--weights", "pretrained")
    before, quiet = split_stdout(out)
    assert code == 0 and "per class (360 examples)" in before
    assert list(tmp_path.iterdir()) == []  # nowhere named: nothing written
    code, out, _ = run_cli(capsys, "evaluate", "digits_cnn", "--weights", "pretrained", "--output", "out")
    assert code == 0 and split_stdout(out)[1] == quiet  # the metrics never depend on the report
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved == {**quiet, "eval_split": "test", "backend": saved["backend"]}
    assert saved["backend"].split()[0] == keras.backend.backend()
    assert len(read_csv(tmp_path / "out" / "eval" / "per_class.csv")) == 1 + 10 + 2
    assert matrix_of(tmp_path / "out" / "eval" / "confusion_matrix.csv").sum() == 360
    # A reused folder: an earlier report's files go (another task's f1_curve), the user's stay.
    for name in ("f1_curve.png", "notes.txt"):
        (tmp_path / "out" / "eval" / name).write_text("old")
    assert run_cli(capsys, "evaluate", "digits_cnn", "--weights", "pretrained", "--output", "out")[0] == 0
    assert sorted(p.name for p in (tmp_path / "out" / "eval").iterdir()) == sorted(
        ["per_class.csv", "confusion_matrix.csv", "confusion_matrix_normalized.csv", "confusion_matrix.png",
         "pr_curves.csv", "pr_curves.png", "worst_predictions.png", "notes.txt"])
    assert short_label("class_with_a_rather_long_name_12") == "class_with_a_r…_long_name_12"


def test_a_report_folder_that_cannot_be_written_is_one_line_after_the_metrics(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, out, err = run_cli(capsys, "evaluate", "digits_cnn", "--weights", "pretrained",
                             "--report", blocker / "report")
    assert code == 2
    assert err.splitlines() == [f"zoo: error: cannot write {blocker / 'report'}: Not a directory"]
    assert split_stdout(out)[1]["num_examples"] == 360  # the metrics were computed and printed


def test_the_python_api_raises_for_an_unwritable_report_folder(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    with pytest.raises(zoo.errors.ZooError, match="cannot write .*taken: it is a file, not a folder"):
        zoo.evaluate("digits_cnn", weights="pretrained", report=tmp_path / "taken")


def test_segmentation_report_counts_every_labelled_pixel(tmp_path, capsys):
    from zoo.data import load_split
    from zoo.tasks import get_task

    folder = tmp_path / "report"
    code, out, _ = run_cli(capsys, "evaluate", "shapes_unet", "--weights", "pretrained", "data.eval_size=16",
                           "--report", folder)
    before, metrics = split_stdout(out)
    assert code == 0 and metrics["num_examples"] == 16
    assert any(line.split()[:3] == ["class", "IoU", "Dice"] for line in before)
    recipe = zoo.load_recipe("shapes_unet", ["data.eval_size=16"])
    task = get_task("segmentation")
    dataset = task.make_dataset(load_split(recipe, task, recipe.data.eval_split), recipe, False, False)
    labelled = sum(int(np.sum(masks != 255)) for _, masks in dataset.as_numpy_iterator())
    matrix = matrix_of(folder / "confusion_matrix.csv")
    assert matrix.shape == (4, 4) and matrix.sum() == labelled
    table = read_csv(folder / "per_class.csv")
    assert table[0] == ["class", "IoU", "Dice", "pixel accuracy", "support (pixels)"] and len(table) == 1 + 4 + 1
    for row, (name, value) in zip(table[1:], ((k[4:], v) for k, v in metrics.items() if k.startswith("iou/"))):
        assert row[0] == name and float(row[1]) == pytest.approx(value, abs=1e-4)
    assert float(table[-1][1]) == pytest.approx(metrics["mIoU"], abs=1e-4)
    assert {"confusion_matrix.png", "worst_predictions.png"} <= {p.name for p in folder.iterdir()}
    assert_picture(folder / "worst_predictions.png")


def test_video_report_is_on_clips(tmp_path, capsys):
    folder = tmp_path / "report"
    code, out, _ = run_cli(capsys, "evaluate", "moving_shapes_cnn_lstm", "--weights", "pretrained",
                           "data.eval_size=8", "data.eval_clips=2", "--report", folder)
    before, metrics = split_stdout(out)
    assert code == 0 and "per class (16 clips)" in before and "video_accuracy" in metrics
    assert matrix_of(folder / "confusion_matrix.csv").sum() == metrics["num_examples"] == 16
    assert [row[0] for row in read_csv(folder / "per_class.csv")[1:3]] == ["left", "right"]
    assert_picture(folder / "worst_predictions.png")


def test_a_thousand_classes_print_the_worst_rows_and_draw_confused_pairs(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"class{i}" for i in range(1000)]
    labels = np.repeat(np.arange(1000), 3)
    scores = rng.random((3000, 1000)).astype(np.float32)
    scores[np.arange(3000), labels] += 0.5 * rng.random(3000) + 0.6  # mostly right
    scores[:6, 7] = 5.0  # class 0's and 1's examples taken for class 7: the top confused pairs
    mistakes = ConfidentMistakes()
    for start in range(0, 3000, 1000):
        mistakes.add(scores[start:start + 1000], labels[start:start + 1000],
                     np.zeros((1000, 4, 4, 3), np.uint8))
    report = Report(tmp_path)
    report_classes(report, scores, labels, names, mistakes)
    text = report.text().splitlines()
    assert text[1] == "(the 25 worst of 1000 rows by F1; 975 left out, every row in per_class.csv)"
    assert len(text) == 3 + 25 + 3  # title, note, header, rows, rule and the two averages
    assert len(read_csv(tmp_path / "per_class.csv")) == 1 + 1000 + 2
    assert matrix_of(tmp_path / "confusion_matrix.csv").sum() == 3000
    assert not (tmp_path / "confusion_matrix.png").exists()
    pairs = read_csv(tmp_path / "confused_pairs.csv")
    assert pairs[0] == ["true", "predicted", "count", "share_of_true"] and len(pairs) == 1 + 20
    assert pairs[1][:3] == ["class0", "class7", "3"] and pairs[2][:3] == ["class1", "class7", "3"]
    assert float(pairs[1][3]) == 1.0
    for name in ("confused_pairs.png", "pr_curves.png", "worst_predictions.png"):
        assert_picture(tmp_path / name)


def test_running_top_k_keeps_what_a_full_sort_would():
    rng = np.random.default_rng(1)
    scores, labels = rng.random((500, 5)), rng.integers(0, 5, 500)
    pictures = np.arange(500)[:, None, None, None] * np.ones((1, 2, 2, 3), np.int64)
    kept = ConfidentMistakes(size=7)
    for start in range(0, 500, 64):
        kept.add(scores[start:start + 64], labels[start:start + 64], pictures[start:start + 64])
    wrong = np.flatnonzero(scores.argmax(1) != labels)
    expected = wrong[np.argsort(-scores[wrong].max(1), kind="stable")][:7]
    assert [k[1] for k in kept.kept] == expected.tolist() and kept.wrong == len(wrong)
    assert [int(k[5][0, 0, 0]) for k in kept.kept] == expected.tolist()  # each its own picture

    masks = rng.integers(0, 3, (40, 6, 6))
    masks[3] = 255  # nothing labelled: never among the worst
    predictions = np.where(rng.random((40, 6, 6)) < 0.7, masks % 3, rng.integers(0, 3, (40, 6, 6)))
    ious = per_image_iou(masks, predictions, 3)
    assert np.isnan(ious[3])
    worst = WorstImages(3, size=5)
    for start in range(0, 40, 8):
        worst.add(np.zeros((8, 6, 6, 3), np.uint8), masks[start:start + 8], predictions[start:start + 8])
    assert [k[1] for k in worst.kept] == np.argsort(np.nan_to_num(ious, nan=2), kind="stable")[:5].tolist()

    # A few stray pixels of a class (IoU 0) do not make a near-perfect image one of the worst.
    truth = np.zeros((2, 64, 64), np.int64)
    truth[:, 10:40, 10:40] = 1
    truth[:, 50, 50:53] = 2  # 3 pixels of class 2, not predicted
    prediction = np.where(truth == 2, 0, truth)
    prediction[:, 60, 60:62] = 3  # 2 pixels of class 3, not true
    prediction[1, 10:40, 10:25] = 0  # image 1 misses half its object
    near_perfect, half_missed = per_image_iou(truth, prediction, 4)
    assert near_perfect > 0.99 and half_missed < 0.8


def test_curves_and_pairs_by_hand(tmp_path):
    # one-vs-rest on three examples: class 0 ranked 1st and 3rd -> precision 1, 1, 2/3 at recall 1/2, 1/2, 1
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    curves = one_vs_rest_curves(scores, np.array([0, 1, 0]), ["a", "b"])
    recall, precision, ap = curves["a"]
    assert precision[recall <= 0.5] == pytest.approx(1.0) and precision[recall > 0.5] == pytest.approx(2 / 3)
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert confused_pairs(np.array([[5, 2, 0], [0, 1, 4], [1, 0, 0]]), ["x", "y", "z"]) == [
        ("y", "z", 4, 0.8), ("x", "y", 2, 2 / 7), ("z", "x", 1, 1.0)]
    report = Report(None)  # no folder: nothing written, nothing fails
    save_gallery(report, [np.zeros((8, 8, 3), np.uint8)], ["x"], title="t")
    report.table("t", ["class", "value"], [["a", 1.0]])
    assert report.files() == [] and report.text().splitlines()[-1].split() == ["a", "1.0000"]


def test_train_reports_the_last_model_in_eval_with_the_table_before_metrics(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "train", "digits_cnn", "train.epochs=1", "train.verbose=0", "--output", tmp_path)
    assert code == 0
    lines = out.splitlines()
    table = lines.index("per class (360 examples)")
    metrics_line = next(i for i, line in enumerate(lines) if line.startswith("metrics: "))
    assert table < metrics_line and lines[metrics_line + 1].startswith("run directory")
    metrics = json.loads(lines[metrics_line][len("metrics: "):])
    matrix = matrix_of(tmp_path / "eval" / "confusion_matrix.csv")
    assert matrix.sum() == metrics["num_examples"] == 360
    assert np.trace(matrix) / 360 == pytest.approx(metrics["accuracy"])
    assert {"per_class.csv", "pr_curves.png", "worst_predictions.png"} <= {p.name for p in (tmp_path / "eval").iterdir()}
