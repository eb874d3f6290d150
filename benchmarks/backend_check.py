"""Backend check: the zoo's model code is backend-neutral Keras under mixed precision.

For a representative model of every registered task family (classification: a small CNN, a
CIFAR ResNet, a Keras Applications wrapper; detection; segmentation; video), built through
`zoo.models.create_model` under `keras.config.set_dtype_policy("mixed_float16")`, it checks:

* the model computes in float16 (some layer) and its output dtype is float32;
* its parameter count equals the same model built under "float32";
* `fit` (Adam; the loss scale optimizer Keras adds for mixed_float16) on ONE fixed random batch
  for `--steps` steps: every loss finite, the last lower than the first, all weights finite;
  losses: sparse categorical crossentropy on the softmax outputs (classifiers, video, per pixel
  for the U-Net), MSE against random targets for the detector's raw anchor outputs;
* a `.keras` save / `zoo.models.load_model_file` round trip: the same weights, bit for bit,
  and the same predictions;
* nothing under zoo/ imports TensorFlow (an import hook refuses `tensorflow` and records who
  asked), unless KERAS_BACKEND=tensorflow.

One line per model (name, backend, device, policy, params, output dtype, first/last loss,
steps/s, PASS/FAIL), then one JSON summary line; exit status 1 if any model fails.

Run (no TensorFlow needed; the zoo is imported from this checkout):
    KERAS_BACKEND=jax python benchmarks/backend_check.py [--quick] [--steps 20] [--models a,b]
`--quick` checks the six representative models only; without it a few more backbones run too
(`--budget SECONDS`: those extras are skipped once the run has taken that long).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("ZOO_OFFLINE", "1")
TF_IMPORTERS: list[str] = []  # "file:line" that tried to import TensorFlow ("zoo: ..." if under zoo/)


class _NoTensorFlow:
    """Meta-path hook: refuses `import tensorflow` and records the zoo frame that asked."""

    def find_spec(self, name, path=None, target=None):  # None: not ours, the next finder looks
        if name.split(".")[0] == "tensorflow":
            stack = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            zoo_frames = [f for f in stack if f.filename.startswith(str(ROOT / "zoo"))
                          and not f.filename.endswith("lazy.py")]  # who used the proxy, not it
            frame = (zoo_frames or stack)[-1]
            TF_IMPORTERS.append(f"{'zoo: ' if zoo_frames else ''}{frame.filename}:{frame.lineno}")
            raise ImportError(f"backend_check: TensorFlow refused ({name})")


if os.environ["KERAS_BACKEND"] != "tensorflow":
    sys.meta_path.insert(0, _NoTensorFlow())

import keras
import numpy as np

try:  # importing the catalogue registers every family (and, through the registry, every task)
    from zoo import models as zoo_models
except ImportError as err:  # e.g. a zoo module that imports TensorFlow at import time
    print(json.dumps({"summary": "FAIL", "import_error": str(err), "tensorflow_imports": TF_IMPORTERS}))
    sys.exit(1)

# name -> (create_model kwargs: small inputs, few classes; loss kind). QUICK: one per family/task.
QUICK = {
    "digits_cnn": ({"input_shape": (8, 8, 3), "num_classes": 10}, "sparse_ce"),
    "resnet20": ({"input_shape": (32, 32, 3), "num_classes": 10}, "sparse_ce"),
    "mobilenet_v2": ({"input_shape": (64, 64, 3), "num_classes": 5}, "sparse_ce"),
    "retinanet_small": ({"input_shape": (64, 64, 3), "num_classes": 3}, "mse"),
    "unet_small": ({"input_shape": (32, 32, 3), "num_classes": 3}, "sparse_ce"),
    "cnn_lstm": ({"input_shape": (4, 32, 32, 3), "num_classes": 3}, "sparse_ce"),
}
EXTRA = {
    "resnet18": ({"input_shape": (64, 64, 3), "num_classes": 5}, "sparse_ce"),
    "efficientnet_b0": ({"input_shape": (64, 64, 3), "num_classes": 5}, "sparse_ce"),
    "unet_resnet18": ({"input_shape": (64, 64, 3), "num_classes": 3}, "sparse_ce"),
    "cnn_lstm_mobilenet_v2": ({"input_shape": (4, 64, 64, 3), "num_classes": 3}, "sparse_ce"),
}


def device_name() -> str:
    if keras.backend.backend() == "jax":
        import jax

        return ",".join(str(d) for d in jax.devices())
    return ",".join(keras.distribution.list_devices())


def fixed_batch(model, kwargs, loss, batch, rng):
    """Random raw pixels 0..255 and random targets shaped like the model's output."""
    x = rng.uniform(0, 255, (batch, *kwargs["input_shape"])).astype("float32")
    out_shape = (batch, *model.output.shape[1:])
    if loss == "mse":
        return x, rng.normal(0, 1, out_shape).astype("float32")
    return x, rng.integers(0, out_shape[-1], out_shape[:-1]).astype("int32")


def check(name, kwargs, loss, steps, batch, tmp) -> dict:
    r = {"model": name, "task": zoo_models.get_entry(name).task, "backend": keras.backend.backend(),
         "policy": "mixed_float16", "errors": []}
    keras.utils.clear_session()  # resets the global dtype policy too: set it afterwards
    keras.config.set_dtype_policy("float32")
    r["params_float32"] = zoo_models.create_model(name, **kwargs).count_params()
    keras.utils.clear_session()
    keras.config.set_dtype_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = zoo_models.create_model(name, **kwargs)
    r["params"] = model.count_params()
    r["output_dtype"] = str(model.output.dtype)
    if r["params"] != r["params_float32"]:
        r["errors"].append(f"params {r['params']} != float32 {r['params_float32']}")
    if r["output_dtype"] != "float32":
        r["errors"].append(f"output dtype {r['output_dtype']}")
    if not any(layer.compute_dtype == "float16" for layer in model.layers):
        r["errors"].append("no layer computes in float16")
    if any(v.dtype in ("float16", "bfloat16") for v in model.weights):
        r["errors"].append("a variable is stored in 16 bits (mixed precision keeps float32)")

    x, y = fixed_batch(model, kwargs, loss, batch, np.random.default_rng(0))
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="mse" if loss == "mse" else "sparse_categorical_crossentropy")
    r["loss_scaling"] = type(model.optimizer).__name__ == "LossScaleOptimizer"
    losses = model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0).history["loss"]
    start = time.perf_counter()  # compiled now: time the remaining steps
    losses += model.fit(x, y, batch_size=batch, epochs=steps - 1, shuffle=False, verbose=0).history["loss"]
    r["steps_per_s"] = round((steps - 1) / (time.perf_counter() - start), 1)
    r["first_loss"], r["last_loss"] = float(losses[0]), float(losses[-1])
    if not np.all(np.isfinite(losses)):
        r["errors"].append("non-finite loss")
    elif not r["last_loss"] < r["first_loss"]:
        r["errors"].append("loss did not fall")
    if not all(np.all(np.isfinite(keras.ops.convert_to_numpy(w))) for w in model.weights):
        r["errors"].append("non-finite weights")
    predicted = model.predict(x, verbose=0)
    r["output_dtype_run"] = str(predicted.dtype)
    if r["output_dtype_run"] != "float32":
        r["errors"].append(f"predicted dtype {r['output_dtype_run']}")

    path = Path(tmp) / f"{name}.keras"
    model.save(path)
    loaded = zoo_models.load_model_file(path)
    same_weights = len(model.weights) == len(loaded.weights) and all(
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(model.weights, loaded.weights))
    r["roundtrip_max_diff"] = float(np.max(np.abs(predicted - loaded.predict(x, verbose=0))))
    if not same_weights:
        r["errors"].append("reloaded weights differ")
    if r["roundtrip_max_diff"] > 1e-3:  # 0.0 on CPU; slack for float16 GPU kernel choice only
        r["errors"].append(f"reloaded outputs differ by {r['roundtrip_max_diff']:.2e}")
    return r


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", default=os.environ.get("ZOO_QUICK") == "1",
                        help="the six representative models only (env ZOO_QUICK=1)")
    parser.add_argument("--steps", type=int, default=20, help="fit steps on the fixed batch (>= 2)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--models", help="comma-separated subset of the planned models")
    parser.add_argument("--budget", type=float, default=float("inf"),
                        help="seconds after which the extra (non-quick) models are skipped")
    args = parser.parse_args(argv)

    plan = {**QUICK, **({} if args.quick else EXTRA)}
    if args.models:
        plan = {n: {**QUICK, **EXTRA}[n] for n in args.models.split(",")}
    registered = zoo_models.list_models()
    tasks = {zoo_models.get_entry(n).task for n in registered}
    uncovered = sorted(tasks - {zoo_models.get_entry(n).task for n in plan})
    device = device_name()
    print(f"backend={keras.backend.backend()} keras={keras.__version__} device={device} "
          f"registered={len(registered)} tasks={','.join(sorted(tasks))}", flush=True)

    results, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kwargs, loss) in plan.items():
            t = time.perf_counter()
            if name not in QUICK and t - t0 > args.budget:
                print(f"{name:22s} SKIPPED (--budget {args.budget:g}s spent)", flush=True)
                continue
            try:
                r = check(name, kwargs, loss, max(args.steps, 2), args.batch, tmp)
            except Exception as err:  # noqa: BLE001  (a model that cannot run is a FAIL line)
                r = {"model": name, "errors": [f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"]}
                traceback.print_exc()
            r["seconds"] = round(time.perf_counter() - t, 1)
            r["status"] = "FAIL" if r["errors"] else "PASS"
            results.append(r)
            print(f"{name:22s} backend={r.get('backend')} device={device} policy={r.get('policy')} "
                  f"params={r.get('params')} out={r.get('output_dtype')} "
                  f"loss={r.get('first_loss', float('nan')):.4f}->{r.get('last_loss', float('nan')):.4f} "
                  f"steps/s={r.get('steps_per_s')} reload_diff={r.get('roundtrip_max_diff')} "
                  f"{r['seconds']}s {r['status']}"
                  + (f" ({'; '.join(r['errors'])})" if r["errors"] else ""), flush=True)

    zoo_tf = sorted({s for s in TF_IMPORTERS if s.startswith("zoo: ")})
    ok = all(r["status"] == "PASS" for r in results) and not zoo_tf and not (uncovered and not args.models)
    print(json.dumps({"summary": "PASS" if ok else "FAIL", "backend": keras.backend.backend(),
                      "device": device, "policy": "mixed_float16", "steps": args.steps,
                      "passed": sum(r["status"] == "PASS" for r in results), "total": len(results),
                      "tasks_uncovered": uncovered, "zoo_tensorflow_imports": zoo_tf,
                      "other_tensorflow_imports": sorted(set(TF_IMPORTERS) - set(zoo_tf)),
                      "seconds": round(time.perf_counter() - t0, 1), "results": results}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
