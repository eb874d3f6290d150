"""The picture of a top-k prediction for `zoo predict`: the image (video: a strip of the frames
the model saw, side by side at one height, each with its frame number), and the top-k labels
written under it with a bar per probability in the class colour (`zoo.data.class_color`)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from zoo.data import class_color

STRIP_FRAMES = 8  # frames shown at most
STRIP_HEIGHT = 128  # every frame resized to this height, aspect kept


def strip_indices(indices, count: int = STRIP_FRAMES) -> list[int]:
    """Up to `count` of the frame indices (any order, repeats allowed), evenly spaced over their
    sorted distinct values, first and last included."""
    distinct = sorted({int(i) for i in np.asarray(indices).ravel()})
    if len(distinct) <= count:
        return distinct
    picks = np.round(np.linspace(0, len(distinct) - 1, count)).astype(int)
    return [distinct[i] for i in picks]


def _font(size: int):
    try:  # Pillow >= 10.1 with FreeType: a scalable font; else the bitmap one
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, ImportError, OSError):
        return ImageFont.load_default()


def draw_frame_strip(video, indices, top_k, class_names=(), height: int = STRIP_HEIGHT,
                     numbered: bool = True) -> Image.Image:
    """uint8 (T, H, W, 3) `video`: the frames `indices` side by side at `height` pixels, their
    numbers under them (unless not `numbered`: one image's picture), then one row per
    [class name, probability] of `top_k` (a bar of the probability, in the colour of the class's
    index in `class_names`, and "name 0.873")."""
    video, class_names = np.asarray(video), list(class_names)
    frames = []
    for index in indices:
        frame = Image.fromarray(video[index])
        width = max(1, round(frame.width * height / frame.height))
        upscale = height >= 2 * frame.height  # tiny frames: keep their pixels sharp
        frames.append(frame.resize((width, height), Image.NEAREST if upscale else Image.BILINEAR))
    gap, font, row = 4, _font(12), 18
    strip_width = sum(f.width for f in frames) + gap * (len(frames) + 1)
    canvas_width = max(strip_width, 300)
    top = gap + height + (row if numbered else 0)  # frames, then their numbers
    canvas = Image.new("RGB", (canvas_width, top + gap + row * len(top_k) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = gap
    for index, frame in zip(indices, frames):
        canvas.paste(frame, (x, gap))
        if numbered:
            draw.text((x, gap + height + 2), f"frame {index}", fill=(80, 80, 80), font=font)
        x += frame.width + gap
    bar = 120
    for rank, (name, probability) in enumerate(top_k):
        y = top + gap + rank * row
        draw.rectangle([gap, y + 2, gap + bar, y + row - 4], outline=(160, 160, 160))
        filled = round(bar * float(np.clip(probability, 0, 1)))
        if filled:
            color = class_color(class_names.index(name)) if name in class_names else (128, 128, 128)
            draw.rectangle([gap, y + 2, gap + filled, y + row - 4], fill=color)
        draw.text((gap + bar + 8, y + 1), f"{name}  {float(probability):.3f}", fill=(0, 0, 0), font=font)
    return canvas
