"""A video classifier's answer for one clip (`zoo.results`): class probabilities averaged over
its sampled clips, drawn as a strip of the frames the model saw."""
from __future__ import annotations

import numpy as np

from zoo.tasks.classification.results import Classes


class ClipClasses(Classes):
    """`Classes` of a clip; `.image` is the whole video (T, H, W, 3) and `.frames` the indices of
    the frames the model saw."""

    def __init__(self, source, video, names, probabilities, frames):
        super().__init__(source, video, names, probabilities)
        self.frames = sorted({int(i) for i in np.asarray(frames).ravel()})

    def picture(self):
        from zoo.tasks.classification.drawing import draw_frame_strip, strip_indices

        return draw_frame_strip(self.image, strip_indices(self.frames), self.top_k, self.names)

    def to_dict(self) -> dict:
        return {"top_k": self.top_k, "frames": self.frames}
