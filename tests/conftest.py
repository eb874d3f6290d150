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
