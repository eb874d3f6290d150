"""What `zoo.load_predictor(...).predict` returns: one `Result` per input, NumPy data plus the
task's picture. Each task package defines its result (zoo/tasks/<task>/results.py):

* classification `Classes` / video `ClipClasses`: `.probabilities` (C,), `.top_k`;
* detection `Detections`: `.boxes` (N, 4) [x0, y0, x1, y1] in the input's pixels, `.scores`,
  `.labels` (class indices), `.names` (every class name: `names[label]`);
* segmentation `Mask`: `.mask` (H, W) class ids at the input's size, `.names`.

Every result has `.source` (the input's path, or "<array i>" / "<image i>"), `.image` (the
uint8 input as read), `.plot()` (an RGB uint8 array: the picture `zoo predict` saves),
`.save(path)` (that picture as a file) and `.to_dict()` (plain Python data, what
`zoo predict --json` prints).
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


def save_picture(picture, path) -> Path:
    """A PIL image written to `path`, the format from its suffix; a file that cannot be written
    (a full disk, no format for the suffix) is one ZooError line naming it, and no part of it
    is left."""
    from zoo.errors import cannot_write

    path = Path(path)
    try:
        picture.save(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            path.unlink()
        raise cannot_write(path, err) from None
    except ValueError as err:  # PIL: no format for the suffix
        raise cannot_write(path, err) from None
    return path


class Result:
    """One input's prediction (see the module doc)."""

    def __init__(self, source: str, image, names):
        self.source = str(source)
        self.image = np.asarray(image)
        self.names = list(names)

    def picture(self):
        """The task's drawing of this prediction, a PIL image."""
        raise NotImplementedError

    def plot(self) -> np.ndarray:
        """The picture `zoo predict` saves, as an RGB uint8 array (H, W, 3)."""
        return np.asarray(self.picture().convert("RGB"))

    def save(self, path) -> Path:
        """The picture of `plot` written to `path` (`save_picture`)."""
        return save_picture(self.picture(), path)

    def to_dict(self) -> dict:
        """The prediction as plain Python data (JSON-ready)."""
        raise NotImplementedError

    def __repr__(self):
        summary = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"{type(self).__name__}({self.source!r}, {summary})"
