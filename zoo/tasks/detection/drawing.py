"""Pictures of detections for `zoo predict`: boxes and "<class> <score>" labels drawn on the
original image, one colour per class (`zoo.data.class_color`)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from zoo.data import class_color


def draw_detections(image, detections) -> Image.Image:
    """The uint8 (H, W, 3) `image` with `detections` drawn: (box [x0, y0, x1, y1] in its
    pixels, class name, score, class index) each; the line width grows with the image."""
    picture = Image.fromarray(np.asarray(image))
    draw = ImageDraw.Draw(picture)
    line = max(1, round(min(picture.height, picture.width) / 200))
    for (x0, y0, x1, y1), name, score, index in detections:
        color = class_color(index)
        draw.rectangle([x0, y0, x1, y1], outline=color, width=line)
        draw.text((x0 + 2, y0 + 1), f"{name} {score:.2f}", fill=color)
    return picture
