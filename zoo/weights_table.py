"""The weights table: every pretrained weight the zoo knows, one row each.

`zoo.weights` turns each row into a `WeightsSpec` and attaches it to its model's registry
entry (`ModelEntry.pretrained[tag]`) when the zoo is imported. The first row of a model is
its default tag (`pretrained=True`). See docs/weights.md.

Adding a weight the zoo trains: run `python benchmarks/make_pretrained.py RECIPE --tag TAG`;
it trains the recipe, writes `zoo/assets/weights/<model>.<tag>.weights.h5`, re-evaluates that
file and prints the row to paste into ZOO_WEIGHTS. tests/test_weights.py then checks the
file's checksum and re-measures the metric on every test run.

Row keys (ZOO_WEIGHTS):
  model, tag       the registry name and the weight's tag
  file | url       a package file under zoo/assets/weights/, or a URL (https:// or file://)
  sha256           of the file; checked before every use
  dataset          what it was trained / measured on
  input_size       the input shape it was trained at (H, W, C) or (T, H, W, C)
  num_classes      classes of its head
  preprocessing    what the model expects (every zoo model takes raw RGB pixels 0..255)
  metrics          the metrics measured on the recipe's eval split (`zoo evaluate`)
  tolerance        absolute tolerance of the re-measurement (tests/test_weights.py)
  recipe           the recipe that trained it and re-measures it
  model_kwargs     builder arguments of the recipe's `model:` section besides the name
  measured         who measured the metric, with what
"""
from __future__ import annotations

ZOO_WEIGHTS = [
    {
        "model": "digits_cnn",
        "tag": "digits",
        "file": "digits_cnn.digits.weights.h5",
        "sha256": "1267fab075931c3cd4fa248d3263eabf7bd8444e19f156286aca4b50446f2a3b",
        "dataset": "UCI 8x8 handwritten digits (embedded; data.source=digits), test split, 360 images",
        "input_size": (8, 8, 3),
        "num_classes": 10,
        "preprocessing": "raw RGB pixels 0..255; the model scales x / 255 itself",
        "metrics": {"accuracy": 0.9972, "top5_accuracy": 1.0},
        "tolerance": 0.01,
        "recipe": "digits_cnn",
        "model_kwargs": {},
        "measured": "benchmarks/make_pretrained.py, seed 0, CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25",
    },
    {
        "model": "cnn_lstm",
        "tag": "moving_shapes",
        "file": "cnn_lstm.moving_shapes.weights.h5",
        "sha256": "42811d439d26ac9bfc0a42bf355278e7317b1e44edbd14819d0eedf6419e3139",
        "dataset": "synthetic:moving_shapes (left/right motion), test split, 500 clips",
        "input_size": (8, 64, 64, 3),
        "num_classes": 2,
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {"accuracy": 1.0},
        "tolerance": 0.01,
        "recipe": "moving_shapes_cnn_lstm",
        "model_kwargs": {},
        "measured": "benchmarks/make_pretrained.py, seed 0, CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25",
    },
    {
        "model": "unet_small",
        "tag": "shapes",
        "file": "unet_small.shapes.weights.h5",
        "sha256": "ed8917590141ac0f019876922f5a9c5f770812a39a4104c47d14a572894f5035",
        "dataset": "synthetic:shapes_segmentation, test split, 500 images",
        "input_size": (64, 64, 3),
        "num_classes": 4,
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {"mIoU": 0.8872, "pixel_accuracy": 0.987, "iou/background": 0.9929,
                    "iou/circle": 0.9187, "iou/square": 0.8384, "iou/triangle": 0.7987},
        "tolerance": 0.01,
        "recipe": "shapes_unet",
        "model_kwargs": {},
        "measured": "benchmarks/make_pretrained.py, seed 0, CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25",
    },
    {
        "model": "retinanet_small",
        "tag": "shapes",
        "file": "retinanet_small.shapes.weights.h5",
        "sha256": "8fac2df71ee36ab747a62e58b30e09e3bc3e08c9afd14bf5452bd03c1653a09b",
        "dataset": "synthetic:shapes_detection, test split, 500 images",
        "input_size": (128, 128, 3),
        "num_classes": 3,
        "preprocessing": "raw RGB pixels 0..255; the model normalizes them itself",
        "metrics": {"mAP": 0.7525, "mAP50": 0.9565, "mAP75": 0.8875, "mAP_small": 0.7409,
                    "mAP_medium": 0.7949, "AP/circle": 0.8401, "AP/square": 0.7404,
                    "AP/triangle": 0.6771},
        "tolerance": 0.01,
        "recipe": "shapes_retinanet",
        "model_kwargs": {},
        "measured": ("benchmarks/make_pretrained.py --float16 (stored as float16; 23 MB), seed 0, "
                     "CPU, Keras 3.15.1 / TF 2.21.0, 2026-11-25"),
    },
]

# ImageNet-1k weights of Keras Applications, loaded by layer name into the zoo's wrappers
# (zoo/models/applications.py). URLs and hashes are those of keras.applications (Keras 3.15,
# keras/src/applications/*.py): "md5" or "sha256" as Keras publishes it; MobileNetV2's files
# have no published checksum (Keras does not verify them either). "notop" is the
# include_top=False file, used for features_only models (encoders, detector backbones);
# the full file for classifiers (its head is dropped when num_classes differs).
# Metrics: as published by Keras (keras.io/api/applications; the MobileNetV3 docstring);
# not re-measured here (ImageNet needs a manual download). EfficientNet / ConvNeXt: none
# published in the sources checked.
_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"
_KA_EFFNET = "https://storage.googleapis.com/keras-applications/"
_CAFFE = "caffe: RGB -> BGR, minus the ImageNet BGR mean (Normalize inside the model); feed raw RGB 0..255"
_SELF = "Keras' own Rescaling / Normalization layers inside the model; feed raw RGB 0..255"

KERAS_APPLICATIONS = [
    {
        "model": "resnet50", "application": "ResNet50", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "2cb95161c43110f7111970584f804107",
        "notop_url": _KA + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "4d473c1dd8becc155b73f8504c6f6626",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.749, "top5_accuracy": 0.921},
    },
    {
        "model": "resnet101", "application": "ResNet101", "input_size": (224, 224, 3),
        "url": _KA + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5",
        "md5": "f1aeb4b969a6efcfb50fad2f0c20cfc5",
        "notop_url": _KA + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "notop_md5": "88cf7a10940856eca736dc7b7e228a21",
        "preprocessing": _CAFFE, "metrics": {"accuracy": 0.764, "top5_accuracy": 0.928},
    },
    {
        "model": "mobilenet_v2", "application": "MobileNetV2", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5",
        "notop_url": _KA + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
        "preprocessing": "x / 127.5 - 1 (Normalize inside the model); feed raw RGB 0..255",
        "metrics": {"accuracy": 0.713, "top5_accuracy": 0.901},
    },
    {
        "model": "mobilenet_v3_small", "application": "MobileNetV3Small", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float.h5",
        "md5": "8768d4c2e7dee89b9d02b2d03d65d862",
        "notop_url": _KA + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        "notop_md5": "d3e8ec802a04aa4fc771ee12a9a9b836",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.681},
    },
    {
        "model": "mobilenet_v3_large", "application": "MobileNetV3Large", "input_size": (224, 224, 3),
        "url": _KA + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float.h5",
        "md5": "59e551e166be033d707958cf9e29a6a7",
        "notop_url": _KA + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        "notop_md5": "07fb09a5933dd0c8eaafa16978110389",
        "preprocessing": _SELF, "metrics": {"accuracy": 0.756},
    },
    {
        "model": "efficientnet_b0", "application": "EfficientNetB0", "input_size": (224, 224, 3),
        "url": _KA_EFFNET + "efficientnetb0.h5", "md5": "902e53a9f72be733fc0bcb005b3ebbac",
        "notop_url": _KA_EFFNET + "efficientnetb0_notop.h5", "notop_md5": "50bc09e76180e00e4465e1a485ddc09d",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "efficientnet_b1", "application": "EfficientNetB1", "input_size": (240, 240, 3),
        "url": _KA_EFFNET + "efficientnetb1.h5", "md5": "1d254153d4ab51201f1646940f018540",
        "notop_url": _KA_EFFNET + "efficientnetb1_notop.h5", "notop_md5": "74c4e6b3e1f6a1eea24c589628592432",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "efficientnet_b2", "application": "EfficientNetB2", "input_size": (260, 260, 3),
        "url": _KA_EFFNET + "efficientnetb2.h5", "md5": "b15cce36ff4dcbd00b6dd88e7857a6ad",
        "notop_url": _KA_EFFNET + "efficientnetb2_notop.h5", "notop_md5": "111f8e2ac8aa800a7a99e3239f7bfb39",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "efficientnet_b3", "application": "EfficientNetB3", "input_size": (300, 300, 3),
        "url": _KA_EFFNET + "efficientnetb3.h5", "md5": "ffd1fdc53d0ce67064dc6a9c7960ede0",
        "notop_url": _KA_EFFNET + "efficientnetb3_notop.h5", "notop_md5": "af6d107764bb5b1abb91932881670226",
        "preprocessing": _SELF, "metrics": {},
    },
    {
        "model": "convnext_tiny", "application": "ConvNeXtTiny", "input_size": (224, 224, 3),
        "url": _KA + "convnext/convnext_tiny.h5",
        "sha256": "8ae6e78ce2933352b1ef4008e6dd2f17bc40771563877d156bc6426c7cf503ff",
        "notop_url": _KA + "convnext/convnext_tiny_notop.h5",
        "notop_sha256": "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
        "preprocessing": _SELF, "metrics": {},
    },
]
