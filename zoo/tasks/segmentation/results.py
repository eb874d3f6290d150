"""A segmenter's answer for one image (`zoo.results`): the class map at the image's size, drawn
over the image with a legend."""
from __future__ import annotations

import numpy as np

from zoo.results import Result


class Mask(Result):
    """`.mask` (H, W) int32 class ids at the input's size (`.names[id]`: the class name);
    `.fractions` (C,) the share of pixels of each class."""

    def __init__(self, source, image, names, mask):
        super().__init__(source, image, names)
        self.mask = np.asarray(mask, np.int32)

    @property
    def fractions(self) -> np.ndarray:
        return np.bincount(self.mask.ravel(), minlength=len(self.names))[:len(self.names)] / max(1, self.mask.size)

    def picture(self):
        from zoo.tasks.segmentation.drawing import render_overlay

        return render_overlay(np.asarray(self.image), self.mask, self.names, self.fractions)

    def mask_picture(self):
        """The class map as a palette PNG image (pixel value = class id), PIL."""
        from zoo.tasks.segmentation.drawing import mask_image

        return mask_image(self.mask, self.names)

    def to_dict(self) -> dict:
        """{"classes": [[name, fraction of pixels], ...] present, largest first}."""
        fractions = self.fractions
        order = sorted(range(len(self.names)), key=lambda i: (-fractions[i], i))
        return {"classes": [[self.names[i], float(fractions[i])] for i in order if fractions[i] > 0]}
