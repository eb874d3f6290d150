"""Speed side by side on the TensorFlow, JAX and PyTorch Keras backends, tf.data feeding all three.

Every number comes from the zoo's real pipeline: `zoo.train` of the family's offline recipe (its
model, loss, optimizer, tf.data input and callbacks), in a fresh process per run with
KERAS_BACKEND fixed for that process. Per family, policy and repeat the backends take turns
(tensorflow, jax, torch, tensorflow, ...), so a change in the machine's load falls on all three.

* steps/s after compilation: the recipe for one epoch of warm-up + timed steps, no validation
  (the synthetic splits shrunk with data.train_size / eval_size; the model, image size, batch size,
  loss and optimizer are the recipe's). Step ends are read where every backend's fit loop reports
  them (Keras' `CallbackList.on_train_batch_end`, wrapped in the child process; zoo code
  unchanged), each timed step's loss fetched first (JAX dispatches asynchronously). The window
  starts after the warm-up steps, so compilation stays out, and ends after its most steps or, at
  least MIN_TIMED steps in, after its seconds (a slow backend times fewer steps). The run stops
  there: saving and the final evaluation are not part of it.
* first step s: seconds from the moment the parent starts the process to the end of the first
  training step: interpreter, imports, data, model, compilation. Of which "start-up s": until the
  recipe is loaded (interpreter, TensorFlow, Keras and its backend, the zoo), and "step 1 s": the
  first step alone (mostly tracing and compiling: tf.function on TensorFlow, XLA on JAX; torch runs
  eagerly). The rest is data, model, optimizer and what `fit` does before its first step (on JAX,
  tracing the model once for its output shapes).
* time to metric: the README's offline quickstart, `zoo train digits_cnn` as a user types it
  (`python -m zoo.cli`), start-up included, with the accuracy it wrote to metrics.json. The other
  families' quickstarts take 5-10 minutes each per backend on 2 cores, so only their steps/s and
  start-up are measured here (the quickstart table in docs/benchmarks.md has their metrics).

`runtime.mixed_precision=auto` resolves per backend and device (zoo.runtime.choose_policy): on a
CPU with AVX512-BF16 or AMX it is mixed_bfloat16, else float32; the table names what it resolved
to. Prints the CPU (model, native bfloat16 or not), versions and load, one line per run, a
markdown table (medians over repeats) and a JSON line.

    python benchmarks/backends.py --quick        # smoke check, about 2 minutes: digits_cnn and the video
                                                 # family at tiny sizes, auto only, the quickstart 2 epochs
    python benchmarks/backends.py [--repeats 1] [--policies auto,float32] [--families a,b] [--backends ...]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("tensorflow", "jax", "torch")
QUICKSTART = "digits_cnn"
RESULT = "BACKENDS_RESULT "  # prefix of the child's one JSON line on stdout


# family -> recipe; synthetic split sizes (train, eval; None: the recipe's own data); the timing
# window, full and --quick: (warm-up steps, at most this many timed steps, or fewer once this many
# seconds have passed, MIN_TIMED at least); the overrides that make --quick tiny.
FAMILIES = {
    "digits_cnn": {"recipe": "digits_cnn", "sizes": None, "window": ((10, 300, 3), (3, 30, 2)), "quick": []},
    "shapes_resnet20": {"recipe": "shapes_resnet20", "sizes": (128, 16), "window": ((2, 40, 6), (1, 3, 2)),
                        "quick": ["data.batch_size=8"]},
    "shapes_unet": {"recipe": "shapes_unet", "sizes": (64, 16), "window": ((2, 30, 6), (1, 3, 2)),
                    "quick": ["data.batch_size=4", "data.image_size=[32,32]"]},
    "shapes_retinanet": {"recipe": "shapes_retinanet", "sizes": (64, 16), "window": ((2, 20, 6), (1, 3, 2)),
                         "quick": ["data.batch_size=2", "data.image_size=[64,64]"]},
    "moving_shapes_cnn_lstm": {"recipe": "moving_shapes_cnn_lstm", "sizes": (128, 16),
                               "window": ((2, 30, 6), (1, 3, 2)),
                               "quick": ["data.batch_size=4", "data.image_size=[32,32]", "data.num_frames=4"]},
}
QUICK_FAMILIES = "digits_cnn,moving_shapes_cnn_lstm"  # the cheapest to compile: --quick fits in ~2 minutes
MIN_TIMED = 2


def cpu_description() -> str:
    """'AMD EPYC, avx512_bf16' / '..., no native bfloat16', and the core count."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                      if line.startswith("flags")), []))
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {', '.join(native) if native else 'no native bfloat16'}, {os.cpu_count()} cores"


def versions() -> str:
    return ", ".join(f"{name} {metadata.version(name)}" for name in ("keras", "tensorflow", "jax", "torch"))


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------ child process


class WindowDone(BaseException):
    """Raised from the fit loop once the timed steps are done (a BaseException: nothing in the
    zoo handles it as an error)."""


def child(args) -> int:
    """One `zoo.train` under this process's KERAS_BACKEND; prints one RESULT line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    import keras

    import zoo
    from zoo import runtime

    warmup, most, seconds = int(args.window[0]), int(args.window[1]), args.window[2]
    marks = {}  # "step1_begin", "step1_end", "window_begin", "window_end": time.time(); "timed": steps
    on_begin = keras.callbacks.CallbackList.on_train_batch_begin
    on_end = keras.callbacks.CallbackList.on_train_batch_end

    def batch_begin(callbacks, batch, logs=None):
        if batch == 0:
            marks.setdefault("step1_begin", time.time())
        on_begin(callbacks, batch, logs)

    def batch_end(callbacks, batch, logs=None):
        step = batch + 1
        if step >= warmup:  # the loss exists once its step has run (JAX dispatches asynchronously)
            keras.ops.convert_to_numpy((logs or {})["loss"])
        now = time.time()
        marks.setdefault("step1_end", now)
        if step == warmup:
            marks["window_begin"] = now
        elif step > warmup:
            marks["timed"], marks["window_end"] = step - warmup, now
            if step - warmup >= most or (step - warmup >= MIN_TIMED and now - marks["window_begin"] >= seconds):
                raise WindowDone  # the rest of the run (saving, the final evaluation) is not measured
        on_end(callbacks, batch, logs)

    keras.callbacks.CallbackList.on_train_batch_begin = batch_begin
    keras.callbacks.CallbackList.on_train_batch_end = batch_end

    family = FAMILIES[args.child]
    overrides = [f"runtime.mixed_precision={args.policy}", f"train.steps_per_epoch={warmup + most}",
                 "train.epochs=1", "train.validate=false", "train.verbose=0"]
    if family["sizes"]:
        overrides += [f"data.train_size={family['sizes'][0]}", f"data.eval_size={family['sizes'][1]}"]
    overrides += family["quick"] if args.quick else []
    recipe = zoo.load_recipe(family["recipe"], overrides)
    imported = time.time()
    with tempfile.TemporaryDirectory() as out, contextlib.suppress(WindowDone):
        zoo.train(recipe, output_dir=out)
    print(RESULT + json.dumps({
        "policy_used": keras.config.dtype_policy().name, "why": runtime.policy_reason(recipe.runtime),
        "batch": recipe.data.batch_size, "warmup": warmup, "timed": marks["timed"],
        "startup_s": imported - args.started, "first_step_s": marks["step1_end"] - args.started,
        "step1_s": marks["step1_end"] - marks["step1_begin"],
        "steps_per_s": marks["timed"] / (marks["window_end"] - marks["window_begin"]),
        "process_s": time.time() - args.started}), flush=True)
    return 0


# ------------------------------------------------------------------------------ parent process


def run_child(backend: str, family: str, policy: str, window: tuple, quick: bool) -> dict:
    started = time.time()
    command = [sys.executable, __file__, "--child", family, "--policy", policy, "--started", repr(started),
               "--window", *map(repr, window), *(["--quick"] if quick else [])]
    done = subprocess.run(command, env=child_env(backend), capture_output=True, text=True, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith(RESULT)), None)
    if done.returncode or line is None:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return rounded(json.loads(line[len(RESULT):]))


def child_env(backend: str) -> dict:
    return {**os.environ, "KERAS_BACKEND": backend, "ZOO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def quickstart(backend: str, quick: bool) -> dict:
    """`zoo train digits_cnn` as the README has it, wall time from process start to exit."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "zoo.cli", "train", QUICKSTART, "--output", out,
                   *(["train.epochs=2"] if quick else [])]
        start = time.perf_counter()
        done = subprocess.run(command, env=child_env(backend), capture_output=True, text=True, cwd=ROOT,
                              check=False)
        wall = time.perf_counter() - start
        if done.returncode:
            return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
        metrics = json.loads((Path(out) / "metrics.json").read_text())
    policy = next((line.split("policy ", 1)[1].split(" ")[0] for line in done.stdout.splitlines()
                   if line.startswith("training ")), "?")
    return {"time_to_metric_s": round(wall, 1), "metric": f"accuracy {metrics['accuracy']:.4f}", "policy_used": policy}


def rounded(result: dict) -> dict:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def median(results: list[dict], key: str):
    values = [r[key] for r in results if key in r]
    return statistics.median(values) if values else None


def fmt(value, digits=1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def table(rows: dict, quickstarts: dict) -> str:
    """rows: (family, policy, backend) -> the runs' results; quickstarts: backend -> runs."""
    header = ("| family | backend | policy | steps/s | ratio vs tensorflow | first step s | start-up s "
              "| step 1 s | time to metric s | metric |")
    lines = [header, "| --- " * 10 + "|"]
    for (family, policy, backend), runs in rows.items():
        speed, tf_speed = median(runs, "steps_per_s"), median(rows.get((family, policy, "tensorflow"), []),
                                                               "steps_per_s")
        ratio = f"{speed / tf_speed:.2f}" if speed and tf_speed else "—"
        ok = [r for r in runs if "error" not in r]
        shown = f"{policy} ({ok[0]['policy_used']})" if ok and policy == "auto" else policy
        to_metric = metric = "—"
        if family == QUICKSTART and policy == "auto" and quickstarts.get(backend):
            done = [q for q in quickstarts[backend] if "error" not in q]
            to_metric = fmt(median(done, "time_to_metric_s")) if done else "failed"
            metric = ", ".join(q["metric"] for q in done) or "failed"
        if not ok:
            lines.append(f"| {family} | {backend} | {policy} | failed | — | — | — | — "
                         f"| {to_metric} | {metric} |")
            continue
        lines.append(f"| {family} | {backend} | {shown} | {fmt(speed, 2)} | {ratio} "
                     f"| {fmt(median(ok, 'first_step_s'))} | {fmt(median(ok, 'startup_s'))} "
                     f"| {fmt(median(ok, 'step1_s'))} | {to_metric} | {metric} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, auto only: a smoke check of about 2 minutes")
    p.add_argument("--repeats", type=int, default=1, help="runs of each (family, policy, backend), alternating")
    p.add_argument("--policies", help="comma-separated runtime.mixed_precision values (default auto,float32; "
                                      "--quick: auto)")
    p.add_argument("--families", help=f"comma-separated, of: {', '.join(FAMILIES)} (default all; --quick: "
                                      f"{QUICK_FAMILIES})")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--no-quickstart", action="store_true", help="skip the time to the quickstart's metric")
    p.add_argument("--child", choices=sorted(FAMILIES), help=argparse.SUPPRESS)
    p.add_argument("--policy", help=argparse.SUPPRESS)
    p.add_argument("--started", type=float, help=argparse.SUPPRESS)
    p.add_argument("--window", type=float, nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.policies = (args.policies or ("auto" if args.quick else "auto,float32")).split(",")
    args.families = (args.families or (QUICK_FAMILIES if args.quick else ",".join(FAMILIES))).split(",")
    args.backends = args.backends.split(",")
    unknown = sorted(set(args.families) - set(FAMILIES)) + sorted(set(args.backends) - set(BACKENDS))
    if unknown:
        p.error(f"unknown: {', '.join(unknown)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    t0 = time.perf_counter()
    print(f"CPU: {cpu_description()}; {versions()}; python {platform.python_version()}; {load()} at start"
          + ("; --quick (tiny sizes)" if args.quick else ""), flush=True)
    rows, quickstarts = {}, {}
    for family in args.families:
        window = FAMILIES[family]["window"][1 if args.quick else 0]
        for policy in args.policies:
            for repeat in range(args.repeats):
                for backend in args.backends:
                    r = run_child(backend, family, policy, window, args.quick)
                    rows.setdefault((family, policy, backend), []).append(r)
                    print(json.dumps({"family": family, "backend": backend, "policy": policy, "repeat": repeat,
                                      **r}), flush=True)
    if QUICKSTART in args.families and not args.no_quickstart:
        for repeat in range(args.repeats):
            for backend in args.backends:
                q = quickstart(backend, args.quick)
                quickstarts.setdefault(backend, []).append(q)
                print(json.dumps({"quickstart": QUICKSTART, "backend": backend, "repeat": repeat, **q}),
                      flush=True)
    seconds = time.perf_counter() - t0
    print(f"\n{cpu_description()}; {versions()}; {load()} at the end; benchmark wall time {seconds:.0f} s\n")
    print(table(rows, quickstarts))
    failed = sum("error" in r for runs in [*rows.values(), *quickstarts.values()] for r in runs)
    print(json.dumps({"cpu": cpu_description(), "versions": versions(), "quick": args.quick,
                      "seconds": round(seconds, 1), "failed": failed,
                      "runs": [{"family": f, "policy": p, "backend": b, "results": runs}
                               for (f, p, b), runs in rows.items()],
                      "quickstart": quickstarts}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
