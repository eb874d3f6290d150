"""Training data for a zoo detector in plain Keras: `model.fit(images, targets)`.

A detector's output is one row per anchor, so its targets are the ground truth matched to the
model's own anchor grid, which only the zoo knows. `detection_targets` makes them with the code
`zoo train` runs (`Detection.prepare` without the random augmentation): `geometry.anchor_targets`. The loss is
`zoo.tasks.detection.losses.RetinaNetLoss()`, the one `zoo train` compiles:

    images, targets = detection_targets(model, images, boxes, labels)
    model.compile(optimizer="adam", loss=RetinaNetLoss())
    model.fit(images, targets)
"""
from __future__ import annotations

import numpy as np

from zoo.errors import DataError
from zoo.lazy import tf
from zoo.tasks.detection.geometry import anchor_targets, model_anchor_config, sanitize


def detection_targets(model, images, boxes, labels) -> tuple[np.ndarray, np.ndarray]:
    """Images of any size and their objects -> (float32 images (N, H, W, 3), targets
    (N, num_anchors, 5)) for `model.fit` with `RetinaNetLoss`.

    images: uint8 (H, W, 3) arrays (or one (N, H, W, 3) batch); boxes: per image (n, 4)
    [x0, y0, x1, y1] in that image's pixels (the `Detections.boxes` format); labels: per image
    (n,) class indices. Each image is letterboxed to the model's input (raw pixels 0..255: the
    model normalizes them itself); each target row is [ty, tx, th, tw, class] of one anchor
    (class -1 background, -2 ignored)."""
    if not 0 < len(images) == len(boxes) == len(labels):
        raise DataError(f"detection_targets: {len(images)} images, {len(boxes)} box lists and "
                        f"{len(labels)} label lists; expected one of each per image, at least one")
    config = model_anchor_config(model)
    anchors = config.anchors()
    num_classes = int(model.output_shape[-1]) - 4  # 4 box deltas, then the class logits
    placed, targets = [], []
    for index, (image, xyxy, classes) in enumerate(zip(images, boxes, labels)):
        image = np.asarray(image)
        xyxy = np.asarray(xyxy, np.float32)
        xyxy = xyxy.reshape(0, 4) if xyxy.size == 0 else xyxy
        classes = np.asarray(classes, np.int32).reshape(-1)
        if (image.ndim != 3 or image.shape[-1] != 3 or xyxy.ndim != 2 or xyxy.shape[-1] != 4
                or len(xyxy) != len(classes)):
            raise DataError(f"detection_targets: image {index}: image {image.shape}, boxes {xyxy.shape}, "
                            f"labels {classes.shape}; expected (H, W, 3), (n, 4) and (n,)")
        if len(classes) and not 0 <= classes.min() <= classes.max() < num_classes:
            raise DataError(f"detection_targets: image {index}: labels {sorted(set(classes.tolist()))}; "
                            f"the model has {num_classes} classes, 0..{num_classes - 1}")
        height, width = image.shape[:2]
        normalized, classes = sanitize(xyxy[:, [1, 0, 3, 2]] / [height, width, height, width], classes)
        letterboxed, target = anchor_targets(tf.constant(image), normalized, classes, anchors, config.image_size,
                                             max(len(xyxy), 1))
        placed.append(letterboxed.numpy())
        targets.append(target.numpy())
    return np.stack(placed), np.stack(targets)
