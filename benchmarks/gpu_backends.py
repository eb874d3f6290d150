"""GPU mixed precision through JAX: `zoo.train` of resnet20 and shapes_retinanet, mixed_float16 vs float32.

The lent device has JAX and PyTorch with CUDA but no TensorFlow, which the zoo needs as its data
library (tf.data). This script proves the whole pipeline there under `KERAS_BACKEND=jax`: recipe,
generated data through tf.data, `model.fit` on the GPU, the task's own evaluation. In ONE process:

* resnet20 on CIFAR-sized (32x32x3) generated shapes (`shapes_resnet20`, 6 classes), and
* shapes_retinanet (retinanet_small, 128x128 generated shapes, COCO mAP),

each under `runtime.mixed_precision=mixed_float16` and `=float32`, in the order
resnet fp16, resnet fp32, retinanet fp32, retinanet fp16 (alternating, so neither policy always
runs first or warm). Each run is a real `zoo.train` with `train.steps_per_epoch` fixed and
`train.validate false`; steps/s is measured over the epochs after the first (the first holds
the XLA compilation), from history.csv's `epoch_seconds`. The metric is the task's own on the
eval split (accuracy / mAP). Prints one table and one JSON line (also $OUT/gpu_backends.json
when $OUT is set). `--tiny` is a CPU smoke test of the same code (a minute or two on 2 cores).

    KERAS_BACKEND=jax python benchmarks/gpu_backends.py            # on the device (sizes: flags)
    KERAS_BACKEND=jax python benchmarks/gpu_backends.py --tiny     # here, on a CPU

Device plan (15 minutes of device time in all, start-up included)
-----------------------------------------------------------------
What the device lacks (.library/device/KINDS.md: its python3 is 3.12 with jax 0.11.2 + CUDA,
numpy, pyyaml, pillow, matplotlib, scipy, h5py, grpcio, absl-py, tensorboard, ml-dtypes,
opt-einsum, wrapt, rich, requests, psutil, etils ... and no keras, no tensorflow): what `zoo.train`
of these two recipes imports (checked with `python -X importtime` on the --tiny run) beyond that
image is keras (+ namex, optree), tensorflow (+ astunparse, gast, google-pasta, termcolor) and
pycocotools (detection mAP); protobuf and flatbuffers ride along because TensorFlow 2.21 needs
newer ones than the image may hold. tensorflow-datasets is not imported for `source: synthetic`.
`benchmarks/split_wheels.py fetch` pins each to this venv's version (tensorflow-cpu 2.21.0, keras
3.15.1, ...) for CPython 3.12 manylinux x86_64 (pip refuses a cp312 wheel on another Python; this
script refuses a TensorFlow other than 2.21.x, and a JAX that found no GPU).

1. Here, once (.whl/ is in .gitignore, so it travels only when carried):
       python benchmarks/split_wheels.py fetch   # 11 wheels, 265 MiB, ~2 s from the package mirror
       python benchmarks/split_wheels.py split   # .whl/part00..part09 today, <= 29 MiB each (tree ~33 MiB)
2. Device calls, back to back (a machine idle 30 s goes back, and the parts with it; `status`
   between calls is free: if warm turns false, start again at part00). One call per part but the
   last (`split` prints how many; today 10), NN = 00..08,
   carry [".whl/partNN"], timeout_s 60 (the first starts the machine: 1-2 min):
       mkdir -p /tmp/wh && cp -r .whl/partNN /tmp/wh/ && du -sh /tmp/wh
3. Call 10 carries [".whl/part09"], timeout_s 480: reassemble (sha256-checked), install offline,
   record the versions it runs with, run this script; then give_back.
       set -o pipefail; cp -r .whl/part09 /tmp/wh/ && python3 benchmarks/split_wheels.py join /tmp/wh /tmp/whl
       && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site
       /tmp/whl/*.whl || exit 1; export PYTHONPATH=/tmp/site KERAS_BACKEND=jax ZOO_OFFLINE=1
       PYTHONUNBUFFERED=1; nvidia-smi -L; python3 -m pip show numpy ml-dtypes h5py | grep -E '^(Name|Version)';
       python3 benchmarks/gpu_backends.py 2>&1 | tee $OUT/gpu_backends.log
   Expected on an H100 with the default sizes: 3-4 min, mostly XLA compilation of the four runs.
   Budget: ~2 min start + 9 x ~20 s carrying + ~5 min = ~10 of the 15 minutes; if the last call
   fails early (an import), the parts are still in /tmp/wh of the warm machine: fix and rerun it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("ZOO_OFFLINE", "1")

EXPECTED_TF = "2.21."  # the wheel the device plan carries (pyproject: tensorflow~=2.21.0)
POLICIES = ("mixed_float16", "float32")
TASKS = {"resnet20": ("shapes_resnet20", "accuracy"), "retinanet": ("shapes_retinanet", "mAP")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="CPU smoke sizes (overrides the size flags)")
    p.add_argument("--resnet-batch", type=int, default=128)
    p.add_argument("--resnet-steps", type=int, default=100, help="steps per epoch")
    p.add_argument("--resnet-epochs", type=int, default=4, help=">= 2: the first is not timed")
    p.add_argument("--resnet-eval", type=int, default=2000, help="eval images")
    p.add_argument("--retina-batch", type=int, default=32)
    p.add_argument("--retina-steps", type=int, default=60)
    p.add_argument("--retina-epochs", type=int, default=3)
    p.add_argument("--retina-eval", type=int, default=500)
    p.add_argument("--only", choices=sorted(TASKS), help="one model only")
    p.add_argument("--output", help="run directories here (default: a temporary folder)")
    args = p.parse_args(argv)
    if args.tiny:
        args.resnet_batch, args.resnet_steps, args.resnet_epochs, args.resnet_eval = 16, 6, 2, 64
        args.retina_batch, args.retina_steps, args.retina_epochs, args.retina_eval = 2, 3, 2, 8
    if min(args.resnet_epochs, args.retina_epochs) < 2:
        p.error("--*-epochs must be >= 2 (the first epoch compiles and is not timed)")
    return args


def cpu_model() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                platform.machine())


def environment(tiny: bool) -> dict:
    import jax
    import jaxlib.version
    import keras
    import numpy as np
    import tensorflow as tf

    if not tf.__version__.startswith(EXPECTED_TF):
        sys.exit(f"gpu_backends: TensorFlow {tf.__version__} imported, the plan carries {EXPECTED_TF}x")
    tf.config.set_visible_devices([], "GPU")  # tf.data only: TensorFlow must not take GPU memory
    device = jax.devices()[0]
    if not tiny and device.platform != "gpu":  # a CUDA set-up that failed: do not spend the lease on a CPU
        sys.exit(f"gpu_backends: JAX computes on {device.platform}, not a GPU (--tiny for a CPU smoke test)")
    return {"device": f"{device.platform}:{getattr(device, 'device_kind', '?')}",
            "devices": len(jax.devices()), "cpu": cpu_model(),
            "python": platform.python_version(), "backend": keras.backend.backend(),
            "keras": keras.__version__, "jax": jax.__version__, "jaxlib": jaxlib.version.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__}


def plan(args) -> list[tuple[str, str, list[str]]]:
    """(model, policy, recipe overrides) in alternating order."""
    sizes = {"resnet20": (args.resnet_batch, args.resnet_steps, args.resnet_epochs, args.resnet_eval),
             "retinanet": (args.retina_batch, args.retina_steps, args.retina_epochs, args.retina_eval)}
    runs = []
    for i, model in enumerate(m for m in TASKS if args.only in (None, m)):
        batch, steps, epochs, eval_size = sizes[model]
        for policy in POLICIES if i % 2 == 0 else POLICIES[::-1]:
            runs.append((model, policy, [
                f"runtime.mixed_precision={policy}", f"data.batch_size={batch}",
                f"data.train_size={batch * steps}", f"data.eval_size={eval_size}",
                f"train.steps_per_epoch={steps}", f"train.epochs={epochs}",
                "train.validate=false", "train.verbose=2"]))
    return runs


def train_one(model: str, policy: str, overrides: list[str], out: Path) -> dict:
    import keras

    import zoo

    recipe_name, metric = TASKS[model]
    recipe = zoo.load_recipe(recipe_name, overrides)
    keras.utils.clear_session()
    start = time.perf_counter()
    run = zoo.train(recipe, output_dir=out / f"{model}_{policy}")
    wall = time.perf_counter() - start
    seconds = run.history["epoch_seconds"]
    timed = seconds[1:]  # epoch 1 compiles
    return {"model": model, "recipe": recipe_name, "policy": policy,
            "policy_used": keras.config.dtype_policy().name, "batch": recipe.data.batch_size,
            "steps_per_epoch": recipe.train.steps_per_epoch, "epochs": recipe.train.epochs,
            "first_epoch_s": round(seconds[0], 2),
            "steps_per_s": round(recipe.train.steps_per_epoch * len(timed) / sum(timed), 2),
            "metric": metric, "value": round(float(run.metrics[metric]), 4),
            "final_loss": round(float(run.history["loss"][-1]), 4), "wall_s": round(wall, 1)}


def table(results: list[dict]) -> str:
    lines = ["| model | policy | batch | steps x epochs | first epoch s | steps/s | metric | fp16/fp32 steps/s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    speed = {(r["model"], r["policy"]): r["steps_per_s"] for r in results}
    for r in results:
        fp32 = speed.get((r["model"], "float32"))
        ratio = f"{r['steps_per_s'] / fp32:.2f}" if r["policy"] == "mixed_float16" and fp32 else ""
        lines.append(f"| {r['model']} | {r['policy_used']} | {r['batch']} | {r['steps_per_epoch']} x {r['epochs']} "
                     f"| {r['first_epoch_s']} | {r['steps_per_s']} | {r['metric']} {r['value']} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    env = environment(args.tiny)
    print(json.dumps({"environment": env}), flush=True)
    results, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.output or tmp)
        for model, policy, overrides in plan(args):
            print(f"=== {model} {policy}: {' '.join(overrides)}", flush=True)
            results.append(train_one(model, policy, overrides, out))
            print(json.dumps(results[-1]), flush=True)
    ratios = {}
    for model in {r["model"] for r in results}:
        by = {r["policy"]: r for r in results if r["model"] == model}
        if len(by) == 2:
            ratios[model] = round(by["mixed_float16"]["steps_per_s"] / by["float32"]["steps_per_s"], 2)
    summary = {**env, "tiny": args.tiny, "seconds": round(time.perf_counter() - t0, 1),
               "fp16_over_fp32_steps_per_s": ratios, "results": results}
    print(f"\n{env['device']} ({env['backend']} {env['jax']}, keras {env['keras']}, tf.data from "
          f"tensorflow {env['tensorflow']})\n" + table(results))
    print(json.dumps(summary), flush=True)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_backends.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
