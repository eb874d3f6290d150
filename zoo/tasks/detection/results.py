"""A detector's answer for one image (`zoo.results`): boxes in the image's pixels, drawn with
their class names and scores."""
from __future__ import annotations

import numpy as np

from zoo.results import Result


class Detections(Result):
    """`.boxes` (N, 4) float32 [x0, y0, x1, y1] in the input's pixels, `.scores` (N,) best first,
    `.labels` (N,) class indices (`.names[label]`: the class name)."""

    def __init__(self, source, image, names, boxes, scores, labels):
        super().__init__(source, image, names)
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(scores, np.float32).reshape(-1)
        self.labels = np.asarray(labels, np.int64).reshape(-1)

    def __len__(self):
        return len(self.scores)

    def name(self, label) -> str:
        label = int(label)
        return self.names[label] if 0 <= label < len(self.names) else str(label)

    def keep(self, min_score: float) -> "Detections":
        """The detections of score >= min_score."""
        kept = self.scores >= min_score
        return Detections(self.source, self.image, self.names, self.boxes[kept], self.scores[kept], self.labels[kept])

    def picture(self):
        from zoo.tasks.detection.drawing import draw_detections

        return draw_detections(self.image, [(tuple(float(v) for v in box), self.name(label), float(score), int(label))
                                            for box, score, label in zip(self.boxes, self.scores, self.labels)])

    def to_dict(self) -> dict:
        """{"objects": [{"label": name, "class_id", "score", "box": [x0, y0, x1, y1]}, ...]}."""
        return {"objects": [{"label": self.name(label), "class_id": int(label), "score": float(score),
                             "box": [float(v) for v in box]}
                            for box, score, label in zip(self.boxes, self.scores, self.labels)]}
