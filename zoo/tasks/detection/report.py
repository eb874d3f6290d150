"""The detection report (`zoo evaluate --report`, docs/detection.md), from the COCOeval the
metrics ran and one pass over the images while evaluation streams:

* per class: COCO AP, AP50, AR100 (COCOeval's `eval["precision"]` and `eval["recall"]`, area
  'all', 100 detections; '-' where the eval set has no object of the class), the objects, and
  the score threshold of the best F1 at IoU 0.5 with its precision and recall;
* `pr_curves`: precision against recall at IoU 0.5 per class (COCO's 101 recall points);
* `f1_curve`: F1 against the score threshold at IoU 0.5, per class (up to `F1_CLASSES`) and
  over every object, from COCOeval's per-image matches (`evalImgs`), the best threshold marked:
  the one to deploy with;
* `confusion_matrix`: Ultralytics' detection confusion matrix (`ConfusionMatrix.process_batch`):
  detections above `CONFUSION_SCORE` matched to objects above `CONFUSION_IOU` whatever their
  classes, each once, highest IoU first (a pair of the same class first: `confusion_pairs`); an
  unmatched object counts as predicted 'background', an unmatched detection as true
  'background'; crowd regions are no objects, and an unmatched detection mostly inside one
  (intersection over its area > `CONFUSION_IOU`) no mistake;
* `worst_predictions`: the `GALLERY_IMAGES` images with the most missed objects, then the most
  confident wrong-class or false detection (by the same matching), a running top-K while
  evaluation streams (never every image kept).
"""
from __future__ import annotations

import heapq
import itertools

import numpy as np

from zoo.tasks.detection.evaluation import SCORE_THRESHOLD

CONFUSION_SCORE = 0.25  # Ultralytics' ConfusionMatrix: detections above this confidence ...
CONFUSION_IOU = 0.45  # ... matched to objects above this IoU
GALLERY_IMAGES = 15  # three rows of five
F1_CLASSES = 10  # above this many classes the F1 plot draws only the curve over every object
GALLERY_SIDE = 256  # small images are enlarged (nearest, whole factors) to at least this before drawing
PICTURE_SIDE = 320  # larger model inputs are kept for the gallery scaled down to this (a cell is smaller)
F1_IOU_INDEX = 0  # COCOeval's iouThrs[0] = 0.5
# The score thresholds of the F1 curve: 0.05 (the lowest score evaluation keeps) to 0.99.
THRESHOLDS = np.arange(round(SCORE_THRESHOLD * 100), 100) / 100


def pairwise_iou(a, b, of_a: bool = False) -> np.ndarray:
    """IoU of every [y0, x0, y1, x1] box of `a` (n, 4) with every one of `b` (m, 4) -> (n, m);
    `of_a`: the intersection over the area of the box of `a` instead (COCO's rule for crowds)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 1, 4), np.asarray(b, np.float64).reshape(1, -1, 4)
    high, low = np.minimum(a[..., 2:], b[..., 2:]), np.maximum(a[..., :2], b[..., :2])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    area_a, area_b = np.prod(a[..., 2:] - a[..., :2], -1), np.prod(b[..., 2:] - b[..., :2], -1)
    return inter / np.maximum(area_a if of_a else area_a + area_b - inter, 1e-12)


def confusion_pairs(truth_boxes, truth_labels, boxes, labels) -> tuple[np.ndarray, np.ndarray]:
    """(object indices, detection indices) matched at IoU > CONFUSION_IOU, as Ultralytics matches
    them (each detection once, then each object once, the best pairs first), except that a pair
    of the same class goes before one of another class: an object found by a detection of its
    class is not called confused because a lower-scored detection of another class (per-class
    NMS keeps both) overlaps it a little more; that one is a false detection."""
    iou = pairwise_iou(truth_boxes, boxes)
    truth, found = np.nonzero(iou > CONFUSION_IOU)
    for once in ("detection", "object"):
        order = np.lexsort((-iou[truth, found], truth_labels[truth] != labels[found]))
        truth, found = truth[order], found[order]
        _, first = np.unique(found if once == "detection" else truth, return_index=True)
        truth, found = truth[first], found[first]
    return truth, found


def threshold_curves(scores, hits, objects: int, thresholds=THRESHOLDS) -> dict:
    """Precision, recall and F1 of the detections of score >= each threshold: `scores` and
    `hits` (true positive or not) of the detections that count, `objects` the objects to find."""
    scores, hits = np.asarray(scores, np.float64), np.asarray(hits, bool)
    order = np.argsort(-scores, kind="stable")
    kept = np.searchsorted(-scores[order], -np.asarray(thresholds), side="right")  # score >= t
    true = np.concatenate([[0], np.cumsum(hits[order])])[kept]
    zeros = np.zeros(len(kept))
    precision = np.divide(true, kept, out=zeros.copy(), where=kept > 0)
    recall = true / objects if objects else zeros
    f1 = np.divide(2 * precision * recall, precision + recall, out=zeros.copy(), where=precision + recall > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def matches_at_iou(evaluator, iou_index: int = F1_IOU_INDEX) -> list[tuple]:
    """Per class of COCOeval's `params.catIds`: (scores, true positive or not) of its detections
    at `iouThrs[iou_index]`, area 'all' (those matched to crowd regions left out, as COCO does),
    and its number of objects, from the per-image results `evalImgs`."""
    params = evaluator.params
    images, areas, area = len(params.imgIds), len(params.areaRng), params.areaRngLbl.index("all")
    out = []
    for k in range(len(params.catIds)):
        start = (k * areas + area) * images
        scores, hits, objects = [np.zeros(0)], [np.zeros(0, bool)], 0
        for result in evaluator.evalImgs[start:start + images]:
            if result is None:
                continue
            counts = ~np.asarray(result["dtIgnore"][iou_index], bool)
            scores.append(np.asarray(result["dtScores"], np.float64)[counts])
            hits.append(np.asarray(result["dtMatches"][iou_index])[counts] > 0)
            objects += int(np.count_nonzero(np.asarray(result["gtIgnore"]) == 0))
        out.append((np.concatenate(scores), np.concatenate(hits), objects))
    return out


def best_threshold(curves: dict) -> tuple[float, int] | None:
    """(threshold, index) of the highest F1 (the lowest threshold of equal ones); None if F1 is 0."""
    index = int(np.argmax(curves["f1"]))
    return (float(THRESHOLDS[index]), index) if curves["f1"][index] > 0 else None


class DetectionReport:
    """The detection report of one evaluation: `add` each image as evaluation streams, then
    `finish` with the COCOeval of the metrics."""

    def __init__(self, report, class_names, category_ids, size, display_threshold: float):
        self.report, self.names, self.size = report, list(class_names), tuple(size)
        self.category_ids = [int(c) for c in category_ids]
        self.index = {c: i for i, c in enumerate(self.category_ids)}
        self.display_threshold = display_threshold
        self.files = report.folder is not None  # the confusion matrix and gallery: files only
        shrink = min(1.0, PICTURE_SIDE / max(self.size))
        self.picture_size = tuple(max(1, round(side * shrink)) for side in self.size)
        n = len(self.names)
        self.confusion = np.zeros((n + 1, n + 1), np.int64)  # true x predicted, last 'background'
        self.objects = np.zeros(n, np.int64)
        self.images = 0
        self._worst: list[tuple] = []  # a heap of (badness, -image number, picture data)

    def with_pictures(self, dataset):
        """The batched eval `dataset` with a uint8 `picture` of each model input among its
        targets, for the gallery: at most PICTURE_SIDE pixels long."""
        from zoo.lazy import tf

        def add(images, targets):
            pictures = images
            if self.picture_size != self.size:
                pictures = tf.image.resize(images, self.picture_size, antialias=True)
            return images, {**targets, "picture": tf.cast(tf.clip_by_value(tf.round(pictures), 0, 255), tf.uint8)}

        return dataset.map(add)

    def add(self, height, width, truth_boxes, truth_labels, crowd, detections, picture=None):
        """One image of (height, width): its objects (yxyx pixels, class indices, crowd), its COCO
        `detections`, and optionally its `picture` (`with_pictures`)."""
        self.images += 1
        crowd, truth_boxes = np.asarray(crowd, bool), np.asarray(truth_boxes).reshape(-1, 4)
        crowd_boxes, truth_boxes = truth_boxes[crowd], truth_boxes[~crowd]
        truth_labels = np.asarray(truth_labels)[~crowd]
        np.add.at(self.objects, truth_labels, 1)
        if not self.files:
            return
        confident = [d for d in detections if d["score"] > CONFUSION_SCORE]
        boxes = np.array([[y, x, y + h, x + w] for x, y, w, h in (d["bbox"] for d in confident)]).reshape(-1, 4)
        labels = np.array([self.index[d["category_id"]] for d in confident], np.int64)
        scores = np.array([d["score"] for d in confident])
        truth, found = confusion_pairs(truth_boxes, truth_labels, boxes, labels)
        background = len(self.names)
        missed = np.setdiff1d(np.arange(len(truth_labels)), truth)
        false = np.setdiff1d(np.arange(len(labels)), found)
        if len(crowd_boxes) and len(false):
            false = false[~(pairwise_iou(boxes[false], crowd_boxes, of_a=True) > CONFUSION_IOU).any(axis=1)]
        np.add.at(self.confusion, (truth_labels[truth], labels[found]), 1)
        np.add.at(self.confusion, (truth_labels[missed], background), 1)
        np.add.at(self.confusion, (background, labels[false]), 1)
        wrong = found[labels[found] != truth_labels[truth]]
        badness = len(missed) + float(np.max(scores[np.concatenate([wrong, false])], initial=0.0))
        if picture is None or badness == 0:
            return
        item = (badness, -self.images)
        if len(self._worst) == GALLERY_IMAGES and item <= self._worst[0][:2]:
            return
        caption = self._caption(truth_labels[missed], truth_labels[truth], labels[found], scores[found],
                                labels[false], scores[false])
        # The image's part of the letterboxed input (`to_original_pixels`), in the picture.
        scale = min(self.size[0] / height, self.size[1] / width)
        factors = [max(round(side * scale), 1) / side * shrunk / model
                   for side, shrunk, model in zip((height, width), self.picture_size, self.size)]
        shown = picture[:max(1, round(height * factors[0])), :max(1, round(width * factors[1]))]
        factors = np.tile(factors, 2)
        mistaken = np.isin(np.arange(len(labels)), np.concatenate([wrong, false]))
        drawn = (np.array(shown), truth_boxes * factors, boxes * factors, labels, scores, mistaken)
        entry = (*item, (caption, drawn))
        (heapq.heappush if len(self._worst) < GALLERY_IMAGES else heapq.heapreplace)(self._worst, entry)

    def _caption(self, missed, matched_truth, matched_found, matched_scores, false, false_scores) -> str:
        """What went wrong in one image, a line per kind, the most confident first."""
        def listed(items, most):
            items = sorted(items, key=lambda item: -item[1])
            text = ", ".join(f"{name} {score:.2f}" for name, score in items[:most])
            return text + (f" +{len(items) - most}" if len(items) > most else "")

        lines = []
        if len(missed):
            classes, counts = np.unique(missed, return_counts=True)
            kinds = [f"{n} {self.names[i]}" if n > 1 else self.names[i] for i, n in zip(classes, counts)]
            lines.append("missed " + ", ".join(kinds[:3]) + (f" +{len(kinds) - 3}" if len(kinds) > 3 else ""))
        wrong = [(f"{self.names[t]} as {self.names[f]}", s)
                 for t, f, s in zip(matched_truth, matched_found, matched_scores) if t != f]
        if wrong:
            lines.append("wrong class: " + listed(wrong, 1))
        if len(false):
            lines.append("false: " + listed([(self.names[i], s) for i, s in zip(false, false_scores)], 2))
        return "\n".join(lines)

    # -- the end ---------------------------------------------------------------------------
    def finish(self, evaluator, metrics: dict):
        """The table (and with a folder the files) once every image was added; `evaluator`:
        the metrics' COCOeval (None without detections)."""
        from zoo.report import save_confusion_matrix, save_curves_plot, save_gallery

        curves = self._f1_curves(evaluator)
        self._table(evaluator, metrics, curves)
        if not self.files:
            return
        if evaluator is not None:
            self._pr_curves(evaluator)
        everything = curves.pop(None)
        few = len(self.names) <= F1_CLASSES
        ys = {**({self.names[k]: c["f1"] for k, c in curves.items()} if few else {}), "all classes": everything["f1"]}
        best = best_threshold(everything)
        shown = int(np.argmin(np.abs(THRESHOLDS - self.display_threshold)))
        mark = {"all classes": (best[0], float(everything["f1"][best[1]]))} if best else {}
        mark["zoo predict"] = (self.display_threshold, float(everything["f1"][shown]))
        save_curves_plot(self.report, THRESHOLDS, ys, xlabel="score threshold", ylabel="F1 at IoU 0.5",
                         title=(f"F1 against the score threshold (IoU 0.5): deploy at the best one\n"
                                f"(zoo predict shows score >= {self.display_threshold:g}"
                                f"{'' if few else '; each class: per_class.csv'})"),
                         name="f1_curve", mark=mark)
        save_confusion_matrix(self.report, self.confusion, [*self.names, "background"], what="boxes")
        worst = sorted(self._worst, reverse=True)
        save_gallery(self.report, [self._draw(*drawn) for *_, (_, drawn) in worst],
                     [caption for *_, (caption, _) in worst],
                     title=(f"most missed objects, then most confident mistakes\n(score > {CONFUSION_SCORE:g}, "
                            f"IoU > {CONFUSION_IOU:g}; truth dashed, detections in class colours)"))

    def _f1_curves(self, evaluator) -> dict:
        """{class index: curves, None: over every object} (`threshold_curves`)."""
        if evaluator is None:
            matches = [(np.zeros(0), np.zeros(0, bool), int(n)) for n in self.objects]
        else:
            found = matches_at_iou(evaluator)
            matches = [found[evaluator.params.catIds.index(c)] for c in self.category_ids]
        curves = {k: threshold_curves(*m) for k, m in enumerate(matches)}
        pooled = [np.concatenate([m[i] for m in matches]) for i in (0, 1)]
        curves[None] = threshold_curves(*pooled, sum(m[2] for m in matches))
        return curves

    def _table(self, evaluator, metrics: dict, curves: dict):
        def at_best(curve, objects):
            best = best_threshold(curve)
            if best is None:  # no detection counts: F1 0, or nothing to find at all
                return [0.0 if objects else None, None, None, None]
            return [float(curve["f1"][best[1]]), float(curve["precision"][best[1]]),
                    float(curve["recall"][best[1]]), best[0]]

        rows = []
        for k, name in enumerate(self.names):
            ap, ap50, ar = (None if self.objects[k] == 0 else 0.0,) * 3
            if evaluator is not None:
                ap, ap50, ar = coco_class_scores(evaluator, evaluator.params.catIds.index(self.category_ids[k]))
            rows.append([name, ap, ap50, ar, int(self.objects[k]), *at_best(curves[k], self.objects[k])])
        recall = 0.0 if evaluator is None else float(evaluator.stats[8])
        total = ["all", metrics["mAP"], metrics["mAP50"], recall, int(self.objects.sum()),
                 *at_best(curves[None], self.objects.sum())]
        self.report.table(
            f"detection, {self.images} images: COCO AP@[.5:.95], AP50 and AR@100 per class; the best F1 at\n"
            f"IoU 0.5 and the score threshold that gives it: deploy there (zoo predict shows score >= "
            f"{self.display_threshold:g})",
            ["class", "AP", "AP50", "AR100", "objects", "best F1", "precision", "recall", "at score"],
            rows, totals=[total])

    def _pr_curves(self, evaluator):
        from zoo.report import save_pr_curves

        precision, recall = evaluator.eval["precision"], evaluator.params.recThrs
        area = evaluator.params.areaRngLbl.index("all")
        curves = {}
        for k, name in enumerate(self.names):
            column = evaluator.params.catIds.index(self.category_ids[k])
            p = precision[F1_IOU_INDEX, :, column, area, -1]
            if (p > -1).any():  # a class without objects has no curve
                curves[name] = (recall, p, float(p.mean()))
        save_pr_curves(self.report, curves, title="precision-recall at IoU 0.5 (COCO, 101 recall points; AP50)")

    def _draw(self, picture, truth_boxes, boxes, labels, scores, mistaken) -> np.ndarray:
        """The picture (small ones enlarged) with its detections (`draw_detections`; the `mistaken`
        ones, false or of the wrong class, drawn last so another box never hides the caption's)
        and, over them, its objects as dashed black and white boxes."""
        from PIL import ImageDraw

        from zoo.tasks.detection.drawing import draw_detections

        factor = max(1, -(-GALLERY_SIDE // max(1, min(picture.shape[:2]))))
        image = np.repeat(np.repeat(picture, factor, 0), factor, 1)
        for group in (~mistaken, mistaken):
            image = draw_detections(np.asarray(image), [
                ((x0 * factor, y0 * factor, x1 * factor, y1 * factor), self.names[label], score, label)
                for (y0, x0, y1, x1), label, score in zip(boxes[group], labels[group], scores[group])])
        draw = ImageDraw.Draw(image)
        for y0, x0, y1, x1 in truth_boxes * factor:
            dashed_box(draw, x0, y0, x1, y1)
        return np.asarray(image)


def coco_class_scores(evaluator, column: int) -> tuple:
    """(AP@[.5:.95], AP50, AR@100) of COCOeval's category `column`, area 'all'; None each where
    the eval set has no object of it (COCO's -1)."""
    area = evaluator.params.areaRngLbl.index("all")
    precision = evaluator.eval["precision"][:, :, column, area, -1]
    recall = evaluator.eval["recall"][:, column, area, -1]

    def mean(values):
        values = values[values > -1]
        return float(values.mean()) if values.size else None

    return mean(precision), mean(precision[F1_IOU_INDEX]), mean(recall)


def dashed_box(draw, x0, y0, x1, y1, dash: float = 4.0):
    """A rectangle of alternating black and white dashes: visible on any picture, and unlike
    any class colour."""
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    for (ax, ay), (bx, by) in itertools.pairwise(corners):
        steps = max(1, int(max(abs(bx - ax), abs(by - ay)) // dash))
        for i in range(steps):
            start, end = i / steps, (i + 1) / steps
            draw.line([(ax + (bx - ax) * start, ay + (by - ay) * start), (ax + (bx - ax) * end, ay + (by - ay) * end)],
                      fill=(0, 0, 0) if i % 2 == 0 else (255, 255, 255), width=1)
