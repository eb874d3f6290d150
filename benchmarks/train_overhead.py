"""Pipeline overhead: zoo.train against a plain `model.fit` on the same model and data.

Both train the same architecture on the same in-memory images (the generated `shapes` set,
cached by the zoo's pipeline) with the same optimizer, batch size and number of epochs;
the first epoch (tracing, cache fill) is left out of the images/second of each.

    python benchmarks/train_overhead.py [--model resnet20] [--size 32] [--epochs 4] [--examples 4096]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo.data import synthetic  # noqa: E402


def recipe_for(args):
    return zoo.load_recipe({
        "name": "overhead", "task": "classification", "model": {"name": args.model},
        "data": {"source": "synthetic", "name": "shapes", "image_size": [args.size, args.size],
                 "batch_size": args.batch_size, "train_size": args.examples, "eval_size": 256},
        "train": {"epochs": args.epochs, "validate": False, "verbose": 0,
                  "optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}},
    })


def zoo_images_per_second(args) -> float:
    with tempfile.TemporaryDirectory() as out:
        run = zoo.train(recipe_for(args), output_dir=out)
    steps = args.examples // args.batch_size
    return steps * args.batch_size / float(np.mean(run.history["epoch_seconds"][1:]))


class Timer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def keras_images_per_second(args) -> float:
    keras.utils.set_random_seed(0)
    examples = [synthetic.generate("shapes", i, 1, (args.size, args.size)) for i in range(args.examples)]
    images = np.stack([e["image"] for e in examples]).astype("float32")
    labels = np.array([e["label"] for e in examples])
    data = (tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(10000)
            .batch(args.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    model = zoo.create_model(args.model, num_classes=len(synthetic.GENERATORS["shapes"].class_names),
                             input_shape=(args.size, args.size, 3))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    timer = Timer()
    timer.seconds = []
    model.fit(data, epochs=args.epochs, callbacks=[timer], verbose=0, shuffle=False)
    return len(images) // args.batch_size * args.batch_size / float(np.mean(timer.seconds[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; medians compared")
    args = parser.parse_args()
    plain, ours = [], []
    for _ in range(args.repeats):  # alternate so drifting machine load hits both alike
        plain.append(keras_images_per_second(args))
        ours.append(zoo_images_per_second(args))
    med_plain, med_ours = float(np.median(plain)), float(np.median(ours))
    print(f"model {args.model} {args.size}x{args.size}, batch {args.batch_size}, "
          f"{args.examples} images, {args.epochs} epochs (first one excluded), {args.repeats} runs each")
    print(f"plain keras model.fit: median {med_plain:7.1f} images/s   runs: {', '.join(f'{v:.1f}' for v in plain)}")
    print(f"zoo.train:             median {med_ours:7.1f} images/s   runs: {', '.join(f'{v:.1f}' for v in ours)}")
    print(f"ratio zoo/plain (medians): {med_ours / med_plain:.3f}   (best runs: {max(ours) / max(plain):.3f})")


if __name__ == "__main__":
    main()
