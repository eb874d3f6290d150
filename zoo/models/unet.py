"""U-Nets for semantic segmentation: the classic backbone-decoder and U-Nets over classifier pyramids.

Every model takes raw RGB pixels 0..255 (its first layer is `Normalize`) and outputs per-pixel
class probabilities (B, H, W, num_classes) from a float32 softmax (the final 1x1 "logits" conv
also runs in float32, so mixed precision never rounds the logits).

* `unet`, `unet_small` (Ronneberger et al. 2015, "same" padding + BatchNorm): `depth` stages of
  [3x3 conv (no bias) - BN - ReLU] x 2 with 2x2 max-pooling down and 2x2 stride-2 transposed
  convolutions up (halving the channels), the skip concatenated *before* the upsampled map, and
  a 1x1 conv head. Layer for layer this is milesial/Pytorch-UNet `UNet(3, n_classes,
  bilinear=False)`: with base_filters=64, depth=4 and 2 classes PyTorch counts 31,037,698
  parameters, which equals our *trainable* count (tests/test_segmentation.py pins it). Keras'
  `count_params()` is larger by 2 x (BN channels) = 2 x 5,888 = 11,776 (total 31,049,474), the
  BatchNorm moving mean / variance that PyTorch keeps as buffers, not parameters. The
  difference from the 2015 paper is the padding ("same" instead of "valid", so the output has the
  input's size and no cropping of skips) and BatchNorm (which the paper predates). Inputs are
  scaled to [0, 1] as that implementation does. `unet_small` is the same with 16 base filters,
  sized for a CPU: 1,942,628 trainable parameters for 4 classes (1,945,572 with BN statistics).

* `unet_<backbone>` (e.g. `unet_resnet50`, `unet_mobilenet_v2`, `unet_efficientnet_b0`) and
  `unet_backbone(backbone=...)` over any registered classifier: the backbone is the classifier's
  `features_only=True` model ({"Pk": stride-2**k map}, same raw-pixel input, its own `Normalize`),
  its layers inlined into one flat functional graph. The decoder (after Yakubovskiy's
  segmentation_models "Unet"): from the deepest level down to stride 1, x2 bilinear upsampling,
  concatenation with the backbone level at that stride when the pyramid has one, then
  [3x3 conv (no bias) - BN - ReLU] x 2 with `decoder_filters[i]` filters (the last entry repeats
  when there are more stages than entries). `freeze_backbone=True` makes the backbone layers
  non-trainable (BatchNorm then runs in inference mode). `backbone_weights` (loaded by
  `zoo.weights.load_backbone_weights` into the backbone before the decoder is attached) is None,
  "imagenet" (the Keras Applications include_top=False file of the classifier's weights table:
  downloaded once into the checksummed zoo cache; offline, one ZooError line), any other tag of
  the classifier's table, or a local path to a `.weights.h5` / `.keras` file of the backbone
  *classifier* as the zoo builds it (`zoo.create_model("resnet50", ...).save_weights(...)`),
  any number of classes.

Input height and width must be divisible by 2**depth (classic) or by the backbone's deepest
stride (32 for the ImageNet backbones); the builders raise a ZooError otherwise.
"""
from __future__ import annotations


from zoo.lazy import LazyModule, keras, layers
from zoo.errors import ZooError
from zoo.registry import register

zoo_layers = LazyModule("zoo.models.layers")  # Keras layer classes: imported when a model is built

_BN = {"momentum": 0.9, "epsilon": 1e-5}  # PyTorch's BatchNorm2d defaults


def _check_divisible(name, input_shape, factor):
    height, width = input_shape[0], input_shape[1]
    for side in (height, width):
        if side is not None and side % factor:
            raise ZooError(f"{name}: input height and width must be divisible by {factor}, "
                           f"got {height}x{width} (set data.image_size accordingly)")


def _conv_bn_relu(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(**_BN, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _double_conv(x, filters, name):
    x = _conv_bn_relu(x, filters, f"{name}_1")
    return _conv_bn_relu(x, filters, f"{name}_2")


def _head(x, num_classes):
    """1x1 conv to class logits and a softmax, both in float32 (mixed-precision safe)."""
    x = layers.Conv2D(num_classes, 1, dtype="float32", name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(x)


def _classic_unet(name, input_shape, num_classes, base_filters, depth):
    if depth < 1 or base_filters < 1:
        raise ZooError(f"{name}: depth and base_filters must be positive, got {depth}, {base_filters}")
    _check_divisible(name, input_shape, 2 ** depth)
    inputs = keras.Input(shape=input_shape, name="image")
    x = zoo_layers.Normalize(**zoo_layers.UNIT_SCALE, name="normalize")(inputs)
    x = _double_conv(x, base_filters, "enc0")
    skips = []
    for level in range(1, depth + 1):
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
        x = _double_conv(x, base_filters * 2 ** level, f"enc{level}")
    for level in range(depth - 1, -1, -1):
        filters = base_filters * 2 ** level
        x = layers.Conv2DTranspose(filters, 2, strides=2, name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([skips[level], x])
        x = _double_conv(x, filters, f"dec{level}")
    return keras.Model(inputs, _head(x, num_classes), name=name)


@register(task="segmentation", input_shape=(256, 256, 3), head=("logits",))
def unet(input_shape=(256, 256, 3), num_classes=2, *, base_filters=64, depth=4):
    """Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation" ("same" padding + BatchNorm, as milesial/Pytorch-UNet)."""
    return _classic_unet("unet", input_shape, num_classes, base_filters, depth)


@register(task="segmentation", input_shape=(128, 128, 3), head=("logits",))
def unet_small(input_shape=(128, 128, 3), num_classes=2, *, base_filters=16, depth=4):
    """Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation", CPU-sized (16 base filters)."""
    return _classic_unet("unet_small", input_shape, num_classes, base_filters, depth)


# ---------------------------------------------------------------- U-Nets over classifier pyramids


def _backbone_unet(name, backbone, input_shape, num_classes, backbone_weights, freeze_backbone,
                  decoder_filters):
    features = zoo_layers.backbone_pyramid(backbone, input_shape, backbone_weights)
    pyramid = features.output
    levels = sorted(int(key[1:]) for key in pyramid)
    deepest = levels[-1]
    _check_divisible(name, input_shape, 2 ** deepest)
    if freeze_backbone:
        for layer in features.layers:
            layer.trainable = False
    filters = list(decoder_filters) or [16]
    x = pyramid[f"P{deepest}"]
    for stage, level in enumerate(range(deepest - 1, -1, -1)):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"decoder{level}_up")(x)
        if f"P{level}" in pyramid:
            x = layers.Concatenate(name=f"decoder{level}_concat")([x, pyramid[f"P{level}"]])
        x = _double_conv(x, int(filters[min(stage, len(filters) - 1)]), f"decoder{level}")
    return keras.Model(features.input, _head(x, num_classes), name=name)


_DECODER_FILTERS = (256, 128, 64, 32, 16)


@register(task="segmentation", input_shape=(224, 224, 3), head=("logits",))
def unet_backbone(input_shape=(224, 224, 3), num_classes=2, *, backbone="resnet18",
                  backbone_weights=None, freeze_backbone=False, decoder_filters=_DECODER_FILTERS):
    """Ronneberger et al. 2015 U-Net decoder over any registered classifier's feature pyramid (`backbone`)."""
    return _backbone_unet(f"unet_{backbone}", backbone, input_shape, num_classes, backbone_weights,
                         freeze_backbone, decoder_filters)


def _make_backbone_unet(backbone, citation):
    def builder(input_shape=(224, 224, 3), num_classes=2, *, backbone_weights=None,
                freeze_backbone=False, decoder_filters=_DECODER_FILTERS):
        return _backbone_unet(f"unet_{backbone}", backbone, input_shape, num_classes,
                             backbone_weights, freeze_backbone, decoder_filters)

    builder.__name__ = builder.__qualname__ = f"unet_{backbone}"
    builder.__doc__ = f"U-Net decoder (Ronneberger et al. 2015) over the {citation} backbone pyramid."
    return register(task="segmentation", input_shape=(224, 224, 3), head=("logits",))(builder)


_BACKBONES = {
    "resnet18": "ResNet-18 (He et al. 2016)",
    "resnet34": "ResNet-34 (He et al. 2016)",
    "resnet50": "ResNet-50 (He et al. 2016)",
    "mobilenet_v2": "MobileNetV2 (Sandler et al. 2018)",
    "efficientnet_b0": "EfficientNet-B0 (Tan & Le 2019)",
}
for _encoder, _citation in _BACKBONES.items():
    globals()[f"unet_{_encoder}"] = _make_backbone_unet(_encoder, _citation)
