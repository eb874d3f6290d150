"""`LossPart`: one part of a task's loss as an epoch-log metric (detection's focal and box loss,
segmentation's cross-entropy and Dice). Imported where a task makes its metrics: it subclasses a
Keras class, so importing it loads Keras."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class LossPart(keras.metrics.Mean):
    """The mean of one part of a loss: the loss object's method `part` (per example, or one value
    per batch), so it averages over an epoch as Keras averages the loss itself."""

    def __init__(self, loss, part, name="loss_part", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.loss = keras.losses.deserialize(loss) if isinstance(loss, dict) else loss
        self.part = str(part)

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = getattr(self.loss, self.part)(ops.cast(y_true, "float32"), ops.cast(y_pred, "float32"))
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "loss": keras.losses.serialize(self.loss),
                "part": self.part}
