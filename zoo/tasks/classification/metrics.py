"""Top-k accuracy (one definition for the epoch logs and metrics.json) and label smoothing."""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


def top_k_hits(y_true, y_pred, k=5):
    """1.0 where the label is among the k best-scored classes, else 0.0: its rank is the number
    of classes scored higher, plus those scored equal with a lower index (argmax's tie rule, so
    k=1 is top-1 accuracy); a non-finite score is never a hit. The one definition of
    `accuracy` / `top5_accuracy`, in the epoch logs and in metrics.json alike (Keras'
    SparseTopKCategoricalAccuracy counts every tie as a hit: 1.0 for a constant output)."""
    scores = ops.cast(y_pred, "float32")
    labels = ops.cast(ops.reshape(y_true, [-1, 1]), "int32")
    true = ops.take_along_axis(scores, labels, axis=-1)
    index = ops.arange(ops.shape(scores)[-1], dtype="int32")[None, :]
    ahead = ops.logical_or(scores > true, ops.logical_and(scores == true, index < labels))
    rank = ops.sum(ops.cast(ahead, "int32"), axis=-1)
    hit = ops.logical_and(rank < k, ops.all(ops.isfinite(scores), axis=-1))
    return ops.cast(hit, "float32")


@keras.saving.register_keras_serializable(package="zoo")
class TopKAccuracy(keras.metrics.MeanMetricWrapper):
    """Mean of `top_k_hits` over the examples."""

    def __init__(self, k=5, name="top5_accuracy", dtype=None):
        super().__init__(top_k_hits, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}


def classification_metrics(scores, labels, num_classes) -> dict:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    ks = {"accuracy": 1, **({"top5_accuracy": 5} if num_classes > 5 else {})}
    out = {}
    for name, k in ks.items():
        hits = [keras.ops.convert_to_numpy(top_k_hits(labels[i:i + 4096], scores[i:i + 4096], k))
                for i in range(0, len(labels), 4096)]
        out[name] = float(np.concatenate(hits).mean()) if hits else 0.0
    out["num_examples"] = int(len(labels))
    return out


@keras.saving.register_keras_serializable(package="zoo")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy against one-hot labels smoothed by `label_smoothing` (Szegedy et al. 2016)."""

    def __init__(self, label_smoothing=0.1, num_classes=10, name="smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"),
                                    self.num_classes)
        return keras.losses.categorical_crossentropy(one_hot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "num_classes": self.num_classes}
