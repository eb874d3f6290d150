"""Detection inference latency: the zoo's RetinaNet ResNet-50 against KerasHub's, per image.

Both sides are the same architecture at the same size, random weights (no downloads), float32,
TensorFlow backend, measured end to end on the same images, decoding and NMS included:

* zoo: `zoo.create_model("retinanet_resnet50", input_shape=(S, S, 3), num_classes=C)` run as
  `zoo.tasks.detection.evaluation.detector(model).predict(images)` (the graph `zoo predict`,
  `zoo evaluate` and `zoo export` use: decode, top-1000 anchors, per-class NMS, score >= 0.05,
  IoU 0.5, at most 100 detections). It takes raw pixels 0..255 (normalization in the graph).
* KerasHub: `keras_hub.models.RetinaNetObjectDetector` on a `RetinaNetBackbone` around a
  `ResNetBackbone` built from the ResNet-50 config (bottleneck blocks 3-4-6-3, 7x7 stem), P3-P7,
  `use_p5=True` (P6 from the backbone's C5, as the zoo and the paper; KerasHub's `use_p5=False`
  reads FPN P5 instead and has 4,128,768 fewer parameters), 4-conv 256-wide heads, 9 anchors,
  no presets (they need the internet). `predict` decodes with its default `NonMaxSuppression`
  (class-agnostic, all anchors, score > 0.5, IoU 0.5, at most 100). It gets the images scaled
  to 0..1 by NumPy inside its timed call (a preprocessor's job there, ~1 ms per image; the zoo
  normalizes inside its graph, also timed).
  The two differ by 26,560 parameters: the biases of Keras Applications' ResNet50 convolutions.

Both use `predict` (KerasHub's `predict_on_batch` cannot decode: its `decode_predictions`
unpacks `(images, _)` from a 1-tuple), both without XLA (Keras resolves jit_compile "auto" to
False on a CPU-only machine; printed). Batches of 1 and 4: a warm-up (tracing) first, then the
two models alternate run by run (zoo first on even runs, KerasHub first on odd ones) so a
drifting machine load hits both alike; medians, IQR and min/max of wall ms per image are
printed, with the ratio of the fastest runs and the median process CPU time per image (all
threads): on a shared machine the wall times bunch at multiples of the time slices the process
gets, which CPU time does not.

Score calibration. NMS cost depends on how many boxes pass the score threshold, and random
weights give degenerate scores: the zoo's class head starts at the focal-loss prior (every
score 0.01-0.02, nothing passes 0.05: NMS gets no input) while KerasHub's starts with a zero bias
(it gives the prior to the box head) and its random backbone drives the logits to 1-18, so
nearly every anchor passes 0.5. So the last conv of each model's two heads is recalibrated the
same way, from one forward pass on the benchmark images:
  * class logits: kernel scaled so the logits have standard deviation 1 over all anchors and
    classes, bias set so that `--candidates` (300) anchors per image, on average, have a best
    class score above *that model's own* threshold (0.05 zoo, 0.5 KerasHub);
  * box deltas: bias 0 (KerasHub's box head starts at -4.6, boxes 1% of their anchor), kernel
    scaled to a standard deviation of 0.1 (trained-like small offsets from the anchors).
Each model keeps its shipped decoder; the script prints, after calibration, how many anchors
and (anchor, class) pairs pass each threshold and how many detections each model returns, so
neither side runs an empty NMS or one over every anchor. With 300 candidates both return the
100-detection cap, as a trained detector does at COCO's 0.05. KerasHub's NMS walks its 96 tiles
of 512 sorted anchors until it holds 100 boxes, so with few survivors (a trained model at its
own 0.5) it costs more: `--candidates 30` measures that case.

`--profile` also times, interleaved the same way, each model's backbone alone (ResNet-50 to
C3-C5, a second copy of the same network), its raw outputs (backbone + FPN + heads, `predict`
without decoding) and its decode + NMS alone (the decoding graph of its `predict` as a
`tf.function` on precomputed raw outputs): FPN + heads = raw - backbone.

Run in a separate venv with KerasHub (it is not a dependency of the zoo):
    python3 -m venv /tmp/hubvenv && /tmp/hubvenv/bin/pip install -e . keras-hub
    /tmp/hubvenv/bin/python benchmarks/detection_latency.py [--size 512] [--classes 80]
        [--runs 15] [--warmup 2] [--batches 1,4] [--candidates 300] [--profile]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the zoo's decode + NMS are TensorFlow ops

import keras
import numpy as np
import tensorflow as tf

import zoo
from zoo.models import layers as zoo_layers
from zoo.tasks.detection.evaluation import SCORE_THRESHOLD, detector

LOGIT_STD = 1.0  # calibrated class logits: standard deviation over anchors and classes
DELTA_STD = 0.1  # calibrated box deltas: standard deviation (trained-like, near the anchors)


def import_keras_hub():
    try:
        import keras_hub
    except ImportError:
        print("keras_hub is not installed: pip install keras-hub (in a separate venv, see "
              "benchmarks/detection_latency.py)")
        sys.exit(2)
    return keras_hub


def logit(p: float) -> float:
    return math.log(p / (1 - p))


class Side:
    """One detector: `full(x)` (predict with decode + NMS), `raw(x)` -> (deltas, logits),
    `backbone(x)`, the last conv of its class and box heads, and its score threshold."""

    name: str
    threshold: float

    def full(self, x):
        return self.detector.predict(self.prepare(x), batch_size=len(x), verbose=0)

    def raw_outputs(self, x):
        return self.raw_model.predict(self.prepare(x), batch_size=len(x), verbose=0)

    def raw(self, x):
        return self.split(self.raw_outputs(x))

    def backbone(self, x):
        return self.backbone_model.predict(self.prepare(x), batch_size=len(x), verbose=0)

    def decode_only(self, x):
        """fn() running this model's decode + NMS alone, on its raw outputs for x (precomputed)."""
        raw = tf.nest.map_structure(tf.constant, self.raw_outputs(x))
        images = tf.constant(self.prepare(x))
        decode = tf.function(self.decode_graph)

        def run():
            return tf.nest.map_structure(lambda t: t.numpy(), decode(raw, images))
        return run

    def retrace(self):
        """Fresh predict functions, traced at the next batch's static shape. Keras relaxes a
        predict function to batch None once it has seen two batch sizes, which KerasHub's NMS
        cannot trace (`ops.zeros([batch_size])`); both sides get the same treatment."""
        for model in (self.detector, self.raw_model, self.backbone_model):
            model.make_predict_function(force=True)

    def detections(self, out) -> float:
        return float(np.mean(np.asarray(out["num_detections"])))


class ZooSide(Side):
    name = "zoo"
    threshold = SCORE_THRESHOLD

    def __init__(self, size, classes):
        self.model = zoo.create_model("retinanet_resnet50", input_shape=(size, size, 3),
                                      num_classes=classes)
        self.params = self.model.count_params()
        self.detector = detector(self.model)
        self.raw_model = self.model
        self.class_conv = self.model.get_layer("class_logits")
        self.box_conv = self.model.get_layer("box_deltas")
        self.backbone_model = zoo_layers.backbone_pyramid("resnet50", (size, size, 3))  # same net, own copy
        self.jit = self.detector.jit_compile
        self.decoder = "per-class NMS of the top-1000 anchors, score >= 0.05, IoU 0.5, max 100"

    def prepare(self, x):
        return x  # raw pixels 0..255: the model normalizes

    def split(self, out):
        return out[..., :4], out[..., 4:]

    def decode_graph(self, raw, images):
        return self.detector.get_layer("decode_detections")(raw)


class HubSide(Side):
    name = "keras_hub"

    def __init__(self, keras_hub, size, classes):
        encoder = keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
            stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
            use_pre_activation=False, image_shape=(size, size, 3))
        backbone = keras_hub.models.RetinaNetBackbone(
            image_encoder=encoder, min_level=3, max_level=7, use_p5=True, image_shape=(size, size, 3))
        self.model = keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=classes)
        self.params = self.model.count_params()
        self.detector = self.model  # its predict decodes
        self.raw_model = keras.Model(self.model.inputs, self.model.output)  # same layers, no decode
        self.class_conv = self.model.classification_head.prediction_layer
        self.box_conv = self.model.box_head.prediction_layer
        self.backbone_model = keras.Model(encoder.inputs, {k: encoder.pyramid_outputs[k]
                                                           for k in ("P3", "P4", "P5")})
        nms = self.model.prediction_decoder
        self.threshold = float(nms.confidence_threshold)
        self.jit = self.model.jit_compile
        self.decoder = (f"class-agnostic NMS of all anchors, score > {nms.confidence_threshold}, "
                        f"IoU {nms.iou_threshold}, max {nms.max_detections}")

    def prepare(self, x):
        return x / np.float32(255.0)

    def split(self, out):
        return out["bbox_regression"], out["cls_logits"]

    def decode_graph(self, raw, images):
        return self.model.decode_predictions(raw, images)  # what its predict_step runs


def calibrate(side: Side, x, candidates: int) -> dict:
    """Rescales the last conv of both heads (see the docstring); returns what passes after."""
    for conv in (side.class_conv, side.box_conv):
        conv.bias.assign(np.zeros(conv.bias.shape, "float32"))
    deltas, logits = side.raw(x)  # biases zero: the convolutions' linear part only
    a_cls = LOGIT_STD / float(np.std(logits))
    best = np.sort(a_cls * logits.max(-1), axis=-1)[:, ::-1]  # (B, A) descending
    bias = logit(side.threshold) - float(np.mean(best[:, candidates - 1]))
    side.class_conv.kernel.assign(side.class_conv.kernel.numpy() * a_cls)
    side.class_conv.bias.assign(np.full(side.class_conv.bias.shape, bias, "float32"))
    side.box_conv.kernel.assign(side.box_conv.kernel.numpy() * (DELTA_STD / float(np.std(deltas))))
    deltas, logits = side.raw(x)
    passing = logits > logit(side.threshold)
    return {"anchors": float(np.mean(passing.any(-1).sum(-1))), "pairs": float(np.mean(passing.sum((1, 2)))),
            "logit_std": float(np.std(logits)), "delta_std": float(np.std(deltas))}


def interleaved(fns: dict, x, runs: int, warmup: int) -> tuple[dict, dict, dict]:
    """{name: fn(x)}: warm-up, then `runs` rounds in alternating order -> ({name: [wall
    ms/image]}, {name: [process CPU ms/image]}, {name: last output})."""
    outs = {}
    for _ in range(warmup):
        for name, fn in fns.items():
            outs[name] = fn(x)
    times = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    names = list(fns)
    for run in range(runs):
        for name in (names if run % 2 == 0 else names[::-1]):
            start, start_cpu = time.perf_counter(), time.process_time()
            outs[name] = fns[name](x)
            cpu[name].append((time.process_time() - start_cpu) * 1000 / len(x))
            times[name].append((time.perf_counter() - start) * 1000 / len(x))
    return times, cpu, outs


def stats(ms: list) -> str:
    q1, med, q3 = np.percentile(ms, [25, 50, 75])
    return f"median {med:7.1f} ms/image  IQR {q1:.1f}-{q3:.1f}  min {min(ms):.1f}  max {max(ms):.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="input height and width")
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each model per batch size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of each first (tracing)")
    parser.add_argument("--batches", default="1,4", help="comma-separated batch sizes")
    parser.add_argument("--candidates", type=int, default=300,
                        help="anchors per image calibrated to pass each model's score threshold")
    parser.add_argument("--profile", action="store_true",
                        help="also time the backbone alone and the raw outputs (no decode)")
    args = parser.parse_args()
    keras_hub = import_keras_hub()
    tf.get_logger().setLevel("ERROR")  # the retracing notes: predict functions are re-made on purpose

    batches = [int(b) for b in args.batches.split(",")]
    images = np.random.default_rng(0).integers(0, 256, (max(batches), args.size, args.size, 3)).astype("float32")
    keras.utils.set_random_seed(0)
    sides = [ZooSide(args.size, args.classes), HubSide(keras_hub, args.size, args.classes)]
    zoo_side, hub_side = sides
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}; keras {keras.__version__}, tensorflow {tf.__version__}, "
          f"keras_hub {keras_hub.__version__}, float32, {args.size}x{args.size}, {args.classes} classes, "
          f"{zoo_side.model.output_shape[1]:,} anchors")
    print(f"zoo       retinanet_resnet50:                 {zoo_side.params:,} params, jit_compile="
          f"{zoo_side.jit}; {zoo_side.decoder}")
    print(f"keras_hub RetinaNetObjectDetector (ResNet-50): {hub_side.params:,} params, jit_compile="
          f"{hub_side.jit}; {hub_side.decoder}")
    for side in sides:
        c = calibrate(side, images, args.candidates)
        print(f"calibrated {side.name:9s}: per image {c['anchors']:.0f} anchors / {c['pairs']:.0f} "
              f"(anchor, class) pairs above its threshold {side.threshold:g}; logit std "
              f"{c['logit_std']:.2f}, delta std {c['delta_std']:.3f}")

    ratios = {}
    for batch in batches:
        x = images[:batch]
        for side in sides:
            side.retrace()
        fns = {"zoo": zoo_side.full, "keras_hub": hub_side.full}
        if args.profile:
            fns.update({"zoo raw": zoo_side.raw_outputs, "keras_hub raw": hub_side.raw_outputs,
                        "zoo backbone": zoo_side.backbone, "keras_hub backbone": hub_side.backbone})
            decoders = {f"{side.name} decode": side.decode_only(x) for side in sides}
            fns.update({name: (lambda v, run=run: run()) for name, run in decoders.items()})
        times, cpu, outs = interleaved(fns, x, args.runs, args.warmup)
        med = {name: float(np.median(ms)) for name, ms in times.items()}
        ratios[batch] = med["zoo"] / med["keras_hub"]
        fastest = min(times["zoo"]) / min(times["keras_hub"])  # the least contended run of each
        print(f"batch {batch}, {args.runs} runs each after {args.warmup} warm-up, load average "
              f"{os.getloadavg()[0]:.2f}")
        for name, ms in times.items():
            extra = (f"  detections/image {sides[name == 'keras_hub'].detections(outs[name]):.1f}"
                     if name in ("zoo", "keras_hub") else "")
            print(f"  {name:18s} {stats(ms)}  CPU {np.median(cpu[name]):.0f} ms/image{extra}")
        cpu_ratio = float(np.median(cpu["zoo"]) / np.median(cpu["keras_hub"]))
        print(f"  ratio zoo/keras_hub (medians): {ratios[batch]:.3f}   (fastest runs: {fastest:.3f}, "
              f"CPU time medians: {cpu_ratio:.3f})")
        if args.profile:
            for label, m in (("wall", med), ("CPU", {n: float(np.median(v)) for n, v in cpu.items()})):
                for side in ("zoo", "keras_hub"):
                    print(f"  {side:9s} split ({label} medians, ms/image): backbone "
                          f"{m[side + ' backbone']:.1f}, FPN + heads {m[side + ' raw'] - m[side + ' backbone']:.1f}"
                          f" (raw - backbone), decode + NMS {m[side + ' decode']:.1f} (alone), full "
                          f"{m[side]:.1f} (full - raw {m[side] - m[side + ' raw']:.1f})")
    print("summary: " + ", ".join(f"batch {b} zoo/keras_hub {r:.3f}" for b, r in ratios.items()))


if __name__ == "__main__":
    main()
