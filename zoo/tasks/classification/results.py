"""A classifier's answer for one image (`zoo.results`): the probability of every class, the
top-k, drawn as the image with a bar per top-k class."""
from __future__ import annotations

import numpy as np

from zoo.results import Result

TOP_K = 5  # classes listed, drawn and printed


def top_k(probs, class_names, k: int = TOP_K) -> list:
    """[[class name, probability], ...] of the k most probable classes, best first."""
    order = np.argsort(probs, kind="stable")[::-1][:k]
    return [[str(class_names[i]), float(probs[i])] for i in order]


class Classes(Result):
    """`.probabilities` (C,) float32 in the order of `.names`; `.top_k` [[name, p], ...] best
    first; `.label` the best class's name."""

    def __init__(self, source, image, names, probabilities):
        super().__init__(source, image, names)
        self.probabilities = np.asarray(probabilities, np.float32)

    @property
    def top_k(self) -> list:
        return top_k(self.probabilities, self.names)

    @property
    def label(self) -> str:
        return self.names[int(np.argmax(self.probabilities))]

    def picture(self):
        from zoo.tasks.classification.drawing import draw_frame_strip

        return draw_frame_strip(np.asarray(self.image)[None], [0], self.top_k, self.names, numbered=False)

    def to_dict(self) -> dict:
        return {"top_k": self.top_k}
