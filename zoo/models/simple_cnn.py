"""A small conv-pool-conv-pool-dense classifier, after the Keras MNIST convnet example.

Differences from the example: inputs are RGB (this zoo always decodes 3 channels), and the
convolutions use padding="same", so tiny inputs such as the 8x8 digits work (8 -> 4 -> 2).
The Flatten + Dense head fixes the input size at build time (no None spatial dims).

features_only pyramid ("Pk" = the last layer at stride 2**k): P0 "conv1_relu" (stride 1),
P1 "conv2_relu" (stride 2), P2 "pool2" (stride 4).

Variants (timm style: one builder, several registered configurations):
* `simple_cnn`: the example's MNIST configuration (28x28 inputs, 10 classes).
* `digits_cnn`: configured for the quickstart's embedded 8x8 UCI digits (8x8x3, 10 classes);
  recipes/classification/digits_cnn.yaml trains it and its weights ship with the package
  (`zoo.create_model("digits_cnn", pretrained=True)`, see docs/weights.md).
"""
from __future__ import annotations


from zoo.lazy import LazyModule, keras, layers
from zoo.registry import register

zoo_layers = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built


def _simple_cnn(name, input_shape, num_classes, features_only, dropout):
    inputs = keras.Input(shape=input_shape, name="image")
    x = zoo_layers.Normalize(**zoo_layers.UNIT_SCALE, name="normalize")(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1_relu")(x)
    p0 = x
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2_relu")(x)
    p1 = x
    x = layers.MaxPooling2D(2, name="pool2")(x)
    if features_only:
        return zoo_layers.feature_model(inputs, {"P0": p0, "P1": p1, "P2": x}, name)
    x = layers.Flatten(name="flatten")(x)
    outputs = zoo_layers.classifier_head(x, num_classes, dropout)
    return keras.Model(inputs, outputs, name=name)


@register(task="classification", input_shape=(28, 28, 3))
def simple_cnn(input_shape=(28, 28, 3), num_classes=10, features_only=False, dropout=0.5):
    """Chollet, "Simple MNIST convnet", Keras code examples (keras.io/examples/vision/mnist_convnet)."""
    return _simple_cnn("simple_cnn", input_shape, num_classes, features_only, dropout)


@register(task="classification", input_shape=(8, 8, 3))
def digits_cnn(input_shape=(8, 8, 3), num_classes=10, features_only=False, dropout=0.5):
    """Chollet, "Simple MNIST convnet" (Keras code examples), configured for the 8x8 UCI digits (10 classes)."""
    return _simple_cnn("digits_cnn", input_shape, num_classes, features_only, dropout)
