import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _float32_policy():
    """Each test starts and ends with the default float32 policy."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


def tiny(recipe: str, *overrides: str):
    """A shipped recipe shrunk for a fast test: quiet, few epochs unless overridden."""
    import zoo

    return zoo.load_recipe(recipe, ["train.verbose=0", *overrides])


def perturb(model, seed=0):
    """Move weights (BN statistics included) off their often degenerate initial values, so
    output comparisons between two models bite."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for v in model.weights:
        w = v.numpy()
        if "variance" in v.path:
            w = w * rng.uniform(0.5, 2.0, w.shape)
        else:  # 1-D: biases, BatchNorm gamma/beta/moving mean (beta and mean start at 0)
            w = w * rng.uniform(0.9, 1.1, w.shape) + (0.05 * rng.normal(size=w.shape) if w.ndim == 1 else 0)
        v.assign(w.astype(v.dtype))


def run_cli(capsys, *args):
    """`zoo ARGS...` in-process: (exit status, stdout, stderr)."""
    from zoo.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def history_rows(run_dir):
    """The rows of a run's history.csv, as dicts."""
    import csv

    with open(run_dir / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def save_keras_applications_h5(model, path):
    """Write `model`'s weights as Keras Applications' legacy .h5 files are laid out."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["backend"], f.attrs["keras_version"] = b"tensorflow", b"2.x"
        for layer in model.layers:
            group = f.create_group(layer.name)
            variables = layer.trainable_weights + layer.non_trainable_weights  # Keras' legacy order
            names = [f"{v.path}:0" for v in variables]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, v in zip(names, variables):
                group.create_dataset(name, data=v.numpy())
    return path


def driven_zoo(driver: str, tmp_path, *args, fault="", wait=True, **env):
    """`zoo ARGS...` in a fresh process through `driver` (a script that patches a fault in, read
    from $FAULT, then runs zoo.cli.main): (exit status, stdout, stderr), or the running process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "driver.py"
    script.write_text(driver)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "FAULT": fault,
           "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err
