"""Training curves as a PNG (PIL only): one panel per quantity, train and validation lines."""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image, ImageDraw

PANEL_W, PANEL_H, MARGIN = 360, 220, 40
TRAIN_COLOUR, VAL_COLOUR, AXIS_COLOUR = (31, 119, 180), (255, 127, 14), (90, 90, 90)


def _panel(draw, origin, title, series):
    """Draw `series` (name -> (values, colour)) in a box at `origin`, with min/max labels."""
    x0, y0 = origin
    left, top, right, bottom = x0 + MARGIN, y0 + 24, x0 + PANEL_W - 10, y0 + PANEL_H - 24
    values = [v for vals, _ in series.values() for v in vals]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    draw.rectangle([left, top, right, bottom], outline=AXIS_COLOUR)
    draw.text((left, y0 + 6), title, fill=(0, 0, 0))
    draw.text((x0 + 2, top), f"{high:.3g}", fill=AXIS_COLOUR)
    draw.text((x0 + 2, bottom - 10), f"{low:.3g}", fill=AXIS_COLOUR)
    longest = max(len(vals) for vals, _ in series.values())
    draw.text((left, bottom + 6), "epoch 1", fill=AXIS_COLOUR)
    draw.text((right - 50, bottom + 6), f"epoch {longest}", fill=AXIS_COLOUR)
    for n, (name, (vals, colour)) in enumerate(series.items()):
        step = (right - left) / max(longest - 1, 1)
        points = [(left + i * step, bottom - (v - low) / span * (bottom - top)) for i, v in enumerate(vals)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
        draw.text((left + 150 + 60 * n, y0 + 6), name, fill=colour)


def save_curves(history_csv: Path, path: Path):
    """One panel per quantity of a run's history.csv (`x` and `val_x` together)."""
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    history = {}
    for key in (rows[0] if rows else {}):
        values = [float(r[key]) for r in rows if r[key] not in ("", "NA")]
        if key != "epoch" and values:
            history[key] = values
    names = [k for k in history if not k.startswith("val_") and k not in ("learning_rate", "epoch_seconds")]
    if not names or not history[names[0]]:
        return
    columns = min(len(names), 3)
    rows = -(-len(names) // columns)
    image = Image.new("RGB", (columns * PANEL_W, rows * PANEL_H), "white")
    draw = ImageDraw.Draw(image)
    for i, name in enumerate(names):
        series = {"train": ([float(v) for v in history[name]], TRAIN_COLOUR)}
        if f"val_{name}" in history:
            series["val"] = ([float(v) for v in history[f"val_{name}"]], VAL_COLOUR)
        _panel(draw, ((i % columns) * PANEL_W, (i // columns) * PANEL_H), name, series)
    image.save(path)
