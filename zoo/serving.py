"""Layers of the serving graphs `zoo export` writes: raw uint8 images of any size in, the task's
answer out (`Task.serving_model`). Inference code, not model code: on TensorFlow, TensorFlow
image ops, traced into the exported graph with the model, so they need no zoo at run time; on
the other backends their keras.ops twins (`zoo.serving_ops`), the same numbers.
"""
from __future__ import annotations

import keras
from keras import ops

from zoo import serving_ops
from zoo.data.augment import center_crop_resize
from zoo.lazy import tf


def float32_model(model):
    """`model` computing in float32 (the same weights): inference and exports run in float32
    whatever policy trained it (a mixed_bfloat16 graph does not convert to LiteRT, and the
    answers of `zoo predict` and every export are those of one float32 graph)."""
    if all(layer.dtype_policy.compute_dtype == "float32" for layer in model._flatten_layers()):
        return model

    def plain(node):
        if isinstance(node, dict):
            if node.get("class_name") == "DTypePolicy" and str(node["config"].get("name", "")).startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {key: plain(value) for key, value in node.items()}
        return [plain(value) for value in node] if isinstance(node, list) else node

    copy = keras.saving.deserialize_keras_object(plain(keras.saving.serialize_keras_object(model)))
    copy.set_weights(model.get_weights())
    return copy


@keras.saving.register_keras_serializable(package="zoo")
class EvalView(keras.layers.Layer):
    """uint8 images (B, H, W, 3) or clips (B, T, H, W, 3), any H and W -> float32 at `size`:
    the evaluation view of `prepare` (the central `crop` of the shorter side, `resize_images`)."""

    def __init__(self, size, crop: float = 1.0, **kwargs):
        super().__init__(**{**kwargs, "dtype": "float32"})
        self.size = [int(s) for s in size]
        self.crop = float(crop)

    def call(self, images):
        if not serving_ops.is_tensorflow():
            frames = ops.reshape(images, (-1, *images.shape[-3:]))  # clips: frames as a batch
            frames = serving_ops.center_crop_resize(ops.cast(frames, "float32"), self.size, self.crop)
            return ops.reshape(frames, (*images.shape[:-3], *self.size, 3))
        images = tf.cast(images, tf.float32)
        shape = tf.shape(images)
        frames = tf.reshape(images, tf.concat([[-1], shape[-3:]], 0))  # clips: frames as a batch
        frames = center_crop_resize(frames, self.size, self.crop, portable=True)
        out = tf.reshape(frames, tf.concat([shape[:-3], [*self.size, 3]], 0))
        out.set_shape([*images.shape[:-3], *self.size, 3])
        return out

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], *self.size, 3)

    def get_config(self):
        config = {**super().get_config(), "size": self.size, "crop": self.crop}
        config.pop("dtype", None)
        return config


@keras.saving.register_keras_serializable(package="zoo")
class ResizedClassMap(keras.layers.Layer):
    """[probabilities (B, h, w, C), images (B, H, W, 3)] -> class ids (B, H, W) int32: the
    probabilities resized bilinearly to the images' size, then the most probable class."""

    def call(self, probabilities, images):
        if not serving_ops.is_tensorflow():
            resized = serving_ops.resize_images(probabilities, images.shape[1:3], antialias=False)
            return ops.cast(ops.argmax(resized, axis=-1), "int32")
        resized = tf.image.resize(tf.cast(probabilities, tf.float32), tf.shape(images)[1:3])
        return tf.argmax(resized, axis=-1, output_type=tf.int32)

    def compute_output_spec(self, probabilities, images):
        return keras.KerasTensor(images.shape[:3], "int32")


def image_input(frames: int | None = None):
    """The serving input: `images`, uint8 (B, H, W, 3), or (B, frames, H, W, 3) for clips."""
    shape = (None, None, 3) if frames is None else (frames, None, None, 3)
    return keras.Input(shape, dtype="uint8", name="images")
