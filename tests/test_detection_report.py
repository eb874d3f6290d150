"""The detection report (issue 21, item 2): per-class COCO table, PR and F1 curves, the
Ultralytics-style confusion matrix and the worst-predictions gallery, checked on the shipped
`retinanet_small.shapes` weights and, for the F1 threshold, against brute force on hand-made boxes."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from zoo.report import Report
from zoo.tasks.detection.evaluation import coco_evaluator, coco_ground_truth, coco_metrics
from zoo.tasks.detection.report import (CONFUSION_IOU, CONFUSION_SCORE, THRESHOLDS, DetectionReport,
                                        confusion_pairs, matches_at_iou, threshold_curves)

NAMES = ["circle", "square"]
IDS = [3, 7]  # dataset category ids that are not the class indices


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def iou_xywh(a, b) -> float:
    """IoU of two [x, y, w, h] boxes, written out plainly."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# Two 64x64 images; truth [x, y, w, h] per class index, detections (class index, box, score).
TRUTH = [{0: [[0, 0, 10, 10]], 1: [[20, 20, 10, 10]]},
         {0: [[5, 5, 20, 20]], 1: [[40, 40, 10, 10]]}]
DETECTIONS = [[(0, [0, 0, 10, 10], 0.9),    # the circle, exactly
               (0, [1, 1, 10, 10], 0.6),    # the same circle again: false
               (1, [21, 21, 10, 10], 0.4),  # the square, IoU 0.68
               (1, [45, 5, 10, 10], 0.7)],  # nothing there: false
              [(0, [7, 7, 20, 20], 0.35),   # the circle, IoU 0.68
               (1, [46, 46, 10, 10], 0.8),  # IoU 0.19 with the square: false, the square missed
               (0, [50, 0, 8, 8], 0.2)]]    # nothing there: false


def hand_made():
    records = [(64, 64, np.array([[y, x, y + h, x + w] for k in sorted(t) for x, y, w, h in t[k]], np.float32),
                np.array([k for k in sorted(t) for _ in t[k]]), np.zeros(2, bool), np.full(2, 100.0))
               for t in TRUTH]
    detections = [{"image_id": i + 1, "category_id": IDS[k], "bbox": box, "score": score}
                  for i, found in enumerate(DETECTIONS) for k, box, score in found]
    return records, detections


def brute_force_f1(threshold: float) -> tuple[float, float, float]:
    """(precision, recall, F1) at IoU 0.5 of the detections of score >= threshold: per image and
    class, most confident first, each takes the best still free object of its class."""
    true = kept = objects = 0
    for truth, found in zip(TRUTH, DETECTIONS):
        for k in (0, 1):
            free = list(truth.get(k, []))
            objects += len(free)
            for _, box, _ in sorted([d for d in found if d[0] == k and d[2] >= threshold], key=lambda d: -d[2]):
                kept += 1
                overlaps = [iou_xywh(box, t) for t in free]
                if overlaps and max(overlaps) >= 0.5:
                    free.pop(int(np.argmax(overlaps)))
                    true += 1
    precision = true / kept if kept else 0.0
    recall = true / objects
    return precision, recall, 2 * precision * recall / (precision + recall) if true else 0.0


def test_f1_against_the_score_threshold_is_the_brute_force_count():
    records, detections = hand_made()
    ground_truth = coco_ground_truth(records, NAMES, IDS)
    evaluator = coco_evaluator(ground_truth, detections)
    matches = matches_at_iou(evaluator)
    pooled = [np.concatenate([m[i] for m in matches]) for i in (0, 1)]
    curves = threshold_curves(*pooled, sum(m[2] for m in matches))
    expected = np.array([brute_force_f1(t) for t in THRESHOLDS])
    np.testing.assert_allclose(curves["precision"], expected[:, 0])
    np.testing.assert_allclose(curves["recall"], expected[:, 1])
    np.testing.assert_allclose(curves["f1"], expected[:, 2])
    best = THRESHOLDS[int(np.argmax(expected[:, 2]))]
    # Above 0.2 and up to 0.35: 3 of the 4 objects found by 6 detections, F1 0.6; below, the false 0.2 too.
    assert best == pytest.approx(0.21) and expected[:, 2].max() == pytest.approx(0.6)

    # The table says the same: per class and over every object, the best threshold and its F1.
    report = Report(None)
    extra = DetectionReport(report, NAMES, IDS, (64, 64), 0.3)
    for height, width, boxes, labels, crowd, _ in records:
        extra.add(height, width, boxes, labels, crowd, [])
    extra.finish(evaluator, coco_metrics(ground_truth, detections, evaluator))
    lines = report.text().splitlines()
    total = next(line for line in lines if line.startswith("all")).split()
    assert total[4:] == ["4", "0.6000", "0.5000", "0.7500", "0.2100"]
    circle = next(line for line in lines if line.startswith("circle")).split()
    assert circle[4:] == ["2", "0.8000", "0.6667", "1.0000", "0.2100"]  # both found; the 0.6 twin false


def test_confusion_pairs_match_each_object_and_detection_once_same_class_first():
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float64)  # yxyx
    labels = np.array([0, 1])
    boxes = np.array([[0, 0, 10, 11],    # object 0's class-1 twin, IoU 0.91
                      [0, 0, 10, 12],    # object 0 in its class, IoU 0.83: preferred
                      [20, 20, 30, 30],  # object 1, exactly, in class 0: confused
                      [21, 21, 30, 30]])  # object 1 again, class 0: left over
    found = np.array([1, 0, 0, 0])
    matched_truth, matched_found = confusion_pairs(truth, labels, boxes, found)
    assert sorted(zip(matched_truth.tolist(), matched_found.tolist())) == [(0, 1), (1, 2)]


def test_no_detection_at_all_still_reports(tmp_path):
    """A model that finds nothing: zero scores, every object 'missed' in the matrix, no crash."""
    records, _ = hand_made()
    report = Report(tmp_path)
    extra = DetectionReport(report, NAMES, IDS, (64, 64), 0.3)
    for height, width, boxes, labels, crowd, _ in records:
        extra.add(height, width, boxes, labels, crowd, [], np.zeros((64, 64, 3), np.uint8))
    extra.finish(None, coco_metrics(coco_ground_truth(records, NAMES, IDS), []))
    matrix = np.array([row[1:] for row in read_csv(tmp_path / "confusion_matrix.csv")[1:]], int)
    assert matrix.tolist() == [[0, 0, 2], [0, 0, 2], [0, 0, 0]]
    assert read_csv(tmp_path / "per_class.csv")[-1][:6] == ["all", "0.0000", "0.0000", "0.0000", "4", "0.0000"]
    assert (tmp_path / "worst_predictions.png").exists() and not (tmp_path / "pr_curves.png").exists()


def independent_confusion_total(seen) -> tuple[int, int]:
    """(objects, detections above CONFUSION_SCORE left unmatched) of the images `seen`, with the
    matching rule written as plain loops: each detection picks its best object (IoU >
    CONFUSION_IOU, its own class before others, then IoU), then each object keeps the best of
    the detections that picked it. (shapes: category id = class index)"""
    objects = unmatched = 0
    for truth_boxes, truth_labels, crowd, detections in seen:
        truth = [(b, int(k)) for b, k, c in zip(truth_boxes, truth_labels, crowd) if not c]
        confident = [d for d in detections if d["score"] > CONFUSION_SCORE]
        objects += len(truth)
        picked = {}
        for j, d in enumerate(confident):
            x, y, w, h = d["bbox"]
            best = None
            for i, ((y0, x0, y1, x1), k) in enumerate(truth):
                overlap = iou_xywh([x, y, w, h], [x0, y0, x1 - x0, y1 - y0])
                key = (d["category_id"] != k, -overlap)
                if overlap > CONFUSION_IOU and (best is None or key < best[0]):
                    best = (key, i)
            if best is not None:
                picked.setdefault(best[1], []).append((best[0], j))
        unmatched += len(confident) - len(picked)  # one detection kept per picked object
    return objects, unmatched


def test_shipped_weights_report_files_shapes_and_confusion_identity(tmp_path, capsys, monkeypatch):
    seen = []
    add = DetectionReport.add

    def spy(self, height, width, boxes, labels, crowd, detections, picture=None):
        seen.append((np.array(boxes), np.array(labels), np.array(crowd), list(detections)))
        return add(self, height, width, boxes, labels, crowd, detections, picture)

    monkeypatch.setattr(DetectionReport, "add", spy)
    folder = tmp_path / "report"
    code, out, err = run_cli(capsys, "evaluate", "shapes_retinanet", "--weights", "pretrained", "data.eval_size=32",
                             "--report", folder)
    assert code == 0, err
    lines = out.strip().splitlines()
    metrics = json.loads(lines[-1])  # the JSON line stays last, the table before it
    table = lines.index(next(line for line in lines if line.startswith("class ")))
    assert [line.split()[0] for line in lines[table + 1:table + 4]] == ["circle", "square", "triangle"]
    assert len(seen) == metrics["num_examples"] == 32

    per_class = read_csv(folder / "per_class.csv")
    assert per_class[0] == ["class", "AP", "AP50", "AR100", "objects", "best F1", "precision", "recall", "at score"]
    assert [row[0] for row in per_class[1:]] == ["circle", "square", "triangle", "all"]
    assert float(per_class[-1][1]) == pytest.approx(metrics["mAP"], abs=1e-4)
    assert float(per_class[1][1]) == pytest.approx(metrics["AP/circle"], abs=1e-4)
    pr = read_csv(folder / "pr_curves.csv")
    assert pr[0] == ["class", "recall", "precision"] and len(pr) == 1 + 3 * 101
    f1 = read_csv(folder / "f1_curve.csv")
    assert f1[0] == ["score threshold", "circle", "square", "triangle", "all classes"]
    assert len(f1) == 1 + len(THRESHOLDS)

    rows = read_csv(folder / "confusion_matrix.csv")
    assert rows[0][1:] == [row[0] for row in rows[1:]] == ["circle", "square", "triangle", "background"]
    matrix = np.array([row[1:] for row in rows[1:]], int)
    objects, unmatched = independent_confusion_total(seen)
    assert matrix.shape == (4, 4) and matrix.sum() == objects + unmatched
    assert matrix[:3].sum() == objects == int(per_class[-1][4])  # every object once, in its true row
    assert matrix[3].sum() == unmatched and matrix[3, 3] == 0
    for name in ("pr_curves", "f1_curve", "confusion_matrix", "worst_predictions"):
        with Image.open(folder / f"{name}.png") as picture:
            assert min(picture.size) > 300


def test_gallery_pictures_of_large_inputs_are_the_image_part_scaled_down():
    """A 480x640 image letterboxed into a 640x640 input: the gallery keeps the input at 320x320,
    the image's part of it (240x320), and the boxes halved onto it."""
    import tensorflow as tf

    extra = DetectionReport(Report(None), ["box"], [1], (640, 640), 0.3)
    extra.files = True  # what a report folder sets: the gallery's pictures are kept
    image = np.zeros((1, 640, 640, 3), np.float32)
    image[0, 100:200, 300:420] = 250  # the object, [y0, x0, y1, x1] [100, 300, 200, 420]
    dataset = tf.data.Dataset.from_tensors((image, {"size": np.array([[480, 640]])}))
    inputs, targets = next(extra.with_pictures(dataset).as_numpy_iterator())
    assert inputs.shape == (1, 640, 640, 3) and targets["picture"].shape == (1, 320, 320, 3)
    missed = {"image_id": 1, "category_id": 1, "bbox": [150, 300, 100, 50], "score": 0.9}  # [x, y, w, h]
    extra.add(480, 640, np.array([[100, 300, 200, 420]]), np.array([0]), np.zeros(1, bool), [missed],
              targets["picture"][0])
    ((_, _, (caption, (picture, truth, boxes, _, _, mistaken))),) = extra._worst
    assert picture.shape == (240, 320, 3) and picture[51:99, 151:209].min() >= 240 and picture[:45].max() == 0
    np.testing.assert_allclose(truth, [[50, 150, 100, 210]])
    np.testing.assert_allclose(boxes, [[150, 75, 175, 125]])
    assert caption == "missed box\nfalse: box 0.90" and mistaken.tolist() == [True]  # drawn last
