"""Pictures of detections for `zoo predict`: boxes and "<class> <score>" labels drawn on the
original image, one colour per class (`zoo.data.class_color`); each label on a filled box of its
class colour, in black or white, whichever contrasts more, so it reads on any background."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zoo.data import class_color


def text_color(background) -> tuple:
    """Black or white, whichever contrasts more with `background` (WCAG relative luminance)."""
    channels = np.asarray(background[:3], np.float64) / 255
    linear = np.where(channels <= 0.04045, channels / 12.92, ((channels + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ [0.2126, 0.7152, 0.0722])
    return (0, 0, 0) if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else (255, 255, 255)


def label_font(size: int):
    """PIL's bundled font at `size` pixels (Pillow >= 10.1 with FreeType), else its bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, ImportError, OSError):
        return ImageFont.load_default()


def draw_detections(image, detections) -> Image.Image:
    """The uint8 (H, W, 3) `image` with `detections` drawn: (box [x0, y0, x1, y1] in its
    pixels, class name, score, class index) each; line width and label size grow with the
    image. Labels sit on a filled box of the class colour just above their box (inside it at
    the top edge of the image), drawn after every box so no box line crosses a label."""
    picture = Image.fromarray(np.asarray(image))
    draw = ImageDraw.Draw(picture)
    short = min(picture.height, picture.width)
    line = max(1, round(short / 200))
    font = label_font(max(10, round(short / 32)))
    pad = max(1, line)
    ordered = sorted(detections, key=lambda d: d[2])  # the best label ends on top
    for (x0, y0, x1, y1), _, _, index in ordered:
        draw.rectangle([x0, y0, x1, y1], outline=class_color(index), width=line)
    for (x0, y0, x1, y1), name, score, index in ordered:
        color = class_color(index)
        text = f"{name} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        width, height = right - left + 2 * pad, bottom - top + 2 * pad
        lx = min(max(0.0, x0), max(0.0, picture.width - width))
        ly = y0 - height if y0 - height >= 0 else max(0.0, y0)
        draw.rectangle([lx, ly, lx + width - 1, ly + height - 1], fill=color)
        draw.text((lx + pad - left, ly + pad - top), text, fill=text_color(color), font=font)
    return picture
