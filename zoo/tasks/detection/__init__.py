"""Object detection: anchors + focal loss (RetinaNet) and COCO-standard evaluation (pycocotools).

Canonical example: {"image": uint8 (H, W, 3), "boxes": float32 (n, 4) yxyx_norm, "labels": int32
(n,)}, optionally "crowd": bool (n,) (COCO iscrowd / VOC difficult: dropped from training, and
"ignore" regions in evaluation) and "area": float32 (n,) (COCO's annotation area in original
pixels, used for the small / medium / large split; default: the box area).

Data flow (see docs/detection.md); one job per module:

* anchors: the model owns its anchor grid (its `AnchorOutputs` layer, zoo/models/layers.py,
  records it: `model_anchor_config`); the pipeline calls
  `Detection.attach(model)` once the model is built or loaded, before it makes datasets, and
  the training targets are matched to exactly those anchors;
* `geometry`: letterbox: the image is scaled by min(H / h, W / w) (aspect kept), placed at the
  top-left corner and zero-padded to the model's (H, W); training adds a random horizontal flip
  (`data.augment.flip`) and scale jitter (`data.augment.scale_jitter`: that scale times a
  random factor, then a random (H, W) crop or padding); boxes are clipped to the visible image
  and dropped when less than a quarter of them (or less than a pixel) remains;
* targets: the ground truth, padded to `data.max_boxes`, is matched to the model's anchors in
  tf.data (`zoo.data.boxes.match_anchors`, IoU >= 0.5 positive, < 0.4 background, ignored in
  between, plus each box's best anchors) -> (num_anchors, 5) rows [ty, tx, th, tw, class];
  `targets.detection_targets` makes the same from NumPy images and boxes, for plain `model.fit`;
* `losses`: `RetinaNetLoss` = sigmoid focal loss (alpha 0.25, gamma 2) over non-ignored
  anchors + smooth-L1 (beta 0.11) or GIoU box loss over positives, both divided by the positives;
* `evaluation` (`make_eval_dataset` + `evaluate`): `detector(model)`, one inference graph that
  decodes, keeps the top 1000 anchors and runs per-class NMS (0.5) with score >= 0.05 and at
  most 100 detections, run through `model.predict`; boxes mapped back to original-image pixels,
  then pycocotools' COCOeval: mAP (AP@[.5:.95]), mAP50, mAP75, mAP_small / _medium / _large (-1
  where the eval set has no object of that size, COCO's convention), AP/<class name>,
  num_examples;
* `report`: with a `zoo.report.Report`, the per-class table, PR and F1 curves, confusion matrix
  and worst predictions, from that COCOeval and one look at each image as evaluation streams;
* `drawing`: the pictures of `zoo predict`.

`sources`: `tfds` (a "+"-joined list of datasets, see `load_tfds_detection`), `synthetic`
(`shapes_detection`) and `coco` (`<path>/annotations/instances_<split>.json` + `<path>/<split>/`).
Category ids: whatever the data uses; `DatasetInfo.extras["category_ids"][i]` is the id of
class index i (saved to the run's dataset.json), used for predictions and evaluation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from zoo.config import DataConfig
from zoo.data import DatasetInfo, to_rgb
from zoo.data import boxes as bx
from zoo.errors import RecipeError
from zoo.lazy import tf
from zoo.tasks.base import Source, Task, predict_chunks, register_task
from zoo.tasks.detection.geometry import anchor_targets, canonical_objects, model_anchor_config, place
from zoo.tasks.detection.sources import category_extras, tfds_object_features

DISPLAY_THRESHOLD = 0.3  # the detections `zoo predict` lists and draws, and a predictor returns


@dataclass
class DetectionData(DataConfig):
    max_boxes: int = 100  # training ground truth padded (or cut) to this many boxes per image


def category_ids(info: DatasetInfo) -> list:
    """The dataset id of each class index (`extras["category_ids"]`; default: the indices)."""
    return info.extras.get("category_ids") or list(range(info.num_classes))


@register_task
class Detection(Task):
    name = "detection"
    sources = {"coco": Source("zoo.tasks.detection.sources:load_coco", ("path",)),
               "tfds": Source("zoo.tasks.detection.sources:load_tfds_detection", ("name",)),
               "synthetic": Source("zoo.tasks.detection.sources:load_synthetic_detection", ("name",))}
    data_config = DetectionData
    min_classes = 1  # a one-class detector (e.g. people) is a real task
    main_metric = "mAP"  # COCO AP@[.5:.95]: best.keras, early stopping, history.csv val_mAP
    export_limits = {("onnx", "float16"): "onnxconverter-common's float16 conversion breaks the NMS loop's "
                                          "types; use --format litert --dtype float16"}

    # The anchor grid of the model last passed to `attach`. Tasks are singletons (TASKS): the
    # pipeline attaches its model right before it makes that model's datasets, and `prepare`
    # reads the grid when tf.data traces it (while `make_dataset` runs), so every dataset keeps
    # the grid of the model it was made for.
    _anchors: bx.AnchorConfig | None = None

    # -- data ----------------------------------------------------------------
    def from_tfds(self, tfds_info):
        image_key, objects_key, bbox, label, crowd, area, label_feature = tfds_object_features(tfds_info)

        def adapt(example):
            objects = example[objects_key]
            # Mocked TFDS data gives the sequence fields different lengths: keep the common part.
            keys = [bbox, label] + [k for k in (crowd, area) if k]
            n = tf.reduce_min([tf.shape(objects[k])[0] for k in keys])
            out = {"image": to_rgb(example[image_key]), "boxes": tf.cast(objects[bbox][:n], tf.float32),
                   "labels": tf.cast(objects[label][:n], tf.int32)}
            if crowd:
                out["crowd"] = tf.cast(objects[crowd][:n], tf.bool)
            if area:
                out["area"] = tf.cast(objects[area][:n], tf.float32)
            return out

        names = list(label_feature.names)
        return adapt, DatasetInfo(len(names), names, extras=category_extras(len(names)))

    def attach(self, model):
        """Record the model's anchor grid: the training targets are matched to these anchors."""
        self._anchors = model_anchor_config(model)

    def anchor_grid(self, recipe) -> bx.AnchorConfig:
        """The attached model's anchor grid, for a recipe of the same input size."""
        config = self._anchors
        if config is None:
            raise RuntimeError("detection: no model attached; call task.attach(model) before "
                               "making datasets (the targets use the model's anchor grid)")
        if list(config.image_size) != list(recipe.data.image_size):
            raise RecipeError(f"data.image_size: {list(recipe.data.image_size)}, but the model's "
                              f"anchor grid is for {config.image_size[0]}x{config.image_size[1]} inputs")
        return config

    def make_dataset(self, split, recipe, training, cache):
        self.anchor_grid(recipe)  # a mismatch is one line here, not an error inside tf.data tracing
        return super().make_dataset(split, recipe, training, cache)

    def prepare(self, example, recipe, info, training):
        """-> (float32 image (H, W, 3), targets (num_anchors, 5)) for fit and validation."""
        image, boxes, labels, crowd, _ = canonical_objects(example)
        keep = tf.logical_not(crowd)
        boxes, labels = tf.boolean_mask(boxes, keep), tf.boolean_mask(labels, keep)
        return anchor_targets(image, boxes, labels, self.anchor_grid(recipe).anchors(),
                              tuple(recipe.data.image_size), recipe.data.max_boxes, training, recipe.data.augment)

    def prepare_eval(self, example, recipe):
        """-> (float32 image, every ground-truth box in original-image pixels, image size)."""
        size = tuple(recipe.data.image_size)
        image, boxes, labels, crowd, area = canonical_objects(example)
        shape = tf.shape(image)
        pixels = bx.normalized_to_pixels(boxes, shape[0], shape[1])
        area = tf.where(area >= 0, area, bx.area(pixels))
        image, _, _ = place(image, boxes, size, False, recipe.data.augment)
        return image, {"boxes": pixels, "labels": labels, "valid": tf.ones_like(crowd),
                       "crowd": crowd, "area": area, "size": shape[:2]}

    def make_eval_dataset(self, split, recipe, validation_dataset):
        """Evaluation batches: ground truth padded per batch (never cut to data.max_boxes)."""
        dataset = split.dataset.map(lambda ex: self.prepare_eval(ex, recipe),
                                    num_parallel_calls=tf.data.AUTOTUNE)
        padding = (0.0, {"boxes": 0.0, "labels": -1, "valid": False, "crowd": False, "area": 0.0,
                         "size": 0})
        return dataset.padded_batch(recipe.data.batch_size, padding_values=padding).prefetch(tf.data.AUTOTUNE)

    # -- model -----------------------------------------------------------------
    def model_num_classes(self, model) -> int:
        return int(model.output_shape[-1]) - 4  # 4 box deltas, then the class logits

    def loss(self, info, **kwargs):
        from zoo.tasks.detection.losses import RetinaNetLoss

        try:
            self._loss = RetinaNetLoss(**kwargs)
        except TypeError as err:
            raise RecipeError(f"train.loss: {err}") from None
        return self._loss

    def metrics(self, info):
        """The loss's two parts, `focal_loss` and `box_loss` (unweighted; loss = focal_loss +
        box_weight x box_loss), of the loss `loss` made last (the pipeline makes it first)."""
        from zoo.tasks.detection.losses import RetinaNetLoss
        from zoo.tasks.loss_parts import LossPart

        loss = getattr(self, "_loss", None) or RetinaNetLoss()
        return [LossPart(loss, "focal", name="focal_loss"), LossPart(loss, "box", name="box_loss")]

    # -- evaluation ------------------------------------------------------------
    def evaluate(self, model, dataset, info, report=None):
        """COCO metrics of `detector(model)` run through `model.predict` chunk by chunk; with a
        `zoo.report.Report`, the detection report too (zoo/tasks/detection/report.py)."""
        from zoo.tasks.detection.evaluation import (coco_detections, coco_evaluator, coco_ground_truth,
                                                    coco_metrics, detector)
        from zoo.tasks.detection.report import DetectionReport

        size = tuple(model_anchor_config(model).image_size)
        ids = category_ids(info)
        extra = None if report is None else DetectionReport(report, info.class_names, ids, size, DISPLAY_THRESHOLD)
        if extra is not None and extra.files:  # the gallery draws on the model's inputs
            dataset = extra.with_pictures(dataset)
        records, detections = [], []
        for found, truths in predict_chunks(detector(model), dataset):
            row = 0  # the image's row in this chunk's outputs
            for truth in truths:
                for i in range(len(truth["size"])):
                    height, width = (int(v) for v in truth["size"][i])
                    valid = truth["valid"][i]
                    records.append((height, width, truth["boxes"][i][valid], truth["labels"][i][valid],
                                    truth["crowd"][i][valid], truth["area"][i][valid]))
                    found_here = coco_detections(found, row, len(records), height, width, size, ids)
                    detections += found_here
                    if extra is not None:
                        extra.add(*records[-1][:5], found_here, truth["picture"][i] if "picture" in truth else None)
                    row += 1
        ground_truth = coco_ground_truth(records, info.class_names, ids)
        evaluator = coco_evaluator(ground_truth, detections)
        metrics = {**coco_metrics(ground_truth, detections, evaluator), "num_examples": len(records)}
        if extra is not None:
            extra.finish(evaluator, metrics)
        return metrics

    # -- export ----------------------------------------------------------------
    def serving_model(self, model, recipe, agnostic_nms: bool = True):
        from zoo.tasks.detection.evaluation import serving_detector

        return serving_detector(model, agnostic_nms)

    def serving_example(self, example, recipe):
        """(image, its ground truth in the image's pixels) for `serving_metrics`."""
        image, boxes, labels, crowd, area = canonical_objects(example)
        shape = tf.shape(image)
        pixels = bx.normalized_to_pixels(boxes, shape[0], shape[1])
        return image, {"boxes": pixels, "labels": labels, "crowd": crowd,
                       "area": tf.where(area >= 0, area, bx.area(pixels)), "size": shape[:2]}

    def serving_metrics(self, outputs, truths, info):
        """COCO metrics of serving outputs ([x0, y0, x1, y1] image pixels), one image each."""
        from zoo.tasks.detection.evaluation import coco_ground_truth, coco_metrics

        ids = category_ids(info)
        records, detections = [], []
        for image_id, (found, truth) in enumerate(zip(outputs, truths), start=1):
            height, width = truth["size"]
            records.append((height, width, truth["boxes"], truth["labels"], truth["crowd"], truth["area"]))
            n = int(found["num_detections"][0])
            for (x0, y0, x1, y1), score, label in zip(found["boxes"][0][:n], found["scores"][0][:n],
                                                      found["classes"][0][:n]):
                if x1 <= x0 or y1 <= y0:  # collapsed to nothing, as `coco_detections` drops
                    continue
                detections.append({"image_id": image_id, "category_id": int(ids[int(label)]),
                                   "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                   "score": float(score)})
        return {**coco_metrics(coco_ground_truth(records, info.class_names, ids), detections),
                "num_examples": len(records)}

    def serving_differences(self, expected, got):
        """Largest gaps between the detections drawn (score >= DISPLAY_THRESHOLD) in `expected`
        and the detection of the same class that overlaps each most in `got` (NMS may order
        equal scores either way, and a score near its threshold may keep or drop a box):
        {"boxes": pixels, "scores", "unmatched": drawn detections whose class `got` lacks}."""
        gaps = {"boxes": 0.0, "scores": 0.0, "unmatched": 0}
        n, m = int(expected["num_detections"][0]), int(got["num_detections"][0])
        candidates = np.asarray(got["boxes"][0][:m], np.float64)
        for box, score, label in zip(expected["boxes"][0][:n], expected["scores"][0][:n], expected["classes"][0][:n]):
            if score < DISPLAY_THRESHOLD:
                continue
            same = np.flatnonzero(np.asarray(got["classes"][0][:m]) == label)
            if not len(same):
                gaps["unmatched"] += 1
                continue
            overlaps = bx.pairwise_iou(tf.constant([box], tf.float32), tf.constant(candidates[same], tf.float32))
            best = same[int(np.argmax(overlaps[0]))]  # IoU reads [x0, y0, x1, y1] as it reads yxyx
            gaps["boxes"] = max(gaps["boxes"], float(np.max(np.abs(candidates[best] - box))))
            gaps["scores"] = max(gaps["scores"], abs(float(got["scores"][0][best]) - float(score)))
        return gaps

    # -- prediction ----------------------------------------------------------------
    # One box per object by default (as KerasHub's detectors; Ultralytics' `agnostic_nms=True`), in
    # `zoo predict`, `zoo.load_predictor` and `zoo export` alike; evaluation keeps COCO's per-class
    # NMS (benchmarks/nms_modes.py: the shipped weights lose 0.03 mAP to agnostic NMS).
    serving_options = {"agnostic_nms": True}
    result_options = {"min_score": DISPLAY_THRESHOLD}
    picture_kind = "detections"

    @property
    def cli_options(self):
        """Every box the graph keeps, for predictions.json."""
        from zoo.tasks.detection.evaluation import SCORE_THRESHOLD

        return {"min_score": SCORE_THRESHOLD}

    def result(self, source, original, outputs, predictor, min_score: float = DISPLAY_THRESHOLD):
        from zoo.tasks.detection.results import Detections

        n = int(outputs["num_detections"][0])
        found = Detections(source, original, predictor.names, outputs["boxes"][0][:n], outputs["scores"][0][:n],
                           outputs["classes"][0][:n])
        return found.keep(min_score)

    def prediction_row(self, result, files, path):
        """The objects of score >= DISPLAY_THRESHOLD listed and drawn (`result` holds them all)."""
        return {**super().prediction_row(result.keep(DISPLAY_THRESHOLD), files, path), "threshold": DISPLAY_THRESHOLD}

    def prediction_record(self, result, path, predictor):
        """The image's COCO results ([x, y, w, h] pixels, with its file name)."""
        ids = category_ids(predictor.info)
        return [{"file_name": str(path), "category_id": int(ids[label]), "category": result.name(label),
                 "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)], "score": float(score)}
                for (x0, y0, x1, y1), score, label in zip(result.boxes, result.scores, result.labels)]

    def finish_predictions(self, records, files):
        """predictions.json: every detection of every image (COCO results)."""
        from zoo.tasks.detection.evaluation import SCORE_THRESHOLD

        rows = [row for record in records for row in record]
        target = files.write_text("predictions.json", json.dumps(rows, indent=1))
        return [{"input": None, "message": (f"all detections (score >= {SCORE_THRESHOLD}, dataset category ids, "
                                            f"COCO [x, y, w, h] pixels): {target}")}]
