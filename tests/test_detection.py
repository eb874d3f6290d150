"""Detection: anchors, matching, box coding, NMS, focal loss, COCO evaluation, data sources,
training, prediction and save/load of the RetinaNet detectors."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from conftest import tiny
from zoo.data import boxes as bx
from zoo.data import load_split
from zoo.data.synthetic import generate
from zoo.errors import DataError, RecipeError
from zoo.models.layers import AnchorOutputs
from zoo.tasks import get_task
from zoo.tasks.detection import model_anchor_config
from zoo.tasks.detection.evaluation import coco_ground_truth, coco_metrics, detector
from zoo.tasks.detection.geometry import place, to_original_pixels
from zoo.tasks.detection.losses import RetinaNetLoss
from zoo.tasks.detection.sources import parse_coco, read_coco_json, split_parts

# A detector small enough for CPU tests: a 2-conv backbone, levels P2-P3 on 64x64 inputs.
TINY = ["model.backbone=simple_cnn", "model.min_level=2", "model.max_level=3",
        "model.anchor_size=2.0", "model.fpn_channels=32", "data.image_size=[64, 64]"]


# ------------------------------------------------------------------------------ anchors


def test_anchor_count_and_layout():
    config = bx.AnchorConfig((128, 96), min_level=3, max_level=7, anchor_size=4.0, num_scales=3,
                             aspect_ratios=(0.5, 1.0, 2.0))
    # Levels 3..7 of 128x96: 16x12, 8x6, 4x3, 2x2, 1x1 cells, 9 anchors each.
    assert config.level_shapes() == [(16, 12), (8, 6), (4, 3), (2, 2), (1, 1)]
    assert config.num_anchors == 9 * (192 + 48 + 12 + 4 + 1)
    anchors = config.anchors()
    assert anchors.shape == (config.num_anchors, 4) and anchors.dtype == np.float32
    # First cell of P3: centred at (4, 4); 3 ratios x 3 scales, side 32 * 2**(k/3), h/w = ratio.
    first = anchors[:9]
    np.testing.assert_allclose((first[:, :2] + first[:, 2:]) / 2, 4.0, atol=1e-5)
    heights, widths = first[:, 2] - first[:, 0], first[:, 3] - first[:, 1]
    np.testing.assert_allclose(heights / widths, np.repeat([0.5, 1.0, 2.0], 3), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt(heights * widths)[3:6], 32 * 2 ** (np.arange(3) / 3), rtol=1e-5)
    # The next anchor is the next column of P3 (stride 8); P7's single cell is centred at 64.
    np.testing.assert_allclose((anchors[9, 1] + anchors[9, 3]) / 2, 12.0, atol=1e-5)
    np.testing.assert_allclose((anchors[-1, :2] + anchors[-1, 2:]) / 2, 64.0, atol=1e-5)


def tiny_detector(num_classes=3, **kwargs):
    return zoo.create_model("retinanet_small", num_classes=num_classes, input_shape=(64, 64, 3),
                            backbone="simple_cnn", min_level=2, max_level=3, anchor_size=2.0,
                            fpn_channels=32, **kwargs)


def test_training_targets_use_the_attached_model_anchor_grid():
    recipe = tiny("shapes_retinanet", *TINY)
    task = get_task("detection")
    model = zoo.create_model(recipe.model.name, num_classes=3, input_shape=(64, 64, 3),
                             **recipe.model.params)
    config = model_anchor_config(model)
    assert config == bx.AnchorConfig((64, 64), min_level=2, max_level=3, anchor_size=2.0,
                                     num_scales=3, aspect_ratios=(0.5, 1.0, 2.0))
    assert model.output_shape == (None, config.num_anchors, 4 + 3)
    example = {k: tf.constant(v) for k, v in generate("shapes_detection", 0, 0, (64, 64)).items()}
    task.attach(model)
    image, targets = task.prepare(example, recipe, None, False)
    assert image.shape == (64, 64, 3) and targets.shape == (config.num_anchors, 5)
    expected = bx.match_anchors(config.anchors(), *bx.pad_boxes(
        bx.normalized_to_pixels(example["boxes"], 64, 64), example["labels"], recipe.data.max_boxes))
    np.testing.assert_allclose(targets.numpy(), expected.numpy(), atol=1e-5)
    assert (targets.numpy()[:, 4] >= 0).sum() >= len(example["labels"])  # every box has an anchor
    # A recipe whose image size is not the model's: one line naming data.image_size.
    other = tiny("shapes_retinanet", *TINY, "data.image_size=[96, 96]")
    with pytest.raises(RecipeError, match=r"^data.image_size: \[96, 96\], but the model's anchor grid "
                                          r"is for 64x64 inputs$"):
        task.make_dataset(load_split(other, task, "test"), other, False, cache=False)


def test_matching_on_hand_made_boxes():
    anchors = np.array([[0, 0, 10, 10],      # IoU 1.0 with box 0 -> positive
                        [0, 0, 10, 12],      # IoU 10/12 = 0.83 with box 0 -> positive
                        [0, 5, 10, 15],      # IoU 1/3 with box 0 -> background (< 0.4)
                        [0, 3, 10, 13],      # IoU 7/13 = 0.54 -> positive
                        [0, 2, 10, 12],      # IoU 8/12 = 0.67 -> positive
                        [50, 50, 60, 60],    # far from everything -> background
                        [20, 22, 30, 48],    # IoU 120 / 260 = 0.46 with box 1: ignored
                        [100, 100, 110, 110]], np.float32)
    boxes = tf.constant([[0, 0, 10, 10], [20, 22, 30, 34], [0, 0, 0, 0]], tf.float32)
    labels = tf.constant([2, 1, -1])
    valid = tf.constant([True, True, False])
    targets = bx.match_anchors(anchors, boxes, labels, valid, low_quality=False).numpy()
    np.testing.assert_array_equal(targets[:, 4], [2, 2, -1, 2, 2, -1, -2, -1])
    np.testing.assert_array_equal(targets[targets[:, 4] < 0, :4], 0.0)  # no box target off positives
    # Low-quality matching: box 1 has no anchor at 0.5, so its best anchor (6) becomes positive.
    targets = bx.match_anchors(anchors, boxes, labels, valid, low_quality=True).numpy()
    np.testing.assert_array_equal(targets[:, 4], [2, 2, -1, 2, 2, -1, 1, -1])
    # An image without boxes: every anchor is background.
    empty = bx.match_anchors(anchors, boxes, labels, tf.zeros([3], tf.bool)).numpy()
    np.testing.assert_array_equal(empty[:, 4], -1)


def test_encode_decode_round_trip():
    rng = np.random.default_rng(0)
    anchors = bx.AnchorConfig((64, 64), 3, 4, 4.0, 3, (0.5, 1.0, 2.0)).anchors()
    y0, x0 = rng.uniform(0, 50, (2, len(anchors)))
    h, w = rng.uniform(2, 60, (2, len(anchors)))
    boxes = np.stack([y0, x0, y0 + h, x0 + w], -1).astype(np.float32)
    deltas = bx.encode(tf.constant(boxes), tf.constant(anchors))
    np.testing.assert_allclose(bx.decode(deltas, anchors).numpy(), boxes, rtol=1e-4, atol=1e-3)
    # Box format conversions at the boundaries.
    xywh = bx.yxyx_to_xywh(boxes)
    np.testing.assert_allclose(bx.xywh_to_yxyx(xywh), boxes, atol=1e-4)
    np.testing.assert_allclose(xywh[:, 2:], np.stack([w, h], -1), rtol=1e-4)


def test_nms_is_per_class_padded_and_fixed_size():
    anchors = np.array([[0, 0, 10, 10], [0, 1, 10, 11], [0, 0, 10, 10], [40, 40, 50, 50]], np.float32)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    outputs = np.zeros((1, 4, 4 + 2), np.float32)  # zero deltas: boxes = anchors
    outputs[..., 4:] = logit(0.001)
    outputs[0, 0, 4] = logit(0.9)  # class 0
    outputs[0, 1, 4] = logit(0.8)  # class 0, IoU 0.82 with anchor 0: suppressed
    outputs[0, 2, 5] = logit(0.7)  # class 1, same box as anchor 0: kept (another class)
    outputs[0, 3, 4] = logit(0.6)  # class 0, far away: kept
    found = bx.postprocess(outputs, anchors, 2, (64, 64), score_threshold=0.05, max_detections=5)
    found = {k: v.numpy() for k, v in found.items()}
    assert found["boxes"].shape == (1, 5, 4) and found["scores"].shape == (1, 5)
    assert found["num_detections"][0] == 3
    np.testing.assert_allclose(found["scores"][0], [0.9, 0.7, 0.6, 0, 0], atol=1e-5)
    np.testing.assert_array_equal(found["classes"][0][:3], [0, 1, 0])
    np.testing.assert_allclose(found["boxes"][0][2], [40, 40, 50, 50], atol=1e-4)


def test_detector_runs_decode_and_nms_in_one_graph():
    """`detector(model)`: the padded detections of `bx.postprocess` on the raw outputs,
    computed inside one Keras graph, through `predict`; built once per model."""
    import gc
    import weakref

    from conftest import perturb

    model = tiny_detector(prior_probability=0.3)  # scores above the 0.05 threshold
    perturb(model)  # and off their uniform prior, so NMS has something to sort
    images = np.random.default_rng(0).uniform(0, 255, (5, 64, 64, 3)).astype(np.float32)
    run = detector(model)
    assert detector(model) is run
    found = run.predict(images, batch_size=2, verbose=0)
    assert sorted(found) == ["boxes", "classes", "num_detections", "scores"]
    assert found["boxes"].shape == (5, 100, 4) and found["classes"].dtype == np.int32
    config = model_anchor_config(model)
    eager = bx.postprocess(model.predict_on_batch(images), config.anchors(), 3, config.image_size,
                           0.05, max_detections=100)
    for key, value in eager.items():
        np.testing.assert_allclose(found[key], value.numpy(), atol=1e-4, err_msg=key)
    assert found["num_detections"].min() > 10
    # The cache does not keep a model alive.
    ref = weakref.ref(model)
    del model, run
    gc.collect()
    assert ref() is None


def test_box_aware_augmentation_keeps_boxes_on_their_pixels():
    """Letterbox + flip + scale jitter: every kept box still frames its white rectangle."""
    from types import SimpleNamespace

    image = np.zeros((60, 90, 3), np.uint8)
    rects = [(5, 10, 25, 40), (30, 50, 55, 85), (40, 2, 58, 20)]  # y0, x0, y1, x1 pixels
    for y0, x0, y1, x1 in rects:
        image[y0:y1, x0:x1] = 255
    boxes = tf.constant([[y0 / 60, x0 / 90, y1 / 60, x1 / 90] for y0, x0, y1, x1 in rects], tf.float32)
    augment = SimpleNamespace(flip=True, scale_jitter=[0.6, 1.6])
    tf.random.set_seed(0)
    kept = 0
    for _ in range(20):
        out, pixels, keep = place(tf.constant(image), boxes, (64, 64), True, augment)
        assert out.shape == (64, 64, 3)
        for box, k in zip(pixels.numpy(), keep.numpy()):
            if k:
                kept += 1
                y0, x0, y1, x1 = np.round(box).astype(int)
                inner = out.numpy()[y0 + 1:y1 - 1, x0 + 1:x1 - 1]
                assert inner.size and inner.mean() > 200  # the box sits on its rectangle
    assert kept > 20
    # Evaluation view: plain letterbox (scale 64/90), mapped back exactly.
    out, pixels, keep = place(tf.constant(image), boxes, (64, 64), False, augment)
    assert keep.numpy().all() and out.numpy()[43:].max() == 0  # 60 * 64/90 = 42.7 rows, then padding
    back = to_original_pixels(pixels.numpy(), 60, 90, (64, 64))
    np.testing.assert_allclose(back, np.array(rects, np.float64), atol=0.01)
    # A box reaching into the padding (60 x 90 fills 43 x 64 of the input) is clipped to the
    # original image: y 40 -> 40 * 60 / 43, x 60 -> 60 * 90 / 64 = 84.375, the rest to the border.
    np.testing.assert_allclose(to_original_pixels([[40, 60, 50, 70]], 60, 90, (64, 64)),
                               [[40 * 60 / 43, 84.375, 60, 90]], rtol=1e-12)


# ------------------------------------------------------------------------------ losses


def numpy_focal(classes, logits, alpha=0.25, gamma=2.0):
    p = 1 / (1 + np.exp(-logits))
    total, positives = 0.0, 0
    for b in range(classes.shape[0]):
        for a in range(classes.shape[1]):
            c = classes[b, a]
            if c == -2:
                continue
            positives += c >= 0
            for k in range(logits.shape[-1]):
                t = float(c == k)
                p_t = p[b, a, k] if t else 1 - p[b, a, k]
                alpha_t = alpha if t else 1 - alpha
                total += -alpha_t * (1 - p_t) ** gamma * np.log(p_t)
    return total / max(positives, 1)


def test_focal_loss_matches_numpy():
    rng = np.random.default_rng(1)
    classes = rng.choice([-2, -1, -1, 0, 1, 2], size=(3, 20)).astype(np.float32)
    logits = rng.normal(0, 3, (3, 20, 3)).astype(np.float32)
    expected = numpy_focal(classes, logits)
    deltas = rng.normal(0, 1, (3, 20, 4)).astype(np.float32)
    targets = rng.normal(0, 1, (3, 20, 4)).astype(np.float32)
    # The focal term alone: per-image values whose batch mean is the sum over the positives.
    focal, _ = RetinaNetLoss().parts(np.concatenate([targets, classes[..., None]], -1),
                                     np.concatenate([deltas, logits], -1))
    np.testing.assert_allclose(float(np.mean(focal)), expected, rtol=1e-5)
    # The detection loss = focal + smooth-L1 on positives, both over the batch's positives.
    diff = np.abs(targets - deltas)
    smooth = np.where(diff < 0.11, 0.5 * diff ** 2 / 0.11, diff - 0.055).sum(-1)
    box = (smooth * (classes >= 0)).sum() / (classes >= 0).sum()
    loss = RetinaNetLoss()(np.concatenate([targets, classes[..., None]], -1),
                           np.concatenate([deltas, logits], -1))
    np.testing.assert_allclose(float(loss), expected + box, rtol=1e-5)
    # GIoU: a perfect box costs nothing.
    giou = RetinaNetLoss(box_loss="giou")
    perfect = giou(np.concatenate([targets, classes[..., None]], -1), np.concatenate([targets, logits], -1))
    np.testing.assert_allclose(float(perfect), expected, rtol=1e-5)
    # Serializable, with its settings.
    again = keras.losses.deserialize(keras.losses.serialize(RetinaNetLoss(alpha=0.5, box_loss="giou")))
    assert (again.alpha, again.box_loss) == (0.5, "giou")


# ------------------------------------------------------------------------------ evaluation


def _ground_truth():
    rng = np.random.default_rng(2)
    records = []
    for _ in range(6):
        n = rng.integers(1, 5)
        y0, x0 = rng.uniform(0, 200, (2, n))
        h, w = rng.uniform(10, 150, (2, n))
        boxes = np.stack([y0, x0, y0 + h, x0 + w], -1)
        records.append((400, 300, boxes, rng.integers(0, 3, n), np.zeros(n, bool), h * w))
    return records


def _detections(records, shift=0.0, category_ids=(0, 1, 2)):
    out = []
    for image_id, (_, _, boxes, labels, _, _) in enumerate(records, start=1):
        for box, label in zip(boxes, labels):
            x, y, w, h = bx.yxyx_to_xywh(box)
            out.append({"image_id": image_id, "category_id": category_ids[label],
                        "bbox": [x + shift * w, y, w, h], "score": 0.9})
    return out


def test_coco_evaluation_perfect_and_shifted():
    records = _ground_truth()
    names = ["a", "b", "c"]
    gt = coco_ground_truth(records, names, [0, 1, 2])
    perfect = coco_metrics(gt, _detections(records))
    for key in ("mAP", "mAP50", "mAP75"):
        assert perfect[key] == pytest.approx(1.0), key
    # Shifting every box sideways by 20% of its width: IoU = 0.8 / 1.2 = 0.67 -> a hit at 0.5,
    # a miss at 0.75; AP@[.5:.95] counts thresholds 0.5..0.65 (4 of 10).
    shifted = coco_metrics(gt, _detections(records, shift=0.2))
    assert shifted["mAP50"] == pytest.approx(1.0)
    assert shifted["mAP75"] == pytest.approx(0.0)
    assert shifted["mAP"] == pytest.approx(0.4, abs=0.02)
    assert coco_metrics(gt, [])["mAP"] == 0.0
    # Non-contiguous category ids: the same numbers, per-class AP by name.
    gt = coco_ground_truth(records, names, [3, 17, 90])
    again = coco_metrics(gt, _detections(records, category_ids=(3, 17, 90)))
    assert again["mAP"] == pytest.approx(1.0) and again["AP/b"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ training


def test_shapes_training_learns(tmp_path):
    """The quickstart recipe shrunk to 64x64 images and 250 steps (~1 min): mAP50 well above
    zero (measured 0.39; the full quickstart reaches > 0.9)."""
    recipe = tiny("shapes_retinanet", "data.image_size=[64, 64]", "data.train_size=4000",
                  "data.eval_size=100",
                  "train.epochs=1", "train.optimizer.learning_rate=0.002")
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    metrics = json.loads((run.output_dir / "metrics.json").read_text())
    assert metrics["mAP50"] > 0.2, metrics
    assert metrics["num_examples"] == 100
    for key in ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large", "AP/triangle"):
        assert key in metrics
    assert json.loads((run.output_dir / "dataset.json").read_text()) == {
        "class_names": ["circle", "square", "triangle"], "category_ids": [0, 1, 2]}
    # Evaluating the saved model re-measures the same numbers.
    again = zoo.evaluate(run.output_dir / "recipe.yaml", weights=run.output_dir / "model.keras")
    assert again["mAP50"] == pytest.approx(metrics["mAP50"], abs=1e-6)
    # Prediction: one dict per image (the objects drawn, original-image pixels), the picture,
    # every detection in predictions.json, then a line saying where that file is.
    image = generate("shapes_detection", 0, 5, (64, 64))["image"]
    path = str(tmp_path / "shapes.png")
    Image.fromarray(image).resize((128, 96)).save(path)
    from zoo.predict import iter_predict

    first, last = iter_predict(run.output_dir, [path], tmp_path / "pred")
    picture = tmp_path / "pred" / "shapes_detections.png"
    assert first["input"] == path and first["picture"] == str(picture) and first["threshold"] == 0.3
    assert Image.open(picture).size == (128, 96)
    written = tmp_path / "pred" / "predictions.json"
    results = json.loads(written.read_text())
    assert last == {"input": None, "message": "all detections (score >= 0.05, dataset category ids, "
                                              f"COCO [x, y, w, h] pixels): {written}"}
    assert results and {r["file_name"] for r in results} == {path}
    names = {0: "circle", 1: "square", 2: "triangle"}
    assert all(names[r["category_id"]] == r["category"] for r in results)
    drawn = [r for r in results if r["score"] >= 0.3]  # predictions.json: [x, y, w, h]; objects: xyxy
    assert [(o["label"], o["class_id"], o["score"]) for o in first["objects"]] == [
        (r["category"], r["category_id"], r["score"]) for r in drawn]
    for obj, r in zip(first["objects"], drawn):
        x, y, w, h = r["bbox"]
        assert obj["box"] == pytest.approx([x, y, x + w, y + h], abs=1e-4)


# ------------------------------------------------------------------------------ coco folders


def write_coco_folder(root, split, n_images=12, ids=(3, 17, 42), size=(48, 64), seed=0,
                      extra=None):
    """A COCO-layout folder of generated shapes with non-contiguous category ids."""
    names = ["circle", "square", "triangle"]
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, annotations = [], []
    for i in range(n_images):
        ex = generate("shapes_detection", i, seed, size)
        file_name = f"img_{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(ex["image"]).save(root / split / file_name)
        image_id = 1000 + 7 * i
        images.append({"id": image_id, "file_name": file_name, "height": size[0], "width": size[1]})
        for box, label in zip(ex["boxes"], ex["labels"]):
            y0, x0, y1, x1 = box * [size[0], size[1], size[0], size[1]]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": ids[label], "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                                "area": float((x1 - x0) * (y1 - y0)), "iscrowd": 0})
    data = {"images": images, "annotations": annotations + list(extra or []),
            "categories": [{"id": cid, "name": n} for cid, n in zip(ids, names)]}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return root


def test_coco_folder_non_contiguous_ids_round_trip(tmp_path, capsys):
    root = write_coco_folder(tmp_path / "coco", "train", extra=[
        {"id": 900, "image_id": 1000, "category_id": 17, "bbox": [5, 5, 0, 10]},      # empty box
        {"id": 901, "image_id": 1000, "category_id": 17, "bbox": [50, 40, 30, 30]},   # clipped
        {"id": 902, "image_id": 4242, "category_id": 3, "bbox": [1, 1, 5, 5]},        # no image
    ])
    write_coco_folder(root, "val", n_images=6, seed=3)
    recipe = tiny("shapes_retinanet", *TINY, "data.source=coco", f"data.path={root}",
                  "data.name=null", "data.eval_split=val", "data.batch_size=4",
                  "train.epochs=1")
    run = zoo.train(recipe, output_dir=tmp_path / "run")
    out = capsys.readouterr().out
    assert "1 annotation(s) for images not in `images` skipped" in out
    assert "1 annotation(s) with an empty or non-finite box" in out
    assert "1 box(es) extending outside their image clipped" in out
    meta = json.loads((run.output_dir / "dataset.json").read_text())
    assert meta == {"class_names": ["circle", "square", "triangle"], "category_ids": [3, 17, 42]}
    assert run.metrics["num_examples"] == 6
    assert {"AP/circle", "AP/square", "AP/triangle"} <= set(run.metrics)
    from zoo.predict import predict

    predict(run.output_dir, [str(root / "val" / "img_0.png")], tmp_path / "pred")
    results = json.loads((tmp_path / "pred" / "predictions.json").read_text())
    assert {r["category_id"] for r in results} <= {3, 17, 42}
    name_of = {3: "circle", 17: "square", 42: "triangle"}
    assert all(name_of[r["category_id"]] == r["category"] for r in results)


def test_parse_coco_keeps_clips_and_skips_exactly(tmp_path, capsys):
    data = {"images": [{"id": 5, "file_name": "a.png", "width": 64, "height": 48},
                       {"id": 9, "file_name": "b.png"}],
            "categories": [{"id": 42, "name": "triangle"}, {"id": 3, "name": "circle"}],
            "annotations": [
                {"image_id": 5, "category_id": 42, "bbox": [1, 2, 10, 20], "area": 150, "iscrowd": 1},
                {"image_id": 5, "category_id": 3, "bbox": [50, 40, 30, 30]},   # clipped: 14 x 8
                {"image_id": 5, "category_id": 3, "bbox": [70, 10, 5, 5]},     # outside: skipped
                {"image_id": 5, "category_id": 3, "bbox": [5, 5, 0, 10]},      # empty: skipped
                {"image_id": 5, "category_id": 7, "bbox": [5, 5, 5, 5]},       # unknown category
                {"image_id": 9, "category_id": 42, "bbox": [-5, 0, 500, 7]}]}  # no size: kept as is
    names, ids, records = parse_coco_file(tmp_path, data)
    assert (names, ids) == (["circle", "triangle"], [3, 42])
    (a, boxes_a, labels_a, crowd_a, area_a), (b, boxes_b, labels_b, crowd_b, area_b) = records
    assert (a, b) == ("a.png", "b.png")
    np.testing.assert_array_equal(boxes_a, [[1, 2, 10, 20], [50, 40, 14, 8]])
    np.testing.assert_array_equal(labels_a, [1, 0])
    np.testing.assert_array_equal(crowd_a, [True, False])
    np.testing.assert_array_equal(area_a, [150, 14 * 8])
    np.testing.assert_array_equal(boxes_b, [[-5, 0, 500, 7]])
    out = capsys.readouterr().out
    assert "2 annotation(s) with an empty or non-finite box" in out
    assert "1 annotation(s) with a category id not in `categories` skipped" in out
    assert "1 box(es) extending outside their image clipped" in out


def test_coco_json_problems_are_one_line_errors(tmp_path):
    root = write_coco_folder(tmp_path / "coco", "train", n_images=2)
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    for key in ("images", "annotations", "categories"):
        broken = {k: v for k, v in data.items() if k != key}
        with pytest.raises(DataError, match=f"missing or not a list: {key}"):
            parse_coco_file(tmp_path, broken)
    recipe = tiny("shapes_retinanet", *TINY, "data.source=coco", f"data.path={root}",
                  "data.name=null", "data.eval_split=train", "data.batch_size=2", "train.validate=false")
    (root / "train" / "img_0.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="corrupt image file: .*img_0.png"):
        zoo.train(recipe, output_dir=tmp_path / "run0")
    (root / "train" / "img_1.jpg").unlink()
    with pytest.raises(DataError, match="image file not found: .*img_1.jpg"):
        zoo.train(recipe, output_dir=tmp_path / "run")
    from zoo.cli import main

    assert main(["train", "shapes_retinanet", *TINY, "data.source=coco", f"data.path={tmp_path / 'nope'}",
                 "data.name=null", "--output", str(tmp_path / "run2")]) == 2


def parse_coco_file(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return parse_coco(read_coco_json(path), path)


# ------------------------------------------------------------------------------ tfds


def test_split_parts():
    names = ["voc/2007", "voc/2012"]
    assert split_parts("train+validation", names) == [("voc/2007", "train+validation"),
                                                      ("voc/2012", "train+validation")]
    assert split_parts("voc/2007:test", names) == [("voc/2007", "test")]
    assert split_parts("voc/2007:train[:10%], voc/2012:train", names) == [
        ("voc/2007", "train[:10%]"), ("voc/2012", "train")]


@pytest.mark.parametrize("recipe_name, overrides", [
    ("voc_retinanet_resnet50", []),
    ("coco_retinanet_resnet50", []),
])
def test_tfds_recipes_run_on_mock_data(tmp_path, recipe_name, overrides):
    import tensorflow_datasets as tfds

    recipe = tiny(recipe_name, "model.name=retinanet_small", "model.backbone_weights=null", *TINY,
                  "data.batch_size=2",
                  "train.epochs=1", "train.steps_per_epoch=2", "data.shuffle_buffer=4", *overrides)
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        run = zoo.train(recipe, output_dir=tmp_path / "run")
    assert run.metrics["num_examples"] == 4
    assert "mAP" in run.metrics
    meta = json.loads((run.output_dir / "dataset.json").read_text())
    assert len(meta["class_names"]) == (20 if recipe_name.startswith("voc") else 80)


# ------------------------------------------------------------------------------ models


def test_detector_save_load_round_trip(tmp_path):
    model = zoo.create_model("retinanet_small", num_classes=4, input_shape=(64, 64, 3),
                             backbone="simple_cnn", min_level=2, max_level=3, anchor_size=2.0,
                             fpn_channels=32, head_norm=True)
    images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    path = tmp_path / "det.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(loaded.predict_on_batch(images), model.predict_on_batch(images), atol=1e-5)
    assert model_anchor_config(loaded) == model_anchor_config(model)
    layer = model.get_layer("detections")
    assert AnchorOutputs.from_config(layer.get_config()).get_config() == layer.get_config()
    assert model.output.dtype == "float32"


def test_mixed_precision_outputs_float32():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = zoo.create_model("retinanet_small", num_classes=2, input_shape=(64, 64, 3),
                             backbone="simple_cnn", min_level=2, max_level=3, fpn_channels=32)
    out = model.predict_on_batch(np.zeros((1, 64, 64, 3), np.float32))
    assert out.dtype == np.float32


def test_retinanet_resnet50_parameter_count():
    """38,048,372 = torchvision's retinanet_resnet50_fpn (34,014,999, 91 classes, P6 from P5,
    frozen BN as buffers, bias-free convs) - 228,195 (80 classes) + 4,128,768 (P6 from C5, as the
    paper and Detectron2) + 106,240 (BN scale/offset/statistics) + 26,560 (Keras ResNet50 conv biases)."""
    model = zoo.create_model("retinanet_resnet50", input_shape=(256, 256, 3))
    assert model.count_params() == 38_048_372
    assert model.output_shape == (None, 9 * (32 ** 2 + 16 ** 2 + 8 ** 2 + 4 ** 2 + 2 ** 2), 84)
