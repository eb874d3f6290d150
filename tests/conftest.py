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
