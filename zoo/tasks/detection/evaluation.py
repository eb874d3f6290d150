"""Detection inference and COCO evaluation.

* `detector(model)`: one inference graph per model: the detector's raw outputs (B, A, 4 + C)
  decoded against its own anchor grid, the `PRE_NMS_TOP_K` best-scoring anchors kept, then
  per-class NMS (`zoo.data.boxes.postprocess`) (IoU 0.5, score >= `SCORE_THRESHOLD`, at most `MAX_DETECTIONS`), all inside
  the graph: `detector(model).predict(images)` returns the padded detections only.
* `coco_ground_truth` / `coco_detections` / `coco_metrics`: COCO-format ground truth and
  results in original-image pixels, scored with pycocotools' COCOeval (bbox); `coco_evaluator`
  is that COCOeval, which the detection report (report.py) reads too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import weakref

import keras
import numpy as np

from zoo import serving_ops
from zoo.data import boxes as bx
from zoo.data.resize import resize_images
from zoo.lazy import tf
from zoo.tasks.detection.geometry import (letterbox_scale, model_anchor_config, scaled_size,
                                          to_original_pixels)

SCORE_THRESHOLD = 0.05  # detections kept for evaluation and predictions.json (COCO practice)
IOU_THRESHOLD = 0.5  # per-class NMS
# Class-agnostic NMS (`agnostic_nms`): one box per place whatever its class. YOLOv5's IoU for
# it, a little below the per-class 0.5, so two boxes of one object at IoU 0.45-0.5 become one.
AGNOSTIC_IOU_THRESHOLD = 0.45
MAX_DETECTIONS = 100  # per image (COCO's maxDets)
PRE_NMS_TOP_K = 1000  # anchors kept, by their best class score, before NMS


@keras.saving.register_keras_serializable(package="zoo")
class DecodeDetections(keras.layers.Layer):
    """Raw detector outputs (B, A, 4 + C) -> padded post-NMS detections, a dict of
    boxes (B, D, 4) yxyx model-input pixels, scores (B, D), classes (B, D) int32 and
    num_detections (B,) int32, D = `max_detections` (`zoo.data.boxes.postprocess`). NMS per
    class, or over all classes with `agnostic` (IoU `iou_threshold`, default by the mode).

    Inference code, not model code: TensorFlow ops (top-k, padded NMS), no XLA; on the other
    backends `zoo.serving_ops.postprocess`, compiled with the model.
    """

    def __init__(self, anchor_config: dict, num_classes: int, score_threshold=SCORE_THRESHOLD,
                 iou_threshold=None, max_detections=MAX_DETECTIONS,
                 pre_nms_top_k=PRE_NMS_TOP_K, agnostic=False, **kwargs):
        kwargs["dtype"] = "float32"  # never autocast the raw outputs (mixed precision)
        super().__init__(**kwargs)
        # TensorFlow's NMS is a data-dependent loop: plain graph mode; the keras.ops one compiles
        self.supports_jit = not serving_ops.is_tensorflow()
        self.anchor_config = dict(anchor_config)
        self.num_classes = int(num_classes)
        self.score_threshold = float(score_threshold)
        self.agnostic = bool(agnostic)
        default_iou = AGNOSTIC_IOU_THRESHOLD if self.agnostic else IOU_THRESHOLD
        self.iou_threshold = float(default_iou if iou_threshold is None else iou_threshold)
        self.max_detections = int(max_detections)
        self.pre_nms_top_k = int(pre_nms_top_k)
        self._anchors = bx.AnchorConfig.from_dict(self.anchor_config).anchors()

    def call(self, outputs):
        if not serving_ops.is_tensorflow():
            return serving_ops.postprocess(outputs, self._anchors, self.num_classes, self.anchor_config["image_size"],
                                           self.score_threshold, self.iou_threshold, self.max_detections,
                                           self.pre_nms_top_k, self.agnostic)
        # The model's flattening reshape leaves the anchor axis unknown inside a traced graph
        # (a reshape, not tf.ensure_shape, which LiteRT has no builtin for).
        outputs = tf.reshape(outputs, [-1, len(self._anchors), 4 + self.num_classes])
        return bx.postprocess(outputs, self._anchors, self.num_classes, self.anchor_config["image_size"],
                              self.score_threshold, self.iou_threshold, self.max_detections,
                              self.pre_nms_top_k, self.agnostic)

    def compute_output_spec(self, outputs):
        batch, size = outputs.shape[0], self.max_detections
        return {"boxes": keras.KerasTensor((batch, size, 4), "float32"),
                "scores": keras.KerasTensor((batch, size), "float32"),
                "classes": keras.KerasTensor((batch, size), "int32"),
                "num_detections": keras.KerasTensor((batch,), "int32")}

    def get_config(self):
        config = {**super().get_config(), "anchor_config": self.anchor_config,
                  "num_classes": self.num_classes, "score_threshold": self.score_threshold,
                  "iou_threshold": self.iou_threshold, "max_detections": self.max_detections,
                  "pre_nms_top_k": self.pre_nms_top_k, "agnostic": self.agnostic}
        config.pop("dtype", None)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class Letterbox(keras.layers.Layer):
    """uint8 images (B, H, W, 3), any H and W -> float32 (B, *size, 3): `place`'s letterbox
    (scaled to fit, aspect kept, top-left, zero padding) for a batch of one size."""

    def __init__(self, size, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.size = [int(s) for s in size]

    def call(self, images):
        if not serving_ops.is_tensorflow():
            scaled = serving_ops.letterbox_size(*images.shape[1:3], self.size)
            out = serving_ops.resize_images(images, scaled)
            return keras.ops.pad(out, [[0, 0], [0, self.size[0] - scaled[0]], [0, self.size[1] - scaled[1]], [0, 0]])
        shape = tf.shape(images)
        scaled = scaled_size(shape[1], shape[2], letterbox_scale(shape[1], shape[2], self.size))
        out = resize_images(tf.cast(images, tf.float32), tf.stack(scaled), portable=True)
        out = tf.pad(out, [[0, 0], [0, self.size[0] - scaled[0]], [0, self.size[1] - scaled[1]], [0, 0]])
        out.set_shape([images.shape[0], *self.size, 3])
        return out

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, 3)

    def get_config(self):
        config = {**super().get_config(), "size": self.size}
        config.pop("dtype", None)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class InputPixelBoxes(keras.layers.Layer):
    """[`DecodeDetections` boxes (B, D, 4) yxyx in the letterboxed input of `size`, the
    images (B, H, W, 3)] -> boxes [x0, y0, x1, y1] in the images' pixels, clipped to them
    (`to_original_pixels` inside the graph)."""

    def __init__(self, size, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.size = [int(s) for s in size]

    def call(self, boxes, images):
        if not serving_ops.is_tensorflow():
            height, width = images.shape[1:3]
            new_h, new_w = serving_ops.letterbox_size(height, width, self.size)
            sy, sx = np.float32(new_h) / np.float32(height), np.float32(new_w) / np.float32(width)
            y0, x0, y1, x1 = (boxes[..., i] for i in range(4))
            xyxy = keras.ops.stack([x0 / sx, y0 / sy, x1 / sx, y1 / sy], -1)
            return keras.ops.minimum(keras.ops.maximum(xyxy, 0.0), np.float32([width, height, width, height]))
        shape = tf.shape(images)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        new_h, new_w = scaled_size(shape[1], shape[2], letterbox_scale(shape[1], shape[2], self.size))
        sy, sx = tf.cast(new_h, tf.float32) / height, tf.cast(new_w, tf.float32) / width
        y0, x0, y1, x1 = tf.unstack(boxes, axis=-1)
        xyxy = tf.stack([x0 / sx, y0 / sy, x1 / sx, y1 / sy], -1)
        return tf.minimum(tf.maximum(xyxy, 0.0), tf.stack([width, height, width, height]))

    def compute_output_shape(self, boxes_shape, images_shape):
        return boxes_shape

    def get_config(self):
        config = {**super().get_config(), "size": self.size}
        config.pop("dtype", None)
        return config


def serving_detector(model, agnostic_nms: bool = True) -> keras.Model:
    """The detection serving graph (`zoo predict`, `zoo.load_predictor`, `zoo export`): uint8
    `images` of any size -> `boxes` (B, D, 4) [x0, y0, x1, y1] in the images' pixels, `scores`,
    `classes` and `num_detections`, after the letterbox, the model and `DecodeDetections` (the
    graph evaluation runs, but by default with `agnostic_nms`: NMS over all classes)."""
    from zoo.serving import image_input

    size = model_anchor_config(model).image_size
    images = image_input()
    decoded = detector(model, agnostic_nms)(Letterbox(size, name="letterbox")(images))
    boxes = InputPixelBoxes(size, name="input_pixel_boxes")(decoded["boxes"], images)
    return keras.Model(images, {**decoded, "boxes": boxes}, name=f"{model.name}_serving")


# Built once per model and NMS mode. The detector shares the model's layers (built from model.inputs and
# model.outputs), not the model object, so the entry goes when the model does.
_DETECTORS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def detector(model, agnostic_nms: bool = False) -> keras.Model:
    """The inference graph of a zoo detector: images (B, H, W, 3) -> the padded detections
    of `DecodeDetections` (a dict; NMS per class, or over all classes with `agnostic_nms`),
    built under the model's distribution strategy where it has one (TensorFlow). Evaluation
    runs it per class (COCO)."""

    found = _DETECTORS.setdefault(model, {}).get(agnostic_nms)
    if found is None:
        config = model_anchor_config(model)
        num_classes = int(model.output_shape[-1]) - 4  # 4 box deltas, then the class logits
        strategy = getattr(model, "distribute_strategy", None)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            decoded = DecodeDetections(dataclasses.asdict(config), num_classes, agnostic=agnostic_nms,
                                       name="decode_detections")(model.outputs[0])
            found = keras.Model(model.inputs, decoded, name=f"{model.name}_detector")
        _DETECTORS[model][agnostic_nms] = found
    return found


def image_detections(found: dict, index: int, height: int, width: int, size) -> tuple:
    """Image `index` of a `detector` output: (boxes yxyx original-image pixels (n, 4),
    scores (n,), class indices (n,)) for an original image of (height, width) letterboxed
    into the model's `size`."""
    n = int(found["num_detections"][index])
    boxes = to_original_pixels(found["boxes"][index][:n], height, width, size)
    return boxes, found["scores"][index][:n], found["classes"][index][:n]


def coco_detections(found: dict, index: int, image_id: int, height: int, width: int, size,
                    category_ids) -> list[dict]:
    """COCO results [{image_id, category_id, bbox xywh, score}] of image `index` of a
    `detector` output; boxes that collapse to nothing in original pixels are left out."""
    boxes, scores, classes = image_detections(found, index, height, width, size)
    out = []
    for box, score, label in zip(bx.yxyx_to_xywh(boxes), scores, classes):
        if box[2] > 0 and box[3] > 0:
            out.append({"image_id": image_id, "category_id": int(category_ids[label]),
                        "bbox": [float(v) for v in box], "score": float(score)})
    return out


def coco_ground_truth(records, class_names, category_ids) -> dict:
    """COCO-format ground truth from (height, width, boxes yxyx pixels, labels, crowd, area)."""
    images, annotations = [], []
    for image_id, (height, width, boxes, labels, crowd, areas) in enumerate(records, start=1):
        images.append({"id": image_id, "height": int(height), "width": int(width)})
        for box, label, is_crowd, area in zip(bx.yxyx_to_xywh(np.asarray(boxes).reshape(-1, 4)), labels,
                                              crowd, areas):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(category_ids[int(label)]),
                                "bbox": [float(v) for v in box], "area": float(area),
                                "iscrowd": int(bool(is_crowd))})
    categories = [{"id": int(i), "name": n} for i, n in zip(category_ids, class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_evaluator(ground_truth: dict, detections: list[dict]):
    """pycocotools' COCOeval (bbox) of detections [{image_id, category_id, bbox xywh, score}],
    evaluated, accumulated and summarized (its per-image `evalImgs`, `eval` arrays and `stats`);
    None without detections."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not detections:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def coco_metrics(ground_truth: dict, detections: list[dict], evaluator=None) -> dict:
    """COCOeval (bbox) of detections [{image_id, category_id, bbox xywh, score}] -> metrics;
    `evaluator`: their `coco_evaluator`, when the caller has it already."""
    keys = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    evaluator = evaluator if evaluator is not None else coco_evaluator(ground_truth, detections)
    if evaluator is None:  # no detections
        return {**{k: 0.0 for k in keys}, **{f"AP/{n}": 0.0 for n in names.values()}}
    out = {k: float(v) for k, v in zip(keys, evaluator.stats[:6])}
    precision = evaluator.eval["precision"]  # (iou, recall, category, area, max dets)
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        out[f"AP/{names[cat_id]}"] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return out
