"""Seeded synthetic datasets with a real learning signal, in pure NumPy.

Every example is a function of ``(seed, index)`` alone: ``generate(name, index, seed)`` draws it
from ``np.random.default_rng([seed, index])``, so the i-th example is the same however many
examples are asked for, streams can start anywhere, and train / eval splits use disjoint seeds.

Generators (``GENERATORS[name]``):

- ``shapes`` (classification): one shape on a noisy, random-colored background.
  ``{"image": (H, W, 3) uint8, "label": int32}``.
- ``shapes_segmentation``: 1-4 shapes, possibly overlapping (the later one wins in the mask).
  ``{"image": (H, W, 3) uint8, "mask": (H, W) uint8}`` with 0 = background.
- ``shapes_detection``: 1-6 shapes of widely varied size (down to ~8 px on a 128 px image),
  placed by rejection sampling so that boxes barely overlap.
  ``{"image": (H, W, 3) uint8, "boxes": (n, 4) float32 [ymin, xmin, ymax, xmax] in 0..1,
  "labels": (n,) int32}``; boxes are tight around the drawn pixels (pixel edges / size).
- ``moving_shapes`` (video): a shape moving left or right; see ``_make_moving_shapes`` for why
  the class is decidable only from frame order. ``{"video": (T, H, W, 3) uint8, "label": int32}``.

Drawing is vectorized over pixel-center coordinate grids restricted to each shape's bounding
square (no PIL, no anti-aliasing), a few hundred microseconds per 64x64 example.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from zoo.errors import DataError

# Every shape fits inside the circle of radius r around its center (r = "circumradius").
SHAPE_KINDS = ("circle", "square", "triangle", "cross", "ring", "star")


@dataclass
class Generator:
    name: str
    task: str  # the registered task it serves
    class_names: tuple[str, ...]
    make: Callable[[np.random.Generator, tuple, dict], dict]  # make(rng, (H, W), options) -> example
    options: tuple[str, ...] = ()  # option names `make` accepts (generate rejects the others)
    description: str = ""
    ragged: tuple[str, ...] = ()  # example keys whose length varies between examples


# ----------------------------------------------------------------------------- drawing


def _shape_patch(kind, cy, cx, r, theta, height, width):
    """Rasterize one shape: returns (y0, x0, mask) with mask a bool patch at rows y0.., cols x0..

    Pixel (i, j) is inside when its center (i + 0.5, j + 0.5) is; the patch covers the shape's
    bounding square clipped to the image (it may be empty when the shape lies outside).
    """
    y0, y1 = max(int(math.floor(cy - r)), 0), min(int(math.ceil(cy + r)) + 1, height)
    x0, x1 = max(int(math.floor(cx - r)), 0), min(int(math.ceil(cx + r)) + 1, width)
    if y1 <= y0 or x1 <= x0:
        return y0, x0, np.zeros((0, 0), bool)
    y = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    x = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    rho2 = y * y + x * x
    if kind == "circle":
        mask = rho2 <= r * r
    elif kind == "ring":
        mask = (rho2 <= r * r) & (rho2 >= (0.55 * r) ** 2)
    elif kind in ("square", "triangle"):
        n = 4 if kind == "square" else 3
        sector = 2 * math.pi / n
        psi = np.mod(np.arctan2(y, x) - theta, sector)
        mask = np.sqrt(rho2) * np.cos(psi - sector / 2) <= r * math.cos(sector / 2)
    elif kind == "cross":
        c, s = math.cos(theta), math.sin(theta)
        u, v = np.abs(x * c + y * s), np.abs(-x * s + y * c)
        arm, half = r * 0.92, r * 0.3  # (arm, half) lies inside the circumcircle
        mask = ((u <= arm) & (v <= half)) | ((v <= arm) & (u <= half))
    elif kind == "star":
        sector = 2 * math.pi / 5
        psi = np.mod(np.arctan2(y, x) - theta, sector)
        psi = np.minimum(psi, sector - psi)  # fold: 0 at an outer vertex, pi/5 at an inner one
        rho = np.sqrt(rho2)
        px, py = rho * np.cos(psi), rho * np.sin(psi)
        inner = 0.45 * r
        ex, ey = inner * math.cos(sector / 2) - r, inner * math.sin(sector / 2)
        mask = ex * py - ey * (px - r) >= 0  # on the center's side of the outer->inner edge
    else:
        raise ValueError(f"unknown shape kind {kind!r}")
    return y0, x0, mask


def _paint(canvas, patch, color):
    y0, x0, mask = patch
    h, w = mask.shape
    canvas[y0:y0 + h, x0:x0 + w][mask] = color


def _background(rng, height, width):
    """A random color plus a random linear gradient (float32, before noise); returns (bg, color)."""
    color = rng.uniform(0, 255, size=3).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    amplitude = rng.uniform(0, 40, size=3).astype(np.float32)
    yy = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    ramp = yy * math.sin(angle) + xx * math.cos(angle)
    return color + ramp[:, :, None] * amplitude, color


def _shape_color(rng, background_color, min_distance=90.0):
    """A color at least `min_distance` (RGB L2) away from the background's (rejection sampling)."""
    for _ in range(32):
        color = rng.uniform(0, 255, size=3).astype(np.float32)
        if np.linalg.norm(color - background_color) >= min_distance:
            return color
    return (255.0 - background_color).astype(np.float32)  # always >= ~128 away on some channel


def _finish(rng, canvas, noise):
    """Add Gaussian pixel noise (sigma uniform in [0, noise]) and quantize to uint8."""
    sigma = rng.uniform(0.0, noise)
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(canvas, 0, 255).round().astype(np.uint8)


def _pick_label(rng, num_classes, options):
    """Draw the label (always consuming the draw, so forcing `label` leaves the rest unchanged)."""
    label = int(rng.integers(num_classes))
    forced = options.get("label")
    if forced is not None:
        if not 0 <= int(forced) < num_classes:
            raise DataError(f"synthetic option label={forced!r} is not in 0..{num_classes - 1}")
        label = int(forced)
    return label


# ----------------------------------------------------------------------------- generators

SHAPES_CLASSES = SHAPE_KINDS
SEGMENTATION_CLASSES = ("background", "circle", "square", "triangle")
DETECTION_CLASSES = ("circle", "square", "triangle")
MOVING_CLASSES = ("left", "right")


def _make_shapes(rng, image_size, options):
    """One shape (size 30-80% of the short side, any color / position / rotation) per image."""
    height, width = image_size
    label = _pick_label(rng, len(SHAPES_CLASSES), options)
    canvas, bg_color = _background(rng, height, width)
    short = min(height, width)
    r = rng.uniform(0.15, 0.4) * short
    cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
    theta = rng.uniform(0, 2 * math.pi)
    _paint(canvas, _shape_patch(SHAPES_CLASSES[label], cy, cx, r, theta, height, width),
           _shape_color(rng, bg_color))
    image = _finish(rng, canvas, options.get("noise", 20.0))
    return {"image": image, "label": np.int32(label)}


def _make_segmentation(rng, image_size, options):
    """1-4 shapes of 3 classes (radius 8-25% of the short side); later shapes overwrite the mask."""
    height, width = image_size
    canvas, bg_color = _background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    short = min(height, width)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(1, len(SEGMENTATION_CLASSES)))
        r = rng.uniform(0.08, 0.25) * short
        cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
        theta = rng.uniform(0, 2 * math.pi)
        patch = _shape_patch(SEGMENTATION_CLASSES[cls], cy, cx, r, theta, height, width)
        _paint(canvas, patch, _shape_color(rng, bg_color))
        _paint(mask, patch, cls)
    image = _finish(rng, canvas, options.get("noise", 20.0))
    return {"image": image, "mask": mask}


def _box_of(patch, height, width):
    y0, x0, m = patch
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([(y0 + rows[0]) / height, (x0 + cols[0]) / width,
                     (y0 + rows[-1] + 1) / height, (x0 + cols[-1] + 1) / width], np.float64)


def _overlap(box, boxes):
    """(IoU, intersection / smaller area) of `box` against each row of `boxes`."""
    top = np.maximum(box[0], boxes[:, 0])
    left = np.maximum(box[1], boxes[:, 1])
    bottom = np.minimum(box[2], boxes[:, 2])
    right = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter), inter / np.minimum(area, areas)


def _make_detection(rng, image_size, options):
    """1-6 shapes, radius log-uniform from ~4 px at 128 px (min 3.5 px) to 22% of the short side.

    Shapes are drawn largest first, so small ones are never hidden; each new box must have
    IoU < `max_iou` (default 0.3) and cover < half of the smaller box of every placed one
    (up to 30 tries each, else the object is dropped: at least one object is always placed).
    Boxes are amodal and tight: the pixel extent of the shape's own raster.
    """
    height, width = image_size
    canvas, bg_color = _background(rng, height, width)
    short = min(height, width)
    max_iou = float(options.get("max_iou", 0.3))
    count = int(rng.integers(1, 7))
    r_min, r_max = max(3.5, short / 32), 0.22 * short
    radii = np.sort(np.exp(rng.uniform(math.log(r_min), math.log(r_max), size=count)))[::-1]
    boxes, labels = [], []
    for r in radii:
        cls = int(rng.integers(len(DETECTION_CLASSES)))
        theta = rng.uniform(0, 2 * math.pi)
        color = _shape_color(rng, bg_color)
        for _ in range(30):
            cy, cx = rng.uniform(r, height - r), rng.uniform(r, width - r)
            patch = _shape_patch(DETECTION_CLASSES[cls], cy, cx, r, theta, height, width)
            box = _box_of(patch, height, width)
            if box is None:
                continue
            if boxes:
                iou, cover = _overlap(box, np.stack(boxes))
                if iou.max() >= max_iou or cover.max() >= 0.5:
                    continue
            _paint(canvas, patch, color)
            boxes.append(box)
            labels.append(cls)
            break
    image = _finish(rng, canvas, options.get("noise", 20.0))
    return {"image": image, "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
            "labels": np.asarray(labels, np.int32)}


def _make_moving_shapes(rng, image_size, options):
    """A shape moving in a straight horizontal line over T frames; the class is its direction.

    The shape (random kind, color, size, rotation, row) moves from a random start by a random
    distance (30-100% of the free width) at constant speed, its whole path inside the frame, over
    a noisy background fixed for the clip. A "right" clip is drawn, and a "left" clip is that clip
    time-reversed (and the label is drawn first and independently), so a "left" clip is
    distributed exactly like a reversed "right" one: the multiset of frames has the same
    distribution for both classes and the class is decidable ONLY from frame order. A model that
    averages per-frame features over time is at chance. Forcing ``label`` (an option) keeps every
    other draw, so the two labels of one (seed, index) give exact time reversals of each other.

    Why 2 classes: time reversal pairs "left" with "right". With 4 directions (adding up / down)
    a frame-averaging model could still tell the axis (a horizontal path smears the time-average
    horizontally, a vertical one vertically), so it would score 50%, not chance (25%).
    """
    height, width = image_size
    frames = int(options.get("num_frames", 8))
    if frames < 2:
        raise DataError(f"moving_shapes needs num_frames >= 2, got {frames}")
    label = _pick_label(rng, len(MOVING_CLASSES), options)
    kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    background, bg_color = _background(rng, height, width)
    background = _finish(rng, background, options.get("noise", 20.0))
    color = np.clip(_shape_color(rng, bg_color), 0, 255).round().astype(np.uint8)
    short = min(height, width)
    r = rng.uniform(0.08, 0.2) * short
    theta = rng.uniform(0, 2 * math.pi)
    cy = rng.uniform(r, height - r)
    free = width - 2 * r
    distance = rng.uniform(0.3, 1.0) * free
    start = rng.uniform(r, width - r - distance)
    xs = start + distance * np.arange(frames) / (frames - 1)  # moving right
    if MOVING_CLASSES[label] == "left":
        xs = xs[::-1]
    video = np.repeat(background[None], frames, axis=0)
    for t, cx in enumerate(xs):
        _paint(video[t], _shape_patch(kind, cy, cx, r, theta, height, width), color)
    return {"video": video, "label": np.int32(label)}


GENERATORS: dict[str, Generator] = {
    g.name: g
    for g in (
        Generator("shapes", "classification", SHAPES_CLASSES, _make_shapes, ("noise", "label"),
                  "one shape per image: " + ", ".join(SHAPES_CLASSES)),
        Generator("shapes_segmentation", "segmentation", SEGMENTATION_CLASSES, _make_segmentation,
                  ("noise",), "1-4 shapes, per-pixel class mask (0 = background)"),
        Generator("shapes_detection", "detection", DETECTION_CLASSES, _make_detection,
                  ("noise", "max_iou"), "1-6 shapes of varied size with tight normalized boxes",
                  ragged=("boxes", "labels")),
        Generator("moving_shapes", "video", MOVING_CLASSES, _make_moving_shapes,
                  ("noise", "label", "num_frames"), "a shape moving left or right over T frames"),
    )
}


def get_generator(name: str) -> Generator:
    if name not in GENERATORS:
        close = difflib.get_close_matches(str(name), list(GENERATORS), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown synthetic dataset {name!r}{hint} (known: {', '.join(GENERATORS)})")
    return GENERATORS[name]


def generate(name: str, index: int, seed: int, image_size=(64, 64), **options) -> dict:
    """Example `index` of generator `name` for `seed`, drawn from np.random.default_rng([seed, index]).

    image_size is (H, W). Options (per generator, see Generator.options): noise (max pixel-noise
    sigma, default 20), label (force the class; classification and video), num_frames (video,
    default 8), max_iou (detection, default 0.3).
    """
    generator = get_generator(name)
    unknown = sorted(set(options) - set(generator.options))
    if unknown:
        raise DataError(f"synthetic dataset {name!r} has no option(s) {', '.join(unknown)}; "
                        f"it takes: {', '.join(generator.options) or 'none'}")
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise DataError(f"synthetic image_size must be (height, width), got {image_size!r}") from None
    if min(height, width) < 16:
        raise DataError(f"synthetic image_size must be at least 16x16, got {image_size!r}")
    if int(index) < 0 or int(seed) < 0:
        raise DataError(f"synthetic index and seed must be >= 0, got index={index}, seed={seed}")
    rng = np.random.default_rng([int(seed), int(index)])
    return generator.make(rng, (height, width), dict(options))
