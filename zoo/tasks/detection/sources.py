"""Detection sources: the shared synthetic generator, TFDS (several datasets joined with "+")
and COCO-layout folders (`<path>/annotations/instances_<split>.json` + `<path>/<split>/`).

Each yields canonical examples {"image", "boxes" yxyx_norm, "labels"} plus, where the data has
them, "crowd" (COCO iscrowd / VOC difficult) and "area" (COCO's annotation area, original
pixels), and records `DatasetInfo.extras["category_ids"]`: the dataset id of each class index.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from zoo.data import (DatasetInfo, Split, class_index, decode_image, drop_bad_images,
                      image_diagnosis, load_synthetic, load_tfds)
from zoo.data import boxes as bx
from zoo.errors import DataError, RecipeError
from zoo.lazy import tf


def category_extras(num_classes: int, ids=None) -> dict:
    """`DatasetInfo.extras` recording the dataset id of each class index (default: the index)."""
    return {"category_ids": list(range(num_classes)) if ids is None else [int(i) for i in ids]}


def load_synthetic_detection(data, task, split: str, truth=None) -> Split:
    """The shared synthetic source, with the category-id map every detection source records."""
    loaded = load_synthetic(data, task, split)
    loaded.info.extras = {**category_extras(loaded.info.num_classes), **loaded.info.extras}
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
    kept = set(drop_bad_images([p for p in paths if Path(p).is_file()], data.skip_corrupt, data.max_pixels))
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
        image = decode_image(record["path"], data.max_pixels)
        shape = tf.shape(image)
        boxes = bx.pixels_to_normalized(bx.xywh_to_yxyx(tf.reshape(record["xywh"], [-1, 4])),
                                        shape[0], shape[1])
        return {"image": image, "boxes": tf.clip_by_value(boxes, 0.0, 1.0),
                "labels": record["labels"], "crowd": record["crowd"], "area": record["area"]}

    if truth is not None:  # the labels' classes, mapped (load_split records truth's category ids)
        names = list(truth.class_names)
    info = DatasetInfo(len(names), names, len(records), category_extras(len(ids), ids))
    return Split(listed, info, image_diagnosis([r[0] for r in records], max_pixels=data.max_pixels), decode=load)


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
