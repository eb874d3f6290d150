"""Object detection: anchors + focal loss (RetinaNet) and COCO-standard evaluation (pycocotools).

Canonical example: {"image": uint8 (H, W, 3), "boxes": float32 (n, 4) yxyx_norm, "labels": int32
(n,)}, optionally "crowd": bool (n,) (COCO iscrowd / VOC difficult: dropped from training, and
"ignore" regions in evaluation) and "area": float32 (n,) (COCO's annotation area in original
pixels, used for the small / medium / large split; default: the box area).

Data flow (see docs/detection.md):

* geometry: letterbox: the image is scaled by min(H / h, W / w) (aspect kept), placed at the
  top-left corner and zero-padded to the model's (H, W); training adds a random horizontal flip
  (`data.augment.flip`) and scale jitter (`data.augment.scale_jitter`: that scale times a
  random factor, then a random (H, W) crop or padding); boxes are clipped to the visible image
  and dropped when less than a quarter of them (or less than a pixel) remains;
* targets: the ground truth, padded to `data.max_boxes`, is matched to the model's anchors in
  tf.data (`zoo.data.boxes.match_anchors`, IoU >= 0.5 positive, < 0.4 background, ignored in
  between, plus each box's best anchors) -> (num_anchors, 5) rows [ty, tx, th, tw, class];
* loss: `RetinaNetLoss` = sigmoid focal loss (alpha 0.25, gamma 2) over non-ignored anchors +
  smooth-L1 (beta 0.11) or GIoU box loss over positives, both divided by the positives;
* evaluation (`make_eval_dataset` + `evaluate`): decode, top-1000, per-class NMS (0.5) with
  score >= 0.05 and at most 100 detections, boxes mapped back to original-image pixels, then
  pycocotools' COCOeval: mAP (AP@[.5:.95]), mAP50, mAP75, mAP_small / _medium / _large (-1 where
  the eval set has no object of that size, COCO's convention), AP/<class name>, num_examples.

Sources: `tfds` (a "+"-joined list of datasets, see `load_tfds_detection`), `synthetic`
(`shapes_detection`) and `coco` (`<path>/annotations/instances_<split>.json` + `<path>/<split>/`).
Category ids: whatever the data uses; `DatasetInfo.extras["category_ids"][i]` is the id of
class index i (saved to the run's dataset.json), used for predictions and evaluation.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import json
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.data import (DatasetInfo, Split, class_index, decode_image, drop_bad_images,
                      image_diagnosis, load_synthetic, load_tfds, to_rgb)
from zoo.data import boxes as bx
from zoo.errors import DataError, RecipeError
from zoo.tasks.base import Task, register_task

ANCHOR_ARGS = ("min_level", "max_level", "anchor_size", "num_scales", "aspect_ratios")
MIN_VISIBLE = 0.25  # a cropped box is dropped when less than this fraction of it stays visible
SCORE_THRESHOLD = 0.05  # detections kept for evaluation (COCO practice)
DISPLAY_THRESHOLD = 0.3  # detections `zoo predict` prints and draws
MAX_DETECTIONS = 100  # per image (COCO's maxDets)


# ============================================================================== anchors


def recipe_anchor_config(recipe) -> bx.AnchorConfig:
    """The anchor grid a recipe's model will have, from the builder's anchor arguments."""
    from zoo.registry import get_entry

    entry = get_entry(recipe.model.name)
    values = {name: p.default for name, p in inspect.signature(entry.builder).parameters.items()}
    values.update(recipe.model.params)
    missing = [k for k in ANCHOR_ARGS if values.get(k, inspect.Parameter.empty) is inspect.Parameter.empty]
    if missing:
        raise RecipeError(f"model.name: {entry.name} takes no anchor argument(s) {', '.join(missing)}; "
                          f"a detection model's builder must")
    return bx.AnchorConfig.from_dict({"image_size": recipe.data.image_size,
                                      **{k: values[k] for k in ANCHOR_ARGS}})


def model_anchor_config(model) -> bx.AnchorConfig:
    """The anchor grid a built (or loaded) detector recorded in its `AnchorOutputs` layer."""
    from zoo.models.retinanet import AnchorOutputs

    for layer in model.layers:
        if isinstance(layer, AnchorOutputs):
            config = bx.AnchorConfig.from_dict(layer.anchor_config())
            if model.output_shape[1] not in (None, config.num_anchors):
                raise DataError(f"model {model.name}: {model.output_shape[1]} outputs for "
                                f"{config.num_anchors} anchors")
            return config
    raise DataError(f"model {model.name} is not a zoo detector (no AnchorOutputs layer)")


# ============================================================================== sources


def _category_extras(num_classes: int, ids=None) -> dict:
    return {"category_ids": list(range(num_classes)) if ids is None else [int(i) for i in ids]}


def load_synthetic_detection(data, task, split: str, truth=None) -> Split:
    """The shared synthetic source, with the category-id map every detection source records."""
    loaded = load_synthetic(data, task, split)
    loaded.info.extras = {**_category_extras(loaded.info.num_classes), **loaded.info.extras}
    return loaded


def split_parts(split: str, names: list[str]) -> list[tuple[str, str]]:
    """`split` for datasets `names`: a TFDS split string taken from each of them, or a
    comma-separated list of "DATASET:SPLIT" parts (e.g. "voc/2007:test")."""
    parts = [p.strip() for p in split.split(",") if p.strip()]
    qualified = [p for p in parts if any(p.startswith(n + ":") for n in names)]
    if not qualified:
        return [(name, split) for name in names]
    if len(qualified) != len(parts):
        raise RecipeError(f"split {split!r}: mix of qualified and plain parts; write DATASET:SPLIT "
                          f"for each (datasets: {', '.join(names)})")
    out = []
    for part in parts:
        name = next(n for n in sorted(names, key=len, reverse=True) if part.startswith(n + ":"))
        out.append((name, part[len(name) + 1:]))
    return out


def load_tfds_detection(data, task, split: str, truth=None) -> Split:
    """TFDS, where `data.name` may join datasets with "+" ("voc/2007+voc/2012"): TFDS split
    strings cannot span datasets, so each split string applies to every dataset, unless it
    names them ("voc/2007:test", or "voc/2007:train+validation, voc/2012:train")."""
    names = [n.strip() for n in str(data.name).split("+") if n.strip()]
    if len(names) == 1:
        return load_tfds(data, task, split)
    splits = [load_tfds(dataclasses.replace(data, name=name), task, part)
              for name, part in split_parts(split, names)]
    info = splits[0].info
    for other in splits[1:]:
        if other.info.class_names != info.class_names:
            raise DataError(f"data.name: {data.name}: the datasets have different classes")
    dataset = splits[0].dataset
    for other in splits[1:]:
        dataset = dataset.concatenate(other.dataset)
    counts = [s.info.num_examples for s in splits]
    info = DatasetInfo(info.num_classes, info.class_names,
                       None if None in counts else sum(counts), dict(info.extras))
    return Split(dataset, info)


def _warn(path, count, what):
    if count:
        print(f"warning: {path}: {count} {what}", flush=True)


def read_coco_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"COCO annotations not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations and categories")
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(f"{path}: missing or not a list: {', '.join(missing)}")
    return data


def parse_coco(data: dict, path) -> tuple:
    """COCO json -> (class names, category ids, records); each record is (file_name,
    boxes xywh float32 (n, 4), labels (n,), crowd (n,), area (n,)). Bad annotations are
    dropped or clipped with one warning line per kind."""
    try:
        categories = sorted(((int(c["id"]), str(c["name"])) for c in data["categories"]))
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: every category needs an integer id and a name") from None
    ids = [i for i, _ in categories]
    if not ids:
        raise DataError(f"{path}: no categories")
    if len(set(ids)) != len(ids):
        raise DataError(f"{path}: duplicate category ids")
    index_of = {cid: k for k, cid in enumerate(ids)}
    images = {}
    for image in data["images"]:
        try:
            images[int(image["id"])] = (str(image["file_name"]), image.get("width"), image.get("height"))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: every image needs an integer id and a file_name") from None
    if not images:
        raise DataError(f"{path}: no images")
    per_image = {i: [] for i in images}
    no_image = bad_category = bad_box = clipped = 0
    for ann in data["annotations"]:
        try:
            image_id, category, bbox = int(ann["image_id"]), int(ann["category_id"]), ann["bbox"]
            x, y, w, h = (float(v) for v in bbox)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: annotation {ann.get('id', '?') if isinstance(ann, dict) else ann!r}"
                            f" needs image_id, category_id and bbox [x, y, w, h]") from None
        if image_id not in images:
            no_image += 1
            continue
        if category not in index_of:
            bad_category += 1
            continue
        if not (w > 0 and h > 0 and np.isfinite([x, y, w, h]).all()):
            bad_box += 1
            continue
        _, width, height = images[image_id]
        if width and height:
            x0, y0 = min(max(x, 0.0), width), min(max(y, 0.0), height)
            x1, y1 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
            if (x0, y0, x1, y1) != (x, y, x + w, y + h):
                if x1 <= x0 or y1 <= y0:
                    bad_box += 1
                    continue
                clipped += 1
                x, y, w, h = x0, y0, x1 - x0, y1 - y0
        area = float(ann.get("area") or w * h)
        per_image[image_id].append((x, y, w, h, index_of[category], bool(ann.get("iscrowd", 0)), area))
    _warn(path, no_image, "annotation(s) for images not in `images` skipped")
    _warn(path, bad_category, "annotation(s) with a category id not in `categories` skipped")
    _warn(path, bad_box, "annotation(s) with an empty or non-finite box (w or h <= 0, or "
          "entirely outside the image) skipped")
    _warn(path, clipped, "box(es) extending outside their image clipped to it")
    records = []
    for image_id, (file_name, _, _) in images.items():
        anns = np.asarray(per_image[image_id], np.float64).reshape(-1, 7)
        records.append((file_name, anns[:, :4].astype(np.float32), anns[:, 4].astype(np.int32),
                        anns[:, 5].astype(bool), anns[:, 6].astype(np.float32)))
    return [name for _, name in categories], ids, records


def load_coco(data, task, split: str, truth=None) -> Split:
    """COCO layout: `<path>/annotations/instances_<split>.json` + `<path>/<split>/<file_name>`;
    categories are matched by name onto the training split's (`truth`) for the other splits."""
    root = Path(data.path)
    ann_path = root / "annotations" / f"instances_{split}.json"
    names, ids, records = parse_coco(read_coco_json(ann_path), ann_path)
    index = np.asarray(class_index(names, truth, ann_path), np.int32)  # this file's -> training's
    image_dir = root / split
    for file_name, *_ in records:
        if os.path.isabs(file_name) or os.path.normpath(file_name).split(os.sep)[0] == "..":
            raise DataError(f"{ann_path}: file_name {file_name!r} leaves the image folder {image_dir}")
    paths = [str(image_dir / r[0]) for r in records]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing and not data.skip_corrupt:
        raise DataError(f"image file not found: {missing[0]} (listed in {ann_path}; "
                        f"{len(missing)} missing in all; data.skip_corrupt=true skips them)")
    kept = set(drop_bad_images([p for p in paths if Path(p).is_file()], data.skip_corrupt))
    _warn(ann_path, len(missing), "image file(s) listed but missing, skipped")
    records = [(p, r[1], index[r[2]], *r[3:]) for p, r in zip(paths, records) if p in kept]
    if not records:
        raise DataError(f"no readable images for {ann_path}")

    def ragged(k, dtype):
        rows = [r[k] for r in records]
        return tf.RaggedTensor.from_row_lengths(
            tf.constant(np.concatenate(rows).astype(dtype)), [len(r) for r in rows])

    listed = tf.data.Dataset.from_tensor_slices({
        "path": [r[0] for r in records], "xywh": ragged(1, np.float32), "labels": ragged(2, np.int32),
        "crowd": ragged(3, bool), "area": ragged(4, np.float32)})

    def load(record):
        image = decode_image(record["path"])
        shape = tf.shape(image)
        boxes = bx.pixels_to_normalized(bx.xywh_to_yxyx(tf.reshape(record["xywh"], [-1, 4])),
                                        shape[0], shape[1])
        return {"image": image, "boxes": tf.clip_by_value(boxes, 0.0, 1.0),
                "labels": record["labels"], "crowd": record["crowd"], "area": record["area"]}

    info = DatasetInfo(len(names), names, len(records), _category_extras(len(ids), ids))
    return Split(listed, info, image_diagnosis([r[0] for r in records]), decode=load)


def tfds_object_features(tfds_info):
    """(image key, objects key, bbox key, label key, crowd key or None, area key or None)."""
    import tensorflow_datasets as tfds

    features = tfds_info.features
    image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    for key, feature in features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(feature, tfds.features.Sequence) and isinstance(inner, tfds.features.FeaturesDict):
            items = inner.items() if hasattr(inner, "items") else inner._feature_dict.items()
            items = dict(items)
            bbox = next((k for k, f in items.items() if isinstance(f, tfds.features.BBoxFeature)), None)
            labels = [k for k, f in items.items() if isinstance(f, tfds.features.ClassLabel)]
            if image_key and bbox and labels:
                label = "label" if "label" in labels else labels[0]
                crowd = next((k for k in ("is_crowd", "is_difficult") if k in items), None)
                return (image_key, key, bbox, label, crowd, "area" if "area" in items else None,
                        items[label])
    raise DataError(f"tfds {tfds_info.name}: no image and objects with bbox and class-label "
                    f"features to detect")


# ============================================================================== geometry


def sanitize(boxes, *columns):
    """Clip yxyx_norm boxes to the image, drop empty ones (and the matching `columns` rows)."""
    boxes = tf.clip_by_value(tf.cast(boxes, tf.float32), 0.0, 1.0)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return (tf.boolean_mask(boxes, keep), *(tf.boolean_mask(c, keep) for c in columns))


def letterbox_scale(height, width, size):
    """Scale that fits an (height, width) image inside `size`, aspect kept."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    return tf.minimum(size[0] / h, size[1] / w)


def place(image, boxes, size, training: bool, augment):
    """Letterbox (+ flip and scale jitter when training): uint8 image + yxyx_norm boxes ->
    float32 (H, W, 3) image, yxyx pixel boxes in it, and a keep mask over the boxes."""
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    image = tf.cast(image, tf.float32)
    if training and augment.flip:
        flip = tf.random.uniform([]) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        flipped = tf.stack([boxes[:, 0], 1.0 - boxes[:, 3], boxes[:, 2], 1.0 - boxes[:, 1]], -1)
        boxes = tf.where(flip, flipped, boxes)
    scale = letterbox_scale(height, width, size)
    if training and augment.scale_jitter:
        scale *= tf.random.uniform([], augment.scale_jitter[0], augment.scale_jitter[1])
    new_h = tf.maximum(tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32), 1)
    new_w = tf.maximum(tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32), 1)
    image = tf.image.resize(image, tf.stack([new_h, new_w]))
    pixels = bx.normalized_to_pixels(boxes, new_h, new_w)
    top = left = tf.constant(0)
    if training and augment.scale_jitter:  # random window where the image is larger than size
        top = tf.random.uniform([], 0, tf.maximum(new_h - size[0], 0) + 1, tf.int32)
        left = tf.random.uniform([], 0, tf.maximum(new_w - size[1], 0) + 1, tf.int32)
    image = image[top:top + size[0], left:left + size[1]]
    visible_h, visible_w = tf.shape(image)[0], tf.shape(image)[1]
    image = tf.pad(image, [[0, size[0] - visible_h], [0, size[1] - visible_w], [0, 0]])
    image.set_shape([size[0], size[1], 3])
    offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
    limit = tf.cast(tf.stack([visible_h, visible_w, visible_h, visible_w]), tf.float32)
    shifted = pixels - offset
    clipped = tf.clip_by_value(shifted, 0.0, limit)
    keep = ((bx.area(clipped) >= MIN_VISIBLE * bx.area(shifted))
            & (clipped[:, 2] - clipped[:, 0] >= 1.0) & (clipped[:, 3] - clipped[:, 1] >= 1.0))
    return image, clipped, keep


def _optional(example, key, n, default):
    return example[key][:n] if key in example else default


# ============================================================================== losses


def _focal_terms(classes, logits, alpha, gamma):
    """Per-anchor focal loss summed over classes; classes: (B, A) >=0 / -1 / -2, logits (B, A, C)."""
    num_classes = logits.shape[-1]
    targets = ops.one_hot(ops.cast(ops.maximum(classes, 0.0), "int32"), num_classes)
    targets = targets * ops.cast(ops.expand_dims(classes >= 0, -1), logits.dtype)
    probs = ops.sigmoid(logits)
    # Stable binary cross-entropy with logits: max(x, 0) - x t + log(1 + exp(-|x|)).
    ce = ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
    p_t = probs * targets + (1 - probs) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    loss = ops.sum(alpha_t * ops.power(1 - p_t, gamma) * ce, axis=-1)
    return loss * ops.cast(classes > -1.5, loss.dtype)  # IGNORE (-2) anchors add nothing


def _box_terms(targets, deltas, box_loss, beta):
    """Per-anchor box loss (B, A), any anchor (the caller masks positives)."""
    if box_loss == "giou":
        return 1.0 - _giou(targets, deltas)
    diff = ops.abs(targets - deltas)
    smooth = ops.where(diff < beta, 0.5 * diff * diff / beta, diff - 0.5 * beta) if beta > 0 else diff
    return ops.sum(smooth, axis=-1)


def _giou(targets, deltas):
    """Generalized IoU (Rezatofighi et al. 2019) of two boxes given as deltas to the same anchor.

    IoU and GIoU do not change under per-axis scaling and translation, so decoding both against a
    unit anchor at the origin gives the same value as decoding against the real anchor.
    """
    def corners(d):
        h, w = ops.exp(ops.minimum(d[..., 2], bx.MAX_LOG_SCALE)), ops.exp(ops.minimum(d[..., 3], bx.MAX_LOG_SCALE))
        return d[..., 0] - h / 2, d[..., 1] - w / 2, d[..., 0] + h / 2, d[..., 1] + w / 2

    (ay0, ax0, ay1, ax1), (by0, bx0, by1, bx1) = corners(targets), corners(deltas)
    inter = ops.relu(ops.minimum(ay1, by1) - ops.maximum(ay0, by0)) * ops.relu(ops.minimum(ax1, bx1) - ops.maximum(ax0, bx0))
    union = (ay1 - ay0) * (ax1 - ax0) + (by1 - by0) * (bx1 - bx0) - inter
    hull = (ops.maximum(ay1, by1) - ops.minimum(ay0, by0)) * (ops.maximum(ax1, bx1) - ops.minimum(ax0, bx0))
    iou = inter / ops.maximum(union, 1e-9)
    return iou - (hull - union) / ops.maximum(hull, 1e-9)


def _per_positive(per_image, classes):
    """Per-image sums -> values whose batch mean is (sum over the batch) / (positives in it)."""
    positives = ops.sum(ops.cast(classes >= 0, per_image.dtype))
    batch = ops.cast(ops.shape(per_image)[0], per_image.dtype)
    return per_image * batch / ops.maximum(positives, 1.0)


@keras.saving.register_keras_serializable(package="zoo")
class FocalLoss(keras.losses.Loss):
    """Sigmoid focal loss (Lin et al. 2017, eq. 5) over anchors, divided by the positive anchors.

    y_true (B, A): class index for positive anchors, -1 background, -2 ignored;
    y_pred (B, A, C): logits. The batch mean of the returned per-image values is
    sum(focal terms of non-ignored anchors) / max(1, number of positives in the batch).
    """

    def __init__(self, alpha=0.25, gamma=2.0, name="focal_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.gamma = float(gamma)

    def call(self, y_true, y_pred):
        per_image = ops.sum(_focal_terms(y_true, y_pred, self.alpha, self.gamma), axis=-1)
        return _per_positive(per_image, y_true)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="zoo")
class RetinaNetLoss(keras.losses.Loss):
    """Focal loss on classes + `box_weight` x box loss on positive anchors, / positives.

    y_true (B, A, 5) rows [ty, tx, th, tw, class] (class -1 background, -2 ignored), as
    `zoo.data.boxes.match_anchors` makes them; y_pred (B, A, 4 + C) [deltas, class logits].
    box_loss: "smooth_l1" (Detectron's RetinaNet, beta 0.11) or "giou".
    """

    def __init__(self, alpha=0.25, gamma=2.0, box_loss="smooth_l1", box_weight=1.0,
                 smooth_l1_beta=0.11, name="retinanet_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        if box_loss not in ("smooth_l1", "giou"):
            raise RecipeError(f"train.loss.box_loss: expected smooth_l1 or giou, got {box_loss!r}")
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.box_loss, self.box_weight = box_loss, float(box_weight)
        self.smooth_l1_beta = float(smooth_l1_beta)

    def parts(self, y_true, y_pred):
        """(focal, box) per-image values, each already divided by the batch's positives."""
        classes = y_true[..., 4]
        focal = ops.sum(_focal_terms(classes, y_pred[..., 4:], self.alpha, self.gamma), axis=-1)
        box = _box_terms(y_true[..., :4], y_pred[..., :4], self.box_loss, self.smooth_l1_beta)
        box = ops.sum(box * ops.cast(classes >= 0, box.dtype), axis=-1)
        return _per_positive(focal, classes), _per_positive(box, classes)

    def call(self, y_true, y_pred):
        focal, box = self.parts(y_true, y_pred)
        return focal + self.box_weight * box

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma,
                "box_loss": self.box_loss, "box_weight": self.box_weight,
                "smooth_l1_beta": self.smooth_l1_beta}


# ============================================================================== evaluation


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


def coco_metrics(ground_truth: dict, detections: list[dict]) -> dict:
    """COCOeval (bbox) of detections [{image_id, category_id, bbox xywh, score}] -> metrics."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    keys = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")
    names = {c["id"]: c["name"] for c in ground_truth["categories"]}
    if not detections:
        return {**{k: 0.0 for k in keys}, **{f"AP/{n}": 0.0 for n in names.values()}}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = ground_truth
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    out = {k: float(v) for k, v in zip(keys, evaluator.stats[:6])}
    precision = evaluator.eval["precision"]  # (iou, recall, category, area, max dets)
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        out[f"AP/{names[cat_id]}"] = float(p[p > -1].mean()) if (p > -1).any() else -1.0
    return out


def to_original_pixels(boxes, height, width, size):
    """Model-input yxyx pixels -> original-image yxyx pixels (undo `place`'s letterbox), clipped."""
    scale = min(size[0] / height, size[1] / width)
    # `place` resized to the rounded size: undo exactly that factor on each axis.
    sy = max(round(height * scale), 1) / height
    sx = max(round(width * scale), 1) / width
    boxes = np.asarray(boxes, np.float64) / [sy, sx, sy, sx]
    return np.clip(boxes, 0, [height, width, height, width])


# ============================================================================== task


@register_task
class Detection(Task):
    name = "detection"
    sources = {"coco": load_coco, "tfds": load_tfds_detection, "synthetic": load_synthetic_detection}
    min_classes = 1  # a one-class detector (e.g. people) is a real task

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
        return adapt, DatasetInfo(len(names), names, extras=_category_extras(len(names)))

    def _canonical(self, example):
        """(image, boxes yxyx_norm, labels, crowd, area-or-None) with empty boxes dropped."""
        labels = tf.cast(example["labels"], tf.int32)
        n = tf.shape(labels)[0]
        crowd = _optional(example, "crowd", n, tf.zeros([n], tf.bool))
        area = _optional(example, "area", n, -tf.ones([n], tf.float32))
        boxes, labels, crowd, area = sanitize(example["boxes"][:n], labels, crowd, area)
        return example["image"], boxes, labels, crowd, area

    def prepare(self, example, recipe, info, training):
        """-> (float32 image (H, W, 3), targets (num_anchors, 5)) for fit and validation."""
        size = tuple(recipe.data.image_size)
        image, boxes, labels, crowd, _ = self._canonical(example)
        keep = tf.logical_not(crowd)
        boxes, labels = tf.boolean_mask(boxes, keep), tf.boolean_mask(labels, keep)
        image, pixels, visible = place(image, boxes, size, training, recipe.data.augment)
        pixels, labels = tf.boolean_mask(pixels, visible), tf.boolean_mask(labels, visible)
        pixels, labels, valid = bx.pad_boxes(pixels, labels, recipe.data.max_boxes)
        anchors = recipe_anchor_config(recipe).anchors()
        return image, bx.match_anchors(anchors, pixels, labels, valid)

    def prepare_eval(self, example, recipe):
        """-> (float32 image, every ground-truth box in original-image pixels, image size)."""
        size = tuple(recipe.data.image_size)
        image, boxes, labels, crowd, area = self._canonical(example)
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
    def model_args(self, recipe, info):
        config = recipe_anchor_config(recipe)
        top = min(config.max_level, 5)
        if any(s % 2 ** top for s in recipe.data.image_size):
            raise RecipeError(f"data.image_size: {recipe.model.name} needs multiples of {2 ** top}, "
                              f"got {recipe.data.image_size}")
        return super().model_args(recipe, info)

    def model_num_classes(self, model) -> int:
        return int(model.output_shape[-1]) - 4  # 4 box deltas, then the class logits

    def loss(self, info, **kwargs):
        try:
            return RetinaNetLoss(**kwargs)
        except TypeError as err:
            raise RecipeError(f"train.loss: {err}") from None

    # -- evaluation ------------------------------------------------------------
    def detect(self, model, images):
        """Padded detections of a batch of model inputs (yxyx model-input pixels)."""
        config = model_anchor_config(model)
        outputs = model.predict_on_batch(images)
        num_classes = self.model_num_classes(model)
        result = bx.postprocess(outputs, config.anchors(), num_classes, SCORE_THRESHOLD,
                                max_detections=MAX_DETECTIONS)
        return {k: v.numpy() for k, v in result.items()}

    def evaluate(self, model, dataset, info):
        size = tuple(model_anchor_config(model).image_size)
        category_ids = info.extras.get("category_ids") or list(range(info.num_classes))
        records, detections = [], []
        for images, truth in dataset:
            found = self.detect(model, images)
            truth = {k: v.numpy() for k, v in truth.items()}
            for i in range(len(truth["size"])):
                height, width = (int(v) for v in truth["size"][i])
                valid = truth["valid"][i]
                records.append((height, width, truth["boxes"][i][valid], truth["labels"][i][valid],
                                truth["crowd"][i][valid], truth["area"][i][valid]))
                n = found["num_detections"][i]
                boxes = bx.yxyx_to_xywh(to_original_pixels(found["boxes"][i][:n], height, width, size))
                for box, score, label in zip(boxes, found["scores"][i][:n], found["classes"][i][:n]):
                    if box[2] > 0 and box[3] > 0:
                        detections.append({"image_id": len(records), "category_id": int(category_ids[label]),
                                           "bbox": [float(v) for v in box], "score": float(score)})
        ground_truth = coco_ground_truth(records, info.class_names, category_ids)
        return {**coco_metrics(ground_truth, detections), "num_examples": len(records)}

    def predict(self, model, inputs, info, recipe, output_dir):
        from PIL import Image, ImageDraw

        size = tuple(model_anchor_config(model).image_size)
        category_ids = info.extras.get("category_ids") or list(range(info.num_classes))
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for path, original in inputs:
            height, width = int(original.shape[0]), int(original.shape[1])
            image, _, _ = place(original, tf.zeros([0, 4]), size, False, recipe.data.augment)
            found = self.detect(model, image[None])
            n = found["num_detections"][0]
            boxes = to_original_pixels(found["boxes"][0][:n], height, width, size)
            picture = Image.fromarray(original.numpy())
            draw = ImageDraw.Draw(picture)
            shown = 0
            for box, score, label in zip(boxes, found["scores"][0][:n], found["classes"][0][:n]):
                name = info.class_names[label] if label < len(info.class_names) else str(label)
                y0, x0, y1, x1 = (float(v) for v in box)
                results.append({"file_name": str(path), "category_id": int(category_ids[label]),
                                "category": name, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "score": float(score)})
                if score < DISPLAY_THRESHOLD:
                    continue
                shown += 1
                yield f"{path}: {name} {score:.3f} [x0 {x0:.1f}, y0 {y0:.1f}, x1 {x1:.1f}, y1 {y1:.1f}]"
                color = _color(label)
                draw.rectangle([x0, y0, x1, y1], outline=color, width=max(1, round(min(height, width) / 200)))
                draw.text((x0 + 2, y0 + 1), f"{name} {score:.2f}", fill=color)
            if not shown:
                yield f"{path}: no detection with score >= {DISPLAY_THRESHOLD}"
            out = output_dir / f"{Path(path).stem}_detections.png"
            picture.save(out)
            yield f"{path}: drawn to {out}"
        (output_dir / "predictions.json").write_text(json.dumps(results, indent=1))
        yield (f"all detections (score >= {SCORE_THRESHOLD}, dataset category ids, COCO "
               f"[x, y, w, h] pixels): {output_dir / 'predictions.json'}")


def _color(label: int):
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
               (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]
    return palette[int(label) % len(palette)]
