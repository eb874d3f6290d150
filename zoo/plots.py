"""Training curves as a PNG (PIL only): one panel per quantity, train and validation lines."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image, ImageDraw

from zoo.run_dir import write_atomic

PANEL_W, PANEL_H, MARGIN = 360, 220, 40
TRAIN_COLOUR, VAL_COLOUR, AXIS_COLOUR = (31, 119, 180), (255, 127, 14), (90, 90, 90)


def _panel(draw, origin, title, series, first, last):
    """Draw `series` (name -> (epochs, values, colour)) in a box at `origin`, epochs `first` to
    `last` across, with min/max labels; a series may skip epochs (train.eval_every)."""
    x0, y0 = origin
    left, top, right, bottom = x0 + MARGIN, y0 + 24, x0 + PANEL_W - 10, y0 + PANEL_H - 24
    values = [v for _, vals, _ in series.values() for v in vals]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    draw.rectangle([left, top, right, bottom], outline=AXIS_COLOUR)
    draw.text((left, y0 + 6), title, fill=(0, 0, 0))
    draw.text((x0 + 2, top), f"{high:.3g}", fill=AXIS_COLOUR)
    draw.text((x0 + 2, bottom - 10), f"{low:.3g}", fill=AXIS_COLOUR)
    draw.text((left, bottom + 6), f"epoch {first + 1}", fill=AXIS_COLOUR)
    draw.text((right - 50, bottom + 6), f"epoch {last + 1}", fill=AXIS_COLOUR)
    step = (right - left) / max(last - first, 1)
    for n, (name, (epochs, vals, colour)) in enumerate(series.items()):
        points = [(left + (e - first) * step, bottom - (v - low) / span * (bottom - top))
                  for e, v in zip(epochs, vals)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        draw.text((left + 150 + 60 * n, y0 + 6), name, fill=colour)


def save_curves(history_csv: Path, path: Path):
    """One panel per quantity of a run's history.csv (`x` and `val_x` together; a `val_x`
    without `x`, such as detection's val_mAP, alone), each point at its epoch."""
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    history = {}  # key -> (epochs, values), the rows where it has a value
    for key in (rows[0] if rows else {}):
        if key == "epoch":
            continue
        points = [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "NA")]
        if points:
            history[key] = ([e for e, _ in points], [v for _, v in points])
    skip = ("learning_rate", "epoch_seconds")
    names = [k for k in history if not k.startswith("val_") and k not in skip]
    names += [k[4:] for k in history if k.startswith("val_") and k[4:] not in history and k[4:] not in skip
              and set(history[k][1]) != {-1.0}]  # -1 throughout: COCO's "no object of this size"
    if not names:
        return
    epochs = [int(r["epoch"]) for r in rows]
    first, last = min(epochs), max(epochs)
    columns = min(len(names), 3)
    panel_rows = -(-len(names) // columns)
    image = Image.new("RGB", (columns * PANEL_W, panel_rows * PANEL_H), "white")
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(names):
        series = {}
        if name in history:
            series["train"] = (*history[name], TRAIN_COLOUR)
        if f"val_{name}" in history:
            series["val"] = (*history[f"val_{name}"], VAL_COLOUR)
        _panel(draw, ((i % columns) * PANEL_W, (i // columns) * PANEL_H), name, series, first, last)
    png = io.BytesIO()
    image.save(png, format="PNG")
    write_atomic(path, png.getvalue())
