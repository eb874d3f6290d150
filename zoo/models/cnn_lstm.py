"""CNN+LSTM video classifiers (LRCN, Donahue et al. 2015): a per-frame CNN backbone applied to
every frame (`TimeDistributed`), a recurrent layer (LSTM, or GRU) over the frame features, and
a dense softmax head on its last state.

Input: a clip of raw RGB pixels, float 0..255, shape (T, H, W, 3); the frame backbone normalizes
inside, as every model of the zoo does.

Frame backbones (`backbone=`):

* ``"small"`` (default of `cnn_lstm`): conv-BN-ReLU-maxpool blocks (`filters`), then the final
  spatial map is *flattened* and projected by a dense layer to `frame_features`. Flattening
  keeps where things are in the frame: motion direction is a change of position over time, and
  global average pooling would throw position away, leaving nothing for the LSTM to compare.
* any registered classifier (``"mobilenet_v2"``, ``"resnet50"``...): its `features_only`
  pyramid built at the frame size, the deepest level (P5 for ImageNet backbones), global
  average pooled (for ResNet-50 / MobileNetV2 exactly the classifier's pre-logit features).
  `backbone_weights` loads that classifier's weights into it (`zoo.weights.
  load_backbone_weights`): ``"imagenet"`` (Keras Applications' include_top=False file, fetched
  into the weights cache; offline, a one-line ZooError says where to put the file), another tag
  of its weights table, or a local `.weights.h5` / `.keras` file of the classifier (any
  num_classes). `freeze_backbone=True` makes the backbone non-trainable (its BatchNorm then runs
  in inference mode).

Temporal model (`temporal=`): ``"rnn"`` stacks `rnn_layers` LSTM (``rnn="lstm"``) or GRU layers of
`rnn_units`, optionally bidirectional, and classifies the last output (LRCN instead averages
per-step predictions; with one label per clip the last state sees the whole clip). ``"average"``
is the order-blind baseline: the mean of the frame features over time, a dense ReLU layer of
`rnn_units`, then the head. The recurrent layers, the logits and the softmax run in float32
under mixed precision (inputs are cast), so the cell state never accumulates in float16/bfloat16.
"""
from __future__ import annotations


from zoo.lazy import LazyModule, keras, layers
from zoo.errors import ZooError
from zoo.registry import register

zoo_layers = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built

TEMPORAL = ("rnn", "average")
RNN_KINDS = ("lstm", "gru")


def small_frame_cnn(frame_shape, filters, frame_features, name="small_frame_cnn"):
    """Conv-BN-ReLU-maxpool blocks, flatten (keeps position), dense ReLU to `frame_features`."""
    inputs = keras.Input(shape=frame_shape, name="frame")
    x = zoo_layers.Normalize(**zoo_layers.UNIT_SCALE, name="normalize")(inputs)
    for i, width in enumerate(filters):
        x = layers.Conv2D(int(width), 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"conv{i + 1}_bn")(x)
        x = layers.ReLU(name=f"conv{i + 1}_relu")(x)
        if x.shape[1] > 1 and x.shape[2] > 1:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(int(frame_features), activation="relu", name="frame_features")(x)
    return keras.Model(inputs, x, name=name)


def classifier_frame_encoder(backbone, frame_shape, backbone_weights=None):
    """A registered classifier's `features_only` pyramid, deepest level, global average pooled."""
    features = zoo_layers.backbone_pyramid(backbone, frame_shape, backbone_weights)
    pyramid = features.output
    deepest = pyramid[max(pyramid, key=lambda level: int(level[1:]))]
    pooled = layers.GlobalAveragePooling2D(name="frame_pool")(deepest)
    return keras.Model(features.inputs, pooled, name=f"{backbone}_encoder")


def _build(name, input_shape, num_classes, backbone, backbone_weights, freeze_backbone, filters,
           frame_features, temporal, rnn, rnn_units, rnn_layers, bidirectional, dropout):
    if len(input_shape) != 4:
        raise ZooError(f"{name}: input_shape must be (frames, height, width, channels), got {input_shape}")
    if temporal not in TEMPORAL:
        raise ZooError(f"{name}: temporal must be one of {', '.join(TEMPORAL)}, got {temporal!r}")
    if rnn not in RNN_KINDS:
        raise ZooError(f"{name}: rnn must be one of {', '.join(RNN_KINDS)}, got {rnn!r}")
    if int(rnn_layers) < 1 or int(rnn_units) < 1:
        raise ZooError(f"{name}: rnn_layers and rnn_units must be >= 1")
    frame_shape = tuple(input_shape[1:])
    if backbone == "small":
        if backbone_weights:
            raise ZooError(f"{name}: backbone_weights needs a registered classifier as "
                           "backbone, not 'small'")
        frame_encoder = small_frame_cnn(frame_shape, filters, frame_features)
    else:
        frame_encoder = classifier_frame_encoder(backbone, frame_shape, backbone_weights)
    if freeze_backbone:
        frame_encoder.trainable = False

    inputs = keras.Input(shape=tuple(input_shape), name="video")
    x = layers.TimeDistributed(frame_encoder, name="frame_encoder")(inputs)  # (B, T, features)
    if temporal == "average":
        x = layers.GlobalAveragePooling1D(name="temporal_average")(x)
        x = layers.Dense(int(rnn_units), activation="relu", name="temporal_dense")(x)
    else:
        recurrent = layers.LSTM if rnn == "lstm" else layers.GRU
        for i in range(int(rnn_layers)):
            cell = recurrent(int(rnn_units), return_sequences=i < int(rnn_layers) - 1,
                             dtype="float32", name=f"{rnn}{i + 1}")
            if bidirectional:
                cell = layers.Bidirectional(cell, dtype="float32", name=f"bi_{rnn}{i + 1}")
            x = cell(x)
    if dropout:
        x = layers.Dropout(float(dropout), name="head_dropout")(x)
    x = layers.Dense(int(num_classes), dtype="float32", name="predictions_dense")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


@register(task="video", input_shape=(8, 64, 64, 3))
def cnn_lstm(input_shape=(8, 64, 64, 3), num_classes=2, backbone="small", backbone_weights=None,
             freeze_backbone=False, filters=(16, 32, 64, 64), frame_features=128, temporal="rnn",
             rnn="lstm", rnn_units=128, rnn_layers=1, bidirectional=False, dropout=0.0):
    """Donahue et al. 2015, "Long-term Recurrent Convolutional Networks for Visual Recognition and Description" (LRCN)."""
    return _build("cnn_lstm", input_shape, num_classes, backbone, backbone_weights, freeze_backbone,
                  filters, frame_features, temporal, rnn, rnn_units, rnn_layers, bidirectional, dropout)


@register(task="video", input_shape=(16, 224, 224, 3))
def cnn_lstm_mobilenet_v2(input_shape=(16, 224, 224, 3), num_classes=101, backbone_weights=None,
                          freeze_backbone=False, temporal="rnn", rnn="lstm", rnn_units=256,
                          rnn_layers=1, bidirectional=False, dropout=0.5):
    """Donahue et al. 2015, LRCN, with a MobileNetV2 frame backbone (Sandler et al. 2018)."""
    return _build("cnn_lstm_mobilenet_v2", input_shape, num_classes, "mobilenet_v2",
                  backbone_weights, freeze_backbone, (), 0, temporal, rnn, rnn_units, rnn_layers,
                  bidirectional, dropout)


@register(task="video", input_shape=(16, 224, 224, 3))
def cnn_lstm_resnet50(input_shape=(16, 224, 224, 3), num_classes=101, backbone_weights=None,
                      freeze_backbone=False, temporal="rnn", rnn="lstm", rnn_units=256,
                      rnn_layers=1, bidirectional=False, dropout=0.5):
    """Donahue et al. 2015, LRCN, with a ResNet-50 frame backbone (He et al. 2016)."""
    return _build("cnn_lstm_resnet50", input_shape, num_classes, "resnet50", backbone_weights,
                  freeze_backbone, (), 0, temporal, rnn, rnn_units, rnn_layers, bidirectional, dropout)
