"""`zoo export`: a trained model -> a SavedModel, LiteRT or ONNX file holding its task's serving
graph (`Task.serving_model`: raw uint8 images of any size in, the task's answer out; the
preprocessing and, for detection, the decode + NMS inside), checked against the Keras model.

Every format goes through Keras' own `Model.export` (ONNX through tf2onnx, LiteRT through the
TFLite converter, builtin ops only); the smaller dtypes through each format's own tools:

| format | float32 | float16 | int8 |
| --- | --- | --- | --- |
| saved_model | yes | - | - |
| litert | yes | float16 weights (converter) | full-integer quantization, calibrated (converter) |
| onnx | yes | float16 weights and activations, float32 inputs and outputs (onnxconverter-common) | static QDQ quantization, per channel, calibrated (onnxruntime) |

The writers are zoo/export_formats.py: int8 quantizes what feeds a weighted op (conv, dense,
LSTM) and keeps the `float_tail` after the last one and the image resize (zoo.data.resize) in
float; calibration runs `CALIBRATION_EXAMPLES`
examples of the recipe's training split through the serving graph. A (format, dtype) a task's
graph defeats is its `Task.export_limits`. LiteRT files take one image (clip) per call: a fixed batch of 1, as LiteRT's
own models do (the video model's LSTM needs a static batch to become builtin ops); SavedModel and
ONNX take any batch of equally sized images.
"""
from __future__ import annotations

import errno
import importlib.util
import json
import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.errors import ZooError, cannot_write, make_folder
from zoo.export_formats import WRITERS, input_signature
from zoo.lazy import keras, tf

FORMATS = {"saved_model": "", "litert": ".tflite", "onnx": ".onnx"}
DTYPES = ("float32", "float16", "int8")
CALIBRATION_EXAMPLES = 200
EXTRA = "pip install 'keras-zoo[export]'"
# Python modules each format needs beyond TensorFlow, and what installs them.
NEEDS = {"litert": ("ai_edge_litert",), "onnx": ("tf2onnx", "onnxruntime", "onnxconverter_common")}


@dataclass
class Exported:
    path: Path  # the exported file (SavedModel: directory)
    metadata: Path  # `<file name>.json` beside it
    serving: "keras.Model"  # the Keras serving graph that was exported
    recipe: object
    info: object
    task: object


def check_format(format: str, dtype: str):
    """A ZooError (exit 2) for an unknown format or dtype, a dtype the format does not take, or
    a missing export dependency (named with the extra that installs it)."""
    if format not in FORMATS:
        raise ZooError(f"--format {format}: expected one of {', '.join(FORMATS)}")
    if dtype not in DTYPES:
        raise ZooError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    if format == "saved_model" and dtype != "float32":
        raise ZooError(f"--dtype {dtype}: a SavedModel is exported in float32; "
                       "use --format litert or onnx for float16 / int8")
    missing = [m for m in NEEDS.get(format, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise ZooError(f"--format {format} needs {', '.join(missing)}, not installed: {EXTRA}")


def export(source, format: str, dtype: str = "float32", output_dir=None,
           calibration_examples: int = CALIBRATION_EXAMPLES, **options) -> Exported:
    """Export a run directory, a `.keras` file or a pretrained name (as `zoo predict` takes
    them) to `<output_dir>/<model name>[_<dtype>]<suffix>` (default output_dir: the run's
    `export/`, else `./export/`), with `<file name>.json` beside it: what the file takes and
    returns, and the class names. The file is written under a temporary name and renamed.
    `options`: the task's serving graph's (detection: `agnostic_nms`), recorded in the metadata."""
    from zoo.model_source import load_run
    from zoo.predictor import task_options
    from zoo.tasks import get_task

    check_format(format, dtype)
    if keras.backend.backend() != "tensorflow":
        raise ZooError(f"export writes TensorFlow graphs and runs on the TensorFlow backend, not "
                       f"{keras.backend.backend()}: run it with KERAS_BACKEND=tensorflow (`zoo export` does so itself)")
    model, recipe, info, run_dir = load_run(source)
    task = get_task(recipe.task)
    if (format, dtype) in task.export_limits:
        raise ZooError(f"--format {format} --dtype {dtype}: not for {task.name} models: "
                       f"{task.export_limits[format, dtype]}")
    options = task_options(task, options, task.serving_options)
    serving = task.serving_model(model, recipe, **options)
    out = Path(output_dir) if output_dir else (run_dir / "export" if run_dir else Path("export"))
    make_folder(out)
    stem = model.name if dtype == "float32" else f"{model.name}_{dtype}"
    path = out / f"{stem}{FORMATS[format]}"
    metadata_path = path.with_name(f"{path.name}.json")  # one per format and dtype
    _check_replaceable(path, metadata_path)
    _sweep_stale_temporaries(out)

    def calibration():
        inputs = serving_inputs(recipe, task, recipe.data.train_split, calibration_examples)
        print(f"int8 calibration on {len(inputs)} examples of {data_description(recipe.data)}, "
              f"split {recipe.data.train_split!r}", flush=True)
        return inputs

    temporary = out / f".{stem}.{os.getpid()}.tmp{FORMATS[format]}"
    try:
        WRITERS[format](serving, temporary, dtype, calibration)
        metadata = _metadata(serving, format, dtype, source, task, info, options)
        _write_metadata(metadata_path, {**metadata, **_trained_backend(run_dir)})
        _replace(temporary, path)  # after its metadata, which marks `path` as an export of the zoo
    except (OSError, tf.errors.OpError) as err:
        reason = _write_failure(err, out)
        if reason is None:
            raise
        raise ZooError(f"cannot write {path}: {reason}") from None
    finally:
        _remove(temporary)
    return Exported(path, metadata_path, serving, recipe, info, task)


def _metadata(serving, format, dtype, source, task, info, options) -> dict:
    """What the exported file takes and returns, its serving options, its class names and who
    made it."""
    return {"task": task.name, "format": format, "dtype": dtype, "source": str(source), **options,
            "inputs": {"images": {"dtype": "uint8", "shape": _shape(input_signature(serving, format).shape)}},
            "outputs": {name: {"dtype": str(t.dtype), "shape": _shape(t.shape)}
                        for name, t in serving.output.items()},
            "class_names": list(info.class_names), **info.extras,
            "versions": _versions()}


def _trained_backend(run_dir) -> dict:
    """`trained_backend`: the Keras backend that trained the run ("jax 0.10.2"), where its recipe.yaml says."""
    from zoo.resume import recorded_backend

    recipe_yaml = run_dir / "recipe.yaml" if run_dir else None
    trained = recipe_yaml and recipe_yaml.is_file() and recorded_backend(recipe_yaml)
    return {"trained_backend": trained} if trained else {}


def _write_metadata(path: Path, metadata: dict):
    from zoo.run_dir import write_atomic

    try:
        write_atomic(path, json.dumps(metadata, indent=1))
    except OSError as err:
        raise cannot_write(path, err) from None


def _shape(shape) -> list:
    return [None if s is None else int(s) for s in shape]


def _versions() -> dict:
    from zoo.version import __version__

    return {"keras-zoo": __version__, "keras": keras.__version__, "tensorflow": tf.__version__,
            "backend": keras.backend.backend()}


def _check_replaceable(path: Path, metadata_path: Path):
    """An export replaces only an earlier export of the zoo, known by its metadata; a ZooError
    (before any work) for anything else under its name or its metadata's."""
    for taken in (path, metadata_path):
        if taken.exists() and not _is_zoo_metadata(metadata_path):
            raise ZooError(f"{taken} exists and is no export of the zoo ({metadata_path.name} does not "
                           "say so): move it away or choose another --output; it was left as it is")


def _is_zoo_metadata(metadata_path: Path) -> bool:
    try:
        metadata = json.loads(metadata_path.read_text())
        return metadata["format"] in FORMATS and "keras-zoo" in metadata["versions"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


# An export's temporary file: `.<stem>.<pid of its writer>.tmp<suffix>` (and the ONNX int8
# writer's float model: `...tmp.float32.onnx`).
TEMPORARY = re.compile(r"\..+\.(?P<pid>\d+)\.tmp(|\.tflite|\.onnx|\.float32\.onnx)")


def _sweep_stale_temporaries(folder: Path):
    """Remove what killed exports into `folder` left: temporaries whose writer has died. A live
    writer's (a concurrent export) are left alone."""
    for entry in folder.iterdir():
        match = TEMPORARY.fullmatch(entry.name)
        if match and not _alive(int(match["pid"])):
            _remove(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


# What a disk or folder that refuses a write says.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                errno.EISDIR)


def _write_failure(err, folder: Path) -> str | None:
    """Why writing into `folder` failed, where `err` (Python's or TensorFlow's) says the disk or
    the folder refused it (full, read-only, no permission...); None for any other error, and for
    one about another file (e.g. calibration data that cannot be read)."""
    from zoo.run_dir import os_error

    failure = os_error(err, WRITE_ERRNOS)
    if failure is None or (failure.filename is not None and str(folder) not in str(failure.filename)):
        return None
    return failure.strerror


def _replace(temporary: Path, path: Path):
    """Move a finished export into place (a SavedModel directory replaces the old one whole)."""
    if temporary.is_dir():
        old = path.with_name(f".{path.name}.old")
        _remove(old)
        if path.exists():
            path.rename(old)
        temporary.rename(path)
        _remove(old)
    else:
        os.replace(temporary, path)


def _remove(path: Path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# -- writers: (serving graph, path, dtype, calibration: () -> the int8 calibration inputs) --------




# -- running an export ---------------------------------------------------------------------------


def load_exported(path):
    """A function images (uint8 NumPy) -> {output name: NumPy} running the exported file with its
    format's own runtime: `tf.saved_model.load`, the LiteRT interpreter, onnxruntime."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        return lambda images: dict(zip(names, session.run(names, {"images": np.asarray(images)})))
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(str(path)).get_signature_runner()
        return lambda images: runner(images=np.asarray(images))
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda images: {k: v.numpy() for k, v in signature(images=tf.constant(images)).items()}


def data_description(data) -> str:
    """The source and the data it reads, e.g. "folder /data/rgb3" (a relative path, as an older
    run's recipe.yaml holds it, made absolute: what is read from here), "tfds cifar10"."""
    if data.source == "digits":
        return "digits (embedded UCI 8x8)"
    where = data.path or data.name
    if data.path and "://" not in data.path:
        where = os.path.abspath(data.path)
    return f"{data.source} {where}" if where else data.source


def serving_inputs(recipe, task, split: str, limit: int, truths: list | None = None, info=None) -> list:
    """Up to `limit` serving inputs (unbatched uint8 NumPy) of one split of the recipe's data;
    their truths appended to `truths` when given (`Task.serving_example`), with labels mapped
    onto `info`'s classes by name where given (`load_split`)."""
    from zoo.data import load_split

    if recipe.data.name == "-":  # a pretrained model without a recipe (Keras Applications)
        raise ZooError(f"{recipe.model.name}: no dataset to calibrate or evaluate on; export a run "
                       "directory or a model with a recipe")
    dataset = load_split(recipe, task, split, truth=info).dataset.take(limit)
    inputs = []
    for x, truth in dataset.map(lambda ex: task.serving_example(ex, recipe)).as_numpy_iterator():
        inputs.append(x)
        if truths is not None:
            truths.append(truth)
    return inputs


def evaluate_exported(run, recipe, task, info, limit: int) -> dict:
    """The task's metrics of a serving function (`load_exported`, or a Keras serving graph's
    `predict_on_batch`) on the first `limit` examples of the eval split, one at a time."""
    truths = []
    inputs = serving_inputs(recipe, task, recipe.data.eval_split, limit, truths, info)
    outputs = [{k: np.asarray(v) for k, v in run(x[None]).items()} for x in inputs]
    return task.serving_metrics(outputs, truths, info)


def sample_inputs(exported: Exported, limit: int = 8) -> list:
    """Inputs to compare an export with its Keras model on: eval-split examples where the
    recipe's data can be read, else seeded random images (clips) at the model's input size."""
    try:
        return serving_inputs(exported.recipe, exported.task, exported.recipe.data.eval_split, limit)
    except ZooError:
        shape = [*exported.serving.input_shape[1:-3], *exported.recipe.data.image_size, 3]
        return list(np.random.default_rng(0).integers(0, 256, (limit, *shape), dtype=np.uint8))


def differences(exported: Exported, run, inputs) -> dict:
    """The largest `Task.serving_differences` of Keras and the export over `inputs`, one at a time."""
    worst = {}
    for x in inputs:
        gaps = exported.task.serving_differences(exported.serving.predict_on_batch(x[None]), run(x[None]))
        for name, gap in gaps.items():
            worst[name] = max(worst.get(name, 0), gap)
    return worst


def latency(run, images, warmup: int = 3, runs: int = 20) -> float:
    """Median seconds per image of `run(images)` (a batch), after `warmup` calls."""
    for _ in range(warmup):
        run(images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times) / len(images)
