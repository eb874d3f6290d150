"""Latency per image of each shipped model's exports against its Keras serving graph, side by side.

For each shipped weight (`zoo list --pretrained`, the zoo's own) and each format / dtype the task
takes, `zoo export` writes the file, then the Keras serving graph (`predict_on_batch`) and the
export (its own runtime) alternate on the same eval image, batch 1 and, where the format takes a
batch, 4 (the image repeated): median seconds per image after warm-up (`zoo.export.latency`).
The largest |Keras - export| over 8 eval inputs is printed with it.

    python benchmarks/export_latency.py [--models digits_cnn.digits ...] [--formats onnx ...]
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from zoo import export as ex

SHIPPED = ["digits_cnn.digits", "unet_small.shapes", "cnn_lstm.moving_shapes", "retinanet_small.shapes"]
DTYPES = {"saved_model": ["float32"], "litert": ["float32", "float16", "int8"],
          "onnx": ["float32", "float16", "int8"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=SHIPPED)
    parser.add_argument("--formats", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    print("| model | format | dtype | batch | Keras ms/image | export ms/image | Keras / export | largest gap |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for tag in args.models:
        for format in args.formats:
            for dtype in DTYPES[format]:
                with tempfile.TemporaryDirectory() as out:
                    try:
                        exported = ex.export(tag, format, dtype, out)
                    except ex.ZooError as err:  # a (format, dtype) this task cannot take
                        print(f"| {tag} | {format} | {dtype} | - | - | - | - | {err} |")
                        continue
                    run = ex.load_exported(exported.path)
                    inputs = ex.sample_inputs(exported)
                    gaps = ex.differences(exported, run, inputs)
                    gap = ", ".join(f"{k} {v:.2g}" for k, v in gaps.items())
                    for batch in (1,) if format == "litert" else (1, 4):
                        images = np.stack([inputs[0]] * batch)
                        keras_s, export_s = [], []
                        for _ in range(3):  # alternate the two sides
                            keras_s.append(ex.latency(exported.serving.predict_on_batch, images, runs=args.runs))
                            export_s.append(ex.latency(run, images, runs=args.runs))
                        k, e = float(np.median(keras_s)), float(np.median(export_s))
                        print(f"| {tag} | {format} | {dtype} | {batch} | {1000 * k:.2f} | {1000 * e:.2f} | "
                              f"{k / e:.2f} | {gap} |", flush=True)


if __name__ == "__main__":
    main()
