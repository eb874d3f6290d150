"""zoo.data.synthetic: determinism, formats, and that each generator carries a real signal."""
import numpy as np
import pytest

from zoo.data.synthetic import GENERATORS, Generator, generate
from zoo.errors import DataError

NAMES = ("shapes", "shapes_segmentation", "shapes_detection", "moving_shapes")


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_registry():
    assert set(NAMES) <= set(GENERATORS)
    tasks = {n: GENERATORS[n].task for n in NAMES}
    assert tasks == {"shapes": "classification", "shapes_segmentation": "segmentation",
                     "shapes_detection": "detection", "moving_shapes": "video"}
    for name in NAMES:
        gen = GENERATORS[name]
        assert isinstance(gen, Generator) and callable(gen.make)
        # what it makes is the example its task reads (GENERATORS is keyed by gen.name itself)
        assert set(generate(name, 0, 0)) == {"classification": {"image", "label"},
                                             "segmentation": {"image", "mask"},
                                             "detection": {"image", "boxes", "labels"},
                                             "video": {"video", "label"}}[gen.task]
        assert len(set(gen.class_names)) == len(gen.class_names) >= 2
    assert GENERATORS["shapes_segmentation"].class_names[0] == "background"
    assert GENERATORS["moving_shapes"].class_names == ("left", "right")


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_index(name):
    forward = [generate(name, i, 7) for i in range(6)]
    backward = [generate(name, i, 7) for i in reversed(range(6))][::-1]  # order does not matter
    assert all(_equal(a, b) for a, b in zip(forward, backward))
    # a different index or a different seed gives a different example
    assert not any(_equal(forward[0], other) for other in forward[1:])
    assert not _equal(forward[0], generate(name, 0, 8))
    # the same rng as documented
    rng = np.random.default_rng([7, 3])
    assert _equal(forward[3], GENERATORS[name].make(rng, (64, 64), {}))


@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
def test_formats(size):
    h, w = size
    ex = generate("shapes", 0, 0, image_size=size)
    assert ex["image"].shape == (h, w, 3) and ex["image"].dtype == np.uint8
    assert np.ndim(ex["label"]) == 0 and 0 <= int(ex["label"]) < len(GENERATORS["shapes"].class_names)

    ex = generate("shapes_segmentation", 0, 0, image_size=size)
    assert ex["image"].shape == (h, w, 3) and ex["image"].dtype == np.uint8
    assert ex["mask"].shape == (h, w) and ex["mask"].dtype == np.uint8

    ex = generate("shapes_detection", 0, 0, image_size=size)
    assert ex["image"].shape == (h, w, 3) and ex["image"].dtype == np.uint8
    n = len(ex["labels"])
    assert ex["boxes"].shape == (n, 4) and ex["boxes"].dtype == np.float32
    assert ex["labels"].dtype == np.int32 and 1 <= n <= 6

    ex = generate("moving_shapes", 0, 0, image_size=size)
    assert ex["video"].shape == (8, h, w, 3) and ex["video"].dtype == np.uint8
    assert generate("moving_shapes", 0, 0, image_size=size, num_frames=5)["video"].shape == (5, h, w, 3)


def test_errors():
    with pytest.raises(DataError, match="did you mean shapes"):
        generate("shape", 0, 0)
    with pytest.raises(DataError, match="num_frames"):
        generate("shapes", 0, 0, num_frames=4)
    with pytest.raises(DataError):
        generate("shapes", 0, 0, image_size=(8, 8))
    with pytest.raises(DataError):
        generate("shapes", 0, 0, label=99)


@pytest.mark.parametrize("name", ["shapes", "moving_shapes"])
def test_labels_cover_all_classes(name):
    labels = [int(generate(name, i, 1, image_size=(32, 32))["label"]) for i in range(200)]
    counts = np.bincount(labels, minlength=len(GENERATORS[name].class_names))
    assert len(counts) == len(GENERATORS[name].class_names) and counts.min() >= 10


def test_segmentation_masks():
    seen = set()
    for i in range(100):
        ex = generate("shapes_segmentation", i, 1, noise=0)
        mask, image = ex["mask"], ex["image"]
        assert mask.max() < len(GENERATORS["shapes_segmentation"].class_names)
        assert (mask > 0).any() and (mask == 0).any()
        seen |= set(np.unique(mask).tolist())
        # without noise every drawn shape is one flat color: a pure mask region is one color
        for c in np.unique(mask[mask > 0]):
            colors = np.unique(image[mask == c], axis=0)
            if len(colors) == 1:
                assert not np.all(image[mask == 0] == colors[0], axis=-1).any()
    assert seen == {0, 1, 2, 3}


def test_detection_boxes():
    sides, single = [], 0
    for i in range(200):
        ex = generate("shapes_detection", i, 1, image_size=(128, 128), noise=0)
        boxes, labels, image = ex["boxes"], ex["labels"], ex["image"]
        # boxes come from rasters clipped to the image, so [0, 1] bounds cannot fail; their edges
        # are whole pixels of the 128-pixel side (a raster's extent, normalized by that side)
        assert np.allclose(boxes * 128, np.round(boxes * 128), atol=1e-4)
        assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
        assert ((labels >= 0) & (labels < len(GENERATORS["shapes_detection"].class_names))).all()
        sides.extend(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * 128)
        for a in range(len(boxes)):  # little overlap between placed boxes
            for b in range(a):
                top, left = np.maximum(boxes[a, :2], boxes[b, :2])
                bottom, right = np.minimum(boxes[a, 2:], boxes[b, 2:])
                inter = max(bottom - top, 0) * max(right - left, 0)
                area = lambda k: (boxes[k, 2] - boxes[k, 0]) * (boxes[k, 3] - boxes[k, 1])
                assert inter / (area(a) + area(b) - inter) < 0.3
        if len(boxes) == 1:  # tight: the extent of the shape's flat color is exactly the box
            single += 1
            y0, x0, y1, x1 = np.round(boxes[0] * 128).astype(int)
            assert np.allclose(boxes[0] * 128, [y0, x0, y1, x1], atol=1e-4)
            inside = image[y0:y1, x0:x1].reshape(-1, 3)
            colors, counts = np.unique(inside, axis=0, return_counts=True)
            ys, xs = np.nonzero(np.all(image == colors[counts.argmax()], axis=-1))
            assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (y0, x0, y1, x1)
    sides = np.array(sides)
    assert single >= 10
    assert (sides <= 12).sum() >= 10, "small objects (<= 12 px on 128 px) must occur"
    assert (sides >= 40).sum() >= 10, "so must large ones"
    assert len(sides) >= 400  # 1-6 objects each, 3.5 on average


def _radial_profile(image):
    """Rotation/scale/color-invariant features: histogram of foreground-pixel distances to the
    foreground centroid, in units of sqrt(foreground area)."""
    im = image.astype(np.float32)
    im = im.reshape(im.shape[0] // 2, 2, im.shape[1] // 2, 2, 3).mean((1, 3))
    border = np.concatenate([im[0], im[-1], im[:, 0], im[:, -1]])
    ys, xs = np.nonzero(np.linalg.norm(im - np.median(border, 0), axis=-1) > 60)
    rho = np.hypot(ys - ys.mean(), xs - xs.mean()) / np.sqrt(len(ys))
    return np.histogram(rho, bins=10, range=(0, 1))[0] / len(ys)


def _nearest_centroid_accuracy(x_train, y_train, x_test, y_test):
    classes = np.unique(y_train)
    centroids = np.stack([x_train[y_train == c].mean(0) for c in classes])
    pred = classes[np.argmin(((x_test[:, None] - centroids[None]) ** 2).sum(-1), axis=1)]
    return float((pred == y_test).mean())


def test_shapes_carry_a_signal():
    def features(seed, n):
        exs = [generate("shapes", i, seed) for i in range(n)]
        return np.stack([_radial_profile(e["image"]) for e in exs]), np.array([int(e["label"]) for e in exs])

    accuracy = _nearest_centroid_accuracy(*features(1, 300), *features(2, 200))
    assert accuracy > 0.5  # chance is 1/6


def test_moving_shapes_label_is_time_reversal():
    for i in range(10):
        left = generate("moving_shapes", i, 3, label=0)["video"]
        right = generate("moving_shapes", i, 3, label=1)["video"]
        assert np.array_equal(left, right[::-1])
        assert not np.array_equal(left[0], left[-1])
        # the background is fixed per clip: most pixels never change
        assert (np.abs(np.diff(right.astype(int), axis=0)).max(axis=(0, 3)) == 0).mean() > 0.5


def _shift(video):
    """Horizontal displacement between consecutive frames that best explains the clip (pixels)."""
    residual = video.astype(np.float32) - video.mean(0, dtype=np.float32)  # drops the fixed background
    a, b, width = residual[:-1], residual[1:], video.shape[2]
    shifts = list(range(-width // 4, width // 4 + 1))
    scores = [(a[:, :, : width - s] * b[:, :, s:]).sum() if s >= 0 else (a[:, :, -s:] * b[:, :, : width + s]).sum()
              for s in shifts]
    return shifts[int(np.argmax(scores))]


def test_moving_shapes_only_frame_order_tells_the_class():
    size, n = (32, 32), 400
    averages, shifts, labels = [], [], []
    for i in range(n):
        ex = generate("moving_shapes", i, 0, image_size=size)
        averages.append(ex["video"].mean(0, dtype=np.float32).ravel())
        shifts.append(_shift(ex["video"]))
        labels.append(int(ex["label"]))
    averages, shifts, labels = np.stack(averages), np.array(shifts), np.array(labels)
    half = n // 2
    # a model that averages frames over time is at chance (2-fold, to halve the variance) ...
    a, b = slice(None, half), slice(half, None)
    accuracy = (_nearest_centroid_accuracy(averages[a], labels[a], averages[b], labels[b])
                + _nearest_centroid_accuracy(averages[b], labels[b], averages[a], labels[a])) / 2
    assert accuracy < 0.65
    # ... while the frame order gives the class away ("right" = 1 = positive shift)
    assert ((shifts > 0).astype(int) == labels).mean() > 0.95
