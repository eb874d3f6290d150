"""Segmentation pictures: the class map blended over the image with a legend, and the class map
as a palette PNG. Colours: class i is `zoo.data.class_color(i)` (the zoo's one palette, shared
with detection boxes), in the overlay, the legend and the mask PNG alike; a class named
"background" is left untinted in the overlay (white swatch) and black in the mask PNG."""
from __future__ import annotations

import numpy as np

from zoo.data import class_color


def class_colors(class_names) -> list:
    """An RGB colour per class index, `class_color(index)`; a class named "background" gets
    None (left untinted). The palette has 20 colours: beyond 20 classes they repeat (the legend
    names each class)."""
    return [None if str(name).lower() == "background" else class_color(index)
            for index, name in enumerate(class_names)]


def render_overlay(image: np.ndarray, classes: np.ndarray, class_names, fractions, alpha=0.5):
    """The image with its class map blended in, and a legend (swatch, name, pixel %) below."""
    from PIL import Image, ImageDraw

    colors = class_colors(class_names)
    blended = image.astype(np.float32).copy()
    for index, color in enumerate(colors):
        if color is None:
            continue
        where = classes == index
        blended[where] = (1 - alpha) * blended[where] + alpha * np.asarray(color, np.float32)
    picture = Image.fromarray(np.clip(blended, 0, 255).round().astype(np.uint8))
    scale = max(1, int(np.ceil(256 / max(picture.size))))
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    row = 16
    width = max(picture.width, 220)
    canvas = Image.new("RGB", (width, picture.height + row * len(class_names) + 8), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, name in enumerate(class_names):
        top = picture.height + 4 + row * index
        color = colors[index]
        draw.rectangle([4, top + 2, 16, top + 13], fill=color or (255, 255, 255), outline=(0, 0, 0))
        draw.text((22, top + 1), f"{name}  {100 * fractions[index]:.1f}%", fill=(0, 0, 0))
    return canvas


def mask_image(classes: np.ndarray, class_names):
    """(H, W) class ids -> a palette ("P") PIL image: pixel value = class id (what the folder
    source reads back as a mask), palette entry i = class_color(i), black for "background".
    Beyond 256 classes a palette cannot hold them: a 16-bit grey image of the class ids."""
    from PIL import Image

    classes = np.asarray(classes)
    if len(class_names) > 256:
        return Image.fromarray(classes.astype(np.uint16))
    picture = Image.fromarray(classes.astype(np.uint8))  # "L"; putpalette makes it "P"
    colors = [color or (0, 0, 0) for color in class_colors(class_names)]
    picture.putpalette([channel for color in colors for channel in color])
    return picture
